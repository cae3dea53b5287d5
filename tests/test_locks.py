"""cnnjax.locks: the one file lock (a workdir's owner, a kernel's compile, a
dataset's cached statistics), between real processes."""

import os
import subprocess
import sys
import threading

import pytest
from helpers import ROOT, read_line

from cnnjax.locks import FileLock


def _holder(path, shared=False, seconds=600.0):
  """Another process holding the lock on `path` for `seconds`."""
  code = ("import sys, time\nfrom cnnjax.locks import FileLock\n"
          "with FileLock(sys.argv[1], shared=sys.argv[2] == 'shared'):\n"
          "  print('held', flush=True)\n  time.sleep(float(sys.argv[3]))\n")
  holder = subprocess.Popen([sys.executable, "-c", code, str(path),
                             "shared" if shared else "alone", str(seconds)],
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
                            text=True)
  assert read_line(holder).strip() == "held"
  return holder


def test_an_exclusive_lock_keeps_others_out_until_its_process_dies(tmp_path):
  path = tmp_path / "x.lock"
  holder = _holder(path)
  try:
    assert not FileLock(path).acquire(blocking=False)
    assert not FileLock(path, shared=True).acquire(blocking=False)
  finally:
    holder.kill()  # SIGKILL: the kernel lets go, nothing to clean up.
    holder.wait(timeout=30)
  lock = FileLock(path)
  assert lock.acquire(blocking=False)
  lock.release()


def test_shared_holders_admit_each_other_and_no_exclusive_one(tmp_path):
  path = tmp_path / "x.lock"
  holder = _holder(path, shared=True)
  try:
    reader = FileLock(path, shared=True)
    assert reader.acquire(blocking=False)
    assert not FileLock(path).acquire(blocking=False)
    reader.release(remove=True)  # Another holder still has it: the file stays.
    assert path.exists()
  finally:
    holder.kill()
    holder.wait(timeout=30)
  lock = FileLock(path)
  assert lock.acquire(blocking=False)
  lock.write("me\n")
  assert path.read_text() == "me\n"
  lock.release(remove=True)
  assert not path.exists()


def test_a_waiting_process_says_so_and_gets_the_lock_when_it_is_free(tmp_path, capsys):
  path = tmp_path / "x.lock"
  holder = _holder(path, seconds=1.0)
  with FileLock(path, waiting="waiting for the other process"):
    assert holder.poll() is not None or holder.wait(timeout=30) == 0
  assert capsys.readouterr().out == "waiting for the other process\n"


def test_a_lock_on_a_removed_file_is_taken_again_on_the_new_one(tmp_path):
  """The race `release(remove=True)` leaves: a process opened the file just
  before its holder removed it; its lock on the removed file must not count."""
  path = tmp_path / "x.lock"
  first = FileLock(path)
  assert first.acquire()
  late = FileLock(path)
  opened = threading.Event()
  real_open = late._open

  def open_then_wait():
    descriptor = real_open()
    opened.set()
    return descriptor

  late._open = open_then_wait
  waiter = threading.Thread(target=late.acquire)
  waiter.start()
  assert opened.wait(timeout=30)
  late._open = real_open
  first.release(remove=True)
  waiter.join(timeout=30)
  assert late.descriptor is not None
  assert os.path.samestat(os.fstat(late.descriptor), os.stat(path))  # The file at the path.
  late.release()


def test_a_shared_lock_on_a_read_only_directory_without_the_file_needs_none(tmp_path,
                                                                           monkeypatch):
  real_open = os.open

  def read_only_open(path, flags, *args):
    if flags & (os.O_RDWR | os.O_WRONLY | os.O_CREAT):
      raise PermissionError(13, "Permission denied", path)
    return real_open(path, flags, *args)

  monkeypatch.setattr(os, "open", read_only_open)
  reader = FileLock(tmp_path / "x.lock", shared=True)
  assert reader.acquire() and reader.descriptor is None
  reader.release()
  with pytest.raises(PermissionError):
    FileLock(tmp_path / "x.lock").acquire()
