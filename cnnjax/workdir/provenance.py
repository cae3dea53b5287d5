"""What produced a result: the code, the libraries, the devices, the flags
and the host, recorded beside everything a run writes.

  provenance.json   one record per start of training in the workdir (the first
                    start and every resume): {"segments": [{"from_step", "started",
                    "environment"}, ...]}
  results.json      "provenance": the environment that finished the run, and
                    "environment_changes": what changed between its segments
  eval/<step>.json  "provenance" in each evaluation, as `cnnjax eval` ran it

An environment is a JSON object:
  cnnjax               {"version", "commit", "dirty"}: commit and dirty (uncommitted
                       changes, untracked files included) when cnnjax runs from a git
                       checkout, else None
  python               its version
  packages             the versions of PACKAGES (None: not installed)
  devices              {"backend", "kind", "count", "processes"}: the devices the run
                       used and how many processes drove them
  xla_flags            the XLA_FLAGS environment variable
  convolution_kernels  "onednn" or "xla" (cnnjax.kernels.convolution_kernels)
  host                 the host name of process 0

It lives in its own file, not in config.json: config.json is the experiment's
identity, compared key by key when a run resumes and read back as a locked
config by `cnnjax eval`, `report` and `sweep`. Another jax or another host is
the same experiment run elsewhere; the record says so, and the run goes on.
"""

import datetime
import importlib.metadata
import json
import os
import pathlib
import platform
import socket
import subprocess

import cnnjax

PROVENANCE_FILE = "provenance.json"
PACKAGES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "tensorflow",
            "tensorflow-datasets", "numpy")
# An environment's fields flattened, in order: the columns of `cnnjax report`.
COLUMNS = ("cnnjax.version", "cnnjax.commit", "cnnjax.dirty", "python",
           *(f"packages.{name}" for name in PACKAGES), "devices.backend", "devices.kind",
           "devices.count", "devices.processes", "xla_flags", "convolution_kernels", "host")
# The distributions that provide a package where its own name is not installed.
_ALTERNATIVES = {"tensorflow": ("tensorflow-cpu",)}
_GIT_TIMEOUT_S = 10


def collect(devices=None) -> dict:
  """This process's environment (see the module docstring), with the devices
  of the run (default: every device of every process). Imports JAX."""
  import jax

  from cnnjax.kernels import convolution_kernels

  devices = list(devices or jax.devices())
  return {
      "cnnjax": {"version": cnnjax.__version__, **_git_state()},
      "python": platform.python_version(),
      "packages": {name: _version(name) for name in PACKAGES},
      "devices": {"backend": devices[0].platform, "kind": devices[0].device_kind,
                  "count": len(devices), "processes": jax.process_count()},
      "xla_flags": os.environ.get("XLA_FLAGS", ""),
      "convolution_kernels": convolution_kernels(),
      "host": socket.gethostname(),
  }


def _version(name: str) -> str | None:
  for distribution in (name, *_ALTERNATIVES.get(name, ())):
    try:
      return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
      pass
  return None


def _git_state() -> dict:
  """{"commit", "dirty"} of the checkout cnnjax is imported from, or Nones when
  it is not imported from one (an installed copy, or git missing)."""
  package = pathlib.Path(cnnjax.__file__).resolve().parent
  unknown = {"commit": None, "dirty": None}
  try:
    top, commit = _git(package, "rev-parse", "--show-toplevel", "HEAD").split()
    # A copy installed in a virtual environment that lies inside another repository is no checkout.
    if pathlib.Path(top).resolve() / "cnnjax" != package:
      return unknown
    return {"commit": commit, "dirty": bool(_git(package, "status", "--porcelain").strip())}
  except (OSError, subprocess.SubprocessError, ValueError):
    return unknown


def _git(directory: pathlib.Path, *arguments: str) -> str:
  return subprocess.run(["git", "-C", str(directory), *arguments], capture_output=True,
                        text=True, check=True, timeout=_GIT_TIMEOUT_S).stdout


def flatten(tree: dict, prefix: str = "") -> dict:
  """Nested dicts with dotted keys: an environment `{"packages": {"jax": "0.10.2"}}`
  as `{"packages.jax": "0.10.2"}` (report columns), a config.json's
  `{"optimizer": {"name": "sgd"}}` as `{"optimizer.name": "sgd"}` (cnnjax.workdir.config_file)."""
  flat = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      flat.update(flatten(value, f"{prefix}{key}."))
    else:
      flat[f"{prefix}{key}"] = value
  return flat


def changes(old: dict, new: dict) -> list[str]:
  """What differs between two environments, as "key old -> new" (flattened keys)."""
  old, new = flatten(old), flatten(new)
  return [f"{key} {old.get(key)!r} -> {new.get(key)!r}" for key in sorted(old.keys() | new.keys())
          if old.get(key) != new.get(key)]


def segments(workdir: pathlib.Path) -> list[dict]:
  """The workdir's recorded starts of training, oldest first ([] if none or unreadable)."""
  try:
    recorded = json.loads((pathlib.Path(workdir) / PROVENANCE_FILE).read_text())["segments"]
  except (OSError, ValueError, KeyError, TypeError):
    return []
  return [segment for segment in recorded if isinstance(segment, dict)
          and isinstance(segment.get("environment"), dict)] if isinstance(recorded, list) else []


def record_start(workdir: pathlib.Path, from_step: int, environment: dict) -> list[str]:
  """Adds a segment that trains from `from_step` in `environment`; returns what
  changed since the previous segment ([] for the first or an unchanged one)."""
  recorded = segments(workdir)
  started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
  recorded.append({"from_step": from_step, "started": started, "environment": environment})
  path = pathlib.Path(workdir) / PROVENANCE_FILE
  temporary = path.with_suffix(".json.tmp")
  temporary.write_text(json.dumps({"segments": recorded}, indent=2) + "\n")
  os.replace(temporary, path)
  return changes(recorded[-2]["environment"], environment) if len(recorded) > 1 else []


def changes_during_run(workdir: pathlib.Path) -> list[str]:
  """Every change of environment between consecutive segments, "at step N: key old -> new"."""
  recorded = segments(workdir)
  return [f"at step {new['from_step']}: {change}" for old, new in zip(recorded, recorded[1:])
          for change in changes(old["environment"], new["environment"])]
