"""Image-space optimization: attacks, visualization parameterizations, style losses; the drivers."""

import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.conftest import run_script
from vision.drivers import attack as attack_driver
from vision.drivers import inputs
from vision.errors import ConfigError
from vision.optimize import attacks, frozen, losses, style, visualize

SIZE = 12
CLASSES = 5


class Tiny(nn.Module):
  """Conv-BN-ReLU, strided conv, mean pool, dense: ``(logits, features)`` like the backbones."""

  @nn.compact
  def __call__(self, images, *, train: bool = False):
    features = {}
    x = nn.Conv(8, (3, 3), name="conv1")(images.astype(jnp.float32) * 2 - 1)
    x = nn.relu(nn.BatchNorm(use_running_average=not train, name="bn1")(x))
    features["conv1"] = x
    x = nn.relu(nn.Conv(16, (3, 3), strides=2, name="conv2")(x))
    features["conv2"] = x
    x = x.mean(axis=(1, 2))
    features["pre_logits"] = x
    return nn.Dense(CLASSES, name="head")(x), features


MODEL = Tiny()


def tiny_variables():
  variables = MODEL.init(jax.random.key(0), jnp.zeros((1, SIZE, SIZE, 3)))
  # Non-trivial running statistics, so inference mode is visible in the outputs.
  stats = variables["batch_stats"]["bn1"]
  variables["batch_stats"]["bn1"] = {"mean": stats["mean"] - 0.1, "var": stats["var"] * 2.0}
  rng = np.random.default_rng(0)
  for name in ("conv1", "conv2"):  # biases, so a flat grey image does not give all-zero ReLUs
    bias = variables["params"][name]["bias"]
    variables["params"][name]["bias"] = jnp.asarray(rng.normal(0, 0.2, bias.shape), jnp.float32)
  return variables


@pytest.fixture(scope="module")
def tiny():
  return frozen.logits_fn(MODEL), tiny_variables()


def grid_images(n=6, seed=0):
  """Clean images on the 8-bit grid, as if read from PNG files."""
  rng = np.random.default_rng(seed)
  return jnp.asarray(rng.integers(0, 256, (n, SIZE, SIZE, 3)) / 255.0, jnp.float32)


def leaves_equal(a, b):
  return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


# -- attacks --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
  "method,norm,eps,quantize",
  [
    ("fgsm", "linf", 8 / 255, False),
    ("fgsm", "linf", 8 / 255, True),
    ("pgd", "linf", 8 / 255, False),
    ("pgd", "linf", 8 / 255, True),
    ("pgd", "linf", 0.013, True),  # eps off the grid
    ("pgd", "l2", 0.5, False),
    ("pgd", "l2", 0.5, True),
  ],
)
def test_adversarial_images_stay_within_eps_and_in_unit_range(tiny, method, norm, eps, quantize):
  fn, variables = tiny
  x = grid_images()
  x = x.at[0].set(0.0).at[1].set(1.0)  # pixels at both ends of the range
  labels = jnp.argmax(fn(variables, x), -1)
  adv = attacks.attack(
    fn,
    variables,
    x,
    labels,
    jax.random.key(1),
    method=method,
    eps=eps,
    steps=5,
    norm=norm,
    quantize=quantize,
  )
  adv = np.asarray(adv)
  assert adv.shape == x.shape and adv.dtype == np.float32
  assert adv.min() >= 0.0 and adv.max() <= 1.0
  norms = attacks.perturbation_norms(adv, x)
  assert (norms[norm] <= eps + 1e-6).all(), norms[norm]
  assert norms["linf"].max() > 0  # it moved
  if quantize:  # on the 8-bit grid: saving as PNG changes nothing
    np.testing.assert_allclose(adv * 255, np.round(adv * 255), atol=1e-3)


