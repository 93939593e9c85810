"""Transfer learning: what is frozen stays bit-identical; probes cache features; backbones run."""

import os

import jax
import numpy as np
import pytest
from flax import traverse_util

from vision import configs
from vision.data import pipeline
from vision.models.registry import create_model
from vision.train import loop, transfer
from vision.train.checkpoint import Checkpointer
from vision.weights.cache import load_npz, save_npz

CONFIG = "experiments/transfer.py"


def random_checkpoint(name: str, path: str, size: int = 32) -> str:
  """Random weights of backbone ``name`` (ImageNet head) in the converted .npz format."""
  model = create_model(name, num_classes=1000)
  variables = jax.jit(model.init)(jax.random.key(1), np.zeros((1, size, size, 3), np.float32))
  flat = traverse_util.flatten_dict(jax.device_get(variables), sep="/")
  rng = np.random.default_rng(0)
  for key, value in flat.items():
    # Non-trivial running statistics, so frozen-vs-updated batch norm is observable.
    if key.endswith("/mean"):
      flat[key] = rng.normal(0, 0.1, value.shape).astype(np.float32)
    elif key.endswith("/var"):
      flat[key] = rng.uniform(0.5, 1.5, value.shape).astype(np.float32)
  save_npz(path, flat, {"format": "torch"})
  return path


def train_steps(config, steps=1):
  """``steps`` steps of the task on one batch: (the backbone's stage layout, the variables
  before, the keys of those that changed)."""
  splits = loop.load_splits(config)
  # (warm-up is off: a warm-up starts at learning rate 0)
  task = transfer.build(config, splits, num_steps=10)
  batch = next(
    iter(pipeline.train_batches(splits["train"], batch_size=config.batch_size, num_steps=1, seed=0))
  )
  state = task.init(jax.random.key(0), batch)
  before = traverse_util.flatten_dict(
    jax.device_get({"params": state.params, "batch_stats": state.batch_stats})
  )
  step = jax.jit(task.train_step)
  for _ in range(steps):
    state, metrics = step(state, batch, jax.random.key(1))
  after = traverse_util.flatten_dict(
    jax.device_get({"params": state.params, "batch_stats": state.batch_stats})
  )
  assert np.isfinite(float(metrics["loss"]))
  changed = {k for k in before if not np.array_equal(before[k], after[k])}
  backbone, _ = transfer.load_backbone(config, splits["train"].num_classes)
  return backbone.stage_layout(), before, changed


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
  return random_checkpoint(
    "efficientnet_lite_tiny", str(tmp_path_factory.mktemp("w") / "lite_tiny.npz")
  )


@pytest.mark.slow
@pytest.mark.parametrize("regularized", [False, True], ids=["plain", "mixup+dropout"])
def test_head_mode_changes_only_the_head(data_env, tiny_weights, regularized):
  extra = ["aug.mixup=0.4", "model.kwargs.dropout_rate=0.3"] if regularized else []
  config = configs.load_config(
    CONFIG + ":efficientnet_lite_tiny,head,tiny",
    [f"model.weights={tiny_weights}", "optim.warmup_steps=0", *extra],
  )
  layout, before, changed = train_steps(config)
  head = {n for stage, names in layout if stage == "head" for n in names}
  assert changed, "the head did not train"
  assert all(k[0] == "params" and k[1] in head for k in changed), sorted(changed)[:5]
  frozen = [k for k in before if k[1] not in head]
  assert len(frozen) > 20 and any(k[0] == "batch_stats" for k in frozen)


@pytest.mark.slow
def test_finetune_last_stage_with_bn_train(data_env, tiny_weights):
  config = configs.load_config(
    CONFIG + ":efficientnet_lite_tiny,finetune,tiny",
    [
      f"model.weights={tiny_weights}",
      "transfer.train_last_n=1",
      "optim.warmup_steps=0",
      "transfer.bn_train=true",
    ],
  )
  # Two steps: the zero-initialized head passes no gradient down on the first.
  layout, before, changed = train_steps(config, steps=2)
  body = [names for stage, names in layout if stage != "head"]
  head = {n for stage, names in layout if stage == "head" for n in names}
  trained = set(body[-1]) | head
  assert {k[1] for k in changed} <= trained
  assert any(k[0] == "batch_stats" and k[1] in body[-1] for k in changed)  # BN stats moved
  assert any(k[0] == "params" and k[1] in body[-1] for k in changed)
  assert not any(k[1] in set().union(*map(set, body[:-1])) for k in changed)


@pytest.mark.slow
def test_probe_extracts_features_once(data_env, tiny_weights, tmp_path, monkeypatch):
  monkeypatch.setenv("VISION_CACHE_DIR", str(tmp_path / "cache"))
  overrides = [f"model.weights={tiny_weights}", "num_steps=3"]
  config = configs.load_config(CONFIG + ":efficientnet_lite_tiny,probe,tiny", overrides)
  first = loop.run(config, str(tmp_path / "a"))
  cached = os.listdir(tmp_path / "cache" / "features")
  assert len(cached) == 3  # train, val, test

  original = transfer.compute_features

  def no_extraction(config, backbone, variables, split, role):
    raise AssertionError(f"features of {role} were extracted again")

  monkeypatch.setattr(transfer, "compute_features", no_extraction)
  config = configs.load_config(CONFIG + ":efficientnet_lite_tiny,probe,tiny", overrides)
  second = loop.run(config, str(tmp_path / "b"))
  assert second["test_accuracy"] == first["test_accuracy"]
  assert first["params_frozen"] == 0 and first["params_trained"] == 10 * 32 + 10
  assert first["feature_seconds"] > 0 and second["feature_seconds"] >= 0

  # A few-shot subset of the training split: only its features are new; the
  # validation and test features are shared with the full run.
  extracted = []
  monkeypatch.setattr(
    transfer,
    "compute_features",
    lambda *args: extracted.append(args[-1]) or original(*args),
  )
  config = configs.load_config(
    CONFIG + ":efficientnet_lite_tiny,probe,tiny", [*overrides, "data.per_class=4", "batch_size=16"]
  )
  loop.run(config, str(tmp_path / "c"))
  assert extracted == ["train"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["vgg_tiny", "resnet_tiny", "mobilenet_v2_tiny"])
