"""vision.ops.depthwise: the 'cpu' form (shifted multiply-adds with custom gradients) computes
the grouped convolution's function and gradients."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from vision.models.layers import resolve_padding, tf_same_padding
from vision.ops import depthwise


def _rel_err(a, b):
  return float(jnp.max(jnp.abs(a - b)) / (jnp.max(jnp.abs(b)) + 1e-12))


def _grouped(x, kernel, strides, pads):
  return lax.conv_general_dilated(
    x, kernel, strides, pads, dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=6
  )


@pytest.mark.parametrize(
  "stride,kernel,padding,size",
  [
    (1, 3, "SYMMETRIC", (9, 9)),
    (2, 3, "SYMMETRIC", (8, 11)),
    (2, 3, "TF_SAME", (8, 11)),
    (2, 5, "TF_SAME", (9, 9)),
    (1, 5, "TF_SAME", (8, 11)),
    (2, 3, ((0, 2), (1, 0)), (9, 8)),  # explicit asymmetric padding
    (1, 3, ((0, 2), (1, 0)), (8, 8)),
    (3, 3, "TF_SAME", (9, 9)),
  ],
)
def test_depthwise_forms_compute_the_same_function(stride, kernel, padding, size):
  rng = np.random.default_rng(stride * 100 + kernel)
  x = jnp.asarray(rng.normal(size=(2, *size, 6)), jnp.float32)
  kernel_value = jnp.asarray(rng.normal(size=(kernel, kernel, 1, 6)), jnp.float32)
  strides = (stride, stride)
  pads = resolve_padding(padding, size, (kernel, kernel), strides)
  reference = _grouped(x, kernel_value, strides, pads)
  cotangent = jnp.asarray(rng.normal(size=reference.shape), jnp.float32)

  @functools.partial(jax.jit, static_argnums=2)
  def outputs_and_grads(x, k, form):
    def f(x, k):
      return depthwise.depthwise_conv(x, k, strides, pads, kernels=form)

    # Gradients w.r.t. input and kernel of a random linear functional of the output.
    grads = jax.grad(lambda x, k: jnp.sum(f(x, k) * cotangent), argnums=(0, 1))(x, k)
    return f(x, k), *grads

  y_cpu, gx_cpu, gk_cpu = outputs_and_grads(x, kernel_value, "cpu")
  y_portable, gx_portable, gk_portable = outputs_and_grads(x, kernel_value, "portable")
  np.testing.assert_array_equal(y_portable, reference)  # 'portable' is the grouped convolution
  assert y_cpu.shape == y_portable.shape
  if padding == "TF_SAME":
    assert y_cpu.shape == (2, -(-size[0] // stride), -(-size[1] // stride), 6)
  np.testing.assert_allclose(y_cpu, y_portable, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(gx_cpu, gx_portable, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(gk_cpu, gk_portable, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("h,k,s", [(14, 3, 2), (15, 5, 2), (12, 3, 1), (11, 5, 1), (9, 3, 3)])
def test_depthwise_input_gradient_by_phase(h, k, s):
  rng = np.random.default_rng(h + k + s)
  pads = tf_same_padding((h, h), (k, k), (s, s))
  x = jnp.asarray(rng.standard_normal((2, h, h, 6)), jnp.float32)
  kernel = jnp.asarray(rng.standard_normal((k, k, 1, 6)), jnp.float32)
  y, vjp = jax.vjp(lambda x, kernel: _grouped(x, kernel, (s, s), pads), x, kernel)
  g = jnp.asarray(rng.standard_normal(y.shape), jnp.float32)
  want = vjp(g)
  # The adjoint alone, then the whole 'cpu' form's gradients.
  assert _rel_err(depthwise.depthwise_adjoint(g, kernel, (s, s), pads, (h, h)), want[0]) < 1e-5

  def cpu(x, kernel):
    return depthwise.depthwise_conv(x, kernel, (s, s), pads, kernels="cpu")

  np.testing.assert_allclose(cpu(x, kernel), y, rtol=1e-5, atol=1e-5)
  got = jax.vjp(cpu, x, kernel)[1](g)
  assert _rel_err(got[0], want[0]) < 1e-5
  assert _rel_err(got[1], want[1]) < 1e-5


def test_cpu_form_has_no_grouped_convolution():
  x, kernel = jnp.ones((2, 8, 8, 6)), jnp.ones((3, 3, 1, 6))
  pads = ((1, 1), (1, 1))
  for s in (1, 2):

    def loss(x, k, s=s):
      return depthwise.depthwise_conv(x, k, (s, s), pads, kernels="cpu").sum()

    assert "custom_vjp_call" in str(jax.make_jaxpr(loss)(x, kernel))
    assert "conv_general_dilated" not in str(jax.make_jaxpr(jax.grad(loss))(x, kernel))
