"""Training and evaluation curves, read from workdirs' `metrics.jsonl` for
`cnnjax plot`. Reads only; imports neither JAX nor matplotlib."""

import dataclasses
import pathlib

from cnnjax.errors import UserError
from cnnjax.workdir.records import METRICS_FILE, finite_number, read_records

# (panel title, training key, evaluation key or None).
PANELS = (("loss", "train/loss", "eval/loss"),
          ("top-1 error (%)", "train/top1_error", "eval/top1_error"),
          ("learning rate", "train/learning_rate", None))
KEYS = tuple(key for _, *keys in PANELS for key in keys if key)


@dataclasses.dataclass
class Run:
  """One workdir's curves: metric key -> [(x, value)], in logged order."""

  label: str
  series: dict[str, list[tuple[float, float]]]


def read_run(workdir: pathlib.Path, x: str) -> Run:
  """The curves of the run in `workdir` against `x` ("step" or "epoch"), or a
  UserError naming what is wrong with the workdir."""
  if not workdir.is_dir():
    raise UserError(f"{workdir} is not a directory; pass the workdir of a `cnnjax train` run")
  path = workdir / METRICS_FILE
  try:
    records = read_records(path)
  except OSError as error:
    raise UserError(f"{workdir} has no readable metrics.jsonl ({error.strerror}); pass the "
                    "workdir of a `cnnjax train` run") from None
  if not records:
    raise UserError(f"{path} holds no records yet; plot it once training has logged a step")
  if x == "epoch" and any(finite_number(record.get("epoch")) is None for record in records):
    raise UserError(f"{path} has records without an epoch (written by an older cnnjax); "
                    "use --x step")
  series = {}
  for key in KEYS:
    points = [(float(record[x]), value) for record in records
              if (value := finite_number(record.get(key))) is not None]
    if points:
      series[key] = points
  if not series:
    raise UserError(f"{path} has none of {', '.join(KEYS)}; is it a cnnjax training run?")
  return Run(str(workdir), series)