def test_fgsm_is_one_signed_gradient_step(tiny):
  fn, variables = tiny
  x = grid_images()
  labels = jnp.arange(len(x)) % CLASSES
  eps = 4 / 255

  def loss(x):
    return attacks.attack_objective(fn(variables, x), labels).sum()

  expected = np.clip(x + eps * np.sign(jax.grad(loss)(x)), 0, 1)
  adv = attacks.fgsm(fn, variables, x, labels, eps=eps)
  # Where FGSM already fooled the model the step is kept; it is the only step either way.
  np.testing.assert_allclose(np.asarray(adv), expected, atol=1e-6)


def test_targeted_pgd_reaches_the_target_class(tiny):
  fn, variables = tiny
  x = grid_images(10)
  clean = np.asarray(jnp.argmax(fn(variables, x), -1))
  targets = jnp.asarray((clean + 1) % CLASSES)
  for norm, eps, step in (("linf", 0.25, 0.03), ("l2", 6.0, 0.6)):
    adv = attacks.pgd(
      fn,
      variables,
      x,
      targets,
      jax.random.key(2),
      eps=eps,
      step_size=step,
      steps=40,
      norm=norm,
      targeted=True,
    )
    pred = np.asarray(jnp.argmax(fn(variables, adv), -1))
    assert (pred == np.asarray(targets)).mean() >= 0.9, (norm, pred, targets)
    success = attacks.attack_success(fn(variables, adv), targets, targeted=True)
    assert np.asarray(success).mean() >= 0.9


def test_untargeted_success_is_leaving_the_set_of_correct_classes(tiny):
  fn, variables = tiny
  logits = jnp.asarray([[3.0, 2.0, 0.0, 0.0, 0.0]] * 2)
  mask = jnp.asarray([[True, True, False, False, False], [False, False, True, False, False]])
  assert np.asarray(attacks.attack_success(logits, mask)).tolist() == [False, True]
  # With one class the set objective is the cross-entropy.
  one = attacks.attack_objective(logits, jnp.asarray([1, 1]))
  np.testing.assert_allclose(one, losses.cross_entropy(logits, jnp.asarray([1, 1])), rtol=1e-6)
  both = attacks.attack_objective(logits, mask[:1].repeat(2, 0))
  expected = -np.log(np.exp(3) + np.exp(2)) + np.log(np.exp(3) + np.exp(2) + 3)
  np.testing.assert_allclose(both, [expected] * 2, rtol=1e-5)


def test_attack_leaves_the_network_frozen(tiny):
  fn, variables = tiny
  before = jax.tree.map(np.array, variables)
  x = grid_images()
  labels = jnp.zeros(len(x), jnp.int32)
  kwargs = dict(eps=8 / 255, step_size=2 / 255, steps=3)
  attacks.pgd(fn, variables, x, labels, jax.random.key(0), **kwargs)
  assert leaves_equal(before, variables)
  # No gradient reaches the weights through the attack.
  grads = jax.grad(lambda v: attacks.pgd(fn, v, x, labels, jax.random.key(0), **kwargs).sum())(
    variables
  )
  assert all(np.all(np.asarray(g) == 0) for g in jax.tree.leaves(grads))
  # Inference mode: the same image gives the same logits in a batch of one or many.
  single = fn(variables, x[:1])
  np.testing.assert_allclose(fn(variables, x)[:1], single, rtol=1e-5, atol=1e-5)


def primitives(jaxpr) -> list[str]:
  """Names of all primitives of a jaxpr, nested jaxprs (jit, loops, conditionals) included."""
  names = []
  for eqn in jaxpr.eqns:
    names.append(eqn.primitive.name)
    for value in eqn.params.values():
      for sub in value if isinstance(value, (tuple, list)) else [value]:
        inner = getattr(sub, "jaxpr", sub)
        if hasattr(inner, "eqns"):
          names.extend(primitives(inner))
  return names


def test_pgd_is_one_jitted_loop_whatever_the_number_of_steps(tiny):
  fn, variables = tiny
  x = grid_images(2)
  labels = jnp.zeros(2, jnp.int32)

  def jaxpr(steps):
    return jax.make_jaxpr(
      lambda v, x: attacks.pgd(
        fn, v, x, labels, jax.random.key(0), eps=0.03, step_size=0.01, steps=steps
      )
    )(variables, x)

  short, long = primitives(jaxpr(2).jaxpr), primitives(jaxpr(200).jaxpr)
  assert "jit" in long  # one compiled function
  assert "scan" in long or "while" in long  # fori_loop with static bounds lowers to a scan
  assert len(short) == len(long)  # the loop body is traced once, not unrolled
  assert hasattr(attacks.pgd, "lower")  # a jax.jit-wrapped function


