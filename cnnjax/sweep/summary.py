"""What a sweep concludes: per-run results read back from the run workdirs,
per-variant statistics over seeds, a verdict on each claim, and the files in
the sweep's DIR:

  summary.csv   one row per variant, raw numbers (fractions, epochs, seconds)
  summary.md    the same table, then each claim: what was measured, the verdict
  curves.png    training and eval error against epochs (cnnjax.sweep.plot)
  sweep.json    all of it, per run and per variant, with the commands

Each is written beside itself and renamed over the old one, so a reader never
sees half a file, and a partial sweep is already readable.

A run counts once it is **finished**: its `results.json` says complete at its
last step (`cnnjax train` removes the file while a run trains again), and its
`config.json` is the config the sweep resolves for it.
Statistics are over the finished seeds of a variant: mean ± sample standard
deviation (n - 1), no standard deviation from one seed.

**Epochs to target**: the `epoch` of the first training record whose
`train/top1_error` is at or below the sweep's target. Training records are
means over a log interval, so this is the end of the first interval whose mean
error reached the target: no interpolation, a resolution of one log interval,
and an answer late by at most one interval. A seed that never reached it is
"not reached"; for a verdict it counts as reaching it at the end of its run,
a lower bound.

**The verdict on a claim** (better beats worse on a metric, lower being
better, by at least a ratio worse/better or a difference worse - better, or at
all): each variant's spread is [mean - std, mean + std] over its finished
seeds, open above when a seed did not reach the target. The effect's range is
the effect between the two spreads' least and most favourable ends (for a
difference: [worse_low - better_high, worse_high - better_low]). With P the
predicted ratio or difference (no size given: the difference 0):
  - inconclusive when either variant has fewer than 2 finished seeds;
  - reproduced when the whole range is beyond P (its low end > P);
  - not reproduced when the whole range falls short of P (its high end < P),
    which includes the opposite of the claim;
  - inconclusive otherwise: the seeds' spreads overlap, or allow both less and
    more than P. So with a variant that never reached the target, the other
    is "at least X times faster", reproduced only if that X already exceeds P.
"""

import dataclasses
import datetime
import json
import math
import os
import pathlib
import shlex
import statistics

from cnnjax import tables
from cnnjax.sweep.spec import METRICS, Claim, Run, Sweep
from cnnjax.workdir.records import METRICS_FILE, finite_number, read_records
from cnnjax.workdir.run_log import LOG_FILE, STOPPED_STATUSES, last_attempt

RESULTS_FILE = "results.json"

REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not reproduced", "inconclusive"
# The table's columns, raw: each statistic a mean and a std over finished seeds.
STATISTICS = ("final_eval_top1_error", "best_eval_top1_error", "final_train_top1_error",
              "train_test_gap", "epochs_to_target", "epochs", "train_time_s")
CSV_FIELDS = ("variant", "seeds", "finished", "failed",
              *(f"{name}_{part}" for name in STATISTICS for part in ("mean", "std")),
              "epochs_to_target_reached", "target_train_error", "parameters")


@dataclasses.dataclass
class RunResult:
  """One (variant, seed) as its workdir shows it."""

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

  @property
  def train_test_gap(self) -> float | None:
    if self.final_eval_top1_error is None or self.final_train_top1_error is None:
      return None
    return self.final_eval_top1_error - self.final_train_top1_error


@dataclasses.dataclass
class ClaimResult:
  claim: Claim
  verdict: str
  reason: str
  measured: str
  effect: float | None  # worse / better or worse - better, at the means.
  effect_low: float | None
  effect_high: float | None


@dataclasses.dataclass
class Summary:
  spec: str
  sweep: Sweep
  seeds: int
  runs: list[RunResult]
  claims: list[ClaimResult]

  def of(self, variant: str, status: str | None = "finished") -> list[RunResult]:
    return [run for run in self.runs
            if run.variant == variant and (status is None or run.status == status)]


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
  result = RunResult(run.variant, run.seed, str(workdir), run.command, "missing")
  exit_status, printed, signalled = last_attempt(workdir / LOG_FILE)
  results = _read_json(workdir / RESULTS_FILE)
  stored_config = _read_json(workdir / "config.json")
  records = read_records(workdir / METRICS_FILE, missing_ok=True)
  if running:
    result.status = "running"
  elif (results is not None and results.get("status") == "complete"
        and results.get("step") == results.get("total_steps")):
    if stored_config == run.stored_config:
      result.status = "finished"
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
  if result.status != "finished":
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


# --- Statistics and verdicts -------------------------------------------------

