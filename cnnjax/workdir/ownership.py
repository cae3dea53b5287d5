"""Who owns a workdir: one training run at a time, or any number of evaluations.

A run owns its workdir through a lock on `DIR/.owner` (cnnjax.locks: an
`flock`), a file that also names the owner (command, host, process id, since
when). The kernel drops the lock when the owner's process ends, however it
ends (SIGKILL, crash, machine reboot), so there is never a stale lock to
delete by hand: the next run simply takes it. `cnnjax train` (and `cnnjax
sweep`, of its DIR) holds it alone; `cnnjax eval` holds it shared, so
evaluations never race a training's saves and deletions but may run side by
side. A refused command is a UserError naming the owner.

The owner removes `.owner` when it lets go (a lock taken on a removed file
does not count, so at most one process ever owns a workdir). The lock is
re-entrant within a process (the CLI takes it before importing TensorFlow,
so a busy workdir is refused at once; the trainer takes it again around the
work itself). An evaluation of a read-only workdir that never had an owner
needs no file.

On NFS the lock is held by the server (NFSv4, or NFSv3 with lockd), and a
crashed client's lock is released when its lease expires (about 90 s on
NFSv4). A mount with `nolock` or `local_lock=all` keeps locks on each host,
so two hosts could then both train in one workdir. JAX-free, so the CLI can
use it before importing JAX.
"""

import contextlib
import dataclasses
import datetime
import json
import os
import pathlib
import socket

from cnnjax.errors import UserError
from cnnjax.locks import FileLock

OWNER_FILE = ".owner"


@dataclasses.dataclass
class _Held:
  lock: FileLock
  count: int
  created_workdir: bool


_held: dict[pathlib.Path, _Held] = {}


def describe_owner(path: pathlib.Path) -> str:
  """The owner `path` (an `.owner` file) names, in words."""
  try:
    owner = json.loads(path.read_text())
    since = datetime.datetime.fromisoformat(owner["since"])
    minutes = (datetime.datetime.now(datetime.timezone.utc) - since).total_seconds() / 60
    return (f"`cnnjax {owner['command']}` (process {owner['pid']} on {owner['host']}, "
            f"since {since.astimezone():%Y-%m-%d %H:%M:%S}, {minutes:.0f} min ago)")
  except (OSError, ValueError, KeyError, TypeError):  # Being written, or not ours.
    return "another cnnjax process"


def _describe_self(command: str) -> str:
  return json.dumps({"command": command, "host": socket.gethostname(), "pid": os.getpid(),
                     "since": datetime.datetime.now(datetime.timezone.utc).isoformat(
                         timespec="seconds")}) + "\n"


def _refusal(workdir: pathlib.Path, shared: bool) -> UserError:
  owner = describe_owner(workdir / OWNER_FILE)
  if not shared:
    advice = ("wait for it to finish, stop it (SIGTERM or Ctrl-C saves its step), or use "
              "another --workdir")
  else:
    advice = "evaluate once it finishes, or stop it (SIGTERM or Ctrl-C saves its step)"
  return UserError(f"{workdir} is in use by {owner}; {advice}")


def _lock(workdir: pathlib.Path, shared: bool) -> FileLock:
  """`.owner` locked; the refusal when another process holds it."""
  lock = FileLock(workdir / OWNER_FILE, shared=shared)
  try:
    acquired = lock.acquire(blocking=False)
  except OSError as error:
    raise UserError(f"cannot write in --workdir {workdir}: {error.strerror}") from None
  if not acquired:
    raise _refusal(workdir, shared)
  return lock


@contextlib.contextmanager
def own(workdir: pathlib.Path, command: str = "train", shared: bool = False):
  """Holds `workdir` for `cnnjax <command>` until the block ends, alone or
  `shared` with other shared holders (evaluations); a UserError naming the
  owner if another process holds it. Holding it alone creates the workdir
  (and removes it again if it is left empty)."""
  key = pathlib.Path(os.path.abspath(workdir))
  if key in _held:
    _held[key].count += 1
    try:
      yield
    finally:
      _held[key].count -= 1
    return
  if workdir.exists() and not workdir.is_dir():
    raise UserError(f"--workdir {workdir} is a file, not a directory")
  created = False
  if not shared and not workdir.exists():
    workdir.mkdir(parents=True)
    created = True
  try:
    lock = _lock(workdir, shared)
  except BaseException:
    if created:
      _remove_if_empty(workdir)
    raise
  if lock.descriptor is not None and not shared:
    lock.write(_describe_self(command))
  elif lock.descriptor is not None and lock.is_empty():
    with contextlib.suppress(OSError):  # Names an evaluator to a trainer, where it may write.
      lock.write(_describe_self(command))
  _held[key] = _Held(lock, 1, created)
  try:
    yield
  finally:
    _release(key, workdir)


def _release(key: pathlib.Path, workdir: pathlib.Path) -> None:
  held = _held.pop(key)
  held.lock.release(remove=True)  # Kept while another evaluation holds it.
  if held.created_workdir:
    _remove_if_empty(workdir)


def _remove_if_empty(workdir: pathlib.Path) -> None:
  try:
    workdir.rmdir()
  except OSError:
    pass  # Not empty: the run wrote something worth keeping.


def holds(workdir: pathlib.Path) -> bool:
  """Whether this process owns `workdir` now."""
  return pathlib.Path(os.path.abspath(workdir)) in _held


def refused_by_primary(workdir: pathlib.Path) -> UserError:
  """What the other processes of a multi-process run say when process 0 was refused."""
  return UserError(f"{workdir} is in use by another run (process 0 names it); wait for it to "
                   "finish, or use another --workdir")
