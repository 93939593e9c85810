"""Bad inputs, as a user types them, through the real scripts: one clear line, nothing touched.

Every row of :data:`CASES` runs ``scripts/SCRIPT ARGS`` in a process of its own
and expects exit status 2, no traceback, exactly one ``error: ...`` line that
is the last line of stderr and holds both fragments (the first names the
problem, the second the fix), and the case's folder unchanged: a workdir that
holds a previous run's files (config, results, a checkpoint, a sentinel), an
existing file, an image, and the empty weights, datasets and cache folders the
scripts are pointed at. Each bad value is caught before any dataset is read or
any model built, so a row costs little more than the script's imports.

The imports (JAX, flax, matplotlib, ...) would still cost seconds per row, so
the rows' processes are forked from one that imported the project once
(:func:`serve`; no JAX backend is started before the fork, so each row starts
its own under its own environment), and each runs its script file as
``__main__`` with its own argv, environment, stdout and stderr. The issue's
examples also run from a cold start (:data:`COLD`, ``tests.conftest.run_script``).

Placeholders in ARGS: ``{run}`` the prepared workdir, ``{file}`` an existing
file, ``{image}`` a PNG image, ``{npz}`` a truncated ``.npz`` archive, ``{case}`` the
case's folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from tests.conftest import ROOT, run_script, truncated_npz

TINY = ["--config", "experiments/cnn_fashion_mnist.py:tiny", "--workdir", "{run}"]
TRANSFER = ["--config", "experiments/transfer.py:tiny", "--workdir", "{run}"]
ATTACK = ["--config", "experiments/attack.py:tiny", "--workdir", "{run}"]
ROBUST = ["--config", "experiments/attack.py:fashion_mnist,tiny", "--workdir", "{run}"]
VISUALIZE = ["--config", "experiments/visualize.py:tiny", "--workdir", "{run}"]
STYLIZE = ["--config", "experiments/stylize.py:tiny", "--workdir", "{run}"]
TWO_DEVICES = {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}

# (script, args, (fragment naming the problem, fragment naming the fix)[, extra environment])
CASES = [
  # -- the examples --
  ("train.py", [*TINY, "--config.batch_size=-5"], ("batch_size=-5", "--config.batch_size=64")),
  ("train.py", [*TINY, "--config.optim.name=adamx"], ("unknown optimizer", "use one of sgd")),
  ("train.py", [*TINY[:3], "{file}"], ("is an existing file", "give a new folder")),
  (
    "train.py",
    ["--config", "experiments/transfer.py:vgg16,tiny", "--workdir", "{run}"],
    ("no pretrained weights for vgg16", "convert_weights.py vgg16"),
  ),
  (
    "train.py",
    [*TRANSFER, "--config.model.weights=/nonexistent.npz"],
    ("no such weights file", "--config.model.weights"),
  ),
  (
    "train.py",
    [*TRANSFER, "--config.model.weights={npz}"],
    ("not a readable .npz archive", "convert_weights.py efficientnet_lite0"),
  ),
  # -- train.py: sizes and counts --
  ("train.py", [*TINY, "--config.batch_size=0"], ("positive integer", "--config.batch_size=64")),
  ("train.py", [*TINY, "--config.num_steps=-1"], ("num_steps=-1", "--config.num_steps=1000")),
  (
    "train.py",
    [*TINY, "--config.num_steps=0", "--config.num_epochs=0"],
    ("nothing to train", "--config.num_epochs=N"),
  ),
  ("train.py", [*TINY, "--config.log_every=0"], ("log_every=0", "--config.log_every=50")),
  ("train.py", [*TINY, "--config.eval_every=-1"], ("eval_every=-1", "--config.eval_every=")),
  ("train.py", [*TINY, "--config.checkpoint_every=-2"], ("checkpoint_every=-2", "e.g.")),
  ("train.py", [*TINY, "--config.keep_checkpoints=0"], ("keep_checkpoints=0", "e.g.")),
  (
    "train.py",
    [*TINY, "--config.optim.learning_rate=0"],
    ("learning_rate=0", "--config.optim.learning_rate=0.001"),
  ),
  ("train.py", [*TINY, "--config.optim.warmup_steps=-10"], ("warmup_steps=-10", "e.g.")),
  ("train.py", [*TINY, "--config.optim.momentum=1.5"], ("momentum=1.5", "[0, 1)")),
  ("train.py", [*TINY, "--config.label_smoothing=1.0"], ("label_smoothing=1.0", "[0, 1)")),
  ("train.py", [*TINY, "--config.data.per_class=-3"], ("per_class=-3", "--config.data.per_class")),
  ("train.py", [*TINY, "--config.aug.size=-1"], ("aug.size=-1", "--config.aug.size=64")),
  ("train.py", [*TINY, "--config.model.widths=(0,16)"], ("model.widths=(0,16)", "e.g.")),
  (
    "train.py",
    [
      "--config",
      "experiments/gan.py:tiny",
      "--workdir",
      "{run}",
      "--config.data.image_size=(32,32)",
    ],
    ("the feature classifier for the Fréchet distance", "classifier_overrides"),
  ),
  ("train.py", [*TINY, "--config.model.dropout=1.5"], ("dropout=1.5", "--config.model.dropout")),
  ("train.py", [*TINY, "--config.seed=-1"], ("seed=-1", "--config.seed=0")),
  (
    "train.py",
    [*TINY, "--config.batch_size=63"],
    ("not divisible by the 2 devices", "--config.batch_size=62"),
    TWO_DEVICES,
  ),
  # -- train.py: names --
  ("train.py", [*TINY, "--config.optim.schedule=linear"], ("schedule", "use one of constant")),
  ("train.py", [*TINY, "--config.task=clasification"], ("unknown task", "classification")),
  ("train.py", [*TINY, "--config.model.name=resnet"], ("unknown model", "use one of")),
  ("train.py", [*TINY, "--config.model.name=dcgan"], ("not a model for task", "use one of cnn")),
  ("train.py", [*TINY, "--config.model.initializer=xavier"], ("initializer", "he_normal")),
  ("train.py", [*TINY, "--config.model.dtype=float33"], ("float33", "float32 or bfloat16")),
  ("train.py", [*TINY, "--config.kernels=fast"], ("unknown kernels form", "portable")),
  ("train.py", [*TINY, "--config.data.name=fashion_mnis"], ("not prepared", "tfds build")),
  (
    "train.py",
    [*TINY, "--config.data.name=image_folder", "--config.data.root=/no/such/folder"],
    ("no such folder", "sub-folder"),
  ),
  (
    "train.py",
    [*TRANSFER, "--config.transfer.mode=probes"],
    ("unknown transfer mode", "use one of probe"),
  ),
  (
    "train.py",
    [*TRANSFER, "--config.transfer.train_last_n=-5"],
    ("train_last_n=-5", "--config.transfer.train_last_n=-1"),
  ),
  (
    "train.py",
    ["--config", "experiments/gan.py:tiny", "--workdir", "{run}", "--config.model.name=cnn"],
    ("not a model for task 'gan'", "dcgan"),
  ),
  (
    "train.py",
    [
      *["--config", "experiments/gan.py:tiny", "--workdir", "{run}"],
      "--config.eval.classifier=experiments/vae.py",
    ],
    ("has task 'vae', not a classifier", "cnn_fashion_mnist.py"),
  ),
  (
    "train.py",
    ["--config", "experiments/gan.py:tiny", "--workdir", "{run}", "--config.model.latent_dim=0"],
    ("latent_dim=0", "--config.model.latent_dim=2"),
  ),
  (
    "train.py",
    [
      "--config",
      "experiments/denoise.py:tiny",
      "--workdir",
      "{run}",
      "--config.noise.kind=speckle",
    ],
    ("unknown noise kind", "gaussian"),
  ),
  (
    "train.py",
    ["--config", "experiments/superres.py:tiny", "--workdir", "{run}", "--config.scale=3"],
    ("scale=3", "--config.scale=2 or 4"),
  ),
  (
    "train.py",
    ["--config", "experiments/vae.py:tiny", "--workdir", "{run}", "--config.vae.likelihood=normal"],
    ("unknown likelihood", "bernoulli"),
  ),
  # -- train.py: types, fields, files, variants, paths --
  ("train.py", [*TINY, "--config.batch_size=abc"], ("cannot parse", "e.g. --config.batch_size=64")),
  (
    "train.py",
    [*TINY, "--config.batchsize=3"],
    ("unknown config field", "Did you mean batch_size"),
  ),
  ("train.py", [*TINY, "--config.batch_size"], ("needs a value", "--config.batch_size=VALUE")),
  (
    "train.py",
    ["--config", "experiments/nope.py", "--workdir", "{run}"],
    ("not found", "cnn_fashion_mnist.py"),
  ),
  (
    "train.py",
    ["--config", "experiments/cnn_fashion_mnist.py:huge", "--workdir", "{run}"],
    ("unknown variant 'huge'", "small, tiny"),
  ),
  (
    "train.py",
    ["--config", "README.md", "--workdir", "{run}"],
    ("not a Python file", "experiments/NAME.py"),
  ),
  (
    "train.py",
    ["--config", "experiments/attack.py", "--workdir", "{run}"],
    ("is for scripts/attack.py, not scripts/train.py", "python scripts/attack.py"),
  ),
  ("train.py", [*TINY[:3], "{file}/run"], ("is a file", "under a folder")),
  ("train.py", [*TINY[:3], ""], ("--workdir is empty", "--workdir runs/NAME")),
  ("train.py", TINY[:2], ("--workdir", "usage")),
  ("train.py", [*TINY, "--num_processes", "2"], ("need --distributed", "--distributed")),
  # A complete run of another config is in {run}: refused before anything is written.
  (
    "train.py",
    ["--config", "experiments/cnn_fashion_mnist.py:small", "--workdir", "{run}"],
    ("holds checkpoints of a different config", "fresh --workdir"),
  ),
  # -- sweep.py --
  ("sweep.py", ["--config", "experiments/attack.py", "--workdir", "{run}"], ("get_sweep", "add")),
  ("sweep.py", [*TINY, "--config.optim.name=adamx"], ("unknown optimizer", "use one of")),
  ("sweep.py", [*TINY[:3], "{file}"], ("is an existing file", "give a new folder")),
  # -- attack.py --
  ("attack.py", [*ATTACK, "--config.weights=/no/such.npz"], ("/no/such.npz", "give an existing")),
  ("attack.py", [*ATTACK, "--config.weights={npz}"], ("not a readable .npz", "convert_weights.py")),
  ("attack.py", [*ATTACK, "--config.eps=-0.1"], ("eps must be positive", "--config.eps=8/255")),
  ("attack.py", [*ATTACK, "--config.eps=abc"], ("cannot read 'abc'", "8/255")),
  ("attack.py", [*ATTACK, "--config.norm=l3"], ("'l3'", "use one of")),
  ("attack.py", [*ATTACK, "--config.steps=0"], ("steps=0", "--config.steps=10")),
  ("attack.py", [*ATTACK, "--config.step_size=-1"], ("step must be positive", "2/255")),
  (
    "attack.py",
    [*ATTACK, "--config.transfer_model=vgg16"],
    ("no pretrained weights for vgg16", "--config.transfer_weights=PATH"),
  ),
  ("attack.py", [*ATTACK, "--config.batch_size=-1"], ("batch_size=-1", "--config.batch_size=8")),
  ("attack.py", [*ATTACK, "--config.method=fgsm", "--config.norm=l2"], ("FGSM", "method=pgd")),
  ("attack.py", [*ATTACK, "--config.images=/no/such.png"], ("no image", "chelsea")),
  ("attack.py", [*ATTACK, "--config.target=golden retriver"], ("unknown ImageNet", "golden")),
  ("attack.py", [*ATTACK, "--config.model=effnet"], ("unknown backbone", "efficientnet_lite0")),
  ("attack.py", [*ROBUST, "--config.classifier=experiments/nope.py"], ("no such config", "cnn")),
  ("attack.py", [*ROBUST, "--config.eps_list=-1"], ("eps_list", "0,2/255")),
  ("attack.py", TINY, ("is for scripts/train.py", "python scripts/train.py")),
  # -- visualize.py --
  (
    "visualize.py",
    ["--config", "experiments/nope.py", "--workdir", "{run}"],
    ("not found", "give"),
  ),
  ("visualize.py", [*VISUALIZE, "--config.mode=classes"], ("mode='classes'", "'class'")),
  ("visualize.py", [*VISUALIZE, "--config.steps=0"], ("steps=0", "--config.steps=512")),
  ("visualize.py", [*VISUALIZE, "--config.classes=kitten cat"], ("unknown ImageNet", "index")),
  ("visualize.py", [*VISUALIZE, "--config.learning_rate=0"], ("learning_rate=0", "e.g.")),
  ("visualize.py", [*VISUALIZE, "--config.scale_max=0.5"], ("scale_max=0.5", ">= 0.8")),
  # -- stylize.py --
  ("stylize.py", [*STYLIZE, "--config.style=/no/such.png"], ("no image '/no/such.png'", "give")),
  ("stylize.py", [*STYLIZE, "--config.size=8"], ("size=8", "--config.size=256")),
  ("stylize.py", [*STYLIZE, "--config.optimizer=sgd"], ("optimizer='sgd'", "'adam'")),
  ("stylize.py", [*STYLIZE, "--config.init=random"], ("init='random'", "'noise'")),
  (
    "stylize.py",
    [*STYLIZE, "--config.style_layer_weights=1,2"],
    ("2 values for 5 style layers", "one weight per layer"),
  ),
  # -- classify.py, features.py, convert_weights.py --
  ("classify.py", ["/no/such.png"], ("no image '/no/such.png'", "JPEG or PNG")),
  ("classify.py", ["{file}"], ("cannot read image", "give a JPEG or PNG file")),
  ("attack.py", [*ATTACK, "--config.images={file}"], ("cannot read image", "skimage.data photo")),
  ("classify.py", ["{image}", "--top", "0"], ("--top 0", "--top 5")),
  ("classify.py", ["{image}", "--size", "3"], ("--size 3", "--size 224")),
  ("classify.py", ["{image}", "--model", "effnet"], ("unknown backbone", "efficientnet_lite0")),
  ("classify.py", ["{image}", "--weights", "/no/such.npz"], ("no such weights", "--weights")),
  ("classify.py", ["{image}", "--weights", "{npz}"], ("not a readable .npz", "convert_weights.py")),
  ("features.py", ["chelsea.png"], ("--layer", "usage")),
  (
    "features.py",
    ["{image}", "--layer", "stage1", "--max-channels", "0"],
    ("--max-channels 0", "--max-channels 64"),
  ),
  ("features.py", ["{image}", "--layer", "stage1", "--out", "/no/dir/x.png"], ("/no/dir", "PNG")),
  ("convert_weights.py", ["efficientnet_lite0", "/no/such.pth"], ("/no/such.pth", ".pth/.pt")),
  ("convert_weights.py", ["vgg17"], ("unknown backbone 'vgg17'", "vgg16")),
  ("convert_weights.py", ["vgg16"], ("no PyPI package", "convert_weights.py vgg16 /path")),
  # -- benchmark.py, bench_torch.py, compare_torch.py --
  ("benchmark.py", ["dcgann"], ("unknown workload", "dcgan")),
  ("benchmark.py", ["--repeats", "0", "vae"], ("--repeats 0", "--repeats 5")),
  ("benchmark.py", ["--kernels", "fast"], ("invalid choice: 'fast'", "usage")),
  ("bench_torch.py", ["vaee"], ("unknown workload", "vae")),
  ("bench_torch.py", ["--repeats", "0"], ("--repeats", "at least 1")),
  ("compare_torch.py", ["--rounds", "0"], ("--rounds 0", "--rounds 3")),
  (
    "compare_torch.py",
    ["--reference", "/no/such.py"],
    ("no reference script", "leave out --reference"),
  ),
]
# The examples also run from a cold start, exactly as a user starts them
# (tests.conftest.run_script): a fresh interpreter that imports everything itself.
COLD = CASES[:4]
PARALLEL = 2  # processes at a time (two test workers: four on two cores)
# What every script imports, loaded once by the process that starts the rows (no JAX backend yet:
# each row starts its own, under its own XLA_FLAGS).
PRELOAD = (
  "vision.cli",
  "vision.validate",
  "vision.train.loop",
  "vision.train.transfer",
  "vision.train.autoencoding",
  "vision.train.feature_classifier",
  "vision.drivers.attack",
  "vision.drivers.visualize",
  "vision.drivers.stylize",
  "vision.drivers.classify",
  "vision.drivers.features",
  "vision.drivers.convert_weights",
  "vision.drivers.benchmark",
  "vision.drivers.compare_torch",
  "vision.drivers.sweep",
  "vision.models.registry",
)


def previous_config() -> dict:
  """The config of the previous run in each workdir: the tiny CNN most rows start from."""
  from vision import configs

  return configs.to_dict(configs.load_config(os.path.join(ROOT, TINY[1])))


def prepare_case(folder) -> dict[str, str]:
  """The case's folder: a previous run's workdir, a file, an image, empty data/weights/caches.

  The previous run is one of the tiny CNN config, so a row that changes only fields a run
  may resume with (``log_every``, ...) would pass the workdir's config check and write.
  """
  run = folder / "run"
  (run / "checkpoints" / "12").mkdir(parents=True)
  (run / "config.json").write_text(json.dumps(previous_config()))
  (run / "results.json").write_text(json.dumps({"test_accuracy": 0.5}))
  (run / "metrics.jsonl").write_text(json.dumps({"step": 12, "train/loss": 1.0}) + "\n")
  (run / "checkpoints" / "12" / "state").write_bytes(b"checkpoint")
  (run / "sentinel.txt").write_text("keep me")
  (folder / "file.txt").write_text("an existing file")
  truncated_npz(folder / "truncated.npz")
  Image.fromarray(np.full((8, 8, 3), 128, np.uint8)).save(folder / "image.png")
  for name in ("weights", "tfds", "cache"):
    (folder / name).mkdir()
  return {
    "{run}": str(run),
    "{file}": str(folder / "file.txt"),
    "{npz}": str(folder / "truncated.npz"),
    "{image}": str(folder / "image.png"),
    "{case}": str(folder),
  }


def snapshot(folder) -> dict[str, tuple]:
  """Every path under ``folder`` with its mtime, and each file's bytes."""
  out = {}
  for root, dirs, files in os.walk(folder):
    for name in [".", *dirs, *files]:
      path = os.path.join(root, name)
      stat = os.stat(path)
      content = open(path, "rb").read() if os.path.isfile(path) else None  # noqa: SIM115
      out[os.path.relpath(path, folder)] = (stat.st_mtime_ns, content)
  return out


