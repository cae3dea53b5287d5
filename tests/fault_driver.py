"""Runs the `cnnjax` CLI with faults injected at named moments of a checkpoint's
life, for the reliability tests and scripts/kill_resume_stress.py; never used
by cnnjax.

  CNNJAX_FAULTS="ACTION@WHERE[,...]" python tests/fault_driver.py train ...

WHERE is one of
  STAGE:STEP   the moment STAGE of the checkpoint of STEP
  STAGE#N      the N-th time this process reaches STAGE (of any step)
  cnnjax.MODULE:ATTRIBUTE#N   the N-th call of a cnnjax function or Class.method
and STAGE is one of cnnjax.workdir.checkpoint.STAGES ("save", "finalized",
"committed", "deleting": cnnjax announces them, see there) or
  writing      half of the step's arrays written, the rest not (orbax's public
               type-handler registry: see `_HalfWritingNumpyHandler`).
Only points that cnnjax owns or orbax documents are used, so an orbax release
cannot move a fault to another moment unnoticed: the driver prints
`fault: ACTION at STAGE of step STEP; on disk: [...]` before it acts, and the
tests check that line and the directory.

ACTION is
  kill    SIGKILL this process (no cleanup, no flush: as a preemption that
          did not wait, or the OOM killer)
  term    SIGTERM this process (a preemption notice)
  int     SIGINT this process (Ctrl-C)
  fail    raise OSError(ENOSPC) (a full disk)
A `term` or `int` sent from a thread other than the main one (orbax's writer)
holds that thread for HOLD_S seconds: a real signal comes from outside, while
the work it lands in is still under way; without the hold the thread would
race on and could finish a save before the signal is handled.
"""

import errno
import importlib
import os
import pathlib
import re
import signal
import sys
import threading
import time

import numpy as np
import orbax.checkpoint as ocp

from cnnjax import cli
from cnnjax.workdir import checkpoint

HOLD_S = 30
SIGNALS = {"kill": signal.SIGKILL, "term": signal.SIGTERM, "int": signal.SIGINT}
STAGES = (*checkpoint.STAGES, "writing")
FAULT = re.compile(r"(?P<action>\w+)@(?:(?P<function>cnnjax[\w.]*:[\w.]+)#(?P<call>\d+)|"
                   r"(?P<stage>\w+)(?::(?P<step>\d+)|#(?P<count>\d+)))$")


def _act(action: str, where: str) -> None:
  """Says where, then does `action`."""
  print(f"fault: {action} at {where}", flush=True)
  if action == "fail":
    raise OSError(errno.ENOSPC, f"No space left on device (injected at {where})")
  os.kill(os.getpid(), SIGNALS[action])
  if threading.current_thread() is not threading.main_thread():
    time.sleep(HOLD_S)


def _on_disk(directory: pathlib.Path) -> list[str]:
  return sorted(path.name for path in directory.iterdir()) if directory.is_dir() else []


class _Stages:
  """Acts on the faults given for stages, as cnnjax (or the handler below) reaches them."""

  def __init__(self, faults: list[dict]):
    self._faults = faults
    self._reached = {stage: 0 for stage in STAGES}
    self.step = None  # The step whose save started last.
    self.directory = None

  def __call__(self, stage: str, step: int, directory: pathlib.Path) -> None:
    if stage == "save":
      self.step, self.directory = step, directory
    self._reached[stage] += 1
    for fault in self._faults:
      if fault["stage"] == stage and (int(fault["step"] or -1) == step or
                                      int(fault["count"] or -1) == self._reached[stage]):
        _act(fault["action"], f"{stage} of step {step}; on disk: {_on_disk(directory)}")


class _HalfWritingNumpyHandler(ocp.type_handlers.NumpyHandler):
  """Orbax's NumPy array handler, registered through orbax's public type-handler
  registry, that reaches the stage "writing" with half of a save's arrays
  written: the moment a kill lands amid the array writes."""

  stages: _Stages

  async def serialize(self, values, infos, args=None):
    args = args or [ocp.SaveArgs()] * len(values)
    half = len(values) // 2
    written = await super().serialize(values[:half], infos[:half], args[:half])
    for future in written:
      future.result()
    self.stages("writing", self.stages.step, self.stages.directory)
    return [*written, *await super().serialize(values[half:], infos[half:], args[half:])]


def _wrap_cnnjax_function(target: str, number: int, action: str) -> None:
  """Makes the `number`-th call of the cnnjax function `target` first do `action`."""
  module_name, _, attribute = target.partition(":")
  owner = importlib.import_module(module_name)
  *parents, name = attribute.split(".")
  for parent in parents:
    owner = getattr(owner, parent)
  original, calls = getattr(owner, name), 0

  def wrapper(*args, **kwargs):
    nonlocal calls
    calls += 1
    if calls == number:
      _act(action, f"call {number} of {target}")
    return original(*args, **kwargs)

  setattr(owner, name, wrapper)


def install(faults: str) -> None:
  stage_faults = []
  for fault in filter(None, faults.split(",")):
    match = FAULT.match(fault)
    if not match or match["action"] not in (*SIGNALS, "fail") or (
        match["stage"] and match["stage"] not in STAGES):
      raise SystemExit(f"fault_driver: cannot read the fault {fault!r} (see its docstring)")
    if match["function"]:
      _wrap_cnnjax_function(match["function"], int(match["call"]), match["action"])
    else:
      stage_faults.append(match.groupdict())
  stages = _Stages(stage_faults)
  checkpoint.STAGE_OBSERVERS.append(stages)
  if any(fault["stage"] == "writing" for fault in stage_faults):
    _HalfWritingNumpyHandler.stages = stages
    ocp.type_handlers.register_type_handler(np.ndarray, _HalfWritingNumpyHandler(),
                                            override=True)


if __name__ == "__main__":
  install(os.environ.get("CNNJAX_FAULTS", ""))
  raise SystemExit(cli.main(sys.argv[1:]))
