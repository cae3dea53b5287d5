"""One workdir, one run: a second training is refused naming the owner, the
lock dies with its owner, evaluations share it, and nothing is left behind."""

import errno
import os
import signal

import pytest
from helpers import hold, tiny_config

from cnnjax.errors import UserError
from cnnjax.training import train
from cnnjax.workdir import ownership, results


def test_a_second_training_is_refused_naming_the_owner_until_it_dies(digits_dir, tmp_path):
  workdir = tmp_path / "run"
  holder = hold(workdir)
  try:
    plan = train.plan(tiny_config(digits_dir))
    with pytest.raises(UserError) as refused:
      train.train_and_evaluate(plan, workdir)
    message = str(refused.value)
    assert f"{workdir} is in use by `cnnjax train` (process {holder.pid} on " in message
    assert "min ago); wait for it to finish" in message
    assert sorted(os.listdir(workdir)) == [ownership.OWNER_FILE]  # Nothing written.
  finally:
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
  # No stale lock: the kernel let go when the owner died, and the run goes through.
  final = train.train_and_evaluate(plan, workdir)
  run = results.read(workdir)
  assert (run["status"], run["step"]) == ("complete", 6)
  assert run["final_eval"]["eval/loss"] == final["eval/loss"]
  assert not (workdir / ownership.OWNER_FILE).exists()


def test_evaluations_share_a_workdir_but_never_with_a_training(tmp_path):
  workdir = tmp_path / "run"
  workdir.mkdir()
  evaluator = hold(workdir, "eval")
  try:
    with ownership.own(workdir, "eval", shared=True):  # A second evaluation is welcome.
      pass
    with pytest.raises(UserError, match=f"in use by `cnnjax eval` \\(process {evaluator.pid} "):
      with ownership.own(workdir):
        pass
  finally:
    evaluator.kill()
    evaluator.wait(timeout=30)
  trainer = hold(workdir)
  try:
    with pytest.raises(UserError, match="evaluate once it finishes"):
      with ownership.own(workdir, "eval", shared=True):
        pass
  finally:
    trainer.kill()
    trainer.wait(timeout=30)


def test_owning_is_reentrant_and_leaves_no_trace(tmp_path):
  workdir = tmp_path / "new"
  with ownership.own(workdir):
    with ownership.own(workdir):  # The CLI, then the trainer.
      assert ownership.holds(workdir)
    assert (workdir / ownership.OWNER_FILE).exists()
  assert not workdir.exists()  # Created for the run, and left empty: removed.
  with pytest.raises(UserError, match="is a file, not a directory"):
    (tmp_path / "file").write_text("")
    with ownership.own(tmp_path / "file"):
      pass


def test_a_read_only_workdir_can_still_be_evaluated(tmp_path, monkeypatch):
  """On a read-only file system (an archived run), evaluation needs no lock
  file; training there is a one-line error."""
  workdir = tmp_path / "archived"
  workdir.mkdir()
  real_open = os.open

  def read_only_open(path, flags, *args):
    if flags & (os.O_RDWR | os.O_WRONLY | os.O_CREAT):
      raise OSError(errno.EROFS, os.strerror(errno.EROFS), path)
    return real_open(path, flags, *args)

  monkeypatch.setattr(os, "open", read_only_open)
  with ownership.own(workdir, "eval", shared=True):
    assert ownership.holds(workdir)
  with pytest.raises(UserError, match="cannot write in --workdir .*: Read-only file system"):
    with ownership.own(workdir):
      pass
