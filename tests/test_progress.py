"""Training's progress: a bar on a terminal, plain lines where there is none
(a file, a pipe, a SLURM log), either forced with CNNJAX_PROGRESS."""

import io

import pytest

from cnnjax.errors import UserError
from cnnjax.workdir import metrics as metrics_lib
from cnnjax.workdir.metrics import Progress, progress_mode

METRICS = {"train/loss": 0.5, "train/images_per_sec": 1000.0}


class _Terminal(io.StringIO):
  def isatty(self):
    return True


def test_the_mode_follows_the_terminal_unless_forced(monkeypatch):
  monkeypatch.delenv(metrics_lib.PROGRESS_VARIABLE, raising=False)
  assert progress_mode(io.StringIO()) == "lines" and progress_mode(_Terminal()) == "bar"
  monkeypatch.setenv(metrics_lib.PROGRESS_VARIABLE, "lines")
  assert progress_mode(_Terminal()) == "lines"
  monkeypatch.setenv(metrics_lib.PROGRESS_VARIABLE, "Bar")
  assert progress_mode(io.StringIO()) == "bar"
  monkeypatch.setenv(metrics_lib.PROGRESS_VARIABLE, "dots")
  with pytest.raises(UserError, match="CNNJAX_PROGRESS='dots': use bar or lines"):
    progress_mode()


def test_lines_every_so_often_and_each_evaluation_on_its_own(capsys, monkeypatch):
  clock = iter(range(0, 1000, 10))  # Each update 10 s after the one before.
  monkeypatch.setattr(metrics_lib.time, "monotonic", lambda: next(clock))
  progress = Progress(total=100, initial=0, enabled=True, mode="lines", every_seconds=25)
  progress.start_clock(1)
  for step in range(10, 101, 10):
    progress.update(step, METRICS)
    if step == 50:
      progress.write("step 50: eval/loss=0.4000")
  progress.close()
  captured = capsys.readouterr()
  assert "\r" not in captured.out + captured.err and captured.err == ""
  lines = captured.out.splitlines()
  # The first log, then one at least 25 s after the last, and the last step.
  assert [line.split(":")[0] for line in lines] == [
      "train step 10/100 (10%)", "train step 40/100 (40%)", "step 50",
      "train step 70/100 (70%)", "train step 100/100 (100%)"]
  assert lines[0].startswith("train step 10/100 (10%): loss 0.5000, 1000 images/s, eta ")


def test_the_bar_redraws_in_place(capsys):
  progress = Progress(total=10, initial=0, enabled=True, mode="bar")
  progress.update(5, METRICS)
  progress.write("step 5: eval/loss=0.4000")
  progress.close()
  captured = capsys.readouterr()
  assert "\r" in captured.err and "step 5: eval/loss=0.4000\n" in captured.out
