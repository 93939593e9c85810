"""vision.models.conv: the phase-decomposed adjoints compute XLA's functions and gradients.

Every case compares values and both gradients (input and kernel) with
``lax.conv_general_dilated`` / ``lax.conv_transpose`` on random inputs, for each
kernel-gradient method, strides 1-3, odd/even sizes, asymmetric and negative
(cropping) paddings, and both adjoint paths (a convolution per phase for wide
results, one matmul then shifted adds for results of <= 4 channels).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from vision.models import conv, layers

DN = ("NHWC", "HWIO", "NHWC")

CONV_CASES = [
  # (h, w, k, stride, padding, cin, cout)
  (14, 14, 5, 2, ((1, 2), (1, 2)), 6, 8),  # the DCGAN discriminator's layer
  (28, 28, 3, 2, ((0, 1), (0, 1)), 2, 5),  # the VAE encoder's (narrow result: Cin 2)
  (7, 7, 5, 1, ((2, 2), (2, 2)), 6, 7),
  (9, 10, 3, 2, ((1, 1), (1, 1)), 5, 3),  # odd sizes
  (8, 8, 1, 2, ((0, 0), (0, 0)), 6, 3),  # 1x1 stride 2: a phase with no taps
  (10, 11, 4, 3, ((1, 2), (0, 1)), 6, 2),  # stride 3, even kernel
  (28, 27, 5, 2, ((1, 2), (1, 2)), 1, 8),  # one input channel: conv2d's im2col matmul
  (12, 12, 3, 1, ((1, 1), (1, 1)), 1, 3),
]


def _rel_err(a, b):
  return float(jnp.max(jnp.abs(a - b)) / (jnp.max(jnp.abs(b)) + 1e-12))


@pytest.mark.parametrize("case", CONV_CASES)
@pytest.mark.parametrize("kernel_grad", ["xla", "taps", "patches", "auto"])
def test_conv_matches_xla_values_and_gradients(case, kernel_grad):
  h, w, k, s, pad, cin, cout = case
  rng = np.random.default_rng(h * 100 + k * 10 + s)
  x = jnp.asarray(rng.standard_normal((2, h, w, cin)), jnp.float32)
  kernel = jnp.asarray(rng.standard_normal((k, k, cin, cout)), jnp.float32)

  def ref(x, kernel):
    return lax.conv_general_dilated(x, kernel, (s, s), pad, dimension_numbers=DN)

  def fast(x, kernel):
    return conv.conv(x, kernel, (s, s), pad, kernel_grad)

  y = ref(x, kernel)
  g = jnp.asarray(rng.standard_normal(y.shape), jnp.float32)
  np.testing.assert_allclose(jax.jit(fast)(x, kernel), y, rtol=1e-5, atol=1e-5)
  want = jax.vjp(ref, x, kernel)[1](g)
  got = jax.jit(lambda x, k, g: jax.vjp(fast, x, k)[1](g))(x, kernel, g)
  assert _rel_err(got[0], want[0]) < 1e-5  # input gradient (conv_adjoint)
  assert _rel_err(got[1], want[1]) < 1e-5  # kernel gradient


@pytest.mark.parametrize("case", CONV_CASES)
@pytest.mark.parametrize("path", [*conv.ADJOINT_FORMS, "narrow"])
def test_every_adjoint_path_is_the_input_gradient(monkeypatch, case, path):
  h, w, k, s, pad, cin, cout = case
  monkeypatch.setattr(conv, "ADJOINT_FORM", path if path in conv.ADJOINT_FORMS else "phases")
  monkeypatch.setattr(conv, "ADJOINT_ONE_CONV_MAX_OVERHEAD", 100.0)
  monkeypatch.setattr(conv, "NARROW_CHANNELS", 1000 if path == "narrow" else 0)
  rng = np.random.default_rng(h + k + s + cin)
  x = jnp.asarray(rng.standard_normal((2, h, w, cin)), jnp.float32)
  kernel = jnp.asarray(rng.standard_normal((k, k, cin, cout)), jnp.float32)

  def forward(x):
    return lax.conv_general_dilated(x, kernel, (s, s), pad, dimension_numbers=DN)

  y, vjp = jax.vjp(forward, x)
  g = jnp.asarray(rng.standard_normal(y.shape), jnp.float32)
  got = conv.conv_adjoint(g, kernel, (s, s), pad, (h, w))
  assert got.shape == x.shape
  assert _rel_err(got, vjp(g)[0]) < 1e-5


@pytest.mark.parametrize(
  "k,s,cin,cout",
  [
    (5, 2, 6, 8),
    (5, 2, 6, 1),
    (3, 2, 4, 6),
    (3, 1, 6, 1),
    (4, 2, 3, 5),
    (1, 2, 3, 6),
    (3, 3, 2, 5),
  ],
)
def test_transpose_same_matches_lax_conv_transpose(k, s, cin, cout):
  rng = np.random.default_rng(k * 10 + s + cout)
  x = jnp.asarray(rng.standard_normal((2, 5, 6, cin)), jnp.float32)
  kernel = jnp.asarray(rng.standard_normal((k, k, cin, cout)), jnp.float32)

  def ref(x, kernel):
    return lax.conv_transpose(x, kernel, (s, s), "SAME", dimension_numbers=DN)

  def fast(x, kernel):
    return conv.transpose_same(x, kernel, (s, s), impl="phase")

  y = ref(x, kernel)
  assert y.shape == (2, 5 * s, 6 * s, cout)
  np.testing.assert_allclose(jax.jit(fast)(x, kernel), y, rtol=1e-5, atol=1e-5)
  g = jnp.asarray(rng.standard_normal(y.shape), jnp.float32)
  want = jax.vjp(ref, x, kernel)[1](g)
  got = jax.vjp(fast, x, kernel)[1](g)
  assert _rel_err(got[0], want[0]) < 1e-5
  assert _rel_err(got[1], want[1]) < 1e-5


@pytest.mark.parametrize("h,k,s", [(14, 3, 2), (15, 5, 2), (12, 3, 1), (11, 5, 1), (9, 3, 3)])
@pytest.mark.parametrize("by_phase", [True, False])
def test_depthwise_input_gradient_by_phase(monkeypatch, h, k, s, by_phase):
  monkeypatch.setattr(layers, "DEPTHWISE_INPUT_GRAD_BY_PHASE", by_phase)
  rng = np.random.default_rng(h + k + s)
  pads = layers.tf_same_padding((h, h), (k, k), (s, s))
  x = jnp.asarray(rng.standard_normal((2, h, h, 5)), jnp.float32)
  kernel = jnp.asarray(rng.standard_normal((k, k, 1, 5)), jnp.float32)

  def ref(x, kernel):
    return layers.depthwise_conv(x, kernel, (s, s), pads, "xla")

  def fast(x, kernel):
    return layers.depthwise_conv(x, kernel, (s, s), pads, "shift")

  y = ref(x, kernel)
  g = jnp.asarray(rng.standard_normal(y.shape), jnp.float32)
  np.testing.assert_allclose(fast(x, kernel), y, rtol=1e-5, atol=1e-5)
  want = jax.vjp(ref, x, kernel)[1](g)
  got = jax.vjp(fast, x, kernel)[1](g)
  assert _rel_err(got[0], want[0]) < 1e-5
  assert _rel_err(got[1], want[1]) < 1e-5


def test_conv_module_is_a_drop_in_for_nn_conv():
  x = jax.random.normal(jax.random.key(0), (2, 9, 8, 3))
  ref = nn.Conv(5, (3, 3), strides=(2, 2), padding="SAME")
  params = ref.init(jax.random.key(1), x)
  params = jax.tree.map(lambda p: p + 0.1, params)  # non-zero bias
  for impl in ("phase", "xla"):
    layer = conv.Conv(5, (3, 3), strides=(2, 2), padding="SAME", impl=impl)
    assert jax.tree.map(jnp.shape, layer.init(jax.random.key(0), x)) == jax.tree.map(
      jnp.shape, params
    )
    np.testing.assert_allclose(layer.apply(params, x), ref.apply(params, x), rtol=1e-5, atol=1e-5)
    grad = jax.grad(lambda p, x, m=layer: jnp.sum(jnp.sin(m.apply(p, x))), argnums=(0, 1))(
      params, x
    )
    want = jax.grad(lambda p, x: jnp.sum(jnp.sin(ref.apply(p, x))), argnums=(0, 1))(params, x)
    for a, b in zip(jax.tree.leaves(grad), jax.tree.leaves(want)):
      np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_bad_impl_names():
  with pytest.raises(ValueError, match="unknown convolution impl"):
    conv.resolve_impl("winograd")
  x, kernel = jnp.ones((1, 4, 4, 2)), jnp.ones((3, 3, 2, 2))
  g = jnp.ones((1, 2, 2, 2))
  with pytest.raises(ValueError, match="unknown kernel-gradient impl"):
    conv.kernel_grad(x, g, kernel.shape, (2, 2), ((0, 1), (0, 1)), "fft")


def test_xla_cpu_defaults_respect_the_users_flags():
  import vision

  env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
  flags = vision.xla_cpu_defaults(env)
  assert flags == env["XLA_FLAGS"]
  assert flags.startswith("--xla_force_host_platform_device_count=8 ")
  assert "--xla_cpu_experimental_ynn_fusion_type=-individual_convolution" in flags
  # A user's own value of the flag wins; VISION_XLA_DEFAULTS=0 adds nothing.
  own = {"XLA_FLAGS": "--xla_cpu_experimental_ynn_fusion_type="}
  assert vision.xla_cpu_defaults(own) == "--xla_cpu_experimental_ynn_fusion_type="
  off = {"VISION_XLA_DEFAULTS": "0"}
  assert vision.xla_cpu_defaults(off) == "" and "XLA_FLAGS" not in off


def test_importing_vision_set_the_default_before_the_backend_started():
  # conftest/pytest import vision before any computation: convolutions compile
  # without YNNPACK fusions (the default this package sets), matmuls with them.
  import os

  assert "ynn_fusion_type" in os.environ.get("XLA_FLAGS", "")
  x, kernel = jnp.ones((2, 8, 8, 4)), jnp.ones((3, 3, 4, 4))
  text = jax.jit(conv.conv2d).lower(x, kernel).compile().as_text()
  assert "convolution(" in text and "__ynn_fusion" not in text
