"""`cnnjax report --claims DIR...`: every claim of every sweep found under the
given directories, in one table: the paper and section, the claim, the
setting (the sweep's config and dataset), the effect with its confidence
interval, the verdict, the seeds, and the compute (the runs' training time,
tuning trials included, and the sweep's wall time where known).

Each DIR is a sweep's DIR (it holds `sweep.json`) or a directory holding
sweeps at any depth; the search does not enter a sweep or a training workdir
(a directory with `config.json`). The table reads `sweep.json` alone, as
`cnnjax sweep` writes it (see cnnjax.sweep.summary), so it shows a partial
sweep as it stands; `cnnjax sweep ... --summarize` rebuilds a sweep.json. A
DIR with no sweep under it, or a damaged sweep.json, stops the report with
one line naming it (exit status 2): a table that silently left a sweep out
would read as complete. Reads only; imports neither JAX nor TensorFlow.
"""

import dataclasses
import json
import pathlib

from cnnjax import tables
from cnnjax.errors import UserError
from cnnjax.report.compare import CONFIG_FILE, SWEEP_FILE, duration, sweep_entries
from cnnjax.sweep import spec as sweep_spec


@dataclasses.dataclass
class ClaimRow:
  """One claim of one sweep, raw numbers (effects as fractions, ratios, epochs)."""

  sweep: str  # The sweep's DIR as found.
  config: str  # The ablation file and its ARG.
  datasets: str
  citation: str
  claim: str
  metric: str
  paper_ratio: float | None
  paper_difference: float | None
  effect: float | None
  effect_low: float | None
  effect_high: float | None
  level: float | None
  method: str
  verdict: str
  reason: str
  seeds_better: int | None
  seeds_worse: int | None
  censored_better: int | None  # Seeds that never reached the target.
  censored_worse: int | None
  seeds_to_settle: int | None
  stage: str
  train_time_s: float | None  # The measuring runs' and the tuning trials' training, summed.
  tuning_train_time_s: float | None
  wall_time_s: float | None


def find_sweeps(path: pathlib.Path) -> list[pathlib.Path]:
  """The sweep DIRs at or under `path`, in sorted order."""
  if (path / SWEEP_FILE).is_file():
    return [path]
  if (path / CONFIG_FILE).is_file():
    return []
  found = []
  for child in sorted(child for child in path.iterdir()
                      if child.is_dir() and not child.name.startswith(".")):
    found += find_sweeps(child)
  return found


def _number(value) -> float | None:
  return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _count(value) -> int | None:
  return value if isinstance(value, int) and not isinstance(value, bool) else None


def read_claims(directory: pathlib.Path) -> list[ClaimRow]:
  """The claims of the sweep in `directory`, a UserError if its sweep.json is damaged."""
  sweep, claims = sweep_entries(directory, "claims", {"text": str, "verdict": str})
  compute = sweep.get("compute") if isinstance(sweep.get("compute"), dict) else {}
  runs = _number(compute.get("train_time_s"))
  trials = _number(compute.get("tuning_train_time_s"))
  if "compute" not in sweep:  # Written before the sweep recorded its compute.
    runs = sum(_number(run.get("train_time_s")) or 0.0 for run in sweep.get("runs", [])
               if isinstance(run, dict))
  datasets = sweep.get("datasets") if isinstance(sweep.get("datasets"), list) else []
  return [ClaimRow(
      sweep=str(directory), config=str(sweep.get("config", "")),
      datasets=", ".join(map(str, datasets)), citation=str(claim.get("citation", "")),
      claim=claim["text"], metric=str(claim.get("metric", "")),
      paper_ratio=_number(claim.get("ratio")), paper_difference=_number(claim.get("difference")),
      effect=_number(claim.get("effect")), effect_low=_number(claim.get("effect_low")),
      effect_high=_number(claim.get("effect_high")), level=_number(claim.get("level")),
      method=str(claim.get("method", "")), verdict=claim["verdict"],
      reason=str(claim.get("reason", "")), seeds_better=_count(claim.get("seeds_better")),
      seeds_worse=_count(claim.get("seeds_worse")),
      censored_better=_count(claim.get("censored_better")),
      censored_worse=_count(claim.get("censored_worse")),
      seeds_to_settle=_count(claim.get("seeds_to_settle")), stage=str(sweep.get("stage", "")),
      train_time_s=None if runs is None else runs + (trials or 0.0),
      tuning_train_time_s=trials, wall_time_s=_number(compute.get("wall_time_s")))
      for claim in claims]


