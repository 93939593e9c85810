"""The phase and sub-pixel transposed convolutions compute nn.ConvTranspose's function and
gradients."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vision.models import upsample


def _params(kernel_size, strides, cin=3, cout=4, seed=0):
  x = jax.random.normal(jax.random.key(seed), (2, 5, 6, cin))
  ref = nn.ConvTranspose(cout, kernel_size, strides, padding="SAME")
  params = ref.init(jax.random.key(seed + 1), x)
  # A non-zero bias, so that it is checked too.
  params = jax.tree.map(lambda p: p + 0.1 * jax.random.normal(jax.random.key(7), p.shape), params)
  return ref, params, x


@pytest.mark.parametrize("k,s", [(3, 2), (4, 2), (5, 2), (1, 2), (3, 1), (3, 3)])
def test_forward_matches_flax_conv_transpose(k, s):
  ref, params, x = _params((k, k), (s, s), seed=k * 10 + s)
  expected = ref.apply(params, x)
  for impl in ("phase", "subpixel", "xla"):
    layer = upsample.ConvTranspose(4, (k, k), (s, s), impl=impl)
    # Same parameter tree as flax's layer: checkpoints load into either.
    assert jax.tree.map(jnp.shape, layer.init(jax.random.key(0), x)) == jax.tree.map(
      jnp.shape, params
    )
    out = layer.apply(params, x)
    assert out.shape == (2, 5 * s, 6 * s, 4)
    np.testing.assert_allclose(out, expected, atol=2e-5, rtol=1e-5)


def test_non_square_kernel_and_strides():
  ref, params, x = _params((3, 5), (2, 1))
  for impl in ("phase", "subpixel"):
    out = upsample.ConvTranspose(4, (3, 5), (2, 1), impl=impl).apply(params, x)
    np.testing.assert_allclose(out, ref.apply(params, x), atol=2e-5, rtol=1e-5)


# cout=3 takes the phase form's narrow path (one matmul, then shifted adds), cout=6
# its convolution per phase.
@pytest.mark.parametrize("k,cout", [(3, 3), (4, 3), (5, 6), (3, 6)])
def test_gradients_agree(k, cout):
  _, params, x = _params((k, k), (2, 2), cin=5, cout=cout, seed=k)
  target = jax.random.normal(jax.random.key(3), (2, 10, 12, cout))

  def loss(impl):
    layer = upsample.ConvTranspose(cout, (k, k), (2, 2), impl=impl)
    return lambda p, x: jnp.sum(jnp.square(layer.apply(p, x) - target) * target)

  impls = ("phase", "subpixel", "xla")
  grads = {impl: jax.grad(loss(impl), argnums=(0, 1))(params, x) for impl in impls}
  for impl in ("phase", "subpixel"):
    for a, b in zip(jax.tree.leaves(grads[impl]), jax.tree.leaves(grads["xla"])):
      np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4)


def test_subpixel_kernel_taps_3x3_stride2():
  # A 3x3 stride-2 transposed conv is a 2x2 stride-1 conv per output phase:
  # phase 0 uses taps (0, 2) at offsets (-1, 0), phase 1 uses tap 1 at offset 0.
  index, t_min, t_max = upsample.subpixel_taps(3, 2)
  assert (t_min, t_max) == (-1, 0)
  np.testing.assert_array_equal(index, [[0, 3], [2, 1]])  # 3 = "no tap"


def test_auto_impl_and_bad_values():
  assert upsample.resolve_impl("auto") == ("phase" if jax.default_backend() == "cpu" else "xla")
  with pytest.raises(ValueError, match="unknown upsampling impl"):
    upsample.resolve_impl("fft")
  with pytest.raises(ValueError, match="SAME"):
    upsample.ConvTranspose(2, padding="VALID").init(jax.random.key(0), jnp.ones((1, 4, 4, 1)))


def test_upsample_nearest_and_block():
  x = jnp.arange(2 * 3 * 4 * 2, dtype=jnp.float32).reshape(2, 3, 4, 2)
  expected = jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)
  np.testing.assert_array_equal(upsample.upsample_nearest(x, 2), expected)
  block = upsample.Upsample(5, (4, 4), factor=2)
  out = block.apply(block.init(jax.random.key(0), x), x)
  assert out.shape == (2, 6, 8, 5) and float(out.min()) >= 0.0  # ReLU
