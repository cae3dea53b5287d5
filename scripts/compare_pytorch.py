"""cnnjax's training step beside PyTorch's, in one process on one machine.

The same network (torchvision's module, or for LeNet-5 an equivalent torch
module written here layer for layer), the same synthetic batch, SGD with
momentum 0.9, softmax cross-entropy, float32; cnnjax's step exactly as
`cnnjax train` and `cnnjax bench` build it (cnnjax.bench.timing.steps_timer:
pmap over the local devices, state donated). After warm-up the two are timed
in turns, `--repeats` times `--steps` steps each (cnnjax, PyTorch, cnnjax,
...), so that whatever else loads the machine weighs on both alike; the
medians and ranges in images/s and their ratio are printed with the
processor, the library versions and their thread counts.

Cases (--case, default: every CPU case):
  resnet18   ImageNet ResNet-18, 10 classes, 32x32, batch 128
  lenet5     LeNet-5, modern (ReLU, max pooling, full C3), 32x32x1, batch 256
  resnet50   ImageNet ResNet-50, 1000 classes, 224x224, batch 32
  resnet50_bf16  on a GPU only: bfloat16 (cnnjax.half_precision) against
                 torch.autocast(bfloat16), 224x224, batch 256

Needs torch and torchvision beside cnnjax's dependencies (TensorFlow is not
needed); run it with a Python that has both, e.g.

  PYTHONPATH=$PWD python scripts/compare_pytorch.py --case resnet18 --case lenet5
"""

import argparse
import dataclasses
import os
import statistics
import sys

# On a GPU both frameworks share its memory: JAX would otherwise take 75% at start.
os.environ.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", "0.45")

try:
  import torch
  import torchvision
except ImportError:
  print("compare_pytorch: torch and torchvision are not importable here; install them "
        "(pip install torch torchvision) or run with a Python that has them", file=sys.stderr)
  sys.exit(2)

import jax  # noqa: E402

from cnnjax.bench import timing as bench_timing


@dataclasses.dataclass(frozen=True)
class Comparison:
  model: str  # cnnjax's registered name.
  image_size: int
  channels: int
  num_classes: int
  batch_size: int
  dtype: str = "float32"
  gpu_only: bool = False


CASES = {
    "resnet18": Comparison("resnet18", 32, 3, 10, 128),
    "lenet5": Comparison("lenet5_modern", 32, 1, 10, 256),
    "resnet50": Comparison("resnet50", 224, 3, 1000, 32),
    "resnet50_bf16": Comparison("resnet50", 224, 3, 1000, 256, "bfloat16", gpu_only=True),
}


class LeNet5Modern(torch.nn.Module):
  """cnnjax's `lenet5_modern` (cnnjax/models/lenet.py): 5x5 valid convolutions
  of 6, 16 (every map to every map) and 120 maps, ReLU, 2x2 max pooling after
  the first two, dense 84 with ReLU, dense classes."""

  def __init__(self, num_classes: int):
    super().__init__()
    self.features = torch.nn.Sequential(
        torch.nn.Conv2d(1, 6, 5), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(6, 16, 5), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(16, 120, 5), torch.nn.ReLU(), torch.nn.Flatten(),
        torch.nn.Linear(120, 84), torch.nn.ReLU(), torch.nn.Linear(84, num_classes))

  def forward(self, images):
    return self.features(images)


def torch_model(case: Comparison) -> torch.nn.Module:
  if case.model == "lenet5_modern":
    return LeNet5Modern(case.num_classes)
  return getattr(torchvision.models, case.model)(num_classes=case.num_classes)


def torch_timer(case: Comparison, device: str):
  """PyTorch's training step on one fixed batch, warmed up, as run(n) -> seconds."""
  import time

  model = torch_model(case).to(device).train()
  images = torch.randn(case.batch_size, case.channels, case.image_size, case.image_size,
                       generator=torch.Generator().manual_seed(0))
  if device == "cuda":
    # What a PyTorch user does for speed on a GPU: cuDNN's autotuner and NHWC
    # tensors (tensor cores want channels last), as cnnjax's NHWC step has.
    torch.backends.cudnn.benchmark = True
    model = model.to(memory_format=torch.channels_last)
    images = images.contiguous(memory_format=torch.channels_last)
  optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
  loss_fn = torch.nn.CrossEntropyLoss()
  images = images.to(device)
  labels = torch.randint(0, case.num_classes, (case.batch_size,),
                         generator=torch.Generator().manual_seed(1)).to(device)
  autocast = (torch.autocast(device, dtype=torch.bfloat16) if case.dtype == "bfloat16"
              else torch.autocast(device, enabled=False))

  def step():
    optimizer.zero_grad(set_to_none=True)
    with autocast:
      loss = loss_fn(model(images), labels)
    loss.backward()
    optimizer.step()

  def run(count: int) -> float:
    if device == "cuda":
      torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(count):
      step()
    if device == "cuda":
      torch.cuda.synchronize()
    return time.perf_counter() - started

  run(2)  # Warm-up: allocation, oneDNN's or cuDNN's choice of kernels.
  return run


def compare(case: Comparison, steps: int, repeats: int) -> dict:
  device = "cuda" if torch.cuda.is_available() and jax.default_backend() == "gpu" else "cpu"
  timed = bench_timing.Case(case.model, case.image_size, case.channels, case.num_classes,
                            case.batch_size, case.dtype, steps, repeats)
  runs = {"cnnjax": bench_timing.steps_timer(timed), "pytorch": torch_timer(case, device)}
  rates = {name: [] for name in runs}
  for _ in range(repeats):
    for name, run in runs.items():
      rates[name].append(case.batch_size * steps / run(steps))
  medians = {name: statistics.median(values) for name, values in rates.items()}
  return {"case": case, "rates": rates, "medians": medians, "device": device,
          "ratio": medians["cnnjax"] / medians["pytorch"]}


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--case", action="append", choices=sorted(CASES),
                      help="repeatable (default: every case this machine can run)")
  parser.add_argument("--steps", type=int, default=5, help="steps per timing (default: 5)")
  parser.add_argument("--repeats", type=int, default=5,
                      help="timings of each framework, taken in turns (default: 5)")
  args = parser.parse_args()
  gpu = jax.default_backend() == "gpu" and torch.cuda.is_available()
  names = args.case or [name for name, case in CASES.items() if gpu or not case.gpu_only]
  for name in names:
    if CASES[name].gpu_only and not gpu:
      parser.error(f"--case {name} needs a GPU that both JAX and PyTorch see")
  if args.steps < 1 or args.repeats < 1:
    parser.error("--steps and --repeats must be at least 1")
  print(f"processor: {bench_timing.host_cpu()}; "
        f"jax {jax.__version__} on {jax.local_device_count()} {jax.default_backend()} device(s); "
        f"torch {torch.__version__} with {torch.get_num_threads()} threads", flush=True)
  for name in names:
    result = compare(CASES[name], args.steps, args.repeats)
    case = result["case"]
    spread = {key: f"{result['medians'][key]:,.1f} ({min(v):,.1f}-{max(v):,.1f})"
              for key, v in result["rates"].items()}
    print(f"{name}: {case.image_size}x{case.image_size}x{case.channels}, batch {case.batch_size}, "
          f"{case.dtype}, {result['device']}: cnnjax {spread['cnnjax']} images/s, "
          f"PyTorch {spread['pytorch']} images/s, ratio {result['ratio']:.2f}", flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
