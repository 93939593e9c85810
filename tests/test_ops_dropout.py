"""vision.ops.dropout: the 'cpu' form's straight Threefry bits are JAX's, bit for bit, and
loop-free; both forms draw jax.random's masks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vision.models.gan import DCGANDiscriminator
from vision.ops import dropout, kernels

SHAPES = [(), (7,), (4, 5, 6), (3, 14, 14, 64)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("typed", [True, False])
@pytest.mark.parametrize("form", ["cpu", "portable"])
def test_bits_equal_jax_random_bits(shape, typed, form):
  key = jax.random.key(11) if typed else jax.random.PRNGKey(11)
  ours = jax.jit(lambda k: dropout.random_bits(k, shape, kernels=form))(key)
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
  out = jax.jit(dropout.threefry2x32)(u(key[0]), u(key[1]), u(count[0]), u(count[1]))
  assert tuple(int(o) for o in out) == expected


@pytest.mark.parametrize("p", [0.0, 0.3, 0.7, 1.0])
@pytest.mark.parametrize("form", ["cpu", "portable"])
def test_bernoulli_equals_jax(p, form):
  key = jax.random.key(5)
  shape = (64, 9, 9, 8)
  ours = jax.jit(lambda k: dropout.bernoulli(k, p, shape, kernels=form))(key)
  ref = jax.random.bernoulli(key, p, shape)
  np.testing.assert_array_equal(np.asarray(ours), np.asarray(ref))
  assert abs(float(ours.mean()) - p) < 0.01


@pytest.mark.parametrize("form", ["cpu", "portable"])
def test_bernoulli_array_p_equals_jax(form):
  """Per-pixel probabilities, as the VAE's dynamic binarization draws them."""
  key = jax.random.key(8)
  probs = jax.random.uniform(jax.random.key(1), (16, 28, 28, 1))
  ours = jax.jit(lambda k, p: dropout.bernoulli(k, p, kernels=form))(key, probs)
  np.testing.assert_array_equal(np.asarray(ours), np.asarray(jax.random.bernoulli(key, probs)))


def test_cpu_mask_has_no_loop():
  """The point of the 'cpu' form: no rolled Threefry loop in the compiled mask on this CPU."""
  key = jax.random.key(0)

  def hlo(form):
    f = jax.jit(lambda k: dropout.bernoulli(k, 0.7, (32, 14, 14, 64), kernels=form))
    return f.lower(key).compile().as_text()

  assert " while(" not in hlo("cpu")
  if kernels.backend() == "cpu":
    assert " while(" in hlo("portable")  # if JAX unrolls on CPU one day, the 'cpu' form can go


def test_other_keys_fall_back_and_vmap():
  rbg = jax.random.key(3, impl="rbg")
  np.testing.assert_array_equal(
    np.asarray(dropout.bernoulli(rbg, 0.5, (100,), kernels="cpu")),
    np.asarray(jax.random.bernoulli(rbg, 0.5, (100,))),
  )
  keys = jax.random.split(jax.random.key(4), 3)
  ours = jax.jit(jax.vmap(lambda k: dropout.bernoulli(k, 0.6, (10, 10), kernels="cpu")))(keys)
  ref = jax.vmap(lambda k: jax.random.bernoulli(k, 0.6, (10, 10)))(keys)
  np.testing.assert_array_equal(np.asarray(ours), np.asarray(ref))
  with pytest.raises(ValueError, match="kernels"):
    dropout.bernoulli(keys[0], 0.5, (3,), kernels="fast")


def test_dcgan_discriminator_masks_unchanged():
  """The DCGAN discriminator trains with the masks nn.Dropout would draw, in either form.

  Its convolutions differ between the forms by float rounding only; a different
  mask would move the logits by far more than the tolerance.
  """
  images = jax.random.uniform(jax.random.key(0), (4, 28, 28, 1), minval=-1, maxval=1)
  params = DCGANDiscriminator().init(jax.random.key(1), images)
  rngs = {"dropout": jax.random.key(2)}
  outs = []
  for form in ("cpu", "portable"):
    with kernels.use(form):
      apply = jax.jit(lambda p, x: DCGANDiscriminator().apply(p, x, train=True, rngs=rngs)[0])
      outs.append(np.asarray(apply(params, images)))
  np.testing.assert_allclose(outs[0], outs[1], rtol=1e-5, atol=1e-5)
