"""Optimizers and schedules by name."""

import inspect
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import common
from vision.train import optim


@pytest.mark.parametrize("name", optim.OPTIMIZERS)
def test_every_optimizer_minimizes_a_quadratic(name):
  # Adagrad's step shrinks as squared gradients accumulate; it needs a larger rate.
  lr = 0.5 if name == "adagrad" else 0.05
  config = common.optim(
    name=name, learning_rate=lr, schedule="constant", weight_decay=1e-4, grad_clip_norm=10.0
  )
  tx = optim.make_optimizer(config, total_steps=200)
  params = {"w": jnp.array([3.0, -2.0])}
  state = tx.init(params)
  loss = lambda p: jnp.sum((p["w"] - 1.0) ** 2)
  start = loss(params)

  def step(_, carry):
    params, state = carry
    updates, state = tx.update(jax.grad(loss)(params), state, params)
    return jax.tree_util.tree_map(lambda p, u: p + u, params, updates), state

  params, state = jax.lax.fori_loop(0, 200, step, (params, state))
  assert loss(params) < 0.1 * start, name


def test_warmup_then_cosine():
  config = common.optim(learning_rate=1.0, schedule="cosine", warmup_steps=10)
  schedule = optim.make_schedule(config, total_steps=110)
  assert float(schedule(0)) == 0.0
  assert float(schedule(5)) == pytest.approx(0.5)
  assert float(schedule(10)) == pytest.approx(1.0)
  assert float(schedule(60)) == pytest.approx(0.5, abs=1e-3)
  assert float(schedule(110)) == pytest.approx(0.0, abs=1e-6)


def test_step_and_exponential_decay():
  step = optim.make_schedule(
    common.optim(learning_rate=1.0, schedule="step", step_boundaries=(0.5,), decay_rate=0.1),
    100,
  )
  assert float(step(49)) == 1.0 and float(step(51)) == pytest.approx(0.1)
  expo = optim.make_schedule(
    common.optim(learning_rate=1.0, schedule="exponential", decay_rate=0.98, transition_steps=10),
    100,
  )
  assert float(expo(20)) == pytest.approx(0.98**2, rel=1e-5)


def test_gradient_clipping_bounds_the_update():
  config = common.optim(name="sgd", learning_rate=1.0, schedule="constant", grad_clip_norm=1.0)
  tx = optim.make_optimizer(config, 10)
  params = {"w": jnp.zeros(3)}
  updates, _ = tx.update({"w": jnp.array([30.0, 40.0, 0.0])}, tx.init(params), params)
  np.testing.assert_allclose(updates["w"], [-0.6, -0.8, 0.0], rtol=1e-6)


def test_unknown_names_are_clear():
  with pytest.raises(ValueError, match="unknown optimizer 'adamm'"):
    optim.make_optimizer(common.optim(name="adamm"), 10)
  with pytest.raises(ValueError, match="unknown schedule 'linear'"):
    optim.make_schedule(common.optim(schedule="linear"), 10)


def test_the_config_group_has_every_field_the_module_reads():
  source = inspect.getsource(optim)
  read = set(re.findall(r"optim\.get\(\"(\w+)\"", source))
  read |= set(re.findall(r"\boptim\.(\w+)\b(?!\()", source)) - {"get"}
  assert {"name", "learning_rate", "grad_clip_norm", "rms_decay"} <= read  # the patterns work
  assert read <= set(common.optim())
