"""Backend-specific forms of the models' operations, chosen by one switch (`kernels`).

Every operation here computes the same function in every form; a form only
changes how XLA is asked to compute it. ``portable`` is the plain ``lax`` /
``jax.random`` form that every backend compiles well; ``cpu`` holds the forms
that XLA:CPU runs faster (docs/performance.md has the measurements).
"""