def _samples(runs: list[RunResult], metric: str) -> list[tuple[float, bool]]:
  """Per finished seed: (value, censored). A censored value is a lower bound:
  the seed never reached the target, and ran `epochs`."""
  samples = []
  for run in runs:
    if metric == "epochs_to_target":
      reached = run.epochs_to_target is not None
      samples.append((run.epochs_to_target if reached else run.epochs, not reached))
      continue
    value = {"final eval/top1_error": run.final_eval_top1_error,
             "best eval/top1_error": run.best_eval_top1_error,
             "final train/top1_error": run.final_train_top1_error,
             "train-test gap": run.train_test_gap}[metric]
    if value is not None:
      samples.append((value, False))
  return samples


def mean_std(values: list[float]) -> tuple[float | None, float | None]:
  if not values:
    return None, None
  return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def _spread(samples: list[tuple[float, bool]]) -> tuple[float, float, float]:
  """(mean, low, high): mean ± std, open above if any sample is censored."""
  mean, std = mean_std([value for value, _ in samples])
  std = std or 0.0
  high = math.inf if any(censored for _, censored in samples) else mean + std
  return mean, mean - std, high


def _ratio(numerator: float, denominator: float) -> float:
  if denominator <= 0:
    return math.inf
  return numerator / denominator


def judge(claim: Claim, summary: Summary) -> ClaimResult:
  better = _samples(summary.of(claim.better), claim.metric)
  worse = _samples(summary.of(claim.worse), claim.metric)
  measured = describe_measurement(claim, better, worse, summary.sweep.target_train_error)
  if len(better) < 2 or len(worse) < 2:
    short = [f"{name} ({len(samples)})" for name, samples in
             ((claim.better, better), (claim.worse, worse)) if len(samples) < 2]
    return ClaimResult(claim, INCONCLUSIVE, f"fewer than 2 finished seeds of {' and '.join(short)}",
                       measured, None, None, None)
  mean_b, low_b, high_b = _spread(better)
  mean_w, low_w, high_w = _spread(worse)
  if claim.ratio is not None:  # Positive metrics: a spread's low end is at least 0.
    threshold = claim.ratio
    effect = _ratio(mean_w, mean_b)
    low, high = _ratio(max(low_w, 0.0), high_b), _ratio(high_w, max(low_b, 0.0))
  else:
    threshold = claim.difference or 0.0
    effect, low, high = mean_w - mean_b, low_w - high_b, high_w - low_b
  if low > threshold:
    verdict, reason = REPRODUCED, (
        "the seeds' spreads do not overlap" if claim.ratio is None and not claim.difference
        else f"even the low end of the measured range, {_effect_text(claim, low)}, is beyond "
             f"the paper's {_effect_text(claim, threshold)}")
  elif high < threshold:
    verdict = NOT_REPRODUCED
    opposite = high < (1.0 if claim.ratio is not None else 0.0)
    reason = (f"{claim.better} is worse than {claim.worse} beyond the seeds' spread"
              if opposite else
              f"even the high end of the measured range, {_effect_text(claim, high)}, falls "
              f"short of the paper's {_effect_text(claim, threshold)}")
  else:
    verdict = INCONCLUSIVE
    missed_b, missed_w = (any(censored for _, censored in samples) for samples in (better, worse))
    paper = _effect_text(claim, threshold)
    if missed_b and missed_w:
      reason = "both variants missed the target in some seeds"
    elif missed_w:
      reason = (f"{claim.worse} did not reach the target in every seed, so the effect is only "
                f"known to be at least {_effect_text(claim, low)}, which does not settle {paper}")
    elif missed_b:
      reason = (f"{claim.better} did not reach the target in every seed, so the effect is only "
                f"known to be at most {_effect_text(claim, high)}, which does not settle {paper}")
    elif claim.ratio is None and not claim.difference:
      reason = "the seeds' spreads overlap"
    else:
      reason = (f"the measured range, {_effect_text(claim, low)} to "
                f"{_effect_text(claim, high)}, contains the paper's {paper}")
  return ClaimResult(claim, verdict, reason, measured, _finite(effect), _finite(low),
                     _finite(high))


def _finite(value: float) -> float | None:
  return value if math.isfinite(value) else None


def _percent(value: float) -> str:
  return f"{100 * value:.2f}"


def _effect_text(claim: Claim, value: float) -> str:
  if claim.ratio is not None:
    return f"{value:.2f}x"
  if claim.metric == "epochs_to_target":
    return f"{value:+.2f} epochs"
  return f"{100 * value:+.2f} points"