def claim_rows(paths: list[pathlib.Path]) -> list[ClaimRow]:
  rows = []
  for path in paths:
    if not path.is_dir():
      raise UserError(f"{path} is not a directory; pass the --workdir of `cnnjax sweep`, or a "
                      "directory holding sweeps")
    sweeps = find_sweeps(path)
    if not sweeps:
      raise UserError(f"{path} holds no sweep (no {SWEEP_FILE} in it or below it); pass the "
                      "--workdir of `cnnjax sweep`, or a directory holding sweeps")
    for directory in sweeps:
      rows += read_claims(directory)
  return rows


# --- Rendering -------------------------------------------------------------------

def _scaled(row: ClaimRow, value: float) -> str:
  return sweep_spec.effect_text(value, ratio=row.paper_ratio is not None, metric=row.metric)


def effect_text(row: ClaimRow) -> str:
  """E.g. "1.09x (95%: 0.85x to 1.40x)", "≥ 8.20x (95%)" where the interval
  is open above, "" without an effect."""
  if row.effect is None:
    return ("unknown: both missed the target" if row.censored_better and row.censored_worse
            else "")
  level = f"{100 * row.level:.3g}%" if row.level is not None else "range"
  low, high = row.effect_low, row.effect_high
  if low is None and high is None:
    bounds = f"{level}: open"
  elif high is None:
    bounds = f"{level}: ≥ {_scaled(row, low)}"
  elif low is None:
    bounds = f"{level}: ≤ {_scaled(row, high)}"
  else:
    bounds = f"{level}: {_scaled(row, low)} to {_scaled(row, high)}"
  return f"{_scaled(row, row.effect)} ({bounds})"


def _paper(row: ClaimRow) -> str:
  if row.paper_ratio is None and row.paper_difference is None:
    return "lower"
  return _scaled(row, row.paper_ratio if row.paper_ratio is not None else row.paper_difference)


MARKDOWN_COLUMNS = (
    tables.Column("paper"), tables.Column("claim"), tables.Column("setting"),
    tables.Column("the paper's", align=tables.RIGHT), tables.Column("measured", align=tables.RIGHT),
    tables.Column("verdict"), tables.Column("seeds", align=tables.RIGHT),
    tables.Column("train time", align=tables.RIGHT), tables.Column("wall time", align=tables.RIGHT))


def as_markdown(rows: list[ClaimRow]) -> str:
  def cells(row: ClaimRow) -> dict:
    seeds = ("" if row.seeds_better is None else
             str(row.seeds_better) if row.seeds_better == row.seeds_worse else
             f"{row.seeds_better} and {row.seeds_worse}")
    verdict = row.verdict + (f" (~{row.seeds_to_settle} seeds would settle it)"
                             if row.seeds_to_settle else "")
    return {"paper": row.citation, "claim": row.claim,
            "setting": f"`{pathlib.Path(row.config).name}`" + (
                f", {row.datasets}" if row.datasets else ""),
            "the paper's": _paper(row), "measured": effect_text(row), "verdict": verdict,
            "seeds": seeds, "train time": duration(row.train_time_s),
            "wall time": duration(row.wall_time_s)}

  lines = [tables.markdown([cells(row) for row in rows], MARKDOWN_COLUMNS).rstrip("\n"), "",
           "Measured: the effect as the claim states it (a ratio worse / better of geometric "
           "means, or a difference worse − better in points or epochs) with its confidence "
           "interval (`cnnjax sweep`'s summary.md gives the method and the reasons); seeds per "
           "variant; train time: the runs' training, tuning trials included; wall time: the "
           "sweep's own invocations, where known."]
  return "\n".join(lines) + "\n"


CSV_COLUMNS = tuple(field.name for field in dataclasses.fields(ClaimRow))


def as_csv(rows: list[ClaimRow]) -> str:
  return tables.as_csv(rows, CSV_COLUMNS)


def as_json(rows: list[ClaimRow]) -> str:
  """The raw numbers of each row, and the paper's value and the measured
  effect as the markdown words them (`paper_text`, `measured_text`: an open
  interval's "≥" is not a number), so a table rendered from the JSON reads
  as this command's."""
  return json.dumps([{**dataclasses.asdict(row), "paper_text": _paper(row),
                      "measured_text": effect_text(row)} for row in rows], indent=2) + "\n"
