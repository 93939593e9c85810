"""vision.models.dropout: the straight Threefry mask is JAX's mask, bit for bit, and loop-free."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vision.models import dropout as D
from vision.models.gan import DCGANDiscriminator

SHAPES = [(), (7,), (4, 5, 6), (3, 14, 14, 64)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("typed", [True, False])
def test_bits_equal_jax_random_bits(shape, typed):
  key = jax.random.key(11) if typed else jax.random.PRNGKey(11)
  ours = jax.jit(lambda k: D.random_bits(k, shape, impl="straight"))(key)
  np.testing.assert_array_equal(np.asarray(ours), np.asarray(jax.random.bits(key, shape)))


# Random123's known answers for Threefry-2x32, 20 rounds (also JAX's own test vectors).
KNOWN = [
  ((0x00000000, 0x00000000), (0x00000000, 0x00000000), (0x6B200159, 0x99BA4EFE)),
  ((0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF), (0x1CB996FC, 0xBB002BE7)),
  ((0x13198A2E, 0x03707344), (0x243F6A88, 0x85A308D3), (0xC4923A9C, 0x483DF7A0)),
]


@pytest.mark.parametrize("key,count,expected", KNOWN)
def test_threefry_known_answers(key, count, expected):
  u = lambda v: jnp.asarray(v, jnp.uint32)  # noqa: E731
  out = jax.jit(D.threefry2x32)(u(key[0]), u(key[1]), u(count[0]), u(count[1]))
  assert tuple(int(o) for o in out) == expected


@pytest.mark.parametrize("p", [0.0, 0.3, 0.7, 1.0])
def test_bernoulli_equals_jax(p):
  key = jax.random.key(5)
  shape = (64, 9, 9, 8)
  ours = jax.jit(lambda k: D.bernoulli(k, p, shape, impl="straight"))(key)
  ref = jax.random.bernoulli(key, p, shape)
  np.testing.assert_array_equal(np.asarray(ours), np.asarray(ref))
  assert abs(float(ours.mean()) - p) < 0.01


def test_bernoulli_array_p_equals_jax():
  """Per-pixel probabilities, as the VAE's dynamic binarization draws them."""
  key = jax.random.key(8)
  probs = jax.random.uniform(jax.random.key(1), (16, 28, 28, 1))
  ours = jax.jit(lambda k, p: D.bernoulli(k, p, impl="straight"))(key, probs)
  np.testing.assert_array_equal(np.asarray(ours), np.asarray(jax.random.bernoulli(key, probs)))


def test_straight_mask_has_no_loop():
  """The point of the module: no rolled Threefry loop in the compiled mask on this CPU."""
  key = jax.random.key(0)

  def hlo(impl):
    f = jax.jit(lambda k: D.bernoulli(k, 0.7, (32, 14, 14, 64), impl=impl))
    return f.lower(key).compile().as_text()

  assert " while(" not in hlo("straight")
  assert " while(" in hlo("jax")  # if JAX unrolls on CPU one day, this module can go


@pytest.mark.parametrize("broadcast_dims", [(), (1, 2)])
def test_dropout_module_equals_flax(broadcast_dims):
  x = jax.random.normal(jax.random.key(1), (8, 6, 6, 5))
  rngs = {"dropout": jax.random.key(9)}

  def out_and_grad(module):
    def f(x):
      y = module.apply({}, x, rngs=rngs)
      return jnp.sum(jnp.sin(y)), y

    (_, y), g = jax.jit(jax.value_and_grad(f, has_aux=True))(x)
    return np.asarray(y), np.asarray(g)

  ours = out_and_grad(D.Dropout(0.3, broadcast_dims, deterministic=False, impl="straight"))
  ref = out_and_grad(nn.Dropout(0.3, broadcast_dims, deterministic=False))
  np.testing.assert_array_equal(ours[0], ref[0])
  np.testing.assert_array_equal(ours[1], ref[1])
  assert 0.2 < float(np.mean(ours[0] == 0)) < 0.4 or broadcast_dims
  # deterministic and rate 0 pass through; rate 1 drops everything
  np.testing.assert_array_equal(D.Dropout(0.3, deterministic=True).apply({}, x), x)
  np.testing.assert_array_equal(D.Dropout(0.0).apply({}, x, deterministic=False), x)
  assert not np.any(D.Dropout(1.0).apply({}, x, deterministic=False, rngs=rngs))


def test_other_keys_fall_back_and_vmap():
  rbg = jax.random.key(3, impl="rbg")
  np.testing.assert_array_equal(
    np.asarray(D.bernoulli(rbg, 0.5, (100,), impl="straight")),
    np.asarray(jax.random.bernoulli(rbg, 0.5, (100,))),
  )
  keys = jax.random.split(jax.random.key(4), 3)
  ours = jax.jit(jax.vmap(lambda k: D.bernoulli(k, 0.6, (10, 10), impl="straight")))(keys)
  ref = jax.vmap(lambda k: jax.random.bernoulli(k, 0.6, (10, 10)))(keys)
  np.testing.assert_array_equal(np.asarray(ours), np.asarray(ref))
  with pytest.raises(ValueError, match="impl"):
    D.bernoulli(keys[0], 0.5, (3,), impl="fast")


def test_dcgan_discriminator_masks_unchanged():
  """The DCGAN discriminator trains with exactly the masks nn.Dropout would draw."""
  images = jax.random.uniform(jax.random.key(0), (4, 28, 28, 1), minval=-1, maxval=1)
  params = DCGANDiscriminator().init(jax.random.key(1), images)
  rngs = {"dropout": jax.random.key(2)}
  outs = [
    DCGANDiscriminator(dropout_impl=impl).apply(params, images, train=True, rngs=rngs)[0]
    for impl in ("straight", "jax")
  ]
  np.testing.assert_array_equal(np.asarray(outs[0]), np.asarray(outs[1]))
