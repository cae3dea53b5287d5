"""A deprecation met by cnnjax's code fails the suite (pyproject.toml's
filterwarnings), so it is fixed when it appears rather than when the API goes."""

import os
import subprocess
import sys

from helpers import ROOT

# A test as a library's deprecation reaches cnnjax: a warning attributed to a
# cnnjax module's line (what `warnings.warn(..., stacklevel=2)` in a library
# does when cnnjax calls it).
DEPRECATED_CALL = '''
import warnings

from cnnjax.training import parallel


def test_a_deprecated_call_in_cnnjax():
  warnings.warn_explicit("this function is deprecated", DeprecationWarning,
                         filename=parallel.__file__, lineno=1, module=parallel.__name__)
'''


def _pytest(test_file, *options) -> subprocess.CompletedProcess:
  """pytest on `test_file` with this repository's configuration alone (not
  the PYTHONWARNINGS that tests/conftest.py sets for `cnnjax` processes)."""
  env = {key: value for key, value in os.environ.items() if key != "PYTHONWARNINGS"}
  return subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider",
                         "-c", str(ROOT / "pyproject.toml"), "--rootdir", str(ROOT), *options,
                         str(test_file)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_a_deprecation_raised_from_cnnjax_fails_the_suite(tmp_path):
  test_file = tmp_path / "test_deprecated.py"
  test_file.write_text(DEPRECATED_CALL)
  failed = _pytest(test_file)
  assert failed.returncode == 1, failed.stdout
  assert "DeprecationWarning: this function is deprecated" in failed.stdout
  assert "1 failed" in failed.stdout
  # The configuration decides: without its filters the same test passes.
  passed = _pytest(test_file, "-o", "filterwarnings=")
  assert passed.returncode == 0, passed.stdout