def test_snap_to_grid_stays_in_the_ball():
  rng = np.random.default_rng(0)
  x0 = jnp.asarray(rng.integers(0, 256, (4, 5, 5, 3)) / 255.0, jnp.float32)
  x = jnp.clip(x0 + rng.uniform(-0.05, 0.05, x0.shape), 0, 1)
  for norm, eps in (("linf", 0.05), ("linf", 3 / 255), ("l2", 0.2)):
    proj = attacks.project(x, x0, eps, norm)
    q = np.asarray(attacks.snap_to_grid(proj, x0, eps, norm))
    np.testing.assert_allclose(q * 255, np.round(q * 255), atol=1e-3)
    assert (attacks.perturbation_norms(q, x0)[norm] <= eps + 1e-6).all()
    assert q.min() >= 0 and q.max() <= 1


# -- visualization --------------------------------------------------------------------------------
def test_total_variation_matches_numpy():
  x = np.random.default_rng(0).uniform(size=(2, 5, 7, 3)).astype(np.float32)
  expected = np.zeros(2)
  expected_mean = np.zeros(2)
  for b in range(2):
    dy = sum(
      abs(x[b, i + 1, j, c] - x[b, i, j, c]) for i in range(4) for j in range(7) for c in range(3)
    )
    dx = sum(
      abs(x[b, i, j + 1, c] - x[b, i, j, c]) for i in range(5) for j in range(6) for c in range(3)
    )
    expected[b] = dy + dx
    expected_mean[b] = dy / (4 * 7 * 3) + dx / (5 * 6 * 3)
  np.testing.assert_allclose(losses.total_variation(jnp.asarray(x)), expected, rtol=1e-5)
  np.testing.assert_allclose(
    losses.total_variation(jnp.asarray(x), "mean"), expected_mean, rtol=1e-5
  )


def test_gram_matrix_matches_numpy():
  f = np.random.default_rng(0).normal(size=(2, 4, 3, 5)).astype(np.float32)
  expected = np.zeros((2, 5, 5))
  for b in range(2):
    for c in range(5):
      for d in range(5):
        expected[b, c, d] = (
          sum(f[b, i, j, c] * f[b, i, j, d] for i in range(4) for j in range(3)) / 12
        )
  np.testing.assert_allclose(style.gram_matrix(jnp.asarray(f)), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["fourier", "pixel"])
@pytest.mark.parametrize("decorrelate", [True, False])
def test_image_parameterizations_round_trip(kind, decorrelate):
  param = visualize.ImageParam((2, 10, 15, 3), kind, decorrelate)
  params = param.init(jax.random.key(0), sd=0.5)
  assert params.shape == param.param_shape
  if kind == "fourier":
    assert params.shape == (2, 3, 10, 8, 2)
  image = param.to_image(params)
  assert image.shape == (2, 10, 15, 3)
  assert float(image.min()) > 0 and float(image.max()) < 1
  # image -> parameters -> the same image (parameters differ only where irfft2 ignores them).
  again = param.to_image(param.from_image(image))
  np.testing.assert_allclose(again, image, atol=1e-4)
  target = jnp.asarray(np.random.default_rng(1).uniform(0.05, 0.95, (2, 10, 15, 3)), jnp.float32)
  np.testing.assert_allclose(param.to_image(param.from_image(target)), target, atol=1e-4)


def test_fourier_scale_damps_high_frequencies():
  scale = visualize.fft_scale(8, 8)
  assert scale.shape == (8, 5)
  assert scale[0, 0] == scale.max() == 8.0  # DC capped at 1 / (1 / max(H, W))
  assert scale[4, 4] < scale[2, 2] < scale[0, 2] < scale[0, 1] == scale[0, 0]


