"""vision.ops.kernels: the switch itself, and every model computing the same function and
gradients under ``kernels='portable'`` and ``kernels='cpu'``.

The choice is read while a function is traced, so each form gets freshly jitted
functions inside ``kernels.use(...)``.
"""

import os
import subprocess
import sys
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from vision.errors import ConfigError
from vision.models import registry
from vision.ops import kernels

# These tests choose the kernel forms themselves.
pytestmark = pytest.mark.usefixtures("pinned_kernels")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# -- the switch ------------------------------------------------------------------------------------
@pytest.fixture
def restore_choice(monkeypatch):
  """Undo a bare ``kernels.use(...)`` (it sets the process-wide choice)."""
  monkeypatch.setattr(kernels, "_current", kernels._current)
  monkeypatch.delenv(kernels.ENV_VAR, raising=False)


def test_resolve(restore_choice, monkeypatch):
  assert kernels.resolve("auto") == ("cpu" if kernels.backend() == "cpu" else "portable")
  assert kernels.resolve(None) == kernels.resolve("auto")
  assert kernels.resolve("portable") == "portable" and kernels.resolve("cpu") == "cpu"
  with pytest.raises(ConfigError, match="unknown kernels 'gpu'"):
    kernels.resolve("gpu")
  # VISION_KERNELS wins over the config, and is checked too.
  monkeypatch.setenv(kernels.ENV_VAR, "portable")
  assert kernels.resolve("cpu") == "portable"
  monkeypatch.setenv(kernels.ENV_VAR, "fast")
  with pytest.raises(ConfigError, match=kernels.ENV_VAR):
    kernels.resolve("cpu")


def test_use_sets_the_choice_and_restores_it_as_a_context_manager(restore_choice):
  before = kernels.current()
  with kernels.use("portable") as chosen:
    assert chosen == "portable" and kernels.current() == "portable"
    with kernels.use("cpu"):
      assert kernels.current() == "cpu"
      assert kernels.pick(None) == "cpu" and kernels.pick("portable") == "portable"
    assert kernels.current() == "portable"
  assert kernels.current() == before
  kernels.use("portable")  # a plain call: the process-wide choice from now on
  assert kernels.current() == "portable"
  with pytest.raises(ValueError, match="kernels must be"):
    kernels.pick("auto")  # operations take a resolved form


def test_xla_cpu_defaults_respect_the_users_flags():
  env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
  flags = kernels.apply_xla_cpu_defaults(env)
  assert flags == env["XLA_FLAGS"]
  assert flags.startswith("--xla_force_host_platform_device_count=8 ")
  assert "--xla_cpu_experimental_ynn_fusion_type=-individual_convolution" in flags
  # A user's own value of the flag wins; VISION_XLA_DEFAULTS=0 adds nothing.
  own = {"XLA_FLAGS": "--xla_cpu_experimental_ynn_fusion_type="}
  assert kernels.apply_xla_cpu_defaults(own) == "--xla_cpu_experimental_ynn_fusion_type="
  off = {"VISION_XLA_DEFAULTS": "0"}
  assert kernels.apply_xla_cpu_defaults(off) == "" and "XLA_FLAGS" not in off


def test_conftest_set_the_default_before_the_backend_started():
  # tests/conftest.py applies the default as the entry points do: convolutions
  # compile without YNNPACK fusions.
  assert "ynn_fusion_type" in os.environ.get("XLA_FLAGS", "")
  x, kernel = jnp.ones((2, 8, 8, 4)), jnp.ones((3, 3, 4, 4))

  def f(x, kernel):
    return lax.conv_general_dilated(
      x, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )

  text = jax.jit(f).lower(x, kernel).compile().as_text()
  assert "convolution(" in text and "__ynn_fusion" not in text


