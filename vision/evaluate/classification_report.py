"""The final test report of a classifier: accuracy tables, confusion matrix, misclassified gallery.

``report(workdir, logits, labels, class_names, read_images)`` turns the test
logits into the ``test_*`` results and writes ``confusion.png``,
``misclassified.png`` and ``per_class_accuracy.md`` into ``workdir``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np
from scipy.special import log_softmax

from vision import viz


def report(
  workdir: str,
  logits: np.ndarray,
  labels: np.ndarray,
  class_names: Sequence[str],
  read_images: Callable[[np.ndarray], np.ndarray],
  max_wrong: int = 32,
) -> dict[str, float]:
  """Test metrics of ``logits`` [N, K] float32 against ``labels`` [N], and the pictures.

  ``read_images(indices)`` -> uint8 images of those test examples, for the
  gallery of the first ``max_wrong`` misclassified ones (a model trained on
  cached features is shown with the images they came from).
  """
  num_classes = len(class_names)
  preds = logits.argmax(-1)
  top3 = np.argsort(-logits, -1)[:, :3]
  confusion = np.zeros((num_classes, num_classes), np.int64)
  np.add.at(confusion, (labels, preds), 1)
  per_class = confusion.diagonal() / np.maximum(confusion.sum(1), 1)
  log_probs = log_softmax(logits, axis=-1)
  results = {
    "test_accuracy": float(np.mean(preds == labels)),
    "test_top3_accuracy": float(np.mean((top3 == labels[:, None]).any(-1))),
    "test_loss": float(-np.mean(log_probs[np.arange(len(labels)), labels])),
    "test_examples": float(len(labels)),
  }
  for name, acc in zip(class_names, per_class):
    results[f"test_class_accuracy/{name}"] = float(acc)
  viz.plot_confusion(os.path.join(workdir, "confusion.png"), confusion, list(class_names))
  wrong = np.flatnonzero(preds != labels)[:max_wrong]
  wrong_images = read_images(wrong.astype(np.int64)) if len(wrong) else []
  wrong_titles = [f"pred: {class_names[preds[i]]}\ntrue: {class_names[labels[i]]}" for i in wrong]
  viz.labelled_gallery(os.path.join(workdir, "misclassified.png"), wrong_images, wrong_titles)
  with open(os.path.join(workdir, "per_class_accuracy.md"), "w") as f:
    f.write("| class | test accuracy | examples |\n|---|---|---|\n")
    for name, acc, n in zip(class_names, per_class, confusion.sum(1)):
      f.write(f"| {name} | {acc:.4f} | {n} |\n")
  return results