class Row:
  """One row of the table set up in its own folder: arguments, environment, files before."""

  def __init__(self, case, folder):
    self.script, args, self.fragments, *env = case
    self.folder = folder
    folder.mkdir()
    places = prepare_case(folder)
    self.args = [_substitute(a, places) for a in args]
    self.env = {
      "VISION_WEIGHTS_DIR": str(folder / "weights"),
      "TFDS_DATA_DIR": str(folder / "tfds"),
      "VISION_CACHE_DIR": str(folder / "cache"),
      **(env[0] if env else {}),
    }
    self.before = snapshot(folder)

  def judge(self, returncode: int, stderr: str) -> str | None:
    """Why the row fails (exit status, traceback, error line, changed files), or None."""
    lines = stderr.rstrip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    problems = []
    if returncode != 2:
      problems.append(f"exit status {returncode}, not 2")
    if "Traceback" in stderr:
      problems.append("a traceback")
    if len(errors) != 1 or lines[-1] != errors[0]:
      problems.append("not exactly one 'error:' line, last on stderr")
    missing = [f for f in self.fragments if not any(f in line for line in errors)]
    if missing:
      problems.append(f"the error line lacks {missing}")
    if snapshot(self.folder) != self.before:
      problems.append("files changed in the case's folder")
    if not problems:
      return None
    return f"{self.script} {' '.join(self.args)}: {'; '.join(problems)}\n  stderr: {stderr[-1500:]}"