def _value_text(metric: str, samples: list[tuple[float, bool]], target: float | None) -> str:
  if metric != "epochs_to_target":
    mean, std = mean_std([value for value, _ in samples])
    if mean is None:
      return "no finished seed"
    spread = f" ± {_percent(std)}%" if std is not None else "% (1 seed)"
    return _percent(mean) + spread
  reached = [value for value, censored in samples if not censored]
  bound = max((value for value, censored in samples if censored), default=None)
  count = f"{len(reached)} of {len(samples)} seeds"
  if not reached:
    return (f"did not reach {_percent(target)}% in {bound:.3g} epochs ({count})" if samples
            else "no finished seed")
  mean, std = mean_std(reached)
  text = f"{mean:.2f}" + (f" ± {std:.2f}" if std is not None else "") + f" epochs ({count}"
  return text + (f"; the rest not within {bound:.3g} epochs)" if bound is not None else ")")


def _effect_words(claim: Claim, value: float, qualifier: str = "") -> str:
  """An effect as "relu 4.77x faster" or "lrn 1.80 points lower"."""
  epochs = claim.metric == "epochs_to_target"
  if claim.ratio is not None:
    return f"{claim.better} {qualifier}{value:.2f}x {'faster' if epochs else 'lower'}"
  size = f"{abs(value):.2f} epochs" if epochs else f"{100 * abs(value):.2f} points"
  word = ("sooner" if epochs else "lower") if value >= 0 else ("later" if epochs else "higher")
  return f"{claim.better} {qualifier}{size} {word}"


def describe_measurement(claim: Claim, better: list, worse: list, target: float | None) -> str:
  """The comparison in words, e.g. "epochs to 25.00% training error: relu 3.10
  ± 0.40 epochs (3 of 3 seeds), tanh 14.80 ± 2.00 epochs (3 of 3 seeds): relu
  4.77x faster; the paper: relu 6.00x faster"."""
  what = METRICS[claim.metric]
  if claim.metric == "epochs_to_target":
    what = f"epochs to {_percent(target)}% training error"
  text = (f"{what}: {claim.better} {_value_text(claim.metric, better, target)}, "
          f"{claim.worse} {_value_text(claim.metric, worse, target)}")
  if better and worse:
    mean_b, mean_w = _spread(better)[0], _spread(worse)[0]
    effect = _ratio(mean_w, mean_b) if claim.ratio is not None else mean_w - mean_b
    censored_b, censored_w = (any(c for _, c in samples) for samples in (better, worse))
    # A censored mean is a lower bound on that variant's mean.
    if censored_b and censored_w:
      text += ": both missed the target in some seeds, so the effect is unknown"
    else:
      qualifier = "at least " if censored_w else "at most " if censored_b else ""
      text += ": " + _effect_words(claim, effect, qualifier)
  paper = ("lower, no size given" if claim.ratio is None and claim.difference is None
           else _effect_words(claim, claim.ratio if claim.ratio is not None else claim.difference))
  return f"{text}; the paper: {paper}"


def summarize(sweep: Sweep, runs: list[Run], spec: str, running: frozenset = frozenset(),
              seeds: int | None = None) -> Summary:
  """Reads every run's workdir; `running` names the runs this sweep is training now."""
  results = [read_run(run, sweep.target_train_error, running=run.name in running)
             for run in runs]
  summary = Summary(spec, sweep, seeds or 1 + max(run.seed for run in runs), results, [])
  summary.claims = [judge(claim, summary) for claim in sweep.claims]
  return summary


# --- Outputs -----------------------------------------------------------------

def variant_rows(summary: Summary) -> list[dict]:
  """One row per variant with CSV_FIELDS, raw numbers, None where unknown."""
  rows = []
  for variant in summary.sweep.variants:
    finished = summary.of(variant.name)
    row = {"variant": variant.name, "seeds": summary.seeds, "finished": len(finished),
           "failed": len(summary.of(variant.name, "failed")),
           "target_train_error": summary.sweep.target_train_error,
           "parameters": finished[0].parameters if finished else None}
    for name in STATISTICS:
      values = [getattr(run, name) for run in finished if getattr(run, name) is not None]
      row[f"{name}_mean"], row[f"{name}_std"] = mean_std(values)
    row["epochs_to_target_reached"] = (
        sum(run.epochs_to_target is not None for run in finished)
        if summary.sweep.target_train_error is not None else None)
    rows.append(row)
  return rows


def _cell(mean: float | None, std: float | None, percent: bool) -> str:
  if mean is None:
    return "—"
  scale, unit = (100, "%") if percent else (1, "")
  return f"{scale * mean:.2f}" + (f" ± {scale * std:.2f}" if std is not None else "") + unit


def _target_heading(target: float) -> str:
  return f"epochs to {_percent(target)}% train error"


