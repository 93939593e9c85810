"""The robustness run of ``experiments/attack.py:fashion_mnist``: accuracy vs eps, and transfer.

Classifier A is ``config.classifier`` (+ ``classifier_overrides``), B the same
config with ``transfer_overrides`` (another training recipe), both trained
once and cached by :func:`vision.train.feature_classifier.load_or_train`.
For every eps: each model's accuracy under its own white-box attack
(:func:`vision.optimize.attacks.attack`), and each model's accuracy on the
other's adversarial examples (transfer). Writes ``robust_accuracy.png``,
``examples.png`` and ``results.json``.
"""

from __future__ import annotations

import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from vision import viz
from vision.data.sources import load_split
from vision.drivers import inputs
from vision.errors import ConfigError
from vision.ops import kernels
from vision.optimize.attacks import attack, perturbation_norms
from vision.train.feature_classifier import load_or_train
from vision.train.writers import write_json


def classifier_logits_fn(classifier):
  """``f(variables, images) -> logits`` of a project classifier (``load_or_train``), frozen."""
  model, preprocess = classifier.model, classifier.preprocess

  def fn(variables, images):
    x = preprocess(images)
    return model.apply(jax.lax.stop_gradient(variables), x, train=False)[0].astype(jnp.float32)

  return fn


def eps_key(eps: float) -> str:
  """``'8/255'`` for a whole number of 8-bit levels, else the number."""
  levels = eps * 255
  return f"{round(levels)}/255" if abs(levels - round(levels)) < 1e-6 else f"{eps:.6g}"


def _overrides(text: str) -> list[str]:
  return [o.strip() for o in text.split(";") if o.strip()]


