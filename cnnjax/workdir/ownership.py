"""Who owns a workdir: one training run at a time, or any number of evaluations.

A run owns its workdir through an `flock` on `DIR/.owner`, a file that also
names the owner (command, host, process id, since when). The kernel drops
the lock when the owner's process ends, however it ends (SIGKILL, crash,
machine reboot), so there is never a stale lock to delete by hand: the next
run simply takes it. `cnnjax train` (and `cnnjax sweep`, of its DIR) holds it
alone; `cnnjax eval` holds it shared, so evaluations never race a training's
saves and deletions but may run side by side. A refused command is a
UserError naming the owner.

The owner removes `.owner` when it lets go. A refused or later command may
have opened the old file just before; taking the lock on a file that is no
longer at `DIR/.owner` does not count, so at most one process ever owns a
workdir. The lock is re-entrant within a process (the CLI takes it before
importing TensorFlow, so a busy workdir is refused at once; the trainer
takes it again around the work itself).

On NFS, Linux turns `flock` into a POSIX lock held by the server: it works
across hosts (NFSv4, or NFSv3 with lockd), and a crashed client's lock is
released when its lease expires (about 90 s on NFSv4). A mount with `nolock`
or `local_lock=all` keeps locks on each host, so two hosts could then both
train in one workdir. JAX-free, so the CLI can use it before importing JAX.
"""

import contextlib
import dataclasses
import datetime
import errno
import fcntl
import json
import os
import pathlib
import socket

from cnnjax.errors import UserError

OWNER_FILE = ".owner"


@dataclasses.dataclass
class _Held:
  descriptor: int
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


def _try_lock(workdir: pathlib.Path, shared: bool) -> int | None:
  """A descriptor of `.owner` holding the lock, or None if the file system
  cannot hold one (an evaluation of a read-only workdir that never had an
  owner). Raises the refusal when another process holds it."""
  path = workdir / OWNER_FILE
  mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
  while True:
    try:
      descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
      if not shared or error.errno not in (errno.EROFS, errno.EACCES):
        raise UserError(f"cannot write in --workdir {workdir}: {error.strerror}") from None
      if not path.exists():
        return None  # Nobody can be training here: training must create the file.
      descriptor = os.open(path, os.O_RDONLY)
    try:
      fcntl.flock(descriptor, mode | fcntl.LOCK_NB)
    except BlockingIOError:
      os.close(descriptor)
      raise _refusal(workdir, shared) from None
    try:
      same_file = os.path.samestat(os.fstat(descriptor), os.stat(path))
    except FileNotFoundError:
      same_file = False
    if same_file:
      return descriptor
    os.close(descriptor)  # Its owner let go and removed it meanwhile: take the new one.


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
    descriptor = _try_lock(workdir, shared)
  except BaseException:
    if created:
      _remove_if_empty(workdir)
    raise
  if descriptor is not None and not shared:
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, _describe_self(command).encode(), 0)
  elif descriptor is not None and os.fstat(descriptor).st_size == 0:
    os.pwrite(descriptor, _describe_self(command).encode(), 0)  # Names an evaluator to a trainer.
  _held[key] = _Held(descriptor, 1, created)
  try:
    yield
  finally:
    _release(key, workdir)


def _release(key: pathlib.Path, workdir: pathlib.Path) -> None:
  held = _held.pop(key)
  if held.descriptor is None:
    return
  try:
    # Removed while still locked, so no process can take a file on its way out.
    # A shared holder removes it only if it can become the only holder.
    fcntl.flock(held.descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    (workdir / OWNER_FILE).unlink(missing_ok=True)
  except (BlockingIOError, OSError):
    pass  # Another evaluation still holds it, or the workdir is read-only.
  finally:
    os.close(held.descriptor)
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
