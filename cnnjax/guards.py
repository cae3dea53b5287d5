"""Watching a run for the reasons to stop it early: preemption and NaN/Inf.

Preemption is SIGTERM. With one process, a handler sets a flag that the loop
reads after each step. With several (jax.distributed), JAX's coordination
service catches SIGTERM on any of them and all agree on the step to stop at
(`Checkpointer.reached_preemption`), so every process saves the same step.
"""

import signal

import jax

from cnnjax import stopping
from cnnjax.stopping import Diverged

# Bits of the train step's `nonfinite` metric (see cnnjax.steps).
NONFINITE_QUANTITIES = ("loss", "gradients", "parameters")


class PreemptionWatch:
  """Tells the loop, after each step, whether to save and stop for a preemption."""

  def __init__(self, checkpointer):
    self._checkpointer = checkpointer
    self._previous = None
    if jax.process_count() == 1:  # Several processes: JAX's own SIGTERM handler.
      # A SIGTERM already noted while starting (see cnnjax.cli) still counts.
      self._previous = signal.signal(signal.SIGTERM, stopping.request_preemption)

  def reached(self, step: int) -> bool:
    if jax.process_count() > 1:
      return self._checkpointer.reached_preemption(step)
    return stopping.preemption_requested()

  def close(self) -> None:
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)
      self._previous = None
    stopping.clear_preemption_request()


class NonfiniteGuard:
  """Reads the train step's non-finite flags before anything is logged or saved.

  The flags stay on the devices until `check`, so watching costs no
  device-to-host transfer per step. Policy `stop`: the first flagged step
  stops the run (its state is never saved or logged). Policy `skip`: the step
  did not apply its update (see cnnjax.steps); more than
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
