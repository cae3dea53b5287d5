"""Small configs for tests: the real code paths on tiny data; and the
repository's scripts as modules."""

import importlib.util
import os
import pathlib
import re
import select
import signal
import subprocess
import sys

from cnnjax import config as config_lib

ROOT = pathlib.Path(__file__).resolve().parents[1]
LENET_DIGITS = str(ROOT / "experiments" / "lenet5_digits.py")


def script(name: str):
  """scripts/NAME.py as a module (the scripts are not a package), for tests
  of what a script checks, renders or runs."""
  spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def tiny_config(data_dir: str, **overrides):
  """The digits LeNet-5 experiment shrunk to a few steps; `overrides` use
  dotted keys with `__` for `.` (model__name="resnet20")."""
  config = config_lib.load(LENET_DIGITS, overrides.pop("model__name", None))
  config.dataset.data_dir = data_dir
  config.batch_size = 16
  # As many shards as the four test devices: each shard is opened and traced
  # when a run starts (about 0.3 s each here).
  config.dataset.num_shards = 4
  config.num_train_steps = 6
  config.log_every_steps = 2
  config.eval_every_steps = 3
  config.checkpoint_every_steps = 3
  for key, value in overrides.items():
    config_lib.override(config, key.replace("__", "."), str(value))
  config_lib.validate(config)
  return config


def global_batches(config, process_count, local_devices, steps, start_step=0, batch_size=32,
                   input_size=0):
  """The first `steps` global batches (images, labels, ids) as `process_count`
  processes of `local_devices` devices each together feed them."""
  import numpy as np

  from cnnjax.data import InputPipeline, open_builder

  streams = [InputPipeline(open_builder(config.dataset), config.dataset, seed=config.seed,
                           process_index=index, process_count=process_count,
                           local_devices=local_devices, input_size=input_size
                           ).train_batches(batch_size, start_step)
             for index in range(process_count)]
  batches = []
  for _ in range(steps):
    parts = [next(stream) for stream in streams]  # Each [local_devices, per_device, ...].
    batches.append({key: np.concatenate([part[key].reshape((-1,) + part[key].shape[2:])
                                         for part in parts]) for key in ("image", "label", "id")})
  return batches


def _default_sigint() -> None:
  signal.signal(signal.SIGINT, signal.SIG_DFL)


# Popen arguments that give a test's subprocess SIGINT as a terminal's
# foreground process has it. A test run as a background job of a script
# hands its children SIGINT ignored, which cnnjax, like Python, then keeps
# ignoring; only then is it reset (a preexec_fn, which Python warns about in
# a multithreaded parent, though resetting a signal is safe there).
CTRL_C_REACHES_IT = ({"preexec_fn": _default_sigint}
                     if signal.getsignal(signal.SIGINT) == signal.SIG_IGN else {})


HOLD_TIMEOUT_S = 60  # Start-up of a Python process that imports no JAX, on a loaded machine.


def read_line(process: subprocess.Popen, timeout: float = HOLD_TIMEOUT_S) -> str:
  """The first line `process` prints (stdout a text pipe), waiting at most
  `timeout` seconds: a process that hangs before printing fails the test
  instead of hanging it (and is killed). Only for a line nothing has read past yet: select
  sees the pipe, not what Python has already buffered."""
  ready, _, _ = select.select([process.stdout], [], [], timeout)
  if not ready:
    process.kill()
    process.wait(timeout=30)
    raise AssertionError(f"process {process.pid} printed nothing within {timeout} s")
  return process.stdout.readline()


def hold(workdir, command="train"):
  """Another process holding `workdir` for `cnnjax <command>` (shared for
  "eval") until it is killed."""
  code = ("import pathlib, sys, time\nfrom cnnjax.workdir import ownership\n"
          "with ownership.own(pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[2] == 'eval'):\n"
          "  print('held', flush=True)\n  time.sleep(600)\n")
  holder = subprocess.Popen([sys.executable, "-c", code, str(workdir), command], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
                            text=True)
  assert read_line(holder).strip() == "held"
  return holder


def markdown_rows(text: str) -> list[dict]:
  """The rows of the first Markdown table in `text` as {heading: cell}, cells
  stripped of the padding that lines the columns up (escaped `\\|` unescaped)."""
  lines = [line for line in text.splitlines() if line.startswith("|")]
  def cells(line: str) -> list[str]:
    parts = re.split(r"(?<!\\)\|", line.strip())[1:-1]
    return [part.strip().replace("\\|", "|") for part in parts]
  heading, *body = [cells(line) for line in lines]
  return [dict(zip(heading, row)) for row in body[1:]]  # body[0] is the rule.
