"""vision.models.layers: the one Conv, ConvTranspose, DepthwiseConv and Dropout are drop-ins
for Flax's layers in both kernel forms; padding, pooling and preprocessing helpers."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vision.models import layers
from vision.ops import kernels

FORMS = ("cpu", "portable")


def _perturbed(params, scale=0.1, seed=7):
  """Non-zero biases, so that they are checked too."""
  leaves, tree = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.key(seed), len(leaves))
  leaves = [p + scale * jax.random.normal(k, p.shape) for p, k in zip(leaves, keys)]
  return jax.tree.unflatten(tree, leaves)


def _assert_same_function(ours, ref, params, x, rtol=1e-5, atol=2e-5):
  """Same parameter tree, outputs and gradients (params and input) as ``ref``, in both forms."""
  assert jax.tree.map(jnp.shape, ours.init(jax.random.key(0), x)) == jax.tree.map(jnp.shape, params)
  want = ref.apply(params, x)
  loss = lambda m: lambda p, x: jnp.sum(jnp.sin(m.apply(p, x)))  # noqa: E731
  want_grad = jax.grad(loss(ref), argnums=(0, 1))(params, x)
  for form in FORMS:
    with kernels.use(form):  # read at trace time: fresh jitted functions per form
      got = jax.jit(lambda p, x: ours.apply(p, x))(params, x)
      grad = jax.jit(jax.grad(loss(ours), argnums=(0, 1)))(params, x)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=form)
    for a, b in zip(jax.tree.leaves(grad), jax.tree.leaves(want_grad)):
      np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4, err_msg=form)


# -- Conv ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
  "kernel_size,strides,padding,size",
  [
    ((3, 3), (2, 2), "SAME", (9, 8)),
    ((3, 3), (1, 1), "SAME", (7, 7)),
    ((5, 5), (2, 2), "SAME", (14, 14)),
    ((1, 1), (2, 2), "VALID", (9, 8)),  # the 'cpu' form's matmul
    ((4, 3), (2, 1), ((1, 2), (0, 1)), (9, 8)),
  ],
)
def test_conv_is_a_drop_in_for_nn_conv(kernel_size, strides, padding, size):
  x = jax.random.normal(jax.random.key(0), (2, *size, 3))
  ref = nn.Conv(5, kernel_size, strides=strides, padding=padding)
  params = _perturbed(ref.init(jax.random.key(1), x))
  ours = layers.Conv(5, kernel_size, strides=strides, padding=padding)
  _assert_same_function(ours, ref, params, x)


def test_conv_padding_names():
  """'SAME' is TensorFlow's SAME (more at the end); 'SYMMETRIC' pads k // 2 on both sides."""
  x = jax.random.normal(jax.random.key(0), (1, 8, 8, 2))
  params = nn.Conv(3, (3, 3), padding="SAME").init(jax.random.key(1), x)
  same = layers.Conv(3, (3, 3), 2, padding="SAME").apply(params, x)
  tf_same = layers.Conv(3, (3, 3), 2, padding="TF_SAME").apply(params, x)
  explicit = layers.Conv(3, (3, 3), 2, padding=((0, 1), (0, 1))).apply(params, x)
  symmetric = layers.Conv(3, (3, 3), 2, padding="SYMMETRIC").apply(params, x)
  np.testing.assert_array_equal(same, tf_same)
  np.testing.assert_array_equal(same, explicit)
  np.testing.assert_allclose(
    symmetric, layers.Conv(3, (3, 3), 2, padding=1).apply(params, x), rtol=1e-6
  )
  assert symmetric.shape == same.shape == (1, 4, 4, 3)


def test_backbone_conv_keeps_the_backbones_defaults():
  """No bias, symmetric padding, He fan-out init: the same initial values as nn.Conv so set."""
  x = jnp.ones((1, 8, 8, 4))
  ours = layers.backbone_conv(16, 3, 2, name="conv")
  ref = nn.Conv(16, (3, 3), 2, padding=1, use_bias=False, kernel_init=layers.BACKBONE_KERNEL_INIT)
  a, b = ours.init(jax.random.key(3), x), ref.init(jax.random.key(3), x)
  assert "bias" not in a["params"]
  np.testing.assert_array_equal(a["params"]["kernel"], b["params"]["kernel"])
  np.testing.assert_allclose(ours.apply(a, x), ref.apply(b, x), rtol=1e-5, atol=1e-6)


