"""The suite's hang guard (pytest-timeout, configured in pyproject.toml): a
test that never returns fails by the timeout, with its traceback, and the
tests after it still run."""

import subprocess
import sys

from helpers import ROOT

HANGS = '''import time


def test_hangs():
  time.sleep(3600)


def test_after_it():
  pass
'''


def test_a_test_that_sleeps_forever_fails_by_the_timeout_and_the_session_goes_on(tmp_path):
  (tmp_path / "test_hang.py").write_text(HANGS)
  # The suite's own settings (-c), on one worker, the limit cut to 2 s.
  run = subprocess.run([sys.executable, "-m", "pytest", "-c", str(ROOT / "pyproject.toml"),
                        "--rootdir", str(tmp_path), "-n", "0", "-p", "no:cacheprovider",
                        "-o", "timeout=2", str(tmp_path / "test_hang.py")],
                       capture_output=True, text=True, cwd=tmp_path, timeout=120)
  assert run.returncode == 1, run.stdout[-2000:]
  assert "Failed: Timeout (>2.0s) from pytest-timeout" in run.stdout
  assert "time.sleep(3600)" in run.stdout  # The traceback shows where it hung.
  assert "1 failed, 1 passed" in run.stdout