def run(config, workdir: str) -> dict:
  """Robust accuracy vs eps of a project classifier, and transfer to a second classifier."""
  kernels.use(config.get("kernels", "auto"))
  t0 = time.time()
  inputs.check_attack(config)
  eps_list = [inputs.parse_number(e, "config.eps_list") for e in inputs.split_list(config.eps_list)]
  if not eps_list or min(eps_list) < 0:
    raise ConfigError(
      f"--config.eps_list={config.eps_list!r}: eps values must be >= 0; use e.g. "
      "--config.eps_list=0,2/255,8/255."
    )
  main_eps = inputs.parse_number(config.eps, "config.eps")
  if main_eps not in eps_list:
    eps_list.append(main_eps)
  eps_list = sorted(set(eps_list))
  overrides = {"A": _overrides(config.classifier_overrides)}
  use_b = bool(config.transfer_overrides.strip())
  if use_b:
    overrides["B"] = _overrides(config.transfer_overrides)
  classifiers = {k: load_or_train(config.classifier, o) for k, o in overrides.items()}
  fns = {k: classifier_logits_fn(c) for k, c in classifiers.items()}
  a = classifiers["A"]
  test = load_split(a.config.data, a.config.data.test_split)
  n = min(config.num_images, len(test)) if config.num_images > 0 else len(test)
  data = test.read(np.arange(n))
  images = data["image"].astype(np.float32) / 255.0
  labels = data["label"].astype(np.int32)
  batch = max(1, config.batch_size)
  predict = {k: jax.jit(lambda v, x, f=fns[k]: jnp.argmax(f(v, x), axis=-1)) for k in classifiers}

  def predictions(k, x):
    return np.concatenate(
      [
        np.asarray(predict[k](classifiers[k].variables, x[s : s + batch]))
        for s in range(0, len(x), batch)
      ]
    )

  clean_pred = {k: predictions(k, images) for k in classifiers}
  rng = jax.random.key(config.seed)
  accuracy = {src: {dst: [] for dst in classifiers} for src in classifiers}
  main = {}
  examples = {}
  bar = tqdm(
    total=len(eps_list) * len(classifiers) * -(-n // batch),
    desc="robustness",
    disable=not config.progress,
  )
  for eps in eps_list:
    settings = inputs.attack_settings(config, eps)
    for src in classifiers:
      if eps == 0:
        adv = images
        bar.update(-(-n // batch))
      else:
        chunks = []
        for s in range(0, n, batch):
          key = jax.random.fold_in(jax.random.fold_in(rng, s), round(eps * 1e6))
          x, y = jnp.asarray(images[s : s + batch]), jnp.asarray(labels[s : s + batch])
          chunks.append(
            np.asarray(attack(fns[src], classifiers[src].variables, x, y, key, **settings))
          )
          bar.update(1)
        adv = np.concatenate(chunks)
      for dst in classifiers:
        accuracy[src][dst].append(float(np.mean(predictions(dst, adv) == labels)))
      if src == "A":
        examples[eps] = adv[: config.num_examples]
        if eps == main_eps:
          ok = clean_pred["A"] == labels
          fooled = predictions("A", adv) != labels
          if not ok.any():
            # The success rate and the norms are over the images A gets right: none here.
            print(
              f"[robustness] warning: classifier A gets none of the {n} test images right, "
              "so the success rate and perturbation norms are undefined (null in results.json)"
              "; use more images (--config.num_images) or a trained classifier.",
              flush=True,
            )
            main = dict.fromkeys(
              ("success_rate", "mean_linf", "mean_l2", "max_linf", "max_l2", "all_within_eps")
            )
          else:
            norms = perturbation_norms(adv[ok], images[ok])
            main = {
              "success_rate": float(fooled[ok].mean()),
              "mean_linf": float(norms["linf"].mean()),
              "mean_l2": float(norms["l2"].mean()),
              "max_linf": float(norms["linf"].max()),
              "max_l2": float(norms["l2"].max()),
              # In the attack's own norm: an L2 example may be far outside L-inf's eps.
              "all_within_eps": bool((norms[config.norm] <= eps + 1e-6).all()),
            }
  bar.close()

  os.makedirs(workdir, exist_ok=True)
  kind = config.method.upper()
  curves = {f"A (white-box {kind})": accuracy["A"]["A"]}
  if use_b:
    curves[f"B (white-box {kind})"] = accuracy["B"]["B"]
    curves["B on A's examples (transfer)"] = accuracy["A"]["B"]
    curves["A on B's examples (transfer)"] = accuracy["B"]["A"]
  name = os.path.basename(config.classifier).removesuffix(".py")
  viz.plot_robust_accuracy(
    os.path.join(workdir, "robust_accuracy.png"),
    eps_list,
    curves,
    f"{name}: {kind} {config.norm}, {config.steps} steps, {n} test images",
    [eps_key(e) for e in eps_list],
    norm=config.norm,
  )
  shown = [e for e in eps_list if e > 0]
  shown = [shown[len(shown) // 2], shown[-1]] if len(shown) > 1 else shown
  class_names = a.class_names
  rows, titles = (
    [images[: config.num_examples]],
    [f"clean: {class_names[p]}" for p in clean_pred["A"][: config.num_examples]],
  )
  for eps in shown:
    rows.append(examples[eps])
    pred = predictions("A", examples[eps])
    titles += [f"{eps_key(eps)}: {class_names[p]}" for p in pred]
  if config.num_examples > 0:
    viz.labelled_gallery(
      os.path.join(workdir, "examples.png"),
      np.concatenate(rows),
      titles,
      ncols=config.num_examples,
    )

  def keyed(values):
    return {eps_key(e): round(v, 4) for e, v in zip(eps_list, values)}

  results = {
    "classifier": config.classifier,
    "classifier_a": {"overrides": overrides["A"], "test_accuracy": a.test_accuracy},
    "num_images": n,
    "method": config.method,
    "norm": config.norm,
    "steps": config.steps,
    "eps": main_eps,
    "clean_accuracy": float(np.mean(clean_pred["A"] == labels)),
    **main,
    "robust_accuracy": keyed(accuracy["A"]["A"]),
    "eps_levels": [round(e * 255, 4) for e in eps_list],
    "curves": {k: [round(v, 4) for v in values] for k, values in curves.items()},
  }
  if use_b:
    results["classifier_b"] = {
      "overrides": overrides["B"],
      "test_accuracy": classifiers["B"].test_accuracy,
    }
    results["clean_accuracy_b"] = float(np.mean(clean_pred["B"] == labels))
    results["robust_accuracy_b"] = keyed(accuracy["B"]["B"])
    results["transfer"] = {
      "b_accuracy_on_a_examples": keyed(accuracy["A"]["B"]),
      "a_accuracy_on_b_examples": keyed(accuracy["B"]["A"]),
    }
  results["seconds"] = round(time.time() - t0, 2)
  write_json(os.path.join(workdir, "results.json"), results)
  return results
