"""Robust accuracy vs eps and the cross-model transfer table (experiments/attack.py:fashion_mnist)
on tiny classifiers, and the norm an attack's examples are checked in: numbers that must agree.

The photo attack's transfer to a second backbone runs in tests/test_optimize.py."""

import os

import jax
import jax.numpy as jnp
import matplotlib.axes
import numpy as np
import pytest

from vision import configs, viz
from vision.data.sources import load_split
from vision.drivers import attack as attack_driver
from vision.drivers import inputs, robustness

ATTACK = "experiments/attack.py"


@pytest.fixture(scope="module")
def classifier_cache(tmp_path_factory):
  """A private cache of the trained classifiers A and B, shared by this module's tests."""
  old = os.environ.get("VISION_CLASSIFIER_CACHE")
  os.environ["VISION_CLASSIFIER_CACHE"] = str(tmp_path_factory.mktemp("classifiers"))
  yield
  if old is None:
    os.environ.pop("VISION_CLASSIFIER_CACHE", None)
  else:
    os.environ["VISION_CLASSIFIER_CACHE"] = old


def robustness_config(*overrides):
  """The tiny robustness run: tiny CNNs A and B, the first 128 test images."""
  return configs.load_config(f"{ATTACK}:fashion_mnist,tiny", list(overrides))


@pytest.mark.slow
def test_robust_accuracy_curve_and_transfer_table(data_env, classifier_cache, tmp_path):
  config = robustness_config("eps_list=0,2/255,8/255,32/255")
  results = robustness.run(config, str(tmp_path))
  n = results["num_images"]
  one = 1 / n + 1e-4  # one image (results are rounded to 4 decimals)
  keys = ["0/255", "2/255", "8/255", "32/255"]
  white_a, white_b = results["robust_accuracy"], results["robust_accuracy_b"]
  assert list(white_a) == keys == list(white_b)
  # At eps 0 the images are the clean ones; the attack only lowers accuracy as eps grows.
  clean_a, clean_b = results["clean_accuracy"], results["clean_accuracy_b"]
  assert white_a["0/255"] == pytest.approx(clean_a, abs=1e-4)
  assert white_b["0/255"] == pytest.approx(clean_b, abs=1e-4)
  for curve in (white_a, white_b):
    values = list(curve.values())
    assert all(b <= a + one for a, b in zip(values, values[1:])), curve
    assert values[-1] < values[0] - 0.1, curve
  # The success rate at eps (among the images A classifies correctly) is the curve's drop.
  assert results["eps"] == 8 / 255
  assert white_a["8/255"] == pytest.approx(clean_a * (1 - results["success_rate"]), abs=one)
  assert results["all_within_eps"] and results["max_linf"] <= 8 / 255 + 1e-6

  # Transfer: each model on the other's examples. At eps 0 those are the clean images (each
  # model's clean accuracy); over the eps range a model's own white-box attack is the
  # stronger one; large perturbations made for A still fool B.
  transfer = results["transfer"]
  b_on_a, a_on_b = transfer["b_accuracy_on_a_examples"], transfer["a_accuracy_on_b_examples"]
  assert list(b_on_a) == keys == list(a_on_b)
  assert b_on_a["0/255"] == pytest.approx(clean_b, abs=1e-4)
  assert a_on_b["0/255"] == pytest.approx(clean_a, abs=1e-4)
  assert sum(b_on_a.values()) >= sum(white_b.values()) - one, (b_on_a, white_b)
  assert sum(a_on_b.values()) >= sum(white_a.values()) - one, (a_on_b, white_a)
  assert b_on_a["32/255"] < clean_b - 0.1, b_on_a
  # The figure plots the same numbers.
  curves = results["curves"]
  assert curves["A (white-box PGD)"] == list(white_a.values())
  assert curves["B on A's examples (transfer)"] == list(b_on_a.values())
  assert os.path.getsize(tmp_path / "robust_accuracy.png") > 0


