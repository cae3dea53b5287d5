"""cnnjax's C++ sources, compiled where they run on first use, and cached.

Two kernels are faster compiled here than what the libraries ship: oneDNN's
convolutions as XLA custom calls (cnnjax/models/onednn.py) and the input
pipeline's resampling as a TensorFlow op (cnnjax/data/resample.py). Each is
compiled with the system's C++ compiler ($CXX, else c++ or g++) into
~/.cache/cnnjax (or $CNNJAX_CACHE_DIR), named by a hash of the source, the
command and the library versions it is built against, so an upgrade builds
anew. Where it cannot be built, the caller says why in one line and keeps
the library's own kernel.
"""

import hashlib
import os
import pathlib
import shutil
import subprocess
import tempfile

from cnnjax import locks


class Unavailable(Exception):
  """Why a compiled kernel cannot be used here (one line)."""


def compiler() -> str:
  found = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
  if not found:
    raise Unavailable("no C++ compiler found (install g++ or set CXX)")
  return found


def build(source: pathlib.Path, command: list[str], versions: str) -> pathlib.Path:
  """The shared library `command` (a compiler's arguments, without `-o`)
  makes of `source`, from the cache or compiled now; `versions` names what
  it is built against."""
  digest = hashlib.sha256("\0".join(command).encode() + source.read_bytes()
                          + versions.encode()).hexdigest()[:16]
  cache = pathlib.Path(os.environ.get("CNNJAX_CACHE_DIR")
                       or pathlib.Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")) / "cnnjax")
  built = cache.expanduser() / f"{source.stem}-{digest}.so"
  if built.exists():
    return built
  built.parent.mkdir(parents=True, exist_ok=True)
  # One process compiles; others starting at once (a sweep's runs, test
  # workers) wait for it. Built beside its final name and renamed, so a
  # process never loads half a library.
  with locks.FileLock(built.with_suffix(".lock")):
    if built.exists():
      return built
    with tempfile.TemporaryDirectory(dir=built.parent) as scratch:
      partial = pathlib.Path(scratch) / built.name
      try:
        done = subprocess.run([*command, "-o", str(partial)], capture_output=True, text=True)
      except OSError as error:  # No such compiler, say.
        raise Unavailable(f"cannot run the compiler: {error}") from None
      if done.returncode:
        errors = [line for line in done.stderr.splitlines() if "error" in line]
        last = (errors or done.stderr.strip().splitlines() or ["no message"])[-1]
        raise Unavailable(f"compiling {source.name} failed: {last}")
      os.replace(partial, built)
  return built
