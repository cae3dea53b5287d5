"""Run workdirs written by hand, as `cnnjax train` leaves them (the documented
results.json, metrics.jsonl and train.log), and a fake launcher that writes
them instead of training: for the sweep's tests where training is not the
point (tuning, stages, intervals, --seeds auto, the claims table)."""

import json

import ml_collections

from cnnjax.errors import DIVERGED_STATUS
from cnnjax.sweep.spec import Run
from cnnjax.workdir import run_log

STEPS_PER_EPOCH = 10
LOG_EVERY = 2  # Steps between training records: a record every 0.2 epochs.


def write_run(run: Run, train_errors: list[float], eval_errors: list[float], *,
              log_every: int = LOG_EVERY, config: dict | None = None, results: bool = True,
              train_time_s: float = 12.5) -> None:
  """A run's workdir as `cnnjax train` leaves it: config.json, metrics.jsonl
  (a train record every `log_every` steps, an eval record per epoch) and results.json."""
  run.workdir.mkdir(parents=True, exist_ok=True)
  (run.workdir / "config.json").write_text(json.dumps(config or run.stored_config))
  records = []
  for index, error in enumerate(train_errors):
    step = (index + 1) * log_every
    records.append({"step": step, "epoch": step / STEPS_PER_EPOCH, "train/loss": 1.0,
                    "train/top1_error": error})
    if step % STEPS_PER_EPOCH == 0 and step // STEPS_PER_EPOCH <= len(eval_errors):
      records.append({"step": step, "epoch": step / STEPS_PER_EPOCH, "eval/loss": 1.0,
                      "eval/top1_error": eval_errors[step // STEPS_PER_EPOCH - 1],
                      "eval/top5_error": 0.0})
  (run.workdir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
  if not results:
    return
  last = records[-1]["step"]
  final_eval = {"step": last, "epoch": last / STEPS_PER_EPOCH, "eval/loss": 1.0,
                "eval/top1_error": eval_errors[-1], "eval/top5_error": 0.0}
  (run.workdir / "results.json").write_text(json.dumps({
      "status": "complete", "step": last, "total_steps": last, "steps_per_epoch": STEPS_PER_EPOCH,
      "global_batch": 16, "epochs": last / STEPS_PER_EPOCH, "final_eval": final_eval,
      "best_eval": {**final_eval, "eval/top1_error": min(eval_errors)},
      "final_train": {"step": last, "epoch": last / STEPS_PER_EPOCH, "train/loss": 1.0,
                      "train/top1_error": train_errors[-1]},
      "train_time_s": train_time_s, "images_per_sec": 100.0, "parameters": 61706}))


def write_failed(run: Run, status: int = DIVERGED_STATUS,
                 line: str = "cnnjax: training diverged at step 4") -> None:
  """A run that exited with `status` after printing `line`, as the sweep's train.log says."""
  run.workdir.mkdir(parents=True, exist_ok=True)
  (run.workdir / "config.json").write_text(json.dumps(run.stored_config))
  (run.workdir / run_log.LOG_FILE).write_text(
      f"{run_log.LOG_START} 2026-11-22T08:00:00 on cpus 0: train\n{line}\n"
      f"{run_log.LOG_EXIT} {status} after 3.0 s\n")


def make_run(tmp_path, variant: str, seed: int) -> Run:
  return Run(variant, seed, "ablation.py", tmp_path / variant / f"seed{seed}",
             (("seed", str(seed)),), ml_collections.ConfigDict({"seed": seed, "name": variant}))


def reaching_at(epoch: float | None, epochs: int = 4, final: float = 0.4) -> list[float]:
  """Train errors of a seed that first reaches 0.5 at `epoch` (a multiple of
  0.2) and ends at `final`, or never in its `epochs` (None)."""
  records = epochs * STEPS_PER_EPOCH // LOG_EVERY
  if epoch is None:
    return [0.9] * records
  steps = int(round(epoch * STEPS_PER_EPOCH / LOG_EVERY))
  return [0.9] * (steps - 1) + [0.45] * (records - steps) + [final]


def write_reaching(run: Run, epoch: float | None, final: float = 0.4, epochs: int = 4) -> None:
  """A finished run reaching 0.5 training error at `epoch` (None: never),
  ending at `final` training and eval error."""
  write_run(run, reaching_at(epoch, epochs, final), [final] * epochs)


DIVERGED = "diverged"


class FakeLauncher:
  """A launcher for cnnjax.sweep.stages that writes each run's workdir from
  `outcome(run)` (see `write`) instead of training it. `waits=False` makes
  it a scheduler's: it only notes the runs (`submitted`), and `finish()`
  writes them later, as the jobs would."""

  name = "fake"

  def __init__(self, outcome, waits: bool = True):
    self.outcome, self.waits = outcome, waits
    self.launched: list[list[str]] = []  # The names of each launch's runs.
    self.submitted: list[Run] = []

  def launch(self, runs, refresh):
    self.launched.append([run.name for run in runs])
    if not self.waits:
      self.submitted += runs
      return None
    for run in runs:
      write(run, self.outcome(run))
    refresh(frozenset())
    return None

  def finish(self) -> None:
    for run in self.submitted:
      write(run, self.outcome(run))
    self.submitted = []


def write(run: Run, outcome) -> None:
  """`outcome`: DIVERGED, an int (the exit status of a failure), or (epoch
  reaching 0.5 or None, final error)."""
  if outcome == DIVERGED:
    write_failed(run)
  elif isinstance(outcome, int):
    write_failed(run, outcome, "cnnjax: error: something broke")
  else:
    write_reaching(run, *outcome)
