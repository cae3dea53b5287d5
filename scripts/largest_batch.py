"""The largest batch whose training step fits on one device, per model.

  python scripts/largest_batch.py --model resnet50,densenet201 [--dtype bfloat16]
                                  [--start 64] [--multiple 8] [--max 8192]

For each model at its native input: the step of `cnnjax bench` (the same
model, optimizer and state) is compiled at two batches, and XLA's memory
analysis of the compiled step (arguments, outputs and temporaries, less what
the donated state aliases) gives the bytes per image and the fixed bytes;
the largest multiple of --multiple that the device's memory limit holds is
then compiled and run for one step, and halved towards the last batch that
ran until one runs. One JSON line per model on stdout: the batch that ran,
the predicted bytes at that batch, the device's limit and the tries.
Needs only jax, flax and optax (no TensorFlow).
"""

import argparse
import json
import sys
import time

import jax

from cnnjax import models
from cnnjax.bench import command, timing


def _case(name: str, batch: int, dtype: str) -> timing.Case:
  settings = {"image_size": None, "channels": None, "num_classes": None, "batch_size": batch,
              "steps": 1, "repeats": 1, "dtype": dtype, "peak_tflops": 1.0}
  return command.make_case(name, settings)


def _bytes(compiled) -> int | None:
  """The device bytes XLA's memory analysis gives the compiled step."""
  analysis = compiled.memory_analysis()
  if isinstance(analysis, (list, tuple)):
    analysis = analysis[0] if analysis else None
  if analysis is None:
    return None
  return (analysis.argument_size_in_bytes + analysis.output_size_in_bytes
          + analysis.temp_size_in_bytes - analysis.alias_size_in_bytes)


def _compiled(name: str, batch: int, dtype: str):
  step = timing._build_step(_case(name, batch, dtype), batch, lambda text: None)
  return step, step.call.lower(step.state, step.batch, step.rng).compile()


def _runs(name: str, batch: int, dtype: str) -> bool:
  """Whether one step at `batch` runs (False on running out of device memory)."""
  try:
    step, compiled = _compiled(name, batch, dtype)
    state, _ = compiled(step.state, step.batch, step.rng)
    jax.block_until_ready(state)
    return True
  except Exception as error:  # noqa: BLE001 (XLA's out-of-memory has no public type)
    if "RESOURCE_EXHAUSTED" in str(error) or "out of memory" in str(error).lower():
      return False
    raise


def largest_batch(name: str, dtype: str, start: int, multiple: int, maximum: int) -> dict:
  started = time.perf_counter()
  limit = (jax.local_devices()[0].memory_stats() or {}).get("bytes_limit")
  _, small = _compiled(name, start, dtype)
  _, large = _compiled(name, 2 * start, dtype)
  small_bytes, large_bytes = _bytes(small), _bytes(large)
  tries = []
  if limit and small_bytes and large_bytes and large_bytes > small_bytes:
    per_image = (large_bytes - small_bytes) / start
    fixed = small_bytes - per_image * start
    batch = int((limit - fixed) / per_image) // multiple * multiple
  else:  # No analysis: the memory limit is found by running.
    per_image = fixed = None
    batch = maximum
  batch, good = max(min(batch, maximum), multiple), None
  while True:
    fits = _runs(name, batch, dtype)
    tries.append((batch, fits))
    if fits:
      good = batch
      break
    lower = max(multiple, (batch // 2) // multiple * multiple)
    if lower == batch:
      break
    batch = lower
  return {"model": name, "dtype": dtype, "largest_batch": good, "tries": tries,
          "bytes_per_image": per_image, "fixed_bytes": fixed, "bytes_limit": limit,
          "device_kind": jax.local_devices()[0].device_kind,
          "seconds": time.perf_counter() - started}


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--model", required=True, help="NAME,NAME,... (registered models)")
  parser.add_argument("--dtype", default="bfloat16", choices=("float32", "bfloat16"))
  parser.add_argument("--start", type=int, default=64, help="the first batch compiled")
  parser.add_argument("--multiple", type=int, default=8, help="batches are multiples of this")
  parser.add_argument("--max", type=int, default=8192, help="the largest batch tried")
  args = parser.parse_args()
  for name in args.model.split(","):
    if name not in models.MODELS:
      parser.error(f"unknown model {name!r}")
  for name in args.model.split(","):
    print(json.dumps(largest_batch(name, args.dtype, args.start, args.multiple, args.max)),
          flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