def test_random_transform_identity_and_shift():
  x = jnp.asarray(np.random.default_rng(0).uniform(size=(2, 9, 9, 3)), jnp.float32)
  same = visualize.affine_resample(x, jnp.zeros(2), jnp.ones(2), jnp.zeros((2, 2)))
  np.testing.assert_allclose(same, x, atol=1e-5)
  shifted = visualize.affine_resample(x, jnp.zeros(2), jnp.ones(2), jnp.asarray([[1.0, 2.0]] * 2))
  np.testing.assert_allclose(shifted[:, :-1, :-2], x[:, 1:, 2:], atol=1e-5)
  t = visualize.Transforms(jitter=2, scale_min=0.9, scale_max=1.1, max_angle=10)
  out = visualize.random_transform(jax.random.key(0), x, t)
  assert out.shape == x.shape and not np.allclose(out, x)


@pytest.mark.slow
def test_class_and_feature_visualization_improve_their_objectives(tiny):
  _, variables = tiny
  fn = frozen.features_fn(MODEL)
  param = visualize.ImageParam((2, SIZE, SIZE, 3), "fourier")
  targets = jnp.asarray([1, 3])
  rng = jax.random.key(0)
  start = param.to_image(param.init(jax.random.split(rng)[0]))
  t = visualize.Transforms(jitter=1, max_angle=5)
  params, history = visualize.optimize_image(
    fn,
    variables,
    visualize.class_objective(targets),
    param,
    rng,
    steps=24,
    learning_rate=0.3,
    tv_weight=0.0,
    transforms=t,
    chunk=8,
  )
  assert [s for s, _ in history] == [8, 16, 24]
  p0 = jax.nn.softmax(fn(variables, start)[0])[jnp.arange(2), targets]
  p1 = jax.nn.softmax(fn(variables, param.to_image(params))[0])[jnp.arange(2), targets]
  # A tiny random network moves its probabilities only a little, but they must move up.
  assert (p1 > p0 + 0.005).all(), (p0, p1)
  assert history[-1][1] < history[0][1]

  # Two channels that are alive (not all-zero after the ReLU) at the start.
  alive = np.argsort(np.asarray(fn(variables, start)[1]["conv2"][0].mean(axis=(0, 1))))
  channels = jnp.asarray(alive[-2:])
  params, _ = visualize.optimize_image(
    fn,
    variables,
    visualize.feature_objective("conv2", channels),
    param,
    rng,
    steps=16,
    learning_rate=0.1,
    transforms=t,
  )
  a0 = visualize.channel_activation(fn(variables, start)[1], "conv2", channels)
  a1 = visualize.channel_activation(fn(variables, param.to_image(params))[1], "conv2", channels)
  assert (a1 > a0).all(), (a0, a1)


# -- style transfer -------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize(
  "optimizer,param,init", [("adam", "pixel", "noise"), ("lbfgs", "sigmoid", "content")]
)
def test_style_loss_falls(tiny, optimizer, param, init):
  _, variables = tiny
  rng = np.random.default_rng(0)
  content = jnp.asarray(rng.uniform(size=(1, 16, 16, 3)), jnp.float32)
  style_image = jnp.asarray(rng.uniform(size=(1, 16, 16, 3)) ** 3, jnp.float32)
  image, history = style.stylize(
    frozen.features_fn(MODEL),
    variables,
    content,
    style_image,
    content_layers=["conv2"],
    style_layers=["conv1", "conv2"],
    steps=12,
    optimizer=optimizer,
    learning_rate=0.05 if optimizer == "adam" else 0.0,
    param=param,
    init=init,
    chunk=6,
  )
  assert image.shape == content.shape
  assert float(image.min()) >= 0 and float(image.max()) <= 1
  assert [h["step"] for h in history] == list(range(13))
  totals = [h["total"] for h in history]
  assert totals[-1] < 0.8 * totals[0], totals
  for h in history:
    np.testing.assert_allclose(h["total"], h["content"] + h["style"] + h["tv"], rtol=1e-5)