def _substitute(arg: str, places: dict[str, str]) -> str:
  for key, value in places.items():
    arg = arg.replace(key, value)
  return arg


def serve(jobs_path: str, parallel: int) -> None:
  """Runs the rows of ``jobs_path`` (JSON) as forked processes of this one, which imported the
  project once; each child runs ``scripts/SCRIPT`` as ``__main__`` with its own argv,
  environment, stdout and stderr files, and exits with the script's status. Prints the
  statuses as JSON."""
  import importlib
  import runpy
  import time
  import traceback

  for module in PRELOAD:
    importlib.import_module(module)
  importlib.import_module("vision.models.registry").available()
  with open(jobs_path) as f:
    jobs = json.load(f)
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  statuses, running, pending = {}, {}, list(enumerate(jobs))
  while pending or running:
    while pending and len(running) < parallel:
      i, job = pending.pop(0)
      sys.stdout.flush()
      sys.stderr.flush()
      pid = os.fork()
      if pid == 0:  # the row's process
        code = 1
        try:
          os.chdir(root)
          os.environ.update(job["env"])
          for fd, path in ((1, job["stdout"]), (2, job["stderr"])):
            os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
          path = os.path.join(root, "scripts", job["script"])
          sys.argv = [path, *job["args"]]
          try:
            runpy.run_path(path, run_name="__main__")
            code = 0
          except SystemExit as e:
            code = e.code if isinstance(e.code, int) else int(e.code is not None)
        except BaseException:  # noqa: BLE001 - reported as Python reports it
          traceback.print_exc()
        finally:
          sys.stdout.flush()
          sys.stderr.flush()
          os._exit(code)
      running[pid] = (i, time.monotonic())
    pid, status = os.waitpid(-1, os.WNOHANG)
    if pid:
      statuses[running.pop(pid)[0]] = os.waitstatus_to_exitcode(status)
      continue
    for pid, (_, started) in running.items():
      if time.monotonic() - started > 300:
        os.kill(pid, 9)
    time.sleep(0.01)
  print(json.dumps([statuses[i] for i in range(len(jobs))]))


