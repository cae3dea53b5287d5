"""Moves requirements.lock to the newest releases pyproject.toml allows, and tests them.

  python3.11 scripts/update_lock.py [--keep-venv]

In a fresh virtual environment it installs `.[test]` without the lock (so the
newest releases within pyproject.toml's ranges), writes requirements.lock from
what got installed, runs the test suite there, and prints what changed
(package old -> new), the newest releases that the ranges (or another
package's pins) keep out, and whether the suite passed. Exit status 0 when it
passed. The lock is written either way: review `git diff requirements.lock`,
and if the suite failed, `git checkout requirements.lock` goes back.

The lock is for Python 3.11 on the platform this runs on (the README's:
Linux x86-64); run it with that Python.
"""

import argparse
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib

ROOT = pathlib.Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"
HEADER = """\
# Exact versions of everything `pip install ".[test]"` installs on Linux x86-64 with
# Python 3.11, tested together. A constraints file: install with
#   pip install -c requirements.lock ".[test]"
# Written by scripts/update_lock.py (which moves it to the newest releases that
# pyproject.toml allows and runs the tests); do not edit by hand.
"""
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)$")
_NEWEST = re.compile(r"^\S+ \((\S+)\)$", re.MULTILINE)


def canonical(name: str) -> str:
  """A distribution's name as pip compares them (PEP 503)."""
  return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(text: str) -> dict[str, str]:
  """{canonical name: version} of the pins in a lock's text."""
  return {canonical(match[1]): match[2] for line in text.splitlines()
          if (match := _PIN.match(line.strip()))}


def lock_text(frozen: str) -> str:
  """The lock for `pip freeze --all` output: every pin but pip and cnnjax, sorted."""
  pins = sorted((line for line in frozen.splitlines() if _PIN.match(line)
                 and canonical(line.split("==")[0]) not in ("pip", "cnnjax")),
                key=lambda line: canonical(line.split("==")[0]))
  return HEADER + "\n".join(pins) + "\n"


def changes(old: dict[str, str], new: dict[str, str]) -> list[str]:
  """"name old -> new" for each package added, removed or moved."""
  return [f"{name} {old.get(name, '(none)')} -> {new.get(name, '(none)')}"
          for name in sorted(old.keys() | new.keys()) if old.get(name) != new.get(name)]


def direct_dependencies() -> list[str]:
  """The canonical names pyproject.toml depends on, test extras included."""
  project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
  requirements = project["dependencies"] + project["optional-dependencies"]["test"]
  return sorted({canonical(re.match(r"[A-Za-z0-9._-]+", text)[0]) for text in requirements})


def _run(command: list, **kwargs) -> subprocess.CompletedProcess:
  return subprocess.run([str(part) for part in command], check=True, text=True, **kwargs)


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--keep-venv", action="store_true", help="keep the virtual environment")
  args = parser.parse_args()
  if sys.version_info[:2] != (3, 11):
    raise SystemExit(f"update_lock: run with Python 3.11 (the lock's), not {sys.version.split()[0]}")
  started = time.monotonic()
  directory = pathlib.Path(tempfile.mkdtemp(prefix="cnnjax-lock-"))
  python = directory / "venv" / "bin" / "python"
  try:
    _run([sys.executable, "-m", "venv", directory / "venv"])
    pip = [python, "-m", "pip", "--disable-pip-version-check"]
    # setuptools too: TensorFlow depends on it, and the lock's must build cnnjax (>= 77).
    _run(pip + ["install", "--quiet", "--upgrade", "pip", "setuptools"])
    print(f"installing the newest releases of .[test] into {directory / 'venv'}", flush=True)
    _run(pip + ["install", "--quiet", f"{ROOT}[test]"])
    frozen = _run(pip + ["freeze", "--all"], capture_output=True).stdout
    old = read_lock(LOCK.read_text()) if LOCK.exists() else {}
    LOCK.write_text(lock_text(frozen))
    new = read_lock(LOCK.read_text())
    print(f"wrote {LOCK} ({len(new)} packages)", flush=True)

    print("running the test suite with them (python -m pytest -q)", flush=True)
    suite = subprocess.run([python, "-m", "pytest", "-q"], cwd=ROOT)
    held_back = []
    for name in direct_dependencies():
      if name in new:
        listed = subprocess.run(pip + ["index", "versions", name], capture_output=True,
                                text=True).stdout
        newest = _NEWEST.search(listed)
        if newest and newest[1] != new[name]:
          held_back.append(f"{name} {newest[1]} (locked: {new[name]})")
  finally:
    if not args.keep_venv:
      shutil.rmtree(directory, ignore_errors=True)

  moved = changes(old, new)
  print("\nchanged in requirements.lock:" if moved else "\nrequirements.lock is unchanged")
  for line in moved:
    print(f"  {line}")
  if held_back:
    print("newer releases that pyproject.toml's ranges (or another package's pins) keep out:")
    for line in held_back:
      print(f"  {line}")
  minutes = (time.monotonic() - started) / 60
  if suite.returncode == 0:
    print(f"the test suite passed with the new lock ({minutes:.0f} min in all)")
    return 0
  print(f"the test suite FAILED with the new lock (exit status {suite.returncode}, "
        f"{minutes:.0f} min in all); `git checkout {LOCK.name}` goes back to the old one")
  return 1


if __name__ == "__main__":
  sys.exit(main())
