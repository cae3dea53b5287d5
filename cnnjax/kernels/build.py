"""cnnjax's C++ sources, compiled where they run on first use, and cached.

Two kernels are faster compiled here than what the libraries ship: oneDNN's
convolutions as XLA custom calls (cnnjax/kernels/onednn.py) and the input
pipeline's resampling as a TensorFlow op (cnnjax/data/resample.py). Each is
compiled with the system's C++ compiler ($CXX, split as a shell splits it, so
`CXX="ccache g++"` works; else c++ or g++) into ~/.cache/cnnjax (or
$CNNJAX_CACHE_DIR), named by a hash of everything the library is made from:
the source, the compiler's `--version`, the command and the versions of the
libraries it is built against. An upgrade of any of them builds anew.

Whatever keeps a kernel from being built (no compiler, a compiler error,
missing headers, a cache directory that cannot be written, a compiler still
running after COMPILE_TIMEOUT_S) is an `Unavailable` with a one-line reason;
the caller says it and keeps the library's own kernel.
"""

import functools
import hashlib
import os
import pathlib
import shlex
import shutil
import subprocess
import sys
import tempfile

import tqdm

from cnnjax import locks

# oneDNN's custom call compiles in about 20 s and the resampling op in about
# 45 s on 2 loaded cores; a compiler still running after this has hung.
COMPILE_TIMEOUT_S = 300


class Unavailable(Exception):
  """Why a compiled kernel cannot be used here (one line)."""


def note(text: str) -> None:
  """`cnnjax: note: text` on stderr, on a line of its own even while a
  progress bar is drawn (the first training step is lowered under one).
  Printed, not logged: the CLI silences absl's logging below errors."""
  tqdm.tqdm.write(f"cnnjax: note: {text}", file=sys.stderr)


def compiler() -> list[str]:
  """The command that runs the C++ compiler: $CXX split as a shell would, else c++ or g++."""
  if os.environ.get("CXX"):
    return shlex.split(os.environ["CXX"])
  found = shutil.which("c++") or shutil.which("g++")
  if not found:
    raise Unavailable("no C++ compiler found (install g++ or set CXX)")
  return [found]


def cache_dir() -> pathlib.Path:
  """Where built libraries are kept: $CNNJAX_CACHE_DIR, else $XDG_CACHE_HOME/cnnjax."""
  return pathlib.Path(os.environ.get("CNNJAX_CACHE_DIR") or pathlib.Path(
      os.environ.get("XDG_CACHE_HOME", "~/.cache")) / "cnnjax").expanduser()


def build(source: pathlib.Path, arguments: list[str], versions: dict[str, str]) -> pathlib.Path:
  """The shared library the compiler makes of `source` with `arguments`
  (flags and inputs, without `-o`), from the cache or compiled now;
  `versions` names the libraries it is built against and their versions."""
  program = compiler()
  command = [*program, *arguments]
  identity = "\0".join([*command, _version(tuple(program)),
                        *(f"{name}={version}" for name, version in sorted(versions.items()))])
  digest = hashlib.sha256(identity.encode() + source.read_bytes()).hexdigest()[:16]
  built = cache_dir() / f"{source.stem}-{digest}.so"
  if built.exists():
    return built
  try:
    return _compile(source, command, built)
  except OSError as error:  # The cache cannot be written: no space, no permission.
    raise Unavailable(f"cannot write to the cache {built.parent} ({error.strerror or error}); "
                      f"set CNNJAX_CACHE_DIR to a writable directory") from None


def _compile(source: pathlib.Path, command: list[str], built: pathlib.Path) -> pathlib.Path:
  built.parent.mkdir(parents=True, exist_ok=True)
  # One process compiles; others starting at once (a sweep's runs, test
  # workers) wait for it. Built beside its final name and renamed, so a
  # process never loads half a library.
  with locks.FileLock(built.with_suffix(".lock")):
    if built.exists():
      return built
    with tempfile.TemporaryDirectory(dir=built.parent) as scratch:
      partial = pathlib.Path(scratch) / built.name
      done = _run([*command, "-o", str(partial)], f"compiling {source.name}")
      if done.returncode:
        errors = [line for line in done.stderr.splitlines() if "error" in line]
        last = (errors or done.stderr.strip().splitlines() or ["no message"])[-1]
        raise Unavailable(f"compiling {source.name} failed: {last}")
      os.replace(partial, built)
  return built


@functools.cache
def _version(compiler_command: tuple[str, ...]) -> str:
  """The compiler's `--version` output: a compiler upgraded in place builds anew."""
  done = _run([*compiler_command, "--version"], "asking the compiler its version")
  return done.stdout


def _run(command: list[str], doing: str) -> subprocess.CompletedProcess:
  try:
    return subprocess.run(command, capture_output=True, text=True, timeout=COMPILE_TIMEOUT_S)
  except subprocess.TimeoutExpired:
    raise Unavailable(f"{doing} took more than {COMPILE_TIMEOUT_S} s; gave up") from None
  except OSError as error:  # No such compiler, say.
    raise Unavailable(f"cannot run the compiler: {error}") from None
