"""Why a training run stops before its last step, and the exit status that
tells a scheduler or script what to do next.

  0   finished (or already complete)
  1   failed: an unexpected error, or a checkpoint that could not be saved
  2   usage error: bad config or command line (nothing was run)
  3   diverged: a NaN or Inf in the loss, gradients or parameters
  75  preempted (EX_TEMPFAIL, "try again"): the current step was saved;
      run the same command to resume

The watching itself is in cnnjax.guards; this module imports nothing heavy,
so the CLI can name these exceptions without importing JAX.
"""

PREEMPTED_STATUS = 75
DIVERGED_STATUS = 3

_preemption_requested = False


def request_preemption(signum=None, frame=None) -> None:
  """The SIGTERM handler, from the CLI's start on: it only notes the request,
  which training acts on at a step boundary. (Raising from a handler instead
  can be swallowed by whatever library code it interrupts, e.g. an import.)"""
  del signum, frame
  global _preemption_requested
  _preemption_requested = True


def preemption_requested() -> bool:
  return _preemption_requested


def clear_preemption_request() -> None:
  """For the next run in this process: a request is answered by the run it reached."""
  global _preemption_requested
  _preemption_requested = False


class StopRun(Exception):
  """The run stopped early; the CLI prints the message and exits with `exit_status`."""

  exit_status = 1


class Preempted(StopRun):
  exit_status = PREEMPTED_STATUS


class Diverged(StopRun):
  exit_status = DIVERGED_STATUS
