"""Work that several processes starting at once (a sweep's runs) must do
once: preparing a folder of images, computing a dataset's statistics.

`exclusive(lock_file, waiting)` holds an exclusive lock on `lock_file` (an
advisory `flock`, released when the process ends, however it ends), saying
`waiting` when another process holds it. The caller checks again, inside,
whether the work is already done: the other process may have done it
meanwhile. The lock is the one cnnjax.data.pipeline takes to build an
embedded dataset.
"""

import contextlib
import fcntl
import pathlib
from typing import Iterator


@contextlib.contextmanager
def exclusive(lock_file: pathlib.Path, waiting: str) -> Iterator[None]:
  """Holds `lock_file` alone until the block ends; an OSError if the file
  cannot be created (a read-only directory)."""
  with open(lock_file, "a") as lock:
    try:
      fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      print(waiting, flush=True)
      fcntl.flock(lock, fcntl.LOCK_EX)
    yield
