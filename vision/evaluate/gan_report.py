"""A generator's samples, metrics and pictures.

Metrics: the Fréchet distance between samples and real test images in the
features of a classifier trained by this project (``fd``), next to its
real-vs-real baseline (train vs test images, same extractor and count); the
entropy of the classes the classifier sees in the samples (mode collapse shows
as low entropy); the same distance in EfficientNet-Lite0 features
(``fd_effnet``) when that backbone's weights are available. Pictures: the
fixed-noise grids of training (one PNG each, an evolution strip and GIF),
samples, a class-by-class grid of a conditional generator, the class histogram
and the two players' loss curves.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from vision import viz
from vision.evaluate import frechet
from vision.evaluate.batched import batched_apply
from vision.weights import load_pretrained


def draw_samples(
  sample: Callable,
  variables,
  n: int,
  seed: int,
  latent_dim: int,
  num_classes: int,
  batch_size: int = 500,
) -> tuple[np.ndarray, np.ndarray]:
  """``n`` samples and their class labels (balanced: example ``i`` asks for class ``i % K``).

  ``sample(variables, z, labels) -> uint8 images`` (jitted); batch ``i`` draws
  its noise from ``fold_in(key(seed), i)``, so a sample depends on its index,
  the seed and the batch size only.
  """
  key = jax.random.key(seed)

  def draw(batch):
    z = jax.random.normal(
      jax.random.fold_in(key, int(batch["index"][0]) // batch_size), (batch_size, latent_dim)
    )
    labels = jnp.asarray(batch["index"] % num_classes, jnp.int32)
    return {"image": sample(variables, z, labels), "label": labels}

  out = batched_apply(draw, {"index": np.arange(n)}, batch_size)
  return out["image"], out["label"]


def real_images(test, train, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """``count`` images of the test and of the train split (uint8), a seeded choice of each."""
  rng = np.random.default_rng(seed)
  pick = lambda split: np.sort(rng.permutation(len(split))[:count])  # noqa: E731
  test_images = test.read(pick(test))["image"]
  train_images = train.read(pick(train))["image"]
  return test_images, train_images


def classifier_metrics(
  classifier,
  samples: np.ndarray,
  sample_labels: np.ndarray,
  test_images: np.ndarray,
  train_images: np.ndarray,
  *,
  untrained: np.ndarray,
  last: np.ndarray,
  conditional: bool,
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
  """Fréchet distances and class statistics in a classifier's features.

  ``classifier(uint8 images) -> (features, logits)`` with ``num_classes``,
  ``class_names`` and ``test_accuracy``. ``samples`` are the (averaged)
  generator's, ``untrained`` and ``last`` the same noise through the initial
  and the last (not averaged) generator; each set is compared with
  ``test_images``. Returns the metrics and the class fractions
  ``{'generated', 'real test'}``.
  """
  count = len(test_images)
  test_features, test_logits = classifier(test_images)
  train_features, _ = classifier(train_images)
  gen_features, gen_logits = classifier(samples[:count])
  stats_test = frechet.gaussian_stats(test_features)
  fd_to_test = lambda f: frechet.frechet_distance(*frechet.gaussian_stats(f), *stats_test)  # noqa: E731
  entropy, fractions = frechet.class_entropy_bits(gen_logits.argmax(-1), classifier.num_classes)
  real_entropy, real_fractions = frechet.class_entropy_bits(
    test_logits.argmax(-1), classifier.num_classes
  )
  results = {
    "fd": fd_to_test(gen_features),
    "fd_real_baseline": frechet.frechet_distance_of_features(train_features, test_features),
    "fd_untrained": fd_to_test(classifier(untrained)[0]),
    "fd_last": fd_to_test(classifier(last)[0]),
    "fd_samples": float(count),
    "class_entropy_bits": entropy,
    "class_entropy_bits_real": real_entropy,
    "classifier_test_accuracy": classifier.test_accuracy,
  }
  if conditional:
    # Does the classifier see the class the generator was asked for?
    results["label_accuracy"] = float(np.mean(gen_logits.argmax(-1) == sample_labels[:count]))
  for name, fraction in zip(classifier.class_names, fractions):
    results[f"generated_class_fraction/{name}"] = float(fraction)
  return results, {"generated": fractions, "real test": real_fractions}


def class_histogram(workdir: str, class_names, fractions: dict, count: int, entropy: float) -> str:
  """``class_histogram.png``: generated vs real class fractions."""
  return viz.plot_class_histogram(
    os.path.join(workdir, "class_histogram.png"),
    class_names,
    fractions,
    title=f"classes of {count} samples (entropy {entropy:.3f} bits)",
  )


def effnet_frechet_distance(
  samples, test_images, train_images, count: int, size: int
) -> dict[str, float]:
  """``fd_effnet`` and its real baseline in EfficientNet-Lite0 pooled features, when the
  backbone and its weights are available; ``{}`` (with a log line) when not or when off."""
  if count <= 0:
    return {}
  try:
    model, variables = load_pretrained("efficientnet_lite0", num_classes=None)
  except Exception as e:  # noqa: BLE001 - optional metric: any missing piece skips it
    logging.warning(
      "fd_effnet skipped: EfficientNet-Lite0 unavailable (%s: %s)", type(e).__name__, str(e)[:200]
    )
    return {}

  @jax.jit
  def features(variables, images):  # weights as an argument, not baked-in constants
    x = images.astype(jnp.float32) / 255.0
    if x.shape[-1] == 1:
      x = jnp.repeat(x, 3, axis=-1)  # grey -> RGB
    x = jax.image.resize(x, (x.shape[0], size, size, 3), "bilinear")
    pooled, _ = model.apply(variables, x)  # num_classes=None: the pooled features
    return pooled.reshape(pooled.shape[0], -1)

  count = min(count, len(samples), len(test_images), len(train_images))

  def extract(images, batch_size=100):
    out = batched_apply(
      lambda b: {"f": features(variables, b["image"])}, {"image": images[:count]}, batch_size
    )
    return np.asarray(out["f"], np.float64)

  test = extract(test_images)
  return {
    "fd_effnet": frechet.frechet_distance_of_features(extract(samples), test),
    "fd_effnet_real_baseline": frechet.frechet_distance_of_features(extract(train_images), test),
    "fd_effnet_samples": float(count),
  }


# -- pictures --------------------------------------------------------------------------------------
def snapshot_pictures(workdir: str, writer, grids, steps, grid_size: int) -> None:
  """The fixed-noise grids of training: ``grids/step_NNNNNNN.png`` each (and in ``writer`` at its
  step), the last as ``samples_fixed_noise.png``, ``evolution.png`` and ``evolution.gif``."""
  ncols = int(np.ceil(np.sqrt(grid_size)))
  os.makedirs(os.path.join(workdir, "grids"), exist_ok=True)
  for step, grid in zip(steps, grids):
    mosaic = viz.image_grid(grid, ncols)
    viz.save_image(os.path.join(workdir, "grids", f"step_{step:07d}.png"), mosaic)
    writer.write_images(step, {"samples/fixed_noise": mosaic})
  viz.save_image(os.path.join(workdir, "samples_fixed_noise.png"), viz.image_grid(grids[-1], ncols))
  viz.evolution_strip(os.path.join(workdir, "evolution.png"), grids, steps, ncols=10)
  viz.save_gif(os.path.join(workdir, "evolution.gif"), [viz.image_grid(g, ncols) for g in grids])


def sample_pictures(workdir: str, samples, sample_labels, class_names, conditional: bool) -> None:
  """``samples.png`` (the first 100) and, for a conditional generator, ``class_grid.png``."""
  viz.save_grid(os.path.join(workdir, "samples.png"), samples[:100], ncols=10)
  if conditional:
    per_class = [samples[sample_labels == c][:10] for c in range(len(class_names))]
    viz.class_rows(os.path.join(workdir, "class_grid.png"), per_class, class_names)


def loss_curves(workdir: str, records: list[dict]) -> None:
  """``gan_losses.png`` from the logged metrics records (nothing when there are none)."""
  if records:
    viz.plot_gan_losses(os.path.join(workdir, "gan_losses.png"), records)
