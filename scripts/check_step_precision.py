"""Which precision the compiled training step really computes in.

Compiles a model's training step as `cnnjax bench` builds it (half precision
by default) on this machine's devices and reads XLA's optimised program: every
convolution and matrix product, whether XLA's own instruction or a library
call (cuDNN, cuBLAS, oneDNN), is listed by its operand types and, for
convolutions, its layout (`dim_labels`, b01f = NHWC). Exits 1 if one takes an
operand that is not bfloat16 under `--dtype bfloat16`: a silent float32
convolution would run at a fraction of a GPU's tensor-core rate. The jaxpr
check in tests/test_models.py proves the same before compilation on CPU; this
one reads what the backend at hand compiled, e.g. on a GPU:

  PYTHONPATH=$PWD python scripts/check_step_precision.py --model resnet50 --batch-size 256
"""

import argparse
import collections
import re
import sys

import jax

from cnnjax import models
from cnnjax.bench import command as bench
from cnnjax.bench import timing as bench_timing
from cnnjax.errors import UserError

# An instruction: `%name = TYPE op(%operand, ...), attributes`, TYPE being
# e.g. `bf16[256,56,56,64]{3,2,1,0}` or a tuple of such.
INSTRUCTION = re.compile(r"(?P<name>%[\w.-]+)\s*=\s*\(?(?P<type>[a-z]+\d*)\[.*?\s"
                         r"(?P<op>[\w-]+)\((?P<operands>[^)]*)\)(?P<attrs>.*)")
OPERAND = re.compile(r"%[\w.-]+")
TARGET = re.compile(r'custom_call_target="([^"]+)"')
DIM_LABELS = re.compile(r"dim_labels=(\S+?),")
# Library calls that are convolutions or matrix products.
PRODUCT_TARGETS = re.compile(r"conv|gemm|matmul|dot", re.IGNORECASE)


def products(hlo_text: str) -> list[dict]:
  """Every convolution and matrix product of an optimised HLO module."""
  instructions = [match for match in map(INSTRUCTION.search, hlo_text.splitlines()) if match]
  element_type = {match["name"]: match["type"] for match in instructions}
  found = []
  for match in instructions:
    op, attrs = match["op"], match["attrs"]
    target = TARGET.search(attrs)
    if op == "custom-call" and target and PRODUCT_TARGETS.search(target[1]):
      kind = target[1]
    elif op in ("convolution", "dot"):
      kind = op
    else:
      continue
    labels = DIM_LABELS.search(attrs + ",")
    operands = tuple(element_type.get(name, "?") for name in OPERAND.findall(match["operands"]))
    found.append({"kind": kind, "operands": operands, "dim_labels": labels[1] if labels else ""})
  return found


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--model", default="resnet50", choices=models.list_models(),
                      metavar="NAME", help="a registered model (default: resnet50)")
  parser.add_argument("--image-size", type=int)
  parser.add_argument("--batch-size", type=int, help="global (default: as cnnjax bench)")
  parser.add_argument("--dtype", choices=("bfloat16", "float32"), default="bfloat16")
  args = parser.parse_args()
  settings = dict(image_size=args.image_size, channels=None, num_classes=None,
                  batch_size=args.batch_size, dtype=args.dtype, steps=None, repeats=1)
  try:  # The case `cnnjax bench` would time with these flags.
    found = products(bench_timing.compiled_step(bench.make_case(args.model, settings)).as_text())
  except UserError as error:  # A batch the devices do not divide, too small an input.
    parser.exit(2, f"check_step_precision: error: {error}\n")
  counts = collections.Counter((p["kind"], "/".join(p["operands"]), p["dim_labels"])
                               for p in found)
  print(f"{args.model}, {args.dtype}: {len(found)} convolutions and matrix products")
  for (kind, operands, labels), count in sorted(counts.items()):
    print(f"  {count:4d} x {kind}({operands}) {labels}")
  wrong = [p for p in found if args.dtype == "bfloat16"
           and any(t != "bf16" for t in p["operands"])]
  if wrong:
    print(f"{len(wrong)} of them take operands that are not bfloat16", file=sys.stderr)
    if jax.default_backend() == "cpu":
      print("(XLA's CPU backend computes bfloat16 products in float32: read this on a GPU "
            "or TPU)", file=sys.stderr)
    return 1
  return 0


if __name__ == "__main__":
  sys.exit(main())
