"""Watching a run for the reasons to stop it early: preemption (SIGTERM, or
the scheduler's warning ahead of a time limit, SIGUSR1), Ctrl-C (SIGINT) and
NaN/Inf.

With one process, the signal handlers set a flag that the loop reads after
each step. With several (jax.distributed), JAX's coordination service catches
SIGTERM on any of them and all agree on the step to stop at
(`Checkpointer.reached_preemption`), so every process saves the same step;
Ctrl-C and the warning signal on any process are turned into that SIGTERM
(Ctrl-C's process then exits with the interrupted status), and so is a
SIGTERM or warning noted while the process was starting, before JAX's
handler was there to see it.
"""

import os
import signal

import jax

from cnnjax.training import stopping
from cnnjax.training.stopping import Diverged

# Bits of the train step's `nonfinite` metric (see cnnjax.training.steps).
NONFINITE_QUANTITIES = ("loss", "gradients", "parameters")


class StopWatch:
  """Tells the loop, after each step, whether to save and stop for a signal.

  From its creation until `close`, Ctrl-C no longer raises KeyboardInterrupt:
  it asks for a save like SIGTERM, and a second Ctrl-C aborts at once. A save
  it cuts short stays a temporary directory, never taken for a checkpoint,
  and the next run removes it (cnnjax.workdir.checkpoint.remove_incomplete). It is
  not removed at the abort: orbax's writer thread runs on until the process
  exits and recreates the directories it writes into, so a removal could
  leave a fresh one behind, or worse, let it finish a save with files missing.
  """

  def __init__(self, checkpointer):
    self._checkpointer = checkpointer
    self._distributed = jax.process_count() > 1
    # A signal already noted while starting (see cnnjax.cli) still counts. A
    # process started with SIGINT ignored (a background job of a script)
    # keeps ignoring it, as Python itself and every Unix program do.
    self._previous = {}
    if signal.getsignal(signal.SIGINT) != signal.SIG_IGN:
      self._previous[signal.SIGINT] = signal.signal(signal.SIGINT, self._on_interrupt)
    if self._distributed:  # JAX's own SIGTERM handler; the warning becomes a SIGTERM.
      self._previous[stopping.WARNING_SIGNAL] = signal.signal(stopping.WARNING_SIGNAL,
                                                              self._on_warning)
      if stopping.stop_requested() in (signal.SIGTERM, stopping.WARNING_SIGNAL):
        os.kill(os.getpid(), signal.SIGTERM)
    else:
      for signum in (signal.SIGTERM, stopping.WARNING_SIGNAL):
        self._previous[signum] = signal.signal(signum, stopping.request_stop)
    self._stop_watching = stopping.abort_on_second_interrupt()

  def _on_interrupt(self, signum, frame):
    first = stopping.stop_requested() is None
    stopping.request_stop(signum, frame)
    if first and self._distributed:  # Let JAX's coordination service agree on a step.
      os.kill(os.getpid(), signal.SIGTERM)

  def _on_warning(self, signum, frame):
    stopping.request_stop(signum, frame)
    os.kill(os.getpid(), signal.SIGTERM)

  def reached(self, step: int) -> int | None:
    """The signal to stop for at `step` (SIGTERM, SIGUSR1 or SIGINT), or None to go on."""
    if self._distributed:
      if not self._checkpointer.reached_preemption(step):
        return None
      return stopping.stop_requested() or signal.SIGTERM
    return stopping.stop_requested()

  def close(self) -> None:
    self._stop_watching()
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)
    self._previous = {}
    stopping.clear_stop_request()


class NonfiniteGuard:
  """Reads the train step's non-finite flags before anything is logged or saved.

  The flags stay on the devices until `check`, so watching costs no
  device-to-host transfer per step. Policy `stop`: the first flagged step
  stops the run (its state is never saved or logged). Policy `skip`: the step
  did not apply its update (see cnnjax.training.steps); more than
  `max_consecutive_skips` in a row stop the run.
  """

  def __init__(self, policy: str, max_consecutive_skips: int):
    self._policy = policy
    self._max_skips = max_consecutive_skips
    self._unchecked = []  # (step, flags on device)
    self._streak = 0  # Consecutive skipped updates so far.

  def add(self, step: int, flags) -> None:
    self._unchecked.append((step, flags))

  def check(self) -> int:
    """Raises Diverged if the run must stop; returns the updates skipped since the last check."""
    # Every device holds the same flags: read the first local copy of each step's.
    codes = jax.device_get([flags.addressable_shards[0].data for _, flags in self._unchecked])
    steps = [step for step, _ in self._unchecked]
    self._unchecked = []
    skipped = 0
    for step, code in zip(steps, codes):
      code = int(code[0])
      if not code:
        self._streak = 0
        continue
      quantities = [name for bit, name in enumerate(NONFINITE_QUANTITIES) if code >> bit & 1]
      if self._policy == "stop":
        raise Diverged(
            f"training diverged at step {step}: non-finite (NaN or Inf) {_and(quantities)}; "
            f"nothing from that step on was saved. Lower config.optimizer.learning_rate, set "
            f"config.optimizer.grad_clip_norm, or set config.nonfinite.policy=skip")
      skipped += 1
      self._streak += 1
      if self._streak > self._max_skips:
        raise Diverged(
            f"training diverged at step {step}: {self._streak} updates in a row skipped for "
            f"non-finite {_and(quantities)} (config.nonfinite.max_consecutive_skips="
            f"{self._max_skips}). Lower config.optimizer.learning_rate or set "
            f"config.optimizer.grad_clip_norm")
    return skipped


def _and(names: list[str]) -> str:
  return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
