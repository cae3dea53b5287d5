"""File locks between processes: `flock(2)` on a lock file, the one way
cnnjax keeps processes apart (a workdir's owner, one compile of a kernel, one
computation of a dataset's cached statistics).

The kernel drops an `flock` when the process holding it ends, however it
ends (SIGKILL, crash, machine reboot), so there is never a stale lock to
delete by hand. A lock is held alone (exclusive) or beside other shared
holders. The holder may write a note into the lock file naming itself, for
the processes it keeps out. A holder that removes the lock file on release
does so while still holding it alone, and a lock taken on a file that is no
longer at its path does not count (it is taken again on the new file), so
removing lock files never lets two processes in. Where the file cannot be
created (a read-only file system or directory), a shared lock is held
without a file if there is none: an exclusive holder would have had to
create it, so none exists.

On NFS, Linux turns `flock` into a POSIX lock held by the server: it works
across hosts (NFSv4, or NFSv3 with lockd), and a crashed client's lock is
released when its lease expires (about 90 s on NFSv4). A mount with `nolock`
or `local_lock=all` keeps locks on each host, so processes on two hosts do
not see each other's locks there.

The filelock package was considered: its `flock` lock is exclusive only and
keeps no note naming the holder, and its shared (read-write) lock is a SQLite
database, whose locking SQLite's own documentation advises against on NFS,
where workdirs often live. Standard library only; imports neither JAX nor
TensorFlow.
"""

import errno
import fcntl
import os
import pathlib


class FileLock:
  """An `flock` on `path` (created if missing), alone or `shared`.

  As a context manager it waits for the lock, printing `waiting` first if
  it must wait (so a process that seems stuck says why).
  """

  def __init__(self, path: pathlib.Path, shared: bool = False, waiting: str | None = None):
    self.path = pathlib.Path(path)
    self.shared = shared
    self.waiting = waiting
    self.descriptor: int | None = None

  def acquire(self, blocking: bool = True) -> bool:
    """Takes the lock: True once held, False if another process holds it
    and not `blocking`. OSError if the lock file cannot be opened (a shared
    lock falls back to reading it, see the module docstring)."""
    mode = fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX
    while True:
      descriptor = self._open()
      if descriptor is None:
        return True
      try:
        locked = self._lock(descriptor, mode, blocking)
      except BaseException:  # Ctrl-C while waiting, say.
        os.close(descriptor)
        raise
      if not locked:
        os.close(descriptor)
        return False
      try:
        same_file = os.path.samestat(os.fstat(descriptor), os.stat(self.path))
      except FileNotFoundError:
        same_file = False
      if same_file:
        self.descriptor = descriptor
        return True
      os.close(descriptor)  # Its holder removed it meanwhile: lock the file there now.

  def _lock(self, descriptor: int, mode: int, blocking: bool) -> bool:
    try:
      fcntl.flock(descriptor, mode | fcntl.LOCK_NB)
      return True
    except BlockingIOError:
      if not blocking:
        return False
    if self.waiting:
      print(self.waiting, flush=True)
    fcntl.flock(descriptor, mode)
    return True

  def _open(self) -> int | None:
    try:
      return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
      if not self.shared or error.errno not in (errno.EROFS, errno.EACCES):
        raise
    if not self.path.exists():
      return None  # Nobody can hold it alone: that holder would have created the file.
    return os.open(self.path, os.O_RDONLY)

  def write(self, note: str) -> None:
    """Replaces the lock file's content with `note` (a lock held with a file)."""
    os.ftruncate(self.descriptor, 0)
    os.pwrite(self.descriptor, note.encode(), 0)

  def is_empty(self) -> bool:
    return os.fstat(self.descriptor).st_size == 0

  def release(self, remove: bool = False) -> None:
    """Lets go; with `remove`, deletes the lock file first if no other
    process holds it (still locked then, so nobody takes a file on its way out)."""
    descriptor, self.descriptor = self.descriptor, None
    if descriptor is None:
      return
    try:
      if remove:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.path.unlink(missing_ok=True)
    except OSError:
      pass  # Another shared holder still has it, or the directory is read-only.
    finally:
      os.close(descriptor)

  def __enter__(self) -> "FileLock":
    self.acquire()
    return self

  def __exit__(self, *exc_info) -> None:
    self.release()