def test_importing_the_models_and_ops_sets_no_environment_variable():
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  env["PYTHONPATH"] = ROOT
  code = (
    "import os\n"
    "import vision.models.layers, vision.ops.conv, vision.ops.depthwise\n"
    "import vision.ops.dropout, vision.ops.shards\n"
    "from vision.models import registry\n"
    "registry.available()\n"
    "assert 'XLA_FLAGS' not in os.environ, os.environ['XLA_FLAGS']\n"
  )
  proc = subprocess.run(
    [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300
  )
  assert proc.returncode == 0, proc.stderr


# -- every model, both forms ---------------------------------------------------------------------
class Case(NamedTuple):
  """``params`` and ``forward(params) -> outputs``; ``uses_ops``: whether the model has a layer
  whose two forms differ (else the two traces must be identical)."""

  params: dict
  forward: Callable
  uses_ops: bool


def _images(shape, seed=0):
  return jnp.asarray(np.random.default_rng(seed).random(shape, dtype=np.float32))


def _classifier(name, shape, uses_ops=True, train=True, **kwargs):
  """Any model called as ``model(images, train=...)`` returning ``(output, features)``.

  The backbones run in eval mode: batch norm over a batch of two 1x1 maps (their
  last stages) divides by a variance that amplifies rounding differences.
  """
  model = registry.create_model(name, **kwargs)
  images = _images(shape)
  variables = model.init(jax.random.key(1), images)
  other = {k: v for k, v in variables.items() if k != "params"}

  def forward(params):
    out, _ = model.apply(
      {**other, "params": params},
      images,
      train=train,
      rngs={"dropout": jax.random.key(2)},
      mutable=list(other),
    )
    return out[0]

  return Case(variables["params"], forward, uses_ops)


def _vae(name, uses_ops, **kwargs):
  model = registry.create_model(name, **kwargs)
  images = _images((3, 28, 28, 1))
  noise = jax.random.normal(jax.random.key(3), (3, model.encoder.latent_dim))
  params = model.init(jax.random.key(1), images, noise=noise)["params"]

  def forward(params):
    logits, features = model.apply({"params": params}, images, noise=noise)
    return logits, features["mean"], features["logvar"]

  return Case(params, forward, uses_ops)


def _gan(name, uses_ops=True):
  """The discriminator applied to the generator's images, both training (batch norm, dropout)."""
  gan = registry.create_model(name)
  z = jax.random.normal(jax.random.key(0), (2, gan.latent_dim))
  labels = jnp.array([1, 3]) if gan.conditional else None
  g_vars = gan.generator.init(jax.random.key(1), z, labels)
  d_vars = gan.discriminator.init(jax.random.key(2), jnp.zeros((2, 28, 28, 1)), labels)

  def forward(params):
    (images, _), _ = gan.generator.apply(
      {**g_vars, "params": params["g"]}, z, labels, train=True, mutable=["batch_stats"]
    )
    (logits, _), _ = gan.discriminator.apply(
      {**d_vars, "params": params["d"]},
      images,
      labels,
      train=True,
      rngs={"dropout": jax.random.key(3)},
      mutable=["batch_stats"],
    )
    return images, logits

  return Case({"g": g_vars["params"], "d": d_vars["params"]}, forward, uses_ops)


CASES = {
  "cnn": lambda: _classifier("cnn", (2, 28, 28, 1), widths=(4, 8), hidden=16),  # dropout
  "conv_autoencoder": lambda: _classifier("conv_autoencoder", (2, 28, 28, 1), uses_ops=False),
  "conv_autoencoder_learned": lambda: _classifier(
    "conv_autoencoder", (2, 28, 28, 1), upsample="learned"
  ),
  "superres_net": lambda: _classifier("superres_net", (2, 7, 7, 1), width=8, scale=4),
  "aae": lambda: _classifier(
    "aae", (2, 28, 28, 1), uses_ops=False, hidden=(16,), discriminator_hidden=(8,)
  ),
  "conv_vae": lambda: _vae("conv_vae", True, encoder_widths=(8, 16), decoder_widths=(16, 8)),
  "dense_vae": lambda: _vae("dense_vae", False, hidden=(16,)),
  "dense_gan": lambda: _gan("dense_gan", uses_ops=False),
  "dcgan_tiny": lambda: _gan("dcgan_tiny"),
  "cdcgan_tiny": lambda: _gan("cdcgan_tiny"),
  "dcgan_convt": lambda: _gan("dcgan_convt"),  # 4x4 transposed convolutions
  "efficientnet_lite_tiny": lambda: _classifier(
    "efficientnet_lite_tiny", (2, 32, 32, 3), train=False
  ),
  "mobilenet_v2_tiny": lambda: _classifier("mobilenet_v2_tiny", (2, 32, 32, 3), train=False),
  "mobilenet_v2_tiny_keras": lambda: _classifier(
    "mobilenet_v2_tiny", (2, 32, 32, 3), train=False, weights_format="keras"
  ),
  "resnet_tiny": lambda: _classifier("resnet_tiny", (2, 32, 32, 3), train=False),
  "vgg_tiny": lambda: _classifier("vgg_tiny", (2, 32, 32, 3), dropout_rate=0.5),
}
# Too large for a unit test; built from the same layers as the case named.
SAME_LAYERS_AS = {
  "dcgan": "dcgan_tiny",  # 5x5 kernels (tests/test_ops_conv.py has their one-channel form)
  "cdcgan": "cdcgan_tiny",
  **{f"efficientnet_lite{i}": "efficientnet_lite_tiny" for i in range(5)},
  "mobilenet_v2": "mobilenet_v2_tiny",
  "resnet18": "resnet_tiny",
  "resnet34": "resnet_tiny",
  "resnet50": "resnet_tiny",  # bottleneck blocks: their 1x1 convolutions are the matmul form
  "vgg16": "vgg_tiny",
  "vgg19": "vgg_tiny",
}


def test_every_registered_model_is_compared():
  covered = {name.removesuffix("_keras").removesuffix("_learned") for name in CASES}
  assert set(registry.available()) <= covered | set(SAME_LAYERS_AS)
  assert set(SAME_LAYERS_AS.values()) <= set(CASES)


def _loss(outputs):
  return sum(jnp.sum(jnp.sin(leaf)) for leaf in jax.tree.leaves(outputs))


# Compiling these twice takes several seconds each: run with the slow tests.
SLOW_CASES = {
  "cnn",
  "conv_vae",
  "dcgan_tiny",
  "cdcgan_tiny",
  "dcgan_convt",
  "efficientnet_lite_tiny",
  "mobilenet_v2_tiny",
  "mobilenet_v2_tiny_keras",
  "resnet_tiny",
  "vgg_tiny",
}


@pytest.mark.parametrize(
  "name",
  [pytest.param(n, marks=pytest.mark.slow if n in SLOW_CASES else ()) for n in sorted(CASES)],
)
def test_model_is_the_same_function_in_both_forms(name):
  case = CASES[name]()

  def value_and_grad(params):
    outputs = case.forward(params)
    return _loss(outputs), outputs

  results, texts = {}, {}
  for form in ("portable", "cpu"):
    with kernels.use(form):
      lowered = jax.jit(jax.value_and_grad(value_and_grad, has_aux=True)).lower(case.params)
    texts[form] = lowered.as_text()
    results[form] = jax.device_get(lowered.compile()(case.params))
  # The switch reached the model (or there is nothing in it to switch).
  assert (texts["cpu"] != texts["portable"]) == case.uses_ops
  (_, out_cpu), grad_cpu = results["cpu"]
  (_, out_portable), grad_portable = results["portable"]
  for a, b in zip(jax.tree.leaves(out_cpu), jax.tree.leaves(out_portable)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
  paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(grad_cpu)]
  for path, a, b in zip(paths, jax.tree.leaves(grad_cpu), jax.tree.leaves(grad_portable)):
    scale = float(np.max(np.abs(b))) + 1e-6
    np.testing.assert_allclose(a / scale, b / scale, rtol=1e-4, atol=1e-4, err_msg=path)