def _markdown_cells(row: dict, target: float | None) -> dict:
  """A variant's row as summary.md shows it, keyed by the column headings."""
  cells = {"variant": row["variant"],
           "seeds finished": f"{row['finished']} of {row['seeds']}" +
                             (f" ({row['failed']} failed)" if row["failed"] else "")}
  for name, heading in (("final_eval_top1_error", "final eval error"),
                        ("best_eval_top1_error", "best eval error"),
                        ("final_train_top1_error", "final train error"),
                        ("train_test_gap", "train-test gap")):
    cells[heading] = _cell(row[f"{name}_mean"], row[f"{name}_std"], percent=True)
  if target is not None:
    reached, finished = row["epochs_to_target_reached"], row["finished"]
    cells[_target_heading(target)] = (
        "—" if not finished else "not reached" if not reached else
        _cell(row["epochs_to_target_mean"], row["epochs_to_target_std"], False) +
        f" ({reached} of {finished} reached)")
  cells["epochs"] = _cell(row["epochs_mean"], None, False)
  cells["train time (s)"] = _cell(row["train_time_s_mean"], row["train_time_s_std"], False)
  cells["parameters"] = "—" if row["parameters"] is None else f"{row['parameters']:,}"
  return cells


def _markdown(summary: Summary, rows: list[dict]) -> str:
  target = summary.sweep.target_train_error
  lines = [f"# Sweep: `{summary.spec}`", "",
           f"Seeds 0 to {summary.seeds - 1} of each variant. Errors are top-1, mean ± sample "
           "standard deviation over the finished seeds; training errors are means over each "
           "log interval, with dropout and augmentation on. Epochs to the target are over the "
           "seeds that reached it. Train time is the runs' own `train_time_s`.", ""]
  columns = [tables.Column("variant"), tables.Column("seeds finished")]
  columns += [tables.Column(heading, align=tables.RIGHT) for heading in (
      "final eval error", "best eval error", "final train error", "train-test gap")]
  if target is not None:
    columns.append(tables.Column(_target_heading(target), align=tables.RIGHT))
  columns += [tables.Column(heading, align=tables.RIGHT)
              for heading in ("epochs", "train time (s)", "parameters")]
  lines.append(tables.markdown([_markdown_cells(row, target) for row in rows], columns)
               .rstrip("\n"))
  if summary.claims:
    lines += ["", "## Claims", ""]
  for result in summary.claims:
    lines += [f"- **{result.claim.citation}**: {result.claim.text}.",
              f"  - Measured: {result.measured}.",
              f"  - Verdict: **{result.verdict}**: {result.reason}."]
  unfinished = [run for run in summary.runs if run.status != "finished"]
  if unfinished:
    lines += ["", "## Runs not finished", ""]
    lines += [f"- {run.variant} seed {run.seed}: {run.status}"
              + (f" (exit {run.exit_status})" if run.exit_status is not None else "")
              + (f": {run.reason}" if run.reason else "") for run in unfinished]
  lines += ["", "The verdict rule: see docs/ablations.md (\"The verdict\") or "
                "cnnjax/sweep/summary.py.", ""]
  return "\n".join(lines)


def as_json(summary: Summary, rows: list[dict]) -> dict:
  return {
      "config": summary.spec,
      "updated": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
      "seeds": summary.seeds,
      "target_train_error": summary.sweep.target_train_error,
      "variants": [{"name": variant.name, "overrides": variant.overrides, **row}
                   for variant, row in zip(summary.sweep.variants, rows)],
      "claims": [{**dataclasses.asdict(result.claim),
                  **{key: getattr(result, key) for key in
                     ("verdict", "reason", "measured", "effect", "effect_low", "effect_high")}}
                 for result in summary.claims],
      "runs": [{**{key: value for key, value in dataclasses.asdict(run).items()
                   if key not in ("train_curve", "eval_curve")},
                "train_test_gap": run.train_test_gap,
                "command_line": shlex.join(run.command)} for run in summary.runs],
  }


def _replace(path: pathlib.Path, write) -> None:
  """Writes `path` beside itself (a name unique to this process) and renames it over."""
  temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
  write(temporary)
  os.replace(temporary, path)


def write(summary: Summary, workdir: pathlib.Path) -> None:
  from cnnjax.sweep import plot as sweep_plot

  workdir.mkdir(parents=True, exist_ok=True)
  rows = variant_rows(summary)
  texts = {"summary.csv": tables.as_csv(rows, CSV_FIELDS),
           "summary.md": _markdown(summary, rows),
           "sweep.json": json.dumps(as_json(summary, rows), indent=2) + "\n"}
  for name, text in texts.items():
    _replace(workdir / name, lambda path, text=text: path.write_text(text))
  _replace(workdir / "curves.png", lambda path: sweep_plot.plot_curves(summary, path))
