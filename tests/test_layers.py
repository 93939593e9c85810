"""DepthwiseConv's two implementations, TF SAME padding and preprocessing."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vision.models import layers


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
  ],
)
def test_depthwise_impls_compute_same_function(stride, kernel, padding, size):
  rng = np.random.default_rng(stride * 100 + kernel)
  x = jnp.asarray(rng.normal(size=(2, *size, 6)), jnp.float32)
  kernel_value = jnp.asarray(rng.normal(size=(kernel, kernel, 1, 6)), jnp.float32)
  conv = layers.DepthwiseConv(kernel, stride, padding=padding)

  @jax.jit
  def outputs_and_grads(x, k, cotangent):
    results = []
    for impl in ("shift", "xla"):

      def f(x, k, impl=impl):
        return conv.clone(impl=impl).apply({"params": {"kernel": k}}, x)

      y = f(x, k)
      # Gradients w.r.t. input and kernel of a random linear functional of the output.
      grads = jax.grad(lambda x, k: jnp.sum(f(x, k) * cotangent), argnums=(0, 1))(x, k)
      results.append((y, *grads))
    return results

  out_shape = jax.eval_shape(
    lambda x: conv.clone(impl="xla").apply({"params": {"kernel": kernel_value}}, x), x
  ).shape
  cotangent = jnp.asarray(rng.normal(size=out_shape), jnp.float32)
  (y_shift, gx_shift, gk_shift), (y_xla, gx_xla, gk_xla) = outputs_and_grads(
    x, kernel_value, cotangent
  )
  assert y_shift.shape == y_xla.shape
  if padding == "TF_SAME":
    assert y_shift.shape == (2, -(-size[0] // stride), -(-size[1] // stride), 6)
  np.testing.assert_allclose(y_shift, y_xla, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(gx_shift, gx_xla, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(gk_shift, gk_xla, rtol=1e-4, atol=1e-4)


def test_depthwise_matches_flax_grouped_conv_and_shares_params():
  x = jax.random.normal(jax.random.key(0), (1, 10, 10, 4))
  flax_conv = __import__("flax.linen", fromlist=["Conv"]).Conv(
    4, (3, 3), strides=2, padding=((0, 1), (0, 1)), feature_group_count=4, use_bias=False
  )
  params = flax_conv.init(jax.random.key(1), x)
  ours = layers.DepthwiseConv(3, 2, padding="TF_SAME", impl="shift")
  np.testing.assert_allclose(ours.apply(params, x), flax_conv.apply(params, x), atol=1e-5)


def test_default_impl_follows_backend():
  expected = "shift" if jax.default_backend() == "cpu" else "xla"
  assert layers.default_depthwise_impl() == expected


@pytest.mark.parametrize(
  "n,k,s,expected",
  [
    (224, 3, 2, (0, 1)),
    (225, 3, 2, (1, 1)),
    (112, 5, 2, (1, 2)),
    (7, 3, 1, (1, 1)),
    (14, 1, 2, (0, 0)),
    (8, 5, 1, (2, 2)),
  ],
)
def test_tf_same_padding_matches_tensorflow_rule(n, k, s, expected):
  assert layers.tf_same_padding((n,), (k,), (s,)) == [expected]
  # Output size is ceil(n / s), as in TensorFlow.
  lo, hi = expected
  assert (n + lo + hi - k) // s + 1 == -(-n // s)


def test_preprocess_modes():
  x = jnp.full((1, 2, 2, 3), 0.5)
  np.testing.assert_allclose(layers.preprocess_images(x, "tf"), 0.0)
  np.testing.assert_allclose(layers.preprocess_images(x, "lite"), (127.5 - 127) / 128)
  torch_mode = layers.preprocess_images(x, "torch")[0, 0, 0]
  np.testing.assert_allclose(
    torch_mode, (0.5 - np.array(layers.IMAGENET_MEAN)) / np.array(layers.IMAGENET_STD), rtol=1e-6
  )
  rgb = jnp.array([0.1, 0.2, 0.3]).reshape(1, 1, 1, 3)
  caffe = layers.preprocess_images(rgb, "caffe")[0, 0, 0]
  expected = np.array([0.3, 0.2, 0.1]) * 255 - np.array(layers.CAFFE_BGR_MEAN)
  np.testing.assert_allclose(caffe, expected, rtol=1e-5)
  # uint8 is scaled by 1/255 and grey is tiled to RGB.
  grey = jnp.full((1, 2, 2, 1), 255, jnp.uint8)
  out = layers.preprocess_images(grey, "none")
  assert out.shape == (1, 2, 2, 3) and float(out.min()) == 1.0
  with pytest.raises(ValueError, match="unknown preprocess"):
    layers.preprocess_images(x, "bogus")


def test_adaptive_avg_pool_matches_torch_bins():
  x = jnp.arange(2 * 3 * 3 * 1, dtype=jnp.float32).reshape(2, 3, 3, 1)
  y = layers.adaptive_avg_pool(x, (2, 2))
  # torch bins for 3 -> 2: [0, 2) and [1, 3).
  np.testing.assert_allclose(y[0, 0, 0, 0], x[0, 0:2, 0:2, 0].mean())
  np.testing.assert_allclose(y[0, 1, 1, 0], x[0, 1:3, 1:3, 0].mean())
  assert layers.adaptive_avg_pool(jnp.ones((1, 14, 14, 2)), (7, 7)).shape == (1, 7, 7, 2)


@pytest.mark.parametrize("stride,size", [(1, (7, 9)), (2, (8, 11)), (2, (9, 9))])
def test_pointwise_conv_as_matmul_equals_xla_convolution(stride, size):
  """``conv2d`` computes unpadded 1x1 kernels as a matmul: same values and gradients."""
  rng = np.random.default_rng(stride)
  x = jnp.asarray(rng.normal(size=(3, *size, 5)), jnp.float32)
  kernel = jnp.asarray(rng.normal(size=(1, 1, 5, 7)), jnp.float32)

  def reference(x, kernel):
    return jax.lax.conv_general_dilated(
      x, kernel, (stride, stride), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )

  def fast(x, kernel):
    return layers.conv2d(x, kernel, (stride, stride))

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
    layers.conv2d(x, k3, (stride, stride), ((1, 1), (1, 1))),
    jax.lax.conv_general_dilated(
      x, k3, (stride, stride), ((1, 1), (1, 1)), dimension_numbers=("NHWC", "HWIO", "NHWC")
    ),
    rtol=1e-5,
    atol=1e-5,
  )
