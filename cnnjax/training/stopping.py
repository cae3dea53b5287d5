"""Why a training run stops before its last step, and the exit status that
tells a scheduler or script what to do next.

  0    finished (or already complete)
  1    failed: an unexpected error, or a checkpoint that could not be saved
  2    usage error: bad config or command line, or a workdir in use (nothing was run)
  3    diverged: a NaN or Inf in the loss, gradients or parameters
  75   preempted (SIGTERM, or SIGUSR1: a scheduler's warning ahead of a time
       limit; EX_TEMPFAIL, "try again"): the current step was saved; run the
       same command to resume (a SLURM batch script requeues its job). Also a
       process of a multi-process run that lost a peer, or whose training was
       killed (cnnjax.training.supervisor): the last complete checkpoint is kept
  130  interrupted (Ctrl-C, SIGINT): the current step was saved, as for SIGTERM;
       a second Ctrl-C while saving stops at once and saves nothing

The signal handlers only note the request; training acts on it at a step
boundary (cnnjax.training.guards). Raising from a handler instead can be swallowed by
whatever library code it interrupts. While starting, before there is a step
to save, Ctrl-C interrupts at once (the CLI reports it in one line), and is
noted as well in case the exception is swallowed. The abort on a second
Ctrl-C comes from a thread of its own (`abort_on_second_interrupt`), since the
main thread may be inside C++ for a long time. This
module imports nothing heavy, so the CLI can use it without importing JAX.
"""

import os
import signal
import sys
import threading

from cnnjax.errors import DIVERGED_STATUS, INTERRUPTED_STATUS, PREEMPTED_STATUS, StopRun

_requested: int | None = None  # The first stop signal received.
# What a scheduler sends ahead of a time limit, when asked to (SLURM: `sbatch
# --signal=USR1@SECONDS`): handled as SIGTERM, so that the step is saved while
# there is time, not in the grace period between SIGTERM and SIGKILL
# (SLURM's KillWait, 30 s by default), which a big model's save may outlast.
WARNING_SIGNAL = signal.SIGUSR1


def request_stop(signum=signal.SIGTERM, frame=None) -> None:
  """The SIGTERM (and WARNING_SIGNAL) handler from the CLI's start on, and
  the SIGINT handler once training has begun. A second SIGINT aborts: see `abort`."""
  del frame
  global _requested
  if _requested is not None and signum == signal.SIGINT:
    abort()
  if _requested is None:
    _requested = signum


def interrupt_while_starting(signum=signal.SIGINT, frame=None) -> None:
  """The SIGINT handler until training begins: stop at once (KeyboardInterrupt),
  and note the request too, in case library code swallows the exception (an
  import's bare `except:`): training then stops before its first step."""
  request_stop(signum, frame)
  raise KeyboardInterrupt


def stop_requested() -> int | None:
  """The signal that asked this run to stop (SIGTERM, WARNING_SIGNAL or SIGINT), if any."""
  return _requested


def clear_stop_request() -> None:
  """For the next run in this process: a request is answered by the run it reached."""
  global _requested
  _requested = None


def abort() -> None:
  """Stops the process at once, with the interrupted status."""
  print("\ncnnjax: interrupted again: stopped at once without saving; run the same command to "
        "resume from the last checkpoint", file=sys.stderr, flush=True)
  os._exit(INTERRUPTED_STATUS)


def abort_on_second_interrupt():
  """Aborts on a Ctrl-C that follows an earlier stop signal, even while the
  main thread is inside a long C++ call (compiling, waiting on a device or on
  a save's files), where Python runs no signal handler until the call returns.

  CPython's C-level handler writes each signal's number to the wakeup fd as
  the signal lands; a thread reading it aborts. The Python handlers still note
  the requests as before. Returns the function that stops watching; main
  thread only, like `signal.signal`.
  """
  read_end, write_end = os.pipe()
  os.set_blocking(write_end, False)
  previous_fd = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
  stopped_before = _requested is not None  # Noted while starting (see cnnjax.cli).

  def watch():
    nonlocal stopped_before
    while (number := os.read(read_end, 1)) != b"\0":
      if number[0] == signal.SIGINT and stopped_before:
        abort()
      stopped_before |= number[0] in (signal.SIGINT, signal.SIGTERM)
    os.close(read_end)

  threading.Thread(target=watch, name="cnnjax-second-interrupt", daemon=True).start()

  def stop_watching():
    signal.set_wakeup_fd(previous_fd)
    os.write(write_end, b"\0")
    os.close(write_end)

  return stop_watching


class Preempted(StopRun):
  exit_status = PREEMPTED_STATUS


class Interrupted(StopRun):
  exit_status = INTERRUPTED_STATUS


class Diverged(StopRun):
  exit_status = DIVERGED_STATUS


def stopped(signum: int, message: str) -> StopRun:
  """The exception for a run stopped by `signum` (SIGINT, SIGTERM or WARNING_SIGNAL)."""
  if signum == signal.SIGINT:
    return Interrupted(f"interrupted: {message}")
  return Preempted(f"preempted: {message}")