# -- ConvTranspose and Upsample ------------------------------------------------------------------
@pytest.mark.parametrize(
  "kernel_size,strides,cin,cout",
  [
    ((3, 3), (2, 2), 3, 4),
    ((4, 4), (2, 2), 3, 4),
    ((5, 5), (2, 2), 3, 4),
    ((1, 1), (2, 2), 3, 4),
    ((3, 3), (1, 1), 3, 4),
    ((3, 3), (3, 3), 3, 4),
    ((3, 5), (2, 1), 3, 4),  # non-square kernel and strides
    # cout <= 4 takes the 'cpu' form's narrow path (one matmul, then shifted adds), cout=6
    # its convolution per phase.
    ((3, 3), (2, 2), 5, 3),
    ((5, 5), (2, 2), 5, 6),
  ],
)
def test_conv_transpose_is_a_drop_in_for_nn_conv_transpose(kernel_size, strides, cin, cout):
  x = jax.random.normal(jax.random.key(sum(kernel_size)), (2, 5, 6, cin))
  ref = nn.ConvTranspose(cout, kernel_size, strides, padding="SAME")
  params = _perturbed(ref.init(jax.random.key(1), x))
  ours = layers.ConvTranspose(cout, kernel_size, strides)
  _assert_same_function(ours, ref, params, x)
  assert ours.apply(params, x).shape == (2, 5 * strides[0], 6 * strides[1], cout)


def test_conv_transpose_padding_must_be_same():
  with pytest.raises(ValueError, match="SAME"):
    layers.ConvTranspose(2, padding="VALID").init(jax.random.key(0), jnp.ones((1, 4, 4, 1)))


def test_upsample_nearest_and_block():
  x = jnp.arange(2 * 3 * 4 * 2, dtype=jnp.float32).reshape(2, 3, 4, 2)
  expected = jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)
  np.testing.assert_array_equal(layers.upsample_nearest(x, 2), expected)
  block = layers.Upsample(5, (4, 4), factor=2)
  out = block.apply(block.init(jax.random.key(0), x), x)
  assert out.shape == (2, 6, 8, 5) and float(out.min()) >= 0.0  # ReLU


# -- DepthwiseConv --------------------------------------------------------------------------------
@pytest.mark.parametrize(
  "stride,padding,flax_padding,size",
  [
    (2, "TF_SAME", ((0, 1), (0, 1)), (10, 10)),
    (1, "SYMMETRIC", ((1, 1), (1, 1)), (9, 9)),
    (2, "SYMMETRIC", ((1, 1), (1, 1)), (8, 11)),
    (2, ((0, 2), (1, 0)), ((0, 2), (1, 0)), (9, 8)),
  ],
)
def test_depthwise_matches_flax_grouped_conv_and_shares_params(stride, padding, flax_padding, size):
  x = jax.random.normal(jax.random.key(0), (2, *size, 4))
  ref = nn.Conv(
    4, (3, 3), strides=stride, padding=flax_padding, feature_group_count=4, use_bias=False
  )
  params = ref.init(jax.random.key(1), x)
  ours = layers.DepthwiseConv(3, stride, padding=padding)
  _assert_same_function(ours, ref, params, x, atol=1e-5)


# -- Dropout ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("broadcast_dims", [(), (1, 2)])
@pytest.mark.parametrize("form", FORMS)
def test_dropout_module_equals_flax(broadcast_dims, form):
  x = jax.random.normal(jax.random.key(1), (8, 6, 6, 5))
  rngs = {"dropout": jax.random.key(9)}

  def out_and_grad(module):
    def f(x):
      y = module.apply({}, x, rngs=rngs)
      return jnp.sum(jnp.sin(y)), y

    (_, y), g = jax.jit(jax.value_and_grad(f, has_aux=True))(x)
    return np.asarray(y), np.asarray(g)

  with kernels.use(form):
    ours = out_and_grad(layers.Dropout(0.3, broadcast_dims, deterministic=False))
  ref = out_and_grad(nn.Dropout(0.3, broadcast_dims, deterministic=False))
  np.testing.assert_array_equal(ours[0], ref[0])
  np.testing.assert_array_equal(ours[1], ref[1])
  assert 0.2 < float(np.mean(ours[0] == 0)) < 0.4 or broadcast_dims
  # deterministic and rate 0 pass through; rate 1 drops everything
  np.testing.assert_array_equal(layers.Dropout(0.3, deterministic=True).apply({}, x), x)
  np.testing.assert_array_equal(layers.Dropout(0.0).apply({}, x, deterministic=False), x)
  assert not np.any(layers.Dropout(1.0).apply({}, x, deterministic=False, rngs=rngs))


# -- helpers ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("padding", ["VALID", "SAME"])
@pytest.mark.parametrize("size", [(8, 8), (7, 9)])
def test_max_pool_2x2_equals_nn_max_pool(padding, size):
  x = jax.random.normal(jax.random.key(2), (2, *size, 3))
  want = nn.max_pool(x, (2, 2), (2, 2), padding=padding)
  np.testing.assert_array_equal(layers.max_pool_2x2(x, padding), want)
  with pytest.raises(ValueError, match="VALID"):
    layers.max_pool_2x2(x, "REFLECT")


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
