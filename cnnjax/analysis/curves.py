"""Training and evaluation curves, read from `metrics.jsonl` files for `cnnjax
plot`: of a run's workdir, of a sweep's variant directory (its seeds), or of a
whole sweep (each variant). Reads only; imports neither JAX nor matplotlib."""

import dataclasses
import pathlib

from cnnjax.errors import UserError
from cnnjax.workdir.records import METRICS_FILE, finite_number, read_records

# (panel title, training key, evaluation key or None): the default panels.
PANELS = (("loss", "train/loss", "eval/loss"),
          ("top-1 error (%)", "train/top1_error", "eval/top1_error"),
          ("learning rate", "train/learning_rate", None))
TUNING = "tuning"  # A sweep's tuning trials: under it, not drawn with the sweep's variants.

Series = dict[str, list[tuple[float, float]]]  # Metric key -> [(x, value)], in logged order.


@dataclasses.dataclass
class Group:
  """One curve of the plot: a run, or the seeds of a variant (mean and band)."""

  label: str
  runs: list[Series]

  def keys(self) -> set[str]:
    return set().union(*self.runs)


def read_groups(path: pathlib.Path, x: str) -> list[Group]:
  """The curves under `path` against `x` ("step" or "epoch"): one group if
  `path` is a run's workdir; else one per directory holding runs (a variant's
  seeds; a sweep's tuning trials left out unless `path` is among them); a
  UserError if there is no run."""
  if not path.is_dir():
    raise UserError(f"{path} is not a directory; pass the workdir of a `cnnjax train` run, or "
                    "a sweep's directory or one of its variants")
  if (path / METRICS_FILE).exists():
    return [Group(str(path), [read_run(path, x)])]
  runs = sorted(found.parent for found in path.rglob(METRICS_FILE)
                if TUNING not in found.relative_to(path).parts[:-1])
  if not runs:
    raise UserError(f"{path} holds no run with a {METRICS_FILE}, nor does any folder in it; "
                    "pass the workdir of a `cnnjax train` run, or a sweep's directory or variant")
  groups: dict[pathlib.Path, list[Series]] = {}
  for run in runs:
    groups.setdefault(run.parent, []).append(read_run(run, x))
  # Named as from the directory given: "sweep/relu" of "runs/sweep".
  return [Group(str(parent.relative_to(path.parent)), series) for parent, series in groups.items()]


def read_run(workdir: pathlib.Path, x: str) -> Series:
  """Every metric of the run in `workdir` against `x`, or a UserError naming
  what is wrong with it."""
  path = workdir / METRICS_FILE
  try:
    records = read_records(path)
  except OSError as error:
    raise UserError(f"{workdir} has no readable {METRICS_FILE} ({error.strerror}); pass the "
                    "workdir of a `cnnjax train` run") from None
  if not records:
    raise UserError(f"{path} holds no records yet; plot it once training has logged a step")
  if x == "epoch" and any(finite_number(record.get("epoch")) is None for record in records):
    raise UserError(f"{path} has records without an epoch (written by an older cnnjax); "
                    "use --x step")
  series: Series = {}
  for record in records:
    for key, value in record.items():
      if key not in ("step", "epoch") and (number := finite_number(value)) is not None:
        series.setdefault(key, []).append((float(record[x]), number))
  return series


def check_metric(groups: list[Group], metric: str) -> None:
  """A UserError naming the keys there are if no run logged `metric`."""
  keys = set().union(*(group.keys() for group in groups))
  if metric not in keys:
    raise UserError(f"--metric {metric!r} is in no run's {METRICS_FILE}; its keys: "
                    f"{', '.join(sorted(keys))}")
