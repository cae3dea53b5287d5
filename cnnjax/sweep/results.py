"""A sweep's runs read back from their workdirs: whether each is finished, and
its numbers. The tuning stage, the seed rounds and the summary all decide from
these, so a sweep's state is always what its runs' files say.

A run counts once it is **finished**: its `results.json` says complete at its
last step (`cnnjax train` removes the file while a run trains again), and its
`config.json` is the config the sweep resolves for it.

**Epochs to target**: the `epoch` of the first training record whose
`train/top1_error` is at or below the sweep's target. Training records are
means over a log interval, so this is the end of the first interval whose mean
error reached the target: no interpolation, a resolution of one log interval,
and an answer late by at most one interval. A run that never reached it has
None: it is censored at the epochs it ran (see cnnjax.sweep.intervals).
"""

import dataclasses
import json
import pathlib

from cnnjax.errors import DIVERGED_STATUS
from cnnjax.sweep.spec import Run
from cnnjax.workdir.records import METRICS_FILE, finite_number, read_records
from cnnjax.workdir.run_log import LOG_FILE, STOPPED_STATUSES, last_attempt

RESULTS_FILE = "results.json"
FINISHED = "finished"


@dataclasses.dataclass
class RunResult:
  """One run as its workdir shows it."""

  variant: str
  seed: int
  workdir: str
  command: list[str]
  status: str  # finished, running, failed, stopped, stale, incomplete, missing
  reason: str = ""
  exit_status: int | None = None
  final_eval_top1_error: float | None = None
  best_eval_top1_error: float | None = None
  final_train_top1_error: float | None = None
  epochs_to_target: float | None = None  # None: not reached (or no target).
  epochs: float | None = None
  train_time_s: float | None = None
  parameters: int | None = None
  train_curve: list = dataclasses.field(default_factory=list)  # (step, epoch, error)
  eval_curve: list = dataclasses.field(default_factory=list)
  trial: str = ""  # The tuning trial it belongs to ("" for the seeds that measure).

  @property
  def train_test_gap(self) -> float | None:
    if self.final_eval_top1_error is None or self.final_train_top1_error is None:
      return None
    return self.final_eval_top1_error - self.final_train_top1_error

  @property
  def diverged(self) -> bool:
    """Stopped by the training's divergence guard (a NaN or Inf): for a
    tuning trial an outcome (that setting does not train), not a failure."""
    return self.status == "failed" and self.exit_status == DIVERGED_STATUS


def _read_json(path: pathlib.Path) -> dict | None:
  try:
    value = json.loads(path.read_text())
  except (OSError, ValueError):
    return None
  return value if isinstance(value, dict) else None


def epochs_to_target(records: list[dict], target: float) -> float | None:
  """The epoch of the first training record with train/top1_error <= target."""
  for record in records:
    error = finite_number(record.get("train/top1_error"))
    if error is not None and error <= target:
      return float(record["epoch"])
  return None


def _curve(records: list[dict], key: str) -> list[tuple[int, float, float]]:
  return [(record["step"], float(record["epoch"]), finite_number(record[key]))
          for record in records if finite_number(record.get(key)) is not None]


def read_run(run: Run, target: float | None, running: bool = False) -> RunResult:
  workdir = run.workdir
  result = RunResult(run.variant, run.seed, str(workdir), run.command, "missing", trial=run.trial)
  exit_status, printed, signalled = last_attempt(workdir / LOG_FILE)
  results = _read_json(workdir / RESULTS_FILE)
  stored_config = _read_json(workdir / "config.json")
  records = read_records(workdir / METRICS_FILE, missing_ok=True)
  if running:
    result.status = "running"
  elif (results is not None and results.get("status") == "complete"
        and results.get("step") == results.get("total_steps")):
    if stored_config == run.stored_config:
      result.status = FINISHED
    else:
      result.status, result.reason = "stale", (
          "its config.json differs from the config the sweep resolves now; the next sweep "
          "trains it on (or refuses it, naming the keys)")
  elif exit_status is not None and exit_status != 0:
    # Stopped before its handlers were installed, a run dies of the signal
    # instead; either way it resumes from its last checkpoint.
    stopped = exit_status in STOPPED_STATUSES or signalled
    result.status = "stopped" if stopped else "failed"
    result.exit_status, result.reason = exit_status, printed
  elif exit_status == 0:
    result.status, result.exit_status = "failed", 0
    result.reason = f"exited 0 without writing {RESULTS_FILE}"
  elif workdir.exists():
    result.status, result.reason = "incomplete", printed
  if result.status != FINISHED:
    return result
  result.final_eval_top1_error = finite_number(results["final_eval"]["eval/top1_error"])
  result.best_eval_top1_error = finite_number(results["best_eval"]["eval/top1_error"])
  result.final_train_top1_error = finite_number(results["final_train"]["train/top1_error"])
  result.epochs = float(results["epochs"])
  result.train_time_s = float(results["train_time_s"])
  result.parameters = int(results["parameters"])
  if target is not None:
    result.epochs_to_target = epochs_to_target(records, target)
  result.train_curve = _curve(records, "train/top1_error")
  result.eval_curve = _curve(records, "eval/top1_error")
  return result


def samples(results: list[RunResult], metric: str) -> list[tuple[float, bool]]:
  """Per finished run, the value of `metric` (one of cnnjax.sweep.spec.METRICS)
  and whether it is censored: a run that never reached the target counts as
  the epochs it ran, a lower bound."""
  values = []
  for result in results:
    if result.status != FINISHED:
      continue
    if metric == "epochs_to_target":
      reached = result.epochs_to_target is not None
      values.append((result.epochs_to_target if reached else result.epochs, not reached))
      continue
    value = {"final eval/top1_error": result.final_eval_top1_error,
             "best eval/top1_error": result.best_eval_top1_error,
             "final train/top1_error": result.final_train_top1_error,
             "train-test gap": result.train_test_gap}[metric]
    if value is not None:
      values.append((value, False))
  return values
