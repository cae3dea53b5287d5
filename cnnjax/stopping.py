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


class StopRun(Exception):
  """The run stopped early; the CLI prints the message and exits with `exit_status`."""

  exit_status = 1


class Preempted(StopRun):
  exit_status = PREEMPTED_STATUS


class Diverged(StopRun):
  exit_status = DIVERGED_STATUS