@pytest.mark.slow
def test_l2_robustness_measures_the_l2_ball(data_env, classifier_cache, tmp_path, monkeypatch):
  labels = []
  set_xlabel = matplotlib.axes.Axes.set_xlabel
  monkeypatch.setattr(
    matplotlib.axes.Axes,
    "set_xlabel",
    lambda self, text, *a, **k: labels.append(text) or set_xlabel(self, text, *a, **k),
  )
  config = robustness_config("norm=l2", "eps=1.0", "eps_list=0,1.0", "transfer_overrides=")
  results = robustness.run(config, str(tmp_path / "pgd"))
  assert results["norm"] == "l2" and "transfer" not in results
  assert results["all_within_eps"] and results["max_l2"] <= 1.0 + 1e-6
  assert [x for x in labels if x.startswith("eps")] == ["eps (L2, pixel units)"]

  # Examples 0.1 from the images in every pixel: inside L-inf's 1.0, but an L2 distance of
  # 0.1 * 28 = 2.8, outside the L2 ball of radius 1.0.
  def outside_the_l2_ball(fn, variables, x, y, key, **settings):
    assert settings["norm"] == "l2"
    return jnp.clip(x + jnp.where(x < 0.5, 0.1, -0.1), 0.0, 1.0)

  monkeypatch.setattr(robustness, "attack", outside_the_l2_ball)
  results = robustness.run(config, str(tmp_path / "outside"))
  assert results["max_linf"] == pytest.approx(0.1, abs=1e-6)
  assert results["max_l2"] == pytest.approx(2.8, abs=1e-3)
  assert results["all_within_eps"] is False


@pytest.mark.slow
def test_photo_attack_checks_l2_examples_against_the_l2_ball(tmp_path, monkeypatch):
  """An L2 attack's saved examples are judged in the L2 norm: examples 26 levels from the
  photo in every pixel (0.102 * sqrt(32 * 32 * 3) = 5.6 in L2) are outside eps 1.0, though
  inside it in L-inf."""

  def outside_the_l2_ball(fn, variables, x, y, key, **settings):
    assert settings["norm"] == "l2"
    return jnp.clip(x + jnp.where(x < 0.5, 26 / 255, -26 / 255), 0.0, 1.0)

  monkeypatch.setattr(attack_driver, "attack", outside_the_l2_ball)
  # A file without '=CLASSES' is labelled by the model's own clean top-1 class, so it is
  # attacked at any size.
  photo = viz.save_image(str(tmp_path / "coffee.png"), inputs.load_photo("coffee", 32))
  config = configs.load_config(f"{ATTACK}:tiny,l2", ["size=32", f"images={photo}"])
  results = attack_driver.run(config, str(tmp_path / "l2"))
  assert results["attacked"] == 1 and results["eps"] == 1.0
  assert results["max_linf"] == pytest.approx(26 / 255, abs=1e-6)
  assert results["per_image"][0]["l2"] > 5
  assert results["all_within_eps"] is False


@pytest.mark.slow
def test_no_correctly_classified_image_gives_null_attack_figures(
  data_env, classifier_cache, tmp_path, monkeypatch, capsys
):
  """The success rate and norms are over the images A gets right; with none, they are
  null and a warning says why, while the accuracy curve is still written."""
  config = robustness_config("num_images=4", "eps_list=0,8/255", "transfer_overrides=")
  data = config_data(config)
  labels = load_split(data, data.test_split).read(np.arange(4))["label"]
  wrong = next(c for c in range(10) if c not in set(labels.tolist()))

  def always_wrong(classifier):
    return lambda variables, images: jax.nn.one_hot(jnp.full(images.shape[0], wrong), 10)

  monkeypatch.setattr(robustness, "classifier_logits_fn", always_wrong)
  results = robustness.run(config, str(tmp_path))
  assert results["clean_accuracy"] == 0.0
  assert results["success_rate"] is None and results["max_linf"] is None
  assert list(results["robust_accuracy"].values()) == [0.0, 0.0]
  assert "gets none of the 4 test images right" in capsys.readouterr().out
  assert os.path.getsize(tmp_path / "robust_accuracy.png") > 0


def config_data(config):
  """The data config of the robustness run's classifier A."""
  overrides = robustness._overrides(config.classifier_overrides)
  return configs.load_config(config.classifier, list(overrides)).data
