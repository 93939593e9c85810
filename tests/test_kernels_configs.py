"""Every experiment's tiny config takes the same first training step under both kernel forms.

One step of the real task (``build(config, splits, num_steps)`` of its family,
on a real batch of its data) under ``kernels='portable'`` and ``kernels='cpu'``:
the metrics and every updated parameter agree. The step is jitted afresh inside
each ``kernels.use`` because the choice is read while it is traced.
"""

import jax
import numpy as np
import pytest

from vision import configs
from vision.data import pipeline
from vision.ops import kernels
from vision.train import loop

TINY_CONFIGS = [
  "experiments/cnn_fashion_mnist.py:tiny",
  "experiments/autoencoder.py:tiny",
  "experiments/denoise.py:tiny",
  "experiments/superres.py:tiny",
  "experiments/vae.py:tiny",
  "experiments/aae.py:tiny",
  "experiments/gan.py:tiny",
  "experiments/gan.py:cdcgan,tiny",
  # transfer.py:tiny (fine-tuning) is head,tiny's step with the backbone's gradients too;
  # those of the same backbone family are compared under both forms in tests/test_kernels.py.
  "experiments/transfer.py:head,tiny",
  "experiments/transfer.py:scratch,tiny",
]
# One real step of each family under both forms: end-to-end, run with the slow tests.
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("pinned_kernels")]
# The feature classifier only serves the GAN's final report.
OVERRIDES = {"experiments/gan.py": ["eval.classifier="]}


def first_step(spec: str, choice: str):
  """(metrics, state after one step) of ``spec`` with freshly traced functions under ``choice``."""
  overrides = OVERRIDES.get(configs.split_spec(spec)[0], [])
  config = configs.load_config(spec, overrides)
  with kernels.use(choice):
    splits = loop.load_splits(config)
    task = loop.build_task(config, splits, loop.num_steps_of(config, splits["train"]))
    batch = next(pipeline.eval_batches(task.splits["train"], batch_size=config.batch_size))
    batch.pop("mask")
    rng = jax.random.key(config.seed)
    state = task.init(rng, batch)
    state, metrics = jax.jit(task.train_step)(state, batch, rng)
    return jax.device_get(metrics), jax.device_get(state.params)


@pytest.mark.parametrize("spec", TINY_CONFIGS)
def test_tiny_config_step_is_the_same_under_both_forms(data_env, spec):
  portable_metrics, portable_params = first_step(spec, "portable")
  cpu_metrics, cpu_params = first_step(spec, "cpu")
  assert portable_metrics.keys() == cpu_metrics.keys()
  for key in portable_metrics:
    np.testing.assert_allclose(
      cpu_metrics[key], portable_metrics[key], rtol=2e-4, atol=1e-5, err_msg=key
    )
  flat_portable = jax.tree_util.tree_leaves_with_path(portable_params)
  flat_cpu = dict(jax.tree_util.tree_leaves_with_path(cpu_params))
  assert len(flat_portable) == len(flat_cpu)
  for path, value in flat_portable:
    np.testing.assert_allclose(
      flat_cpu[path], value, rtol=2e-4, atol=2e-5, err_msg=jax.tree_util.keystr(path)
    )