def test_style_losses_are_zero_at_the_targets(tiny):
  _, variables = tiny
  fn = frozen.features_fn(MODEL)
  x = grid_images(1)
  targets = style.style_targets(fn, variables, x, x, ["conv2"], ["conv1", "conv2"])
  terms = style.style_losses(fn, variables, x, targets, tv_weight=0.0)
  assert float(terms["content"]) == pytest.approx(0, abs=1e-7)
  assert float(terms["style"]) == pytest.approx(0, abs=1e-7)


# -- helpers and scripts --------------------------------------------------------------------------
def test_imagenet_classes_and_numbers():
  assert inputs.imagenet_class("Egyptian cat") == 285
  assert inputs.imagenet_class("285") == 285
  assert inputs.imagenet_class("tiger cat") == 282
  with pytest.raises(ConfigError, match="Did you mean"):
    inputs.imagenet_class("egyptian kat")
  assert inputs.parse_number("8/255") == 8 / 255
  assert inputs.parse_number("0.5") == 0.5
  with pytest.raises(ConfigError):
    inputs.parse_number("eight")
  specs = attack_driver.parse_image_specs("chelsea, x.png=tabby|285, y.png")
  assert specs == [
    ("chelsea", attack_driver.PHOTO_CLASSES["chelsea"]),
    ("x.png", (281, 285)),
    ("y.png", None),
  ]


def test_load_photo_is_on_the_8bit_grid():
  x = inputs.load_photo("coffee", 32)
  assert x.shape == (32, 32, 3) and x.dtype == np.float32
  np.testing.assert_allclose(x * 255, np.round(x * 255), atol=1e-4)
  assert inputs.load_photo("camera", 16).shape == (16, 16, 3)  # grey -> RGB


@pytest.mark.slow
@pytest.mark.parametrize(
  "script,config,override,message",
  [
    ("attack.py", "experiments/attack.py", "--config.target=golden retreiver", "golden retriever"),
    ("attack.py", "experiments/attack.py", "--config.norm=l3", "linf"),
    ("attack.py", "experiments/attack.py", "--config.eps=eight", "8/255"),
    ("visualize.py", "experiments/visualize.py", "--config.classes=tabby,notaclass", "notaclass"),
    ("stylize.py", "experiments/stylize.py", "--config.content=/no/such.png", "no image"),
    ("stylize.py", "experiments/stylize.py", "--config.optimizer=sgd", "adam"),
  ],
)
def test_scripts_reject_bad_input_with_exit_code_2(tmp_path, script, config, override, message):
  proc = run_script(script, "--config", config, "--workdir", str(tmp_path), override, timeout=120)
  assert proc.returncode == 2, proc.stderr
  assert "error:" in proc.stderr and message in proc.stderr
  assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_attack_script_fools_efficientnet_on_chelsea(tmp_path):
  proc = run_script(
    "attack.py",
    "--config",
    "experiments/attack.py",
    "--workdir",
    str(tmp_path),
    "--config.images=chelsea",
    "--config.steps=5",
    "--config.progress=False",
    "--config.transfer_model=efficientnet_lite0",
  )
  assert proc.returncode == 0, proc.stderr
  results = json.loads((tmp_path / "results.json").read_text())
  assert results["clean_accuracy"] == 1.0
  assert results["success_rate"] == 1.0
  # The transfer model is the attacked one: its success on the saved examples is the
  # attack's own, and the clean photo never counts as a success.
  assert results["transfer_model"] == "efficientnet_lite0"
  assert results["transfer_success_rate"] == results["success_rate"]
  assert results["transfer_clean_success_rate"] == 0.0
  assert results["all_within_eps"] and results["all_in_range"]
  assert results["max_linf"] <= 8 / 255 + 1e-6
  saved = inputs.read_png(str(tmp_path / "adversarial_chelsea.png"))
  original = inputs.read_png(str(tmp_path / "original_chelsea.png"))
  assert saved.shape == (224, 224, 3)
  assert np.abs(saved - original).max() <= 8 / 255 + 1e-6
