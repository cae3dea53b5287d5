"""Writes the golden fixtures of tests/test_pretrained.py, where torch and
torchvision are installed (never a dependency of cnnjax):

  python3 -m venv /tmp/torchvenv
  /tmp/torchvenv/bin/pip install torch torchvision safetensors numpy
  /tmp/torchvenv/bin/python scripts/make_torchvision_golden.py

For each network of tests/torchvision_golden.py:GOLDEN it builds torchvision's
architecture, loads the weights `golden_weights` regenerates from the seed
and each parameter's name (NumPy only, so the test regenerates them without
torch), and writes tests/fixtures/torchvision/NAME.json: the versions, the
seed, the input shape, the state dict's names and shapes (so the test knows
torchvision's names without torch) and the logits of `golden_inputs` in
evaluation mode (and, for GoogLeNet, with transform_input on, and in
training mode with dropout off: main and auxiliary logits with batch
statistics). No weights are stored.

It also writes tests/fixtures/torchvision/state_dict_shapes.json.gz: the
state dict's names and shapes of every torchvision network cnnjax imports
(golden.COUNTERPARTS, 1000 classes, googlenet with its auxiliary heads), so
the test checks every name mapping against torchvision's, not only the five
networks whose logits it compares; and
tests/fixtures/torchvision/sample.safetensors with the
safetensors package's own writer (float32, float16, bfloat16 and int64
tensors of known values), so cnnjax's reader is checked against the
reference implementation, not only against itself.
"""

import gzip
import json
import pathlib
import sys

import torch
import torchvision
from safetensors.torch import save_file

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
import torchvision_golden as golden  # noqa: E402  (NumPy only, shared with the test)

OUT = ROOT / "tests" / "fixtures" / "torchvision"


def build(builder: str, kwargs: dict) -> torch.nn.Module:
  model = getattr(torchvision.models, builder)(weights=None, num_classes=golden.NUM_CLASSES,
                                               **kwargs)
  if builder in ("alexnet", "vgg11_bn"):  # Narrow FC6/FC7 (see golden.GOLDEN).
    width = golden.DENSE_FEATURES
    first = 1 if builder == "alexnet" else 0  # The index of FC6 in `classifier`.
    fc6 = model.classifier[first]
    model.classifier[first] = torch.nn.Linear(fc6.in_features, width)
    model.classifier[first + 3] = torch.nn.Linear(width, width)
    model.classifier[6] = torch.nn.Linear(width, golden.NUM_CLASSES)
  return model


def as_lists(tensor: torch.Tensor) -> list:
  return tensor.detach().double().numpy().tolist()


def fixture(name: str) -> dict:
  builder, kwargs, cnnjax_model, overrides, input_shape, train_too = golden.GOLDEN[name]
  model = build(builder, kwargs)
  shapes = {key: list(value.shape) for key, value in model.state_dict().items()}
  weights = golden.golden_weights(golden.SEED, shapes)
  model.load_state_dict({key: torch.from_numpy(value) for key, value in weights.items()})
  images = torch.from_numpy(golden.golden_inputs(golden.SEED, input_shape))
  record = {"torch": torch.__version__, "torchvision": torchvision.__version__,
            "builder": builder, "kwargs": kwargs, "cnnjax_model": cnnjax_model,
            "overrides": overrides, "seed": golden.SEED, "input_shape": list(input_shape),
            "state_dict": shapes}
  with torch.no_grad():
    model.eval()
    record["eval_logits"] = as_lists(model(images))
    if builder == "googlenet":  # As torchvision's loader sets it with the published weights.
      model.transform_input = True
      record["eval_logits_transform_input"] = as_lists(model(images))
      model.transform_input = False
    if train_too:  # Batch statistics; dropout is off through kwargs.
      model.train()
      outputs = model(images)
      record["train_logits"] = as_lists(outputs.logits)
      record["train_aux_logits"] = [as_lists(outputs.aux_logits1), as_lists(outputs.aux_logits2)]
  return record


def sample_safetensors(path: pathlib.Path) -> None:
  save_file({"a.weight": torch.arange(6, dtype=torch.float32).reshape(2, 3) / 4,
             "b": torch.tensor([0.5, -1.0, 2.0, 65504.0], dtype=torch.float16),
             "c.bias": torch.tensor([1.5, -0.25, 3.0], dtype=torch.bfloat16),
             "d.num_batches_tracked": torch.tensor(7, dtype=torch.int64)},
            str(path), metadata={"format": "pt"})


def state_dict_shapes(path: pathlib.Path) -> None:
  shapes = {}
  for builder in sorted(set(golden.COUNTERPARTS.values())):
    kwargs = {"aux_logits": True, "init_weights": False} if builder == "googlenet" else {}
    model = getattr(torchvision.models, builder)(weights=None, **kwargs)
    shapes[builder] = {key: list(value.shape) for key, value in model.state_dict().items()}
  # mtime 0: the same networks give the same bytes.
  path.write_bytes(gzip.compress(json.dumps(shapes).encode(), mtime=0))


def main() -> None:
  OUT.mkdir(parents=True, exist_ok=True)
  torch.manual_seed(golden.SEED)
  for name in golden.GOLDEN:
    path = OUT / f"{name}.json"
    path.write_text(json.dumps(fixture(name)) + "\n")
    print(f"wrote {path} ({path.stat().st_size:,} bytes)", flush=True)
  state_dict_shapes(OUT / "state_dict_shapes.json.gz")
  print(f"wrote {OUT / 'state_dict_shapes.json.gz'}")
  sample_safetensors(OUT / "sample.safetensors")
  print(f"wrote {OUT / 'sample.safetensors'}")


if __name__ == "__main__":
  main()
