"""Backbone modules: architectures, registry, metadata, features, input handling, training mode."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from vision.models.backbones import BACKBONES, backbone_info, feature_names, stage_mask
from vision.models.registry import available, create_model

# Parameter counts of the published models: torchvision's, Keras' trainable
# weights for the Keras variant, and the EfficientNet-Lite README
# (4.7M, 5.4M, 6.1M, 8.2M, 13.0M). Matching them pins every layer's shape,
# including the Lite1-4 width/depth scaling that no checkpoint here tests.
PARAM_COUNTS = {
  "efficientnet_lite0": 4_652_008,
  "efficientnet_lite1": 5_416_680,
  "efficientnet_lite2": 6_092_072,
  "efficientnet_lite3": 8_197_096,
  "efficientnet_lite4": 13_006_568,
  "vgg16": 138_357_544,
  "vgg19": 143_667_240,
  "resnet18": 11_689_512,
  "resnet34": 21_797_672,
  "resnet50": 25_557_032,
  "mobilenet_v2": 3_504_872,
}
TINY = ("efficientnet_lite_tiny", "vgg_tiny", "resnet_tiny", "mobilenet_v2_tiny")


def abstract_params(model, size=64):
  x = jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32)
  return jax.eval_shape(model.init, jax.random.key(0), x)


def random_variables(model, size=32, seed=0):
  """Variables with random values, built from shapes with numpy.

  Avoids compiling ``model.init``: XLA:CPU takes long to compile the
  hundreds of random initializers, much longer than the forward pass.
  """
  rng = np.random.default_rng(seed)
  shapes = abstract_params(model, size)

  def fill(path, leaf):
    name = path[-1].key
    if name == "kernel":
      fan_in = int(np.prod(leaf.shape[:-1]))
      value = rng.normal(0, np.sqrt(2 / fan_in), leaf.shape)
    elif name in ("scale", "var"):
      value = rng.uniform(0.5, 1.5, leaf.shape)
    else:  # bias, mean
      value = rng.normal(0, 0.1, leaf.shape)
    return jnp.asarray(value, jnp.float32)

  return jax.tree_util.tree_map_with_path(fill, shapes)


def count(tree):
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def test_registry_names():
  names = set(available())
  assert set(BACKBONES) <= names and set(TINY) <= names
  assert set(BACKBONES) == set(PARAM_COUNTS)


@pytest.mark.parametrize("name", BACKBONES)
def test_architecture_matches_published_parameter_count(name):
  model = create_model(name)
  variables = abstract_params(model)
  assert count(variables["params"]) == PARAM_COUNTS[name]
  # Stages partition the top-level params, in order, head last.
  info = backbone_info(name)
  listed = [p for _, names in info.stages for p in names]
  assert sorted(listed) == sorted(variables["params"]) and len(set(listed)) == len(listed)
  assert info.stages[-1] == ("head", ("head",)) and info.head == "head"
  assert info.input_size >= 224


def test_keras_resnet50_variant():
  model = create_model("resnet50", weights_format="keras")
  assert (model.preprocess, model.stride_on_3x3, model.conv_bias) == ("caffe", False, True)
  # Keras counts 25,583,592 trainable weights (conv biases included).
  assert count(abstract_params(model)["params"]) == 25_583_592
  assert create_model("mobilenet_v2", weights_format="keras").padding == "TF_SAME"
  with pytest.raises(ValueError, match="Keras has no resnet18"):
    create_model("resnet18", weights_format="keras")


def test_efficientnet_lite_configuration():
  lite4 = create_model("efficientnet_lite4")
  # Stem and head stay 32/1280; first and last stages keep their single block.
  assert lite4.stem_features == 32 and lite4.head_features == 1280
  assert lite4.stages[0][-1] == 1 and lite4.stages[-1][-1] == 1
  assert [s[3] for s in lite4.stages] == [24, 32, 56, 112, 160, 272, 448]
  assert backbone_info("efficientnet_lite4").input_size == 300
  lite0 = create_model("efficientnet_lite0")
  assert (lite0.preprocess, lite0.padding, lite0.bn_epsilon) == ("lite", "TF_SAME", 1e-3)


def test_feature_names():
  vgg = feature_names(create_model("vgg16"))
  assert vgg[:3] == ["block1_conv1", "block1_conv2", "block1_pool"]
  assert "block4_conv2" in vgg and vgg[-1] == "pre_logits"
  lite = feature_names(create_model("efficientnet_lite0"))
  assert lite[0] == "stem" and "stage7" in lite and "block_15" in lite
  resnet = feature_names(create_model("resnet50"))
  assert resnet == ["stem", "stage1", "stage2", "stage3", "stage4", "pre_logits"]


@pytest.mark.parametrize("name", TINY)
def test_tiny_models_forward_and_feature_extractor(name):
  model = create_model(name, num_classes=7)
  extractor = create_model(name, num_classes=None)
  images = jax.random.uniform(jax.random.key(0), (2, 32, 32, 3))
  variables = random_variables(model)
  body = {
    c: {k: v for k, v in tree.items() if k not in ("head", "fc1", "fc2")}
    for c, tree in variables.items()
  }

  @jax.jit
  def run(variables, body, images):
    return model.apply(variables, images), extractor.apply(body, images)

  (logits, features), (pooled, extractor_features) = run(variables, body, images)
  assert logits.shape == (2, 7) and logits.dtype == jnp.float32
  assert np.all(np.isfinite(logits))
  assert "pre_logits" in features
  # Feature extractor: no head, logits are the pooled features.
  assert "head" not in abstract_params(extractor)["params"]
  np.testing.assert_array_equal(pooled, extractor_features["pre_logits"])


def test_new_head_is_zero_initialized():
  model = create_model("resnet_tiny", num_classes=7)
  # Returning only two leaves lets XLA drop the other initializers (fast compile).
  init = jax.jit(
    lambda key: (lambda p: (p["head"], p["stem_conv"]))(
      model.init(key, jnp.ones((1, 32, 32, 3)))["params"]
    )
  )
  head, stem = init(jax.random.key(1))
  assert not np.any(head["kernel"]) and not np.any(head["bias"])
  assert np.any(stem["kernel"])


def test_uint8_and_grey_inputs():
  model = create_model("resnet_tiny", num_classes=None)
  variables = random_variables(model)
  images = np.random.default_rng(0).random((2, 32, 32, 3), dtype=np.float32)
  uint8 = (images * 255).round().astype(np.uint8)
  grey = images[..., :1]
  apply = jax.jit(model.apply)
  # uint8 images are scaled by 1/255; grey images are tiled to RGB.
  np.testing.assert_allclose(
    apply(variables, uint8)[0],
    apply(variables, uint8.astype(np.float32) / 255)[0],
    # The two inputs differ by float rounding of x / 255, amplified through the network.
    rtol=1e-4,
    atol=1e-5,
  )
  np.testing.assert_allclose(
    apply(variables, grey)[0],
    apply(variables, np.tile(grey, (1, 1, 1, 3)))[0],
    rtol=1e-6,
    atol=1e-6,
  )


@pytest.mark.slow
@pytest.mark.parametrize("name", ["efficientnet_lite_tiny", "resnet_tiny", "mobilenet_v2_tiny"])
def test_train_step_updates_batch_stats_and_only_unfrozen_params(name):
  model = create_model(name, num_classes=5)
  images = jax.random.uniform(jax.random.key(0), (4, 32, 32, 3))
  labels = jnp.arange(4) % 5
  variables = random_variables(model)
  params, batch_stats = variables["params"], variables["batch_stats"]
  mask = stage_mask(params, model, train_last_n=1)
  tx = optax.multi_transform(
    {"train": optax.sgd(0.1, momentum=0.9), "freeze": optax.set_to_zero()},
    jax.tree.map(lambda m: "train" if m else "freeze", mask),
  )
  opt_state = tx.init(params)

  @jax.jit
  def step(params, batch_stats, opt_state):
    def loss_fn(params):
      (logits, _), updates = model.apply(
        {"params": params, "batch_stats": batch_stats}, images, train=True, mutable=["batch_stats"]
      )
      loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
      return loss, updates["batch_stats"]

    (loss, new_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), new_stats, opt_state, loss

  new_params, new_stats, _, loss = step(params, batch_stats, opt_state)
  assert np.isfinite(loss)
  changed = jax.tree.map(lambda a, b: bool(np.any(a != b)), params, new_params)
  last_body = [s for s in model.stage_layout() if s[0] != "head"][-1][1]
  assert changed["head"]["kernel"]
  assert any(jax.tree.leaves(changed[last_body[0]]))
  assert not any(jax.tree.leaves(changed["stem_conv"]))  # frozen by the mask
  assert not np.allclose(new_stats["stem_bn"]["mean"], batch_stats["stem_bn"]["mean"])


def test_stage_mask_selects_last_stages():
  model = create_model("resnet_tiny")
  params = abstract_params(model, 32)["params"]
  mask = stage_mask(params, model, train_last_n=2)
  assert mask["head"]["kernel"] and mask["stage4_block1"]["conv1"]["kernel"]
  assert mask["stage3_block2"]["bn1"]["scale"] and not mask["stage2_block1"]["conv1"]["kernel"]
  head_only = stage_mask(params, model, train_last_n=0)
  assert sum(jax.tree.leaves(head_only)) == 2  # head kernel and bias


@pytest.mark.slow
def test_dtype_bfloat16_keeps_float32_params():
  model = create_model("efficientnet_lite_tiny", dtype=jnp.bfloat16)
  images = jnp.ones((1, 32, 32, 3))
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(abstract_params(model, 32)))
  variables = random_variables(model)
  logits, features = jax.jit(model.apply)(variables, images)
  assert features["stage2"].dtype == jnp.bfloat16 and logits.dtype == jnp.float32


def test_dropout_needs_rng_only_in_training():
  model = create_model("vgg_tiny", dropout_rate=0.5)
  images = jnp.ones((2, 32, 32, 3))
  variables = random_variables(model)
  apply = jax.jit(model.apply, static_argnames="train")
  np.testing.assert_array_equal(apply(variables, images)[0], apply(variables, images)[0])
  out, _ = apply(variables, images, train=True, rngs={"dropout": jax.random.key(1)})
  assert out.shape == (2, 10)


@pytest.mark.slow
def test_features_script_writes_png(tmp_path):
  import os
  import subprocess
  import sys

  from PIL import Image
  from skimage import data

  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  image, out = tmp_path / "chelsea.png", tmp_path / "maps.png"
  Image.fromarray(data.chelsea()).save(image)
  env = dict(os.environ, PYTHONPATH=root, VISION_WEIGHTS_DIR=str(tmp_path / "weights"))
  script = os.path.join(root, "scripts", "features.py")
  args = [sys.executable, script, str(image), "--model", "efficientnet_lite0"]
  proc = subprocess.run(
    args + ["--layer", "stage3", "--out", str(out)],
    capture_output=True,
    text=True,
    env=env,
    timeout=300,
  )
  assert proc.returncode == 0, proc.stderr
  with Image.open(out) as png:
    assert png.size[0] > 200 and png.size[1] > 200
  proc = subprocess.run(
    args + ["--layer", "nonexistent"], capture_output=True, text=True, env=env, timeout=300
  )
  assert proc.returncode == 2 and "stage3" in proc.stderr  # lists the available layers
