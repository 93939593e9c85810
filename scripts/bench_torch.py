"""Times the four speed workloads (dcgan, vae, finetune, pgd) in PyTorch, the project's reference.

    python scripts/bench_torch.py                    # dcgan vae finetune pgd
    python scripts/bench_torch.py dcgan pgd          # a subset
    python scripts/bench_torch.py --repeats 20 vae
    python scripts/bench_torch.py --device cuda --dtype bfloat16 finetune

Prints one JSON line per workload (workload, images_per_s, ms_per_step,
min_ms_per_step, repeats, device, dtype, torch, threads), the fields that
``scripts/benchmark.py`` prints for the project's steps;
``scripts/compare_torch.py`` interleaves the two. ``--device auto`` (the
default) is cuda when PyTorch sees a GPU. The workloads are
:mod:`torch_reference.workloads`; they need the ``torch`` extra
(``pip install -e .[torch]``). What each workload is: docs/benchmarks.md.
"""

import json
import sys
from pathlib import Path

from vision import cli
from vision.errors import InputError

# torch_reference sits beside vision/ in the checkout; an editable install may map vision/ only.
ROOT = str(Path(__file__).resolve().parents[1])
if ROOT not in sys.path:
  sys.path.append(ROOT)

WORKLOADS = ("dcgan", "vae", "finetune", "pgd")


def main(argv=None):
  parser = cli.argument_parser(__doc__)
  parser.add_argument("workloads", nargs="*", metavar="WORKLOAD", help=", ".join(WORKLOADS))
  parser.add_argument("--repeats", type=int, default=None, help="timed calls per workload")
  parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
  parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
  args = parser.parse_args(argv)
  unknown = [n for n in args.workloads if n not in WORKLOADS]
  if unknown:
    raise InputError(
      f"unknown workload(s) {', '.join(unknown)}; choose from {', '.join(WORKLOADS)}."
    )
  if args.repeats is not None and args.repeats < 1:
    raise InputError(f"--repeats must be at least 1, not {args.repeats}.")
  try:
    import torch
  except (ImportError, OSError) as e:
    first = (str(e).splitlines() or [""])[0]
    raise InputError(
      f"PyTorch does not import ({type(e).__name__}: {first}); the PyTorch reference needs "
      "the torch extra: pip install -e .[torch]"
    ) from None
  from torch_reference import workloads

  device = workloads.resolve_device(args.device)
  if device == "cuda" and not torch.cuda.is_available():
    raise InputError(f"--device cuda, but PyTorch {torch.__version__} sees no GPU.")
  for name in args.workloads or WORKLOADS:
    line = workloads.result_line(name, device, args.dtype, args.repeats)
    print(json.dumps(line), flush=True)


if __name__ == "__main__":
  sys.exit(cli.guarded(main))
