"""Flax Linen models. Every model maps images to ``(output, features)``.

``features`` is a dict of named intermediate activations, so that other code
(probes, style losses, feature visualization) can tap any layer by name.
"""
