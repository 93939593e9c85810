"""A trained classifier as a batched feature extractor, for generative metrics.

The Fréchet distance of a generative model is only as meaningful as the
features it is computed in. For 28x28 grey images the project's own
Fashion-MNIST CNN (``experiments/cnn_fashion_mnist.py``) is a better-matched
extractor than an ImageNet network fed upsampled thumbnails, and it also
classifies the samples, which exposes mode collapse.
:class:`ClassifierFeatures` wraps such a model and its variables;
The training layer's ``feature_classifier.load_or_train`` trains one once
(with the training loop) and restores it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vision.evaluate.batched import batched_apply


class ClassifierFeatures:
  """uint8 images -> (features, logits) of a trained classifier, in fixed-size batches.

  ``model.apply(variables, preprocess(images), train=False)`` must return
  ``(logits, features)`` with ``features[feature_name]`` the representation to
  measure in. ``results`` (the classifier's training results, e.g.
  ``test_accuracy``), ``config`` (its training config) and ``workdir`` (where it
  was trained) describe where it came from.
  """

  def __init__(
    self,
    model: nn.Module,
    variables: Any,
    preprocess: Callable[[jax.Array], jax.Array],
    class_names: Sequence[str],
    *,
    feature_name: str = "pre_logits",
    results: dict | None = None,
    config: Any = None,
    workdir: str | None = None,
  ):
    self.model, self.variables, self.preprocess = model, variables, preprocess
    self.class_names = list(class_names)
    self.num_classes = len(self.class_names)
    self.feature_name = feature_name
    self.results = dict(results or {})
    self.config, self.workdir = config, workdir

    def apply(variables, images):
      logits, features = model.apply(variables, preprocess(images), train=False)
      feats = features[feature_name]
      return feats.reshape(feats.shape[0], -1).astype(jnp.float32), logits.astype(jnp.float32)

    self._apply = jax.jit(apply)

  @property
  def test_accuracy(self) -> float:
    return float(self.results.get("test_accuracy", float("nan")))

  def __call__(self, images, batch_size: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """uint8 [N, H, W, C] -> (features [N, D] float64, logits [N, K] float32)."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
      raise TypeError(f"pass uint8 images (as saved and shown), got {images.dtype}.")

    def apply(batch):
      features, logits = self._apply(self.variables, batch["image"])
      return {"features": features, "logits": logits}

    out = batched_apply(apply, {"image": images}, batch_size)
    return out["features"].astype(np.float64), out["logits"]
