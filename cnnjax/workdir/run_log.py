"""The `train.log` a launcher keeps in each run directory it starts: the
run's own output between a start line and an exit line per attempt, so that
a tool can tell how the last attempt ended without a scheduler's records."""

import pathlib

from cnnjax.errors import INTERRUPTED_STATUS, PREEMPTED_STATUS

LOG_FILE = "train.log"
LOG_START = "[cnnjax sweep] start"
LOG_EXIT = "[cnnjax sweep] exit"
STOPPED_BY_SWEEP = "stopped by the sweep"  # In the exit line of a run the launcher signalled.
# Exit statuses of a run that saved its step and can be resumed.
STOPPED_STATUSES = (PREEMPTED_STATUS, INTERRUPTED_STATUS)


def last_attempt(log: pathlib.Path) -> tuple[int | None, str, bool]:
  """The last attempt logged in `log`: its exit status (None if it has not
  ended), the last line it printed (`\r` ends a line, as on a terminal), and
  whether the launcher had forwarded it a stop signal."""
  try:
    text = log.read_text(errors="replace")
  except OSError:
    return None, "", False
  lines = [line.strip() for line in text.replace("\r", "\n").split("\n") if line.strip()]
  status, printed, signalled = None, "", False
  for line in reversed(lines):
    if line.startswith(LOG_START):
      break
    if line.startswith(LOG_EXIT):
      status = int(line[len(LOG_EXIT):].split()[0])
      signalled = STOPPED_BY_SWEEP in line
    else:
      printed = line
      break
  return status, printed, signalled