@pytest.mark.slow
def test_every_row_is_one_error_line_and_changes_nothing(tmp_path):
  """All rows, each a process running its script, forked from one that imported the project."""
  rows = [Row(case, tmp_path / f"case{i}") for i, case in enumerate(CASES)]
  jobs = [
    {
      "script": row.script,
      "args": row.args,
      "env": row.env,
      "stdout": str(tmp_path / f"out{i}.txt"),
      "stderr": str(tmp_path / f"err{i}.txt"),
    }
    for i, row in enumerate(rows)
  ]
  (tmp_path / "jobs.json").write_text(json.dumps(jobs))
  code = (
    f"from tests.test_bad_inputs import serve; serve({str(tmp_path / 'jobs.json')!r}, {PARALLEL})"
  )
  proc = subprocess.run(
    [sys.executable, "-c", code],
    cwd=ROOT,
    env={**os.environ, "PYTHONPATH": ROOT},
    capture_output=True,
    text=True,
    timeout=600,
  )
  assert proc.returncode == 0, proc.stderr
  statuses = json.loads(proc.stdout.strip().splitlines()[-1])
  failures = [
    row.judge(status, open(job["stderr"]).read())  # noqa: SIM115
    for row, job, status in zip(rows, jobs, statuses)
  ]
  failures = [f for f in failures if f]
  assert not failures, f"{len(failures)} of {len(rows)} rows failed:\n" + "\n".join(failures)


