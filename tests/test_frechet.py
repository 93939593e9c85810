"""Fréchet distance against an independent computation; class entropy; the cached classifier."""

import os

import numpy as np
import pytest
import scipy.linalg

from vision.evaluate import frechet


def random_gaussian(rng, dim):
  a = rng.normal(size=(dim, dim))
  return rng.normal(size=dim), a @ a.T / dim + 0.1 * np.eye(dim)


def scipy_frechet(mu1, s1, mu2, s2):
  # The textbook formula with a general matrix square root of the non-symmetric product.
  covmean = scipy.linalg.sqrtm(s1 @ s2)
  return float(
    np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(np.real(covmean))
  )


@pytest.mark.parametrize("dim", [1, 5, 32])
def test_matches_scipy_sqrtm(dim):
  rng = np.random.default_rng(dim)
  mu1, s1 = random_gaussian(rng, dim)
  mu2, s2 = random_gaussian(rng, dim)
  got = frechet.frechet_distance(mu1, s1, mu2, s2)
  assert got == pytest.approx(scipy_frechet(mu1, s1, mu2, s2), rel=1e-8, abs=1e-9)
  # Symmetric in its arguments.
  assert got == pytest.approx(frechet.frechet_distance(mu2, s2, mu1, s1), rel=1e-8)


def test_closed_forms():
  # 1-D: (mu1 - mu2)^2 + (sigma1 - sigma2)^2.
  got = frechet.frechet_distance([1.0], [[4.0]], [-2.0], [[9.0]])
  assert got == pytest.approx(9.0 + 1.0)
  # Equal covariances: only the means count.
  rng = np.random.default_rng(0)
  mu, sigma = random_gaussian(rng, 6)
  assert frechet.frechet_distance(mu, sigma, mu + 0.5, sigma) == pytest.approx(6 * 0.25)
  # A singular (rank-deficient) covariance, as with fewer samples than dimensions.
  x = rng.normal(size=(5, 10))
  s = np.cov(x, rowvar=False)
  assert frechet.frechet_distance(np.zeros(10), s, np.zeros(10), s) == pytest.approx(0, abs=1e-6)


def test_features_with_themselves_are_at_distance_zero():
  rng = np.random.default_rng(1)
  x = rng.normal(size=(500, 16)) @ rng.normal(size=(16, 16))
  assert frechet.frechet_distance_of_features(x, x) == pytest.approx(0.0, abs=1e-7)
  y = rng.normal(size=(500, 16)) @ rng.normal(size=(16, 16))
  mu1, s1 = frechet.gaussian_stats(x)
  mu2, s2 = frechet.gaussian_stats(y)
  np.testing.assert_allclose(s1, np.cov(x.T))
  assert frechet.frechet_distance_of_features(x, y) == pytest.approx(
    scipy_frechet(mu1, s1, mu2, s2), rel=1e-7
  )
  with pytest.raises(ValueError):
    frechet.frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


def test_class_entropy_bits():
  uniform, p = frechet.class_entropy_bits(np.arange(1000) % 10, 10)
  assert uniform == pytest.approx(np.log2(10)) and np.allclose(p, 0.1)
  collapsed, p = frechet.class_entropy_bits(np.full(50, 3), 10)
  assert collapsed == 0.0 and p[3] == 1.0
  two, _ = frechet.class_entropy_bits(np.array([0, 1] * 10), 10)
  assert two == pytest.approx(1.0)


def test_config_hash_follows_the_config_but_not_run_time_fields():
  from vision import configs
  from vision.train.feature_classifier import config_hash, resolve_spec

  spec = resolve_spec("experiments/cnn_fashion_mnist.py:tiny")
  base = config_hash(configs.load_config(spec))
  assert base == config_hash(configs.load_config(spec, ["progress=True", "log_every=7"]))
  assert base != config_hash(configs.load_config(spec, ["model.hidden=48"]))


@pytest.mark.slow
def test_classifier_is_trained_once_then_restored(data_env, tmp_path):
  from vision.train.feature_classifier import load_or_train

  spec = "experiments/cnn_fashion_mnist.py:tiny"
  first = load_or_train(spec, cache_root=str(tmp_path))
  folders = lambda: sorted(p for p in os.listdir(tmp_path) if not p.endswith(".lock"))  # noqa: E731
  (folder,) = folders()
  stamp = os.path.getmtime(tmp_path / folder / "results.json")
  second = load_or_train(spec, cache_root=str(tmp_path))
  assert folders() == [folder]  # no '.partial' left behind
  assert os.path.getmtime(tmp_path / folder / "results.json") == stamp  # not retrained
  images = np.random.default_rng(0).integers(0, 256, (7, 28, 28, 1)).astype(np.uint8)
  f1, l1 = first(images, batch_size=4)
  f2, l2 = second(images, batch_size=4)
  assert f1.shape == (7, 32) and l1.shape == (7, 10)  # tiny CNN: hidden=32 pre-logits
  np.testing.assert_allclose(f1, f2, rtol=1e-6)
  np.testing.assert_allclose(l1, l2, rtol=1e-6, atol=1e-6)
  assert 0.0 <= first.test_accuracy <= 1.0
  with pytest.raises(TypeError):
    first(images.astype(np.float32))
