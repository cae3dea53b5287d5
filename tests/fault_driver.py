"""Runs the `cnnjax` CLI with faults injected at exact points, for the
reliability tests and scripts/kill_resume_stress.py; never used by cnnjax.

  CNNJAX_FAULTS="ACTION@MODULE:ATTRIBUTE#N[,...]" python tests/fault_driver.py train ...

wraps MODULE.ATTRIBUTE (a function or Class.method, sync or async) so that
its N-th call in this process first does ACTION:
  kill    SIGKILL this process (no cleanup, no flush: as a preemption that
          did not wait, or the OOM killer)
  term    SIGTERM this process (a preemption notice)
  int     SIGINT this process (Ctrl-C)
  fail    raise OSError(ENOSPC) (a full disk)
ACTION+ (e.g. `kill+`) acts right after the N-th call returns instead.
A `term` or `int` sent from a thread other than the main one (orbax's writer)
holds that thread for HOLD_S seconds: a real signal comes from outside, while
the work it lands in is still under way; without the hold the thread would
race on and could finish a save before the signal is handled.
CNNJAX_TRACE=MODULE:ATTRIBUTE,... prints `trace MODULE:ATTRIBUTE #N` at each
call, to choose N.
"""

import asyncio
import errno
import importlib
import os
import signal
import sys
import threading
import time

from cnnjax import cli

HOLD_S = 30


def _resolve(target: str):
  module_name, _, attribute = target.partition(":")
  owner = importlib.import_module(module_name)
  *parents, name = attribute.split(".")
  for parent in parents:
    owner = getattr(owner, parent)
  return owner, name


SIGNALS = {"kill": signal.SIGKILL, "term": signal.SIGTERM, "int": signal.SIGINT}


def _act(action: str, target: str) -> None:
  if action == "fail":
    raise OSError(errno.ENOSPC, f"No space left on device (injected at {target})")
  if action not in SIGNALS:
    raise ValueError(f"unknown fault action {action!r}")
  os.kill(os.getpid(), SIGNALS[action])
  if threading.current_thread() is not threading.main_thread():
    time.sleep(HOLD_S)


def _wrap(target: str, on_call) -> None:
  """Replaces `target` with a wrapper calling `on_call(count, after)` around each call."""
  owner, name = _resolve(target)
  original = getattr(owner, name)
  count = 0

  def before():
    nonlocal count
    count += 1
    on_call(count, after=False)
    return count

  if asyncio.iscoroutinefunction(original):
    async def wrapper(*args, **kwargs):
      number = before()
      result = await original(*args, **kwargs)
      on_call(number, after=True)
      return result
  else:
    def wrapper(*args, **kwargs):
      number = before()
      result = original(*args, **kwargs)
      on_call(number, after=True)
      return result
  setattr(owner, name, wrapper)


def install(faults: str, trace: str) -> None:
  for target in filter(None, trace.split(",")):
    _wrap(target, lambda number, after, target=target: after or print(
        f"trace {target} #{number}", flush=True))
  for fault in filter(None, faults.split(",")):
    action, _, rest = fault.partition("@")
    target, _, number = rest.partition("#")
    act_after = action.endswith("+")
    action = action.rstrip("+")

    def on_call(count, after, action=action, target=target, number=int(number),
                act_after=act_after):
      if count == number and after == act_after:
        _act(action, target)

    _wrap(target, on_call)


if __name__ == "__main__":
  install(os.environ.get("CNNJAX_FAULTS", ""), os.environ.get("CNNJAX_TRACE", ""))
  raise SystemExit(cli.main(sys.argv[1:]))
