"""Random bits and Bernoulli masks (dropout, dynamic binarization), in two forms.

``kernels='portable'`` calls ``jax.random.bits`` / ``jax.random.bernoulli``.
Those hash one Threefry-2x32 block per element, and on CPU JAX lowers the hash
as a 5-trip ``fori_loop``: a memory pass over the array per trip, each an
unvectorized fusion. ``kernels='cpu'`` writes the same hash out straight (the
20 rounds of JAX's own GPU lowering), which XLA:CPU compiles to one vectorized
loop (docs/performance.md, change 7, has the measurements).

Written straight, though, XLA:CPU fuses the 20 rounds into every consumer of
the mask, forward and backward, including concatenations it emits as scalar
code, and the step gets slower. The ``'cpu'`` form therefore computes the bits
inside a ``lax.cond`` whose two branches are the same function: a
conditional's branches are separate computations that fusion cannot cross, so
the mask is computed once, vectorized, and read from memory by its consumers.

The bits are exactly ``jax.random.bits(key, shape)`` (partitionable Threefry,
JAX's default), so both forms draw the same masks as ``flax.linen.Dropout`` for
the same key (tests/test_ops_dropout.py). Keys of other PRNG implementations
take ``jax.random`` in either form.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from vision.ops.kernels import pick

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))


def _rotl(x: jax.Array, d: int) -> jax.Array:
  return lax.shift_left(x, np.uint32(d)) | lax.shift_right_logical(x, np.uint32(32 - d))


def threefry2x32(k1, k2, x1, x2) -> tuple[jax.Array, jax.Array]:
  """The Threefry-2x32 hash (20 rounds) of counters ``(x1, x2)`` under key ``(k1, k2)``,
  unrolled: the function of JAX's ``threefry2x32_p`` as its GPU lowering writes it."""
  ks = (k1, k2, k1 ^ k2 ^ np.uint32(0x1BD11BDA))
  x = [x1 + ks[0], x2 + ks[1]]
  for i in range(5):
    for r in _ROTATIONS[i % 2]:
      x[0] = x[0] + x[1]
      x[1] = x[0] ^ _rotl(x[1], r)
    x[0] = x[0] + ks[(i + 1) % 3]
    x[1] = x[1] + ks[(i + 2) % 3] + np.uint32(i + 1)
  return x[0], x[1]


def _threefry_key_data(key: jax.Array) -> jax.Array | None:
  """The (2,) uint32 data of a single Threefry key, typed or raw; None for any other key."""
  if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
    if key.shape == () and str(jax.random.key_impl(key)) == "threefry2x32":
      return jax.random.key_data(key)
    return None
  raw_threefry = jax.config.jax_default_prng_impl == "threefry2x32"
  if key.shape == (2,) and key.dtype == jnp.uint32 and raw_threefry:
    return key
  return None


def _bits_straight(data: jax.Array, shape: tuple[int, ...]) -> jax.Array:
  n = math.prod(shape)
  # JAX's partitionable counters: the flat index as a 64-bit number split into two words.
  hi = jnp.zeros(shape, jnp.uint32)
  lo = lax.iota(jnp.uint32, n).reshape(shape)
  b1, b2 = threefry2x32(data[0], data[1], hi, lo)
  return b1 ^ b2


def random_bits(key: jax.Array, shape: Sequence[int], kernels: str | None = None) -> jax.Array:
  """uint32 bits, equal to ``jax.random.bits(key, shape)``."""
  shape = tuple(int(d) for d in shape)
  data = _threefry_key_data(key) if pick(kernels) == "cpu" else None
  if data is None or not jax.config.jax_threefry_partitionable or math.prod(shape) >= 2**32:
    return jax.random.bits(key, shape)

  # The fusion barrier (module docstring): two identical branches, a data-dependent predicate.
  def draw(d):
    return _bits_straight(d, shape)

  return lax.cond(data[0] != data[1], draw, draw, data)


def bernoulli(
  key: jax.Array,
  p: float | jax.Array,
  shape: Sequence[int] | None = None,
  kernels: str | None = None,
) -> jax.Array:
  """A mask, True with probability ``p`` (a float or an array of them, ``shape`` defaulting to
  ``p``'s): equal to ``jax.random.bernoulli(key, p, shape)`` for float32 ``p``."""
  if pick(kernels) == "portable":
    return jax.random.bernoulli(key, p, shape)
  shape = np.shape(p) if shape is None else shape
  bits = random_bits(key, shape, "cpu")
  # jax.random.uniform's float32 construction: 23 random mantissa bits in [1, 2), minus 1.
  floats = lax.bitcast_convert_type(
    lax.shift_right_logical(bits, np.uint32(9)) | np.uint32(0x3F800000), jnp.float32
  )
  return (floats - jnp.float32(1.0)) < jnp.asarray(p, jnp.float32)
