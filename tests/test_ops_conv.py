"""vision.ops.conv: the 'cpu' forms compute lax's convolutions, transposed convolutions and
their gradients.

Every case compares values and both gradients (input and kernel) with
``lax.conv_general_dilated`` / ``lax.conv_transpose`` on random inputs, for strides
1-3, odd/even sizes, asymmetric and negative (cropping) paddings, both adjoints (a
convolution per phase for wide results, one matmul then shifted adds for results of
<= 4 channels) and both kernel gradients (XLA's, im2col).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from vision.ops import conv

DN = ("NHWC", "HWIO", "NHWC")

CONV_CASES = [
  # (h, w, k, stride, padding, cin, cout)
  (14, 14, 5, 2, ((1, 2), (1, 2)), 6, 8),  # the DCGAN discriminator's layer
  (28, 28, 3, 2, ((0, 1), (0, 1)), 2, 5),  # the VAE encoder's (narrow result: Cin 2)
  (7, 7, 5, 1, ((2, 2), (2, 2)), 6, 7),
  (9, 10, 3, 2, ((1, 1), (1, 1)), 5, 3),  # odd sizes
  (8, 8, 1, 2, ((0, 0), (0, 0)), 6, 3),  # 1x1 stride 2: a phase with no taps
  (10, 11, 4, 3, ((1, 2), (0, 1)), 6, 2),  # stride 3, even kernel
  (28, 27, 5, 2, ((1, 2), (1, 2)), 1, 8),  # one input channel, 25 taps: im2col matmul
  (12, 12, 3, 1, ((1, 1), (1, 1)), 1, 3),  # one input channel, 9 taps: shifted multiply-adds
  (9, 9, 3, 2, ((-1, 1), (1, -1)), 6, 5),  # negative (cropping) padding
  (6, 7, 1, 1, ((1, 0), (0, 1)), 5, 6),  # a padded 1x1 kernel takes the custom gradient
]


def _rel_err(a, b):
  return float(jnp.max(jnp.abs(a - b)) / (jnp.max(jnp.abs(b)) + 1e-12))


def _case(case, seed):
  h, w, k, s, pad, cin, cout = case
  rng = np.random.default_rng(seed)
  x = jnp.asarray(rng.standard_normal((2, h, w, cin)), jnp.float32)
  kernel = jnp.asarray(rng.standard_normal((k, k, cin, cout)), jnp.float32)

  def ref(x, kernel):
    return lax.conv_general_dilated(x, kernel, (s, s), pad, dimension_numbers=DN)

  g = jnp.asarray(rng.standard_normal(ref(x, kernel).shape), jnp.float32)
  return x, kernel, g, ref


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_forms_match_lax_values_and_gradients(case):
  _, _, k, s, pad, _, _ = case
  x, kernel, g, ref = _case(case, case[0] * 100 + k * 10 + s)
  y = ref(x, kernel)
  want = jax.vjp(ref, x, kernel)[1](g)
  for form in ("portable", "cpu"):

    def fast(x, kernel, form=form):
      return conv.conv(x, kernel, (s, s), pad, kernels=form)

    np.testing.assert_allclose(jax.jit(fast)(x, kernel), y, rtol=1e-5, atol=1e-5)
    got = jax.jit(lambda x, k, g, f=fast: jax.vjp(f, x, k)[1](g))(x, kernel, g)
    assert _rel_err(got[0], want[0]) < 1e-5, form  # input gradient
    assert _rel_err(got[1], want[1]) < 1e-5, form  # kernel gradient


@pytest.mark.parametrize("case", CONV_CASES)
@pytest.mark.parametrize(
  "adjoint", [conv.conv_adjoint, conv.conv_adjoint_narrow, conv.conv_adjoint_phases]
)
def test_every_adjoint_is_the_input_gradient(case, adjoint):
  h, w, _, s, pad, _, _ = case
  x, kernel, g, ref = _case(case, h + case[2] + s + case[5])
  _, vjp = jax.vjp(lambda x: ref(x, kernel), x)
  got = jax.jit(adjoint, static_argnums=(2, 3, 4))(g, kernel, (s, s), pad, (h, w))
  assert got.shape == x.shape
  assert _rel_err(got, vjp(g)[0]) < 1e-5


@pytest.mark.parametrize("case", CONV_CASES)
@pytest.mark.parametrize(
  "kernel_grad", [conv.kernel_grad, conv.kernel_grad_xla, conv.kernel_grad_im2col]
)
def test_every_kernel_gradient_is_autodiffs(case, kernel_grad):
  _, _, k, s, pad, _, _ = case
  x, kernel, g, ref = _case(case, k * 7 + s)
  _, vjp = jax.vjp(lambda kernel: ref(x, kernel), kernel)
  got = jax.jit(kernel_grad, static_argnums=(2, 3, 4))(x, g, kernel.shape, (s, s), pad)
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
def test_conv_transpose_matches_lax_conv_transpose(k, s, cin, cout):
  rng = np.random.default_rng(k * 10 + s + cout)
  x = jnp.asarray(rng.standard_normal((2, 5, 6, cin)), jnp.float32)
  kernel = jnp.asarray(rng.standard_normal((k, k, cin, cout)), jnp.float32)

  def ref(x, kernel):
    return lax.conv_transpose(x, kernel, (s, s), "SAME", dimension_numbers=DN)

  y = ref(x, kernel)
  assert y.shape == (2, 5 * s, 6 * s, cout)
  g = jnp.asarray(rng.standard_normal(y.shape), jnp.float32)
  want = jax.vjp(ref, x, kernel)[1](g)
  for form in ("portable", "cpu"):

    def fast(x, kernel, form=form):
      return conv.conv_transpose(x, kernel, (s, s), kernels=form)

    np.testing.assert_allclose(jax.jit(fast)(x, kernel), y, rtol=1e-5, atol=1e-5)
    got = jax.vjp(fast, x, kernel)[1](g)
    assert _rel_err(got[0], want[0]) < 1e-5, form
    assert _rel_err(got[1], want[1]) < 1e-5, form


def test_conv_transpose_non_square_kernel_and_strides():
  rng = np.random.default_rng(3)
  x = jnp.asarray(rng.standard_normal((2, 5, 6, 3)), jnp.float32)
  kernel = jnp.asarray(rng.standard_normal((3, 5, 3, 4)), jnp.float32)
  want = lax.conv_transpose(x, kernel, (2, 1), "SAME", dimension_numbers=DN)
  got = conv.conv_transpose(x, kernel, (2, 1), kernels="cpu")
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("stride,size", [(1, (7, 9)), (2, (8, 11)), (2, (9, 9))])
def test_pointwise_conv_as_matmul_equals_xla_convolution(stride, size):
  """The 'cpu' form computes unpadded 1x1 kernels as a matmul: same values and gradients."""
  rng = np.random.default_rng(stride)
  x = jnp.asarray(rng.normal(size=(3, *size, 5)), jnp.float32)
  kernel = jnp.asarray(rng.normal(size=(1, 1, 5, 7)), jnp.float32)
  pad = ((0, 0), (0, 0))

  def reference(x, kernel):
    return lax.conv_general_dilated(x, kernel, (stride, stride), "VALID", dimension_numbers=DN)

  def fast(x, kernel):
    return conv.conv(x, kernel, (stride, stride), pad, kernels="cpu")

  # It is a matmul: no convolution left in the computation.
  assert "conv_general_dilated" not in str(jax.make_jaxpr(fast)(x, kernel))
  y = fast(x, kernel)
  np.testing.assert_allclose(y, reference(x, kernel), rtol=1e-5, atol=1e-5)
  cotangent = jnp.asarray(rng.normal(size=y.shape), jnp.float32)
  grads = [
    jax.grad(lambda x, k, f=f: jnp.sum(f(x, k) * cotangent), argnums=(0, 1))(x, kernel)
    for f in (fast, reference)
  ]
  for got, want in zip(*grads):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
  # A padded or larger kernel keeps the convolution path (and still agrees).
  k3 = jnp.asarray(rng.normal(size=(3, 3, 5, 7)), jnp.float32)
  np.testing.assert_allclose(
    conv.conv(x, k3, (stride, stride), ((1, 1), (1, 1)), kernels="cpu"),
    lax.conv_general_dilated(x, k3, (stride, stride), ((1, 1), (1, 1)), dimension_numbers=DN),
    rtol=1e-5,
    atol=1e-5,
  )


def test_the_forms_differ_and_portable_is_plain_lax():
  """The switch reaches the operation: 'portable' is exactly lax, 'cpu' a custom gradient."""
  x, kernel = jnp.ones((2, 8, 8, 4)), jnp.ones((3, 3, 4, 5))
  pad = ((1, 1), (1, 1))
  portable = jax.make_jaxpr(lambda x, k: conv.conv(x, k, (2, 2), pad, kernels="portable"))
  cpu = jax.make_jaxpr(lambda x, k: conv.conv(x, k, (2, 2), pad, kernels="cpu"))
  assert "custom_vjp_call" not in str(portable(x, kernel))
  assert "custom_vjp_call" in str(cpu(x, kernel))
  want = lax.conv_general_dilated(x, kernel, (2, 2), pad, dimension_numbers=DN)
  np.testing.assert_array_equal(conv.conv(x, kernel, (2, 2), pad, kernels="portable"), want)
  with pytest.raises(ValueError, match="kernels must be"):
    conv.conv(x, kernel, (2, 2), pad, kernels="winograd")


def test_same_transpose_padding_is_lax_conv_transpose_rule():
  # 3x3 stride 2: the adjoint of the stride-2 convolution padded (0, 1), which maps 2n to n.
  assert conv.same_transpose_padding(3, 2) == (0, 1)
  assert conv.same_transpose_padding(4, 2) == (1, 1)
  assert conv.same_transpose_padding(3, 1) == (1, 1)
  assert conv.output_size(14, 3, 2, (0, 1)) == 7
