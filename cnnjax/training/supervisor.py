"""One process of a multi-process training, run in a child that this
process watches, so that a lost peer ends it with cnnjax's "resume me" status.

When JAX's distributed runtime learns that a process of the run is gone (its
coordinator unreachable, a peer's heartbeats missing for
parallel.HEARTBEAT_TIMEOUT_SECONDS), it ends every other process from one of
its own C++ threads with a fatal log line and abort(): SIGABRT, exit 134, a
C++ stack trace. No Python code runs on that path and JAX's public API
offers no hook to replace it (the client's missed-heartbeat callback is not
an argument of `jax.distributed.initialize`). Nor can a SIGABRT handler help:
abort() restores the default action and raises the signal again before
Python's handler could run. So `cnnjax train` of a multi-process run trains
in a child process (the same command line, marked by SUPERVISED_VARIABLE)
and this process, which never imports JAX, waits for it:

- the child's stderr passes through unchanged, except the runtime's fatal
  report and the stack trace after it, which are withheld; once the child is
  gone this process prints one line naming the process that was lost and
  exits with the preempted status (75), as a collective that fails in Python
  does in the child (parallel.lost_peer);
- a child killed by SIGKILL (the out-of-memory killer) also exits 75: its
  last complete checkpoint is intact (cnnjax.workdir.checkpoint) and the
  next launch resumes from it; any other status passes through;
- SIGTERM (preemption) is passed on to the child, which saves its step with
  the others; Ctrl-C reaches both, being sent to the terminal's process
  group, and only the child acts on it;
- if this process dies (SIGKILL, the node's launcher gone), the child's end
  of a pipe ("lifeline") reads end-of-file and the child exits at once, so
  its peers see it gone within seconds instead of training on a lost rank.

The workdir's owner is the child (cnnjax.workdir.ownership); the kernel
releases its lock however it ends, so the relaunch takes it. JAX-free.
"""

import os
import re
import signal
import subprocess
import sys
import threading

from cnnjax.errors import PREEMPTED_STATUS
from cnnjax.training import stopping

# Set in the child: the descriptor of its end of the lifeline pipe.
SUPERVISED_VARIABLE = "CNNJAX_SUPERVISOR_FD"
# How the runtime's fatal report begins (xla/pjrt/distributed/client.h); the
# absl::Status it names follows on the same line.
FATAL_REPORT = b"Terminating process because the JAX distributed service detected fatal errors"
_STATUS = re.compile(r"absl::Status: (?P<status>[^\n]*)")
# How the runtime names a lost process: its task, or the list of tasks that
# stopped sending heartbeats (one id per line after the colon).
_TASK = re.compile(r"/task:(\d+)|stopped sending heartbeats\):\s*(\d+)\s")


def supervised() -> bool:
  """Whether this process is the child that a supervisor watches."""
  return SUPERVISED_VARIABLE in os.environ


def follow_lifeline() -> None:
  """In the child: exits at once when the supervising process is gone."""
  descriptor = int(os.environ[SUPERVISED_VARIABLE])

  def watch():
    while os.read(descriptor, 1):
      pass
    os._exit(PREEMPTED_STATUS)  # Nobody is left to read a message.

  threading.Thread(target=watch, name="cnnjax-lifeline", daemon=True).start()


def lost_process(report: str, process_id: int | None, num_processes: int) -> str:
  """The process a fatal report (or a collective's error) is about, in words."""
  for task in _TASK.finditer(report):
    if int(task[1] or task[2]) != process_id:
      return f"process {task[1] or task[2]}"
  if num_processes == 2:
    return "the other process" if process_id is None else f"process {1 - process_id}"
  if process_id != 0 and ("leader task" in report or "coordination service" in report):
    return "process 0 (the coordinator)"
  return "a peer process"


def lost_message(who: str, num_processes: int, detail: str) -> str:
  """The one line a surviving process ends with (after `cnnjax: `)."""
  return (f"preempted: lost {who} of this {num_processes}-process run ({detail}); the last "
          f"complete checkpoint is kept: run the same command on every process to resume")


def supervise(process_id: int | None, num_processes: int) -> int:
  """Runs this process's command line again in a child and returns its status,
  a lost peer or a SIGKILL turned into the preempted status with one line."""
  read_end, write_end = os.pipe()
  env = {**os.environ, SUPERVISED_VARIABLE: str(read_end)}
  child = subprocess.Popen([sys.executable, *sys.orig_argv[1:]], env=env, pass_fds=(read_end,),
                           stderr=subprocess.PIPE)
  os.close(read_end)
  # A scheduler's SIGTERM or warning ahead of a time limit (SLURM signals every
  # process of the step, or only this one) reaches the training either way.
  previous = {signum: signal.signal(signum, lambda received, _: child.send_signal(received))
              for signum in (signal.SIGTERM, stopping.WARNING_SIGNAL)}
  if signal.getsignal(signal.SIGINT) != signal.SIG_IGN:  # The child gets the group's Ctrl-C.
    previous[signal.SIGINT] = signal.signal(signal.SIGINT, lambda *_: None)
  try:
    report = _pass_through(child.stderr.fileno(), sys.stderr.buffer)
    status = child.wait()
  finally:
    for signum, handler in previous.items():
      signal.signal(signum, handler)
    os.close(write_end)
  if report is not None:
    text = report.decode(errors="replace")
    found = _STATUS.search(text)
    # Its first sentence: the rest is advice on which logs to read.
    detail = "JAX's distributed runtime: " + (found["status"].split(". ")[0] if found
                                              else "fatal error")
    who = lost_process(text, process_id, num_processes)
    print(f"cnnjax: {lost_message(who, num_processes, detail)}", file=sys.stderr, flush=True)
    return PREEMPTED_STATUS
  if status == -signal.SIGKILL:
    print("cnnjax: preempted: this process's training was killed (SIGKILL: out of memory, or "
          "by hand); the last complete checkpoint is kept: run the same command on every "
          "process to resume", file=sys.stderr, flush=True)
    return PREEMPTED_STATUS
  if status < 0:
    print(f"cnnjax: the training process died of {signal.Signals(-status).name}", file=sys.stderr,
          flush=True)
    return 128 - status
  return status


def _pass_through(source: int, target) -> bytes | None:
  """Copies `source` to `target` until end-of-file, as it comes; returns the
  runtime's fatal report and what followed it (withheld), or None.

  Text goes on at once, progress bars' carriage returns included, except a
  line that could still become the report's first line: held until it ends.
  """
  pending = b""
  while chunk := os.read(source, 1 << 16):
    pending += chunk
    *lines, pending = re.split(rb"(?<=[\r\n])", pending)
    for index, line in enumerate(lines):
      if FATAL_REPORT in line:
        target.flush()
        return b"".join(lines[index:]) + pending + _read_all(source)
      target.write(line)
    if not pending.startswith(b"F"):  # glog's fatal lines begin with F.
      target.write(pending)
      pending = b""
    target.flush()
  target.write(pending)
  target.flush()
  return None


def _read_all(source: int) -> bytes:
  parts = []
  while chunk := os.read(source, 1 << 16):
    parts.append(chunk)
  return b"".join(parts)
