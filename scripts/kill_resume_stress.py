"""Kills `cnnjax train` dozens of times and checks that resuming loses nothing.

  python scripts/kill_resume_stress.py --kills 40 --data-dir /tmp/tfds

Trains the digits LeNet-5 for --steps steps once without interruption, then
again in a fresh workdir while killing it over and over, resuming each time,
until it finishes; repeats until --kills interruptions were made. Each
interruption is one of:
  - SIGKILL from outside at a random moment of training (checkpoints are
    saved every 3 steps, so many land mid-save),
  - SIGKILL from inside at a named stage of a save (tests/fault_driver.py:
    save called, amid the array writes, written but not in place, in place,
    about to remove a step that retention outdated),
  - SIGTERM from outside (must exit 75 after saving the current step).
After every kill it checks that no complete-looking step lacks its commit
file; after every finished run, that parameters, optimizer state and
BatchNorm statistics are bitwise those of the uninterrupted run, and so are
metrics.jsonl (but for images/s) and the examples of every step. Prints a
summary; exits 1 on any mismatch.
"""

import argparse
import collections
import json
import os
import pathlib
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXPERIMENT = str(ROOT / "experiments" / "lenet5_digits.py")
# Kills at a named stage of a save (tests/fault_driver.py), the N-th time this
# process reaches it: (stage, highest N worth trying; saves every 3 steps).
INJECTED = [("save", 4), ("writing", 4), ("finalized", 4), ("committed", 4), ("deleting", 2)]


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--kills", type=int, default=40)
  parser.add_argument("--steps", type=int, default=150)
  parser.add_argument("--seed", type=int, default=0, help="of the kill schedule")
  parser.add_argument("--data-dir", default="", help="TFDS data dir (digits is built there)")
  parser.add_argument("--keep", action="store_true", help="keep the workdirs")
  args = parser.parse_args()
  os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
  os.environ["JAX_PLATFORMS"] = "cpu"
  root = pathlib.Path(tempfile.mkdtemp(prefix="kill_resume_stress_"))
  os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(root / "jax_cache"))
  os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
  os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
  data_dir = args.data_dir or str(root / "tfds")
  overrides = {"dataset.data_dir": data_dir, "batch_size": 16, "num_train_steps": args.steps,
               "log_every_steps": 2, "eval_every_steps": 10, "checkpoint_every_steps": 3,
               "keep_checkpoints": 2, "log_example_ids": True}
  rng = random.Random(args.seed)
  started = time.time()

  reference = root / "reference"
  result = _launch(reference, overrides).wait(timeout=600)
  if result != 0:
    raise SystemExit(f"the uninterrupted run failed with status {result}")
  counts, mismatches, cycle = collections.Counter(), [], 0
  while counts["interruptions"] < args.kills:
    cycle += 1
    workdir = root / f"interrupted_{cycle}"
    while True:
      status, kind = _interrupted_run(workdir, overrides, rng)
      counts[kind] += 1
      if kind != "finished":
        counts["interruptions"] += 1
        counts.update(_inspect(workdir))
      if status == 0 or counts["interruptions"] > 10 * args.kills:
        break
      # -SIGTERM: the signal came before the handler was installed or after
      # training ended (nothing lost either way; the next run resumes).
      if status not in (-signal.SIGKILL, -signal.SIGTERM, 75):
        mismatches.append(f"cycle {cycle}: unexpected exit status {status} ({kind})")
        break
    problem = _compare(workdir, reference, overrides)
    counts["finished runs compared"] += 1
    if problem:
      mismatches.append(f"cycle {cycle}: {problem}")
    print(f"cycle {cycle}: {dict(counts)}; mismatches so far: {mismatches}", flush=True)
  print(json.dumps({"kills_and_terms": counts["interruptions"], **counts,
                    "mismatches": mismatches, "seconds": round(time.time() - started)}, indent=2))
  if not args.keep:
    shutil.rmtree(root, ignore_errors=True)
  return 1 if mismatches else 0