@pytest.mark.slow
def test_rows_from_a_cold_start(tmp_path):
  """The issue's examples, each started as a user starts it."""
  rows = [Row(case, tmp_path / f"case{i}") for i, case in enumerate(COLD)]

  def run(row):
    proc = run_script(row.script, *row.args, extra_env=row.env, timeout=300)
    return row.judge(proc.returncode, proc.stderr)

  with ThreadPoolExecutor(PARALLEL) as pool:
    failures = [f for f in pool.map(run, rows) if f]
  assert not failures, "\n".join(failures)


def test_the_table_has_forty_cases_and_each_script():
  assert len(CASES) >= 40
  scripts = {case[0] for case in CASES}
  assert {
    "train.py",
    "sweep.py",
    "attack.py",
    "visualize.py",
    "stylize.py",
    "classify.py",
    "features.py",
    "convert_weights.py",
    "benchmark.py",
    "bench_torch.py",
    "compare_torch.py",
  } <= scripts


def experiment_specs() -> list[str]:
  """Every experiment config with no argument and with each of its words."""
  from vision import configs

  specs = []
  folder = os.path.join(os.path.dirname(os.path.dirname(__file__)), "experiments")
  for name in sorted(os.listdir(folder)):
    if not name.endswith(".py") or name.startswith("_") or name == "common.py":
      continue
    path = os.path.join("experiments", name)
    module = configs.load_module(path)
    specs += [path, *(f"{path}:{word}" for word in getattr(module, "VARIANTS", ()))]
  return specs


def test_every_experiment_config_and_sweep_point_passes_validation(tmp_path, monkeypatch):
  """The checks refuse no config the experiments define (a check too strict would)."""
  from vision import configs, validate

  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
  for name in ("mnist", "cifar10", "cats_vs_dogs", "oxford_iiit_pet"):  # as if prepared
    (tmp_path / "tfds" / name).mkdir(parents=True)
  weights = tmp_path / "weights.npz"
  np.savez(weights, kernel=np.zeros(1, np.float32))
  checked = 0
  for spec in experiment_specs():
    path, _ = configs.split_spec(spec)
    module = configs.load_module(path)
    points = configs.load_sweep(path) if hasattr(module, "get_sweep") else []
    for point in [{}, *points]:
      config = configs.load_config(spec, point)
      # Backbone weights as given by the user; an image folder that exists.
      if "weights" in config:
        config.weights = str(weights)
      model = config.get("model")
      if hasattr(model, "items") and "weights" in model:
        config.model.weights = str(weights)
      if "data" in config and config.data.name == "image_folder":
        config.data.root = str(tmp_path)
      validate.check(config, str(tmp_path / "run"))
      checked += 1
  assert checked > 50