def test_transfer_config_runs_with_other_backbones(data_env, tmp_path, name):
  # The tiny forms of the VGG, ResNet and MobileNetV2 families: the same blocks, stage
  # layouts and weight loading as the full-size backbones (whose conversion
  # tests/test_weights.py checks against Keras), at a fraction of the compile time.
  # Head mode: the backbones' own training steps (batch statistics, frozen stages) are
  # tested in tests/test_backbones.py, their gradients under both kernel forms in
  # tests/test_kernels.py.
  weights = random_checkpoint(name, str(tmp_path / f"{name}.npz"))
  config = configs.load_config(
    f"{CONFIG}:{name},head,tiny", [f"model.weights={weights}", "num_steps=2", "eval_every=0"]
  )
  workdir = tmp_path / "run"
  results = loop.run(config, str(workdir))
  assert np.isfinite(results["test_loss"])

  # The run's final state, as checkpointed: the body is the file's weights, untouched; every
  # parameter of the head stage trained.
  splits = loop.load_splits(config)
  task = transfer.build(config, splits, num_steps=2)
  sample = next(pipeline.eval_batches(splits["train"], batch_size=config.batch_size))
  sample.pop("mask")
  checkpointer = Checkpointer(str(workdir / "checkpoints"))
  state = checkpointer.restore(task.init(jax.random.key(0), sample))
  checkpointer.close()
  assert int(state.step) == 2
  final = traverse_util.flatten_dict(
    jax.device_get({"params": state.params, "batch_stats": state.batch_stats}), sep="/"
  )
  stored, _ = load_npz(weights)
  backbone, _ = transfer.load_backbone(config, splits["train"].num_classes)
  head = {n for stage, names in backbone.stage_layout() if stage == "head" for n in names}
  body = [k for k in final if k.split("/")[1] not in head]
  trained = [k for k in final if k.startswith("params/") and k.split("/")[1] in head]
  assert len(body) > 10 and trained
  for key in body:
    np.testing.assert_array_equal(final[key], stored[key], err_msg=key)
  for key in trained:
    start = stored[key] if key.split("/")[1] != "head" else np.zeros_like(final[key])
    assert not np.array_equal(final[key], start), f"{key} did not train"
  assert results["params_trained"] == sum(final[k].size for k in trained)


def second_step_updates(config) -> dict:
  """The change of every trainable parameter in the second of two steps on one batch (the
  first passes no gradient to the backbone through the zero-initialized head)."""
  splits = loop.load_splits(config)
  task = transfer.build(config, splits, num_steps=10)
  batch = next(
    iter(pipeline.train_batches(splits["train"], batch_size=config.batch_size, num_steps=1, seed=0))
  )
  state = task.init(jax.random.key(0), batch)
  step = jax.jit(task.train_step)
  state, _ = step(state, batch, jax.random.key(1))
  before = traverse_util.flatten_dict(jax.device_get(state.params), sep="/")
  state, metrics = step(state, batch, jax.random.key(1))
  assert np.isfinite(float(metrics["loss"]))
  after = traverse_util.flatten_dict(jax.device_get(state.params), sep="/")
  return {k: np.asarray(after[k], np.float64) - before[k] for k in before}


@pytest.mark.slow
def test_backbone_lr_scale_scales_only_the_backbone_updates(data_env, tiny_weights):
  updates = {}
  for scale in (1.0, 0.1):
    config = configs.load_config(
      CONFIG + ":efficientnet_lite_tiny,finetune,tiny",
      [
        f"model.weights={tiny_weights}",
        "optim.warmup_steps=0",
        "optim.weight_decay=0.0",  # so the backbone does not move on the first step
        "transfer.train_last_n=1",
        "transfer.bn_train=false",
        f"transfer.backbone_lr_scale={scale}",
      ],
    )
    updates[scale] = second_step_updates(config)
  layout = transfer.load_backbone(config, 10)[0].stage_layout()
  head = {n for stage, names in layout if stage == "head" for n in names}
  is_head = lambda key: key.split("/")[0] in head  # noqa: E731
  norm = lambda u, keep: np.sqrt(sum(np.sum(v**2) for k, v in u.items() if keep(k)))  # noqa: E731
  full, scaled = updates[1.0], updates[0.1]
  backbone_full = norm(full, lambda k: not is_head(k))
  assert backbone_full > 0, "the backbone did not train"
  # Adam's step is proportional to the learning rate: a tenth of the learning rate, a tenth
  # of the update, in every backbone parameter.
  assert norm(scaled, lambda k: not is_head(k)) / backbone_full == pytest.approx(0.1, rel=1e-3)
  for key in full:
    if not is_head(key):
      np.testing.assert_allclose(scaled[key], 0.1 * full[key], rtol=1e-3, atol=1e-6, err_msg=key)
  # The head's learning rate is not scaled.
  assert norm(full, is_head) > 0
  for key in full:
    if is_head(key):
      np.testing.assert_allclose(scaled[key], full[key], rtol=1e-5, atol=1e-7, err_msg=key)