def _launch(workdir, overrides, faults=""):
  command = ([sys.executable, str(ROOT / "tests" / "fault_driver.py")] if faults
             else [sys.executable, "-m", "cnnjax"])
  command += ["train", "--config", EXPERIMENT, "--workdir", str(workdir)]
  command += [f"--config.{key}={value}" for key, value in overrides.items()]
  env = {**os.environ, "PYTHONPATH": str(ROOT), "CNNJAX_FAULTS": faults}
  return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _interrupted_run(workdir, overrides, rng) -> tuple[int, str]:
  """One run, interrupted one of three ways; returns its exit status and the way."""
  roll = rng.random()
  if roll < 0.2:
    stage, highest = rng.choice(INJECTED)
    process = _launch(workdir, overrides, f"kill@{stage}#{rng.randint(1, highest)}")
    status = process.wait(timeout=600)
    return status, "injected SIGKILL" if status == -signal.SIGKILL else "finished"
  process = _launch(workdir, overrides)
  ids = workdir / "example_ids" / "process_0.jsonl"
  before = _lines(ids)
  deadline = time.time() + 600
  while process.poll() is None and _lines(ids) <= before and time.time() < deadline:
    time.sleep(0.05)  # Until it has trained a step: kills during start-up teach nothing.
  time.sleep(rng.uniform(0, 2.0))
  term = roll > 0.85
  if process.poll() is None:
    process.send_signal(signal.SIGTERM if term else signal.SIGKILL)
  status = process.wait(timeout=600)
  if status == 0:
    return status, "finished"
  if term:
    return status, "SIGTERM (exit 75)" if status == 75 else f"SIGTERM (exit {status})"
  return status, "random SIGKILL"


def _lines(path) -> int:
  return len(path.read_text().splitlines()) if path.exists() else 0


def _inspect(workdir) -> collections.Counter:
  """What the interruption left in checkpoints/; raises if a step looks complete but is not."""
  found = collections.Counter()
  directory = workdir / "checkpoints"
  if not directory.exists():
    return found
  for path in directory.iterdir():
    if ".orbax-checkpoint-tmp" in path.name:
      found["left an incomplete save"] += 1
    elif path.name == "deleted":
      found["left a removed step in deleted/"] += any(path.iterdir())
    elif not (path / "commit_success.txt").exists():
      raise SystemExit(f"{path} looks like a checkpoint but has no commit_success.txt")
  return found


def _compare(workdir, reference, overrides) -> str:
  """'' if `workdir` ended exactly as `reference`, else what differs."""
  import jax  # After XLA_FLAGS is set.
  import numpy as np

  from cnnjax import config as config_lib
  from cnnjax.training import steps, train
  from cnnjax.workdir import metrics as metrics_lib
  from cnnjax.workdir.checkpoint import Checkpointer

  config = config_lib.from_command_line(
      EXPERIMENT, [(key, str(value)) for key, value in overrides.items()])
  plan = train.plan(config)
  template = jax.device_get(steps.create_train_state(
      jax.random.key(0), plan.model, plan.optimizer, plan.image_shape))
  states = []
  for run in (reference, workdir):
    checkpointer = Checkpointer(run / "checkpoints", keep=10)
    states.append(checkpointer.restore(plan.total_steps, template))
    checkpointer.close()
  for a, b in zip(jax.tree.leaves(states[0]), jax.tree.leaves(states[1]), strict=True):
    if not np.array_equal(a, b):
      return "final state differs"
  untimed = lambda run: [{k: v for k, v in r.items() if k != "train/images_per_sec"}
                         for r in metrics_lib.read(run)]
  if untimed(workdir) != untimed(reference):
    return "metrics.jsonl differs"
  ids = lambda run: metrics_lib.read_jsonl(run / "example_ids" / "process_0.jsonl")
  if ids(workdir) != ids(reference):
    return "the examples of some step differ (or a step is missing or repeated)"
  return ""


if __name__ == "__main__":
  sys.exit(main())
