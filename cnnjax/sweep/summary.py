"""What a sweep concludes: per-variant statistics over seeds, a verdict on
each claim from a confidence interval, and the files in the sweep's DIR:

  summary.md    the stage it is at, the tuning (trials, choices), the variants'
                table, each claim (measured, effect with its interval,
                verdict), the seed rounds of `--seeds auto`
  summary.csv   one row per variant, raw numbers (fractions, epochs, seconds)
  claims.csv    one row per claim: effect, interval, level, seeds, verdict
  tuning.csv    one row per tuning trial (with a tuning stage)
  tuning.json   the tuning stage: rule, trials, choices (once complete)
  curves.png    training and eval error against epochs (cnnjax.sweep.plot)
  sweep.json    all of it, per run and per variant, with the commands

Each is written beside itself and renamed over the old one, so a reader never
sees half a file, and a partial sweep is already readable. Statistics are
over the finished seeds of a variant: mean ± sample standard deviation (n -
1), no standard deviation from one seed. Runs are read by
cnnjax.sweep.results (what counts as finished, epochs to target).

**The verdict on a claim** (better beats worse on a metric, lower being
better, by at least a ratio worse/better or a difference worse - better, or at
all): the effect and its confidence interval at the sweep's level (95%; with
`--seeds auto`, more, see cnnjax.sweep.stages) are computed as
cnnjax.sweep.intervals says (Welch's t interval; on log values for a ratio;
censored seeds counted at their runs' ends, leaving that side of the
interval open). With P the claim's ratio or difference (no size given: the
difference 0):
  - reproduced when the interval lies beyond P (its low end above P);
  - not reproduced when it lies short of P (its high end below P), which
    includes the wrong side of no effect;
  - inconclusive otherwise: the interval contains P, or is open on the side
    that would decide, or a variant has fewer than 2 finished seeds; with an
    estimate of the seeds that would likely settle it.
A claim's number is read as "at least": ReLU 10x faster reproduces "6x
faster". If tanh never reached the target, ReLU is only known to be at least
X times faster, and the verdict is reproduced only if X already exceeds P.
"""

import dataclasses
import datetime
import json
import os
import pathlib
import shlex
import statistics

from cnnjax import tables
from cnnjax.sweep import intervals
from cnnjax.sweep import tuning as tuning_lib
from cnnjax.sweep.results import RunResult, read_run, samples
from cnnjax.sweep.spec import METRICS, Claim, Run, Sweep, effect_text

REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not reproduced", "inconclusive"
SETTLED = (REPRODUCED, NOT_REPRODUCED)
# The table's columns, raw: each statistic a mean and a std over finished seeds.
STATISTICS = ("final_eval_top1_error", "best_eval_top1_error", "final_train_top1_error",
              "train_test_gap", "epochs_to_target", "epochs", "train_time_s")
CSV_FIELDS = ("variant", "seeds", "finished", "failed",
              *(f"{name}_{part}" for name in STATISTICS for part in ("mean", "std")),
              "epochs_to_target_reached", "target_train_error", "parameters", "tuned")
CLAIM_FIELDS = ("citation", "claim", "metric", "better", "worse", "paper_ratio",
                "paper_difference", "effect", "effect_low", "effect_high", "level", "method",
                "seeds_better", "seeds_worse", "censored_better", "censored_worse", "verdict",
                "reason", "seeds_to_settle")


@dataclasses.dataclass
class ClaimResult:
  claim: Claim
  verdict: str
  reason: str
  measured: str
  effect: float | None = None  # worse / better (geometric means) or worse - better.
  effect_low: float | None = None  # The interval; None where open (or no interval).
  effect_high: float | None = None
  level: float | None = None
  method: str = ""
  seeds_better: int = 0
  seeds_worse: int = 0
  censored_better: int = 0
  censored_worse: int = 0
  effect_text: str = ""
  seeds_to_settle: int | None = None


@dataclasses.dataclass
class Summary:
  spec: str
  sweep: Sweep
  seeds: int
  runs: list[RunResult]
  claims: list[ClaimResult]
  tuning: tuning_lib.Outcome | None = None
  level: float = intervals.LEVEL
  stage: str = ""  # The line saying where the sweep is (cnnjax.sweep.stages).
  seed_rounds: list = dataclasses.field(default_factory=list)  # --seeds auto: one dict a round.
  seeds_policy: dict = dataclasses.field(default_factory=dict)
  stopped: str = ""  # --seeds auto: why no more seeds were added.
  datasets: list = dataclasses.field(default_factory=list)
  wall_time_s: float | None = None  # The sweep's own invocations, where known.

  def of(self, variant: str, status: str | None = "finished") -> list[RunResult]:
    return [run for run in self.runs
            if run.variant == variant and (status is None or run.status == status)]


# --- Verdicts ------------------------------------------------------------------

def mean_std(values: list[float]) -> tuple[float | None, float | None]:
  if not values:
    return None, None
  return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def _percent(value: float) -> str:
  return f"{100 * value:.2f}"


def _effect_text(claim: Claim, value: float) -> str:
  return effect_text(value, ratio=claim.ratio is not None, metric=claim.metric)


def _threshold(claim: Claim) -> float:
  return claim.ratio if claim.ratio is not None else claim.difference or 0.0


def _threshold_text(claim: Claim) -> str:
  if claim.ratio is None and claim.difference is None:
    return "zero (the paper gives no size)"
  return f"the paper's {_effect_text(claim, _threshold(claim))}"


def _interval_text(claim: Claim, interval: intervals.Interval) -> str:
  low, high = interval.low, interval.high
  if low is None and high is None:
    return "open both ways"
  if high is None:
    return f"{_effect_text(claim, low)} and above"
  if low is None:
    return f"up to {_effect_text(claim, high)}"
  return f"{_effect_text(claim, low)} to {_effect_text(claim, high)}"


def _missed(name: str, count: int, seeds: int) -> str:
  return f"{name} missed the target in {count} of {seeds} seeds"


def _censoring_text(claim: Claim, result: ClaimResult) -> str:
  """Which seeds were censored and what that does to the interval, or ""."""
  parts = [_missed(name, count, seeds) for name, count, seeds in (
      (claim.better, result.censored_better, result.seeds_better),
      (claim.worse, result.censored_worse, result.seeds_worse)) if count]
  if not parts:
    return ""
  side = ("both ways" if result.censored_better and result.censored_worse else
          "above" if result.censored_worse else "below")
  return (f"{' and '.join(parts)}: each such seed counts as the epochs it ran, so the interval "
          f"is open {side}")


_WHY_NO_ESTIMATE = {
    intervals.BOTH_CENSORED: "no number of seeds settles it while both variants miss the "
                             "target; longer runs would",
    intervals.CENSORED_SIDE: "more seeds would not settle it while seeds miss the target on the "
                             "side that decides; longer runs could",
    intervals.NO_SPREAD: "the seeds show no spread to estimate more from",
    intervals.AT_THRESHOLD: "the measured effect equals the paper's value",
    intervals.TOO_MANY: f"more than {intervals.MAX_SEEDS_ESTIMATE} seeds per variant would be "
                        "needed",
}


def _settling_text(count: int | None, why: str) -> str:
  if count is None:
    return _WHY_NO_ESTIMATE[why]
  return (f"about {count} seeds per variant would likely settle it ({100 * intervals.POWER:g}% "
          "power at the measured effect and spread)")


def judge(claim: Claim, summary: Summary) -> ClaimResult:
  """The verdict on `claim` from the finished seeds in `summary` (see the module docstring)."""
  better = samples(summary.of(claim.better), claim.metric)
  worse = samples(summary.of(claim.worse), claim.metric)
  result = ClaimResult(claim, INCONCLUSIVE, "",
                       describe_measurement(claim, better, worse, summary.sweep.target_train_error),
                       level=summary.level, seeds_better=len(better), seeds_worse=len(worse),
                       censored_better=sum(c for _, c in better),
                       censored_worse=sum(c for _, c in worse))
  if len(better) < 2 or len(worse) < 2:
    short = [f"{name} ({len(values)})" for name, values in
             ((claim.better, better), (claim.worse, worse)) if len(values) < 2]
    result.reason = f"fewer than 2 finished seeds of {' and '.join(short)}"
    return result
  ratio = claim.ratio is not None
  problem = intervals.unusable(better, worse, ratio)
  if problem:
    result.reason = problem
    return result
  interval = intervals.effect_interval(better, worse, ratio, summary.level)
  both_censored = result.censored_better and result.censored_worse
  result.effect = None if both_censored else interval.estimate  # Unknown both ways, then.
  result.effect_low, result.effect_high = interval.low, interval.high
  result.method = interval.method
  result.effect_text = _effect_line(claim, result, interval)
  threshold, shown = _threshold(claim), _interval_text(claim, interval)
  named = f"the {100 * summary.level:g}% interval, {shown},"
  if interval.low is not None and interval.low > threshold:
    result.verdict, result.reason = REPRODUCED, f"{named} lies beyond {_threshold_text(claim)}"
  elif interval.high is not None and interval.high < threshold:
    result.verdict = NOT_REPRODUCED
    no_effect = 1.0 if ratio else 0.0
    result.reason = (f"{named} lies on the wrong side of no effect: {claim.better} is worse "
                     f"than {claim.worse}" if threshold >= no_effect > interval.high else
                     f"{named} lies short of {_threshold_text(claim)}")
  else:
    open_side = interval.low is None or interval.high is None
    result.reason = (f"{named} does not settle {_threshold_text(claim)}" if open_side else
                     f"{named} contains {_threshold_text(claim)}")
    count, why = intervals.seeds_to_settle(better, worse, ratio, threshold, summary.level)
    result.seeds_to_settle = count
    result.reason += f"; {_settling_text(count, why)}"
  censoring = _censoring_text(claim, result)
  if censoring:
    result.reason += f"; {censoring}"
  return result


def _effect_line(claim: Claim, result: ClaimResult, interval: intervals.Interval) -> str:
  """E.g. "relu 4.77x faster (ratio of geometric means); 95% Welch's t
  interval on log values: 3.10x to 7.21x; 3 and 3 seeds"."""
  if result.censored_better and result.censored_worse:
    words = "unknown: both variants missed the target in some seeds"
  else:
    qualifier = ("at least " if result.censored_worse else
                 "at most " if result.censored_better else "")
    words = _effect_words(claim, interval.estimate, qualifier)
    if claim.ratio is not None:
      words += " (ratio of geometric means)"
  return (f"{words}; {100 * interval.level:g}% {interval.method}: "
          f"{_interval_text(claim, interval)}; {result.seeds_better} and {result.seeds_worse} "
          "seeds")


def _value_text(metric: str, values: list[tuple[float, bool]], target: float | None) -> str:
  if metric != "epochs_to_target":
    mean, std = mean_std([value for value, _ in values])
    if mean is None:
      return "no finished seed"
    spread = f" ± {_percent(std)}%" if std is not None else "% (1 seed)"
    return _percent(mean) + spread
  reached = [value for value, censored in values if not censored]
  bound = max((value for value, censored in values if censored), default=None)
  count = f"{len(reached)} of {len(values)} seeds"
  if not reached:
    return (f"did not reach {_percent(target)}% in {bound:.3g} epochs ({count})" if values
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
  """The two variants in words, e.g. "epochs to 25.00% training error: relu
  3.10 ± 0.40 epochs (3 of 3 seeds), tanh 14.80 ± 2.00 epochs (3 of 3 seeds);
  the paper: relu 6.00x faster"."""
  what = METRICS[claim.metric]
  if claim.metric == "epochs_to_target":
    what = f"epochs to {_percent(target)}% training error"
  paper = ("lower, no size given" if claim.ratio is None and claim.difference is None
           else _effect_words(claim, _threshold(claim)))
  return (f"{what}: {claim.better} {_value_text(claim.metric, better, target)}, "
          f"{claim.worse} {_value_text(claim.metric, worse, target)}; the paper: {paper}")


def summarize(sweep: Sweep, runs: list[Run], spec: str, running: frozenset = frozenset(),
              seeds: int | None = None, **context) -> Summary:
  """Reads every run's workdir (`running` names the runs being trained now)
  and judges the claims; `context` sets Summary's other fields (the tuning
  outcome, the level, the stage, the seed rounds...)."""
  results = [read_run(run, sweep.target_train_error, running=run.name in running)
             for run in runs]
  datasets = sorted({name for run in runs
                     if (name := run.stored_config.get("dataset", {}).get("name"))})
  summary = Summary(spec, sweep, seeds or 1 + max((run.seed for run in runs), default=0), results,
                    [], datasets=datasets, **context)
  summary.claims = [judge(claim, summary) for claim in sweep.claims]
  return summary


# --- Outputs -----------------------------------------------------------------

def _tuned_text(values: dict) -> str:
  return ", ".join(f"{key}={value!r}" for key, value in values.items())


def variant_rows(summary: Summary) -> list[dict]:
  """One row per variant with CSV_FIELDS, raw numbers, None where unknown."""
  chosen = summary.tuning.chosen if summary.tuning else {}
  rows = []
  for variant in summary.sweep.variants:
    finished = summary.of(variant.name)
    row = {"variant": variant.name, "seeds": summary.seeds, "finished": len(finished),
           "failed": len(summary.of(variant.name, "failed")),
           "target_train_error": summary.sweep.target_train_error,
           "parameters": finished[0].parameters if finished else None,
           "tuned": _tuned_text(chosen[variant.name]) if variant.name in chosen else None}
    for name in STATISTICS:
      values = [getattr(run, name) for run in finished if getattr(run, name) is not None]
      row[f"{name}_mean"], row[f"{name}_std"] = mean_std(values)
    row["epochs_to_target_reached"] = (
        sum(run.epochs_to_target is not None for run in finished)
        if summary.sweep.target_train_error is not None else None)
    rows.append(row)
  return rows


def claim_rows(summary: Summary) -> list[dict]:
  """One row per claim with CLAIM_FIELDS, raw numbers, None where unknown."""
  return [{"citation": result.claim.citation, "claim": result.claim.text,
           "metric": result.claim.metric, "better": result.claim.better,
           "worse": result.claim.worse, "paper_ratio": result.claim.ratio,
           "paper_difference": result.claim.difference, "effect": result.effect,
           "effect_low": result.effect_low, "effect_high": result.effect_high,
           "level": result.level, "method": result.method, "seeds_better": result.seeds_better,
           "seeds_worse": result.seeds_worse, "censored_better": result.censored_better,
           "censored_worse": result.censored_worse, "verdict": result.verdict,
           "reason": result.reason, "seeds_to_settle": result.seeds_to_settle}
          for result in summary.claims]


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
  cells["tuned"] = row["tuned"] or ""
  return cells


def _variants_markdown(summary: Summary, rows: list[dict]) -> list[str]:
  target = summary.sweep.target_train_error
  columns = [tables.Column("variant"), tables.Column("seeds finished")]
  columns += [tables.Column(heading, align=tables.RIGHT) for heading in (
      "final eval error", "best eval error", "final train error", "train-test gap")]
  if target is not None:
    columns.append(tables.Column(_target_heading(target), align=tables.RIGHT))
  columns += [tables.Column(heading, align=tables.RIGHT)
              for heading in ("epochs", "train time (s)", "parameters")]
  if summary.tuning:
    columns.append(tables.Column("tuned"))
  return [tables.markdown([_markdown_cells(row, target) for row in rows], columns).rstrip("\n")]


def _tuning_markdown(summary: Summary) -> list[str]:
  stage, target = summary.tuning, summary.sweep.target_train_error
  tuning = stage.tuning
  lines = ["## Tuning", "", tuning_lib.describe(tuning, target), ""]
  cells = []
  for row in tuning_lib.rows(stage):
    missed = row["target_missed"]
    value = tuning_lib.value_text(tuning.metric, row["metric_mean"])
    cells.append({"variant": row["variant"], "trial": row["trial"], "status": row["status"],
                  "seeds": f"{row['finished']} of {row['seeds']}",
                  METRICS[tuning.metric]: (
                      f"not reached in {value}" if missed and missed == row["finished"] else
                      f"{value} ({missed} of {row['finished']} missed, as their epochs run)"
                      if missed else value),
                  **({METRICS[tuning.tie_break]: tuning_lib.value_text(
                      tuning.tie_break, row["tie_break_mean"])} if tuning.tie_break else {}),
                  "rank": "" if row["rank"] is None else str(row["rank"]),
                  "chosen": "✓" if row["chosen"] else ""})
  columns = [tables.Column("variant"), tables.Column("trial"), tables.Column("status"),
             tables.Column("seeds"),
             tables.Column(METRICS[tuning.metric], align=tables.RIGHT)]
  if tuning.tie_break:
    columns.append(tables.Column(METRICS[tuning.tie_break], align=tables.RIGHT))
  columns += [tables.Column("rank", align=tables.RIGHT), tables.Column("chosen")]
  lines.append(tables.markdown(cells, columns).rstrip("\n"))
  if stage.choices:
    lines.append("")
  for variant, choice in stage.choices.items():
    lines.append(f"- **{variant}**: {_tuned_text(choice.values)} "
                 f"({tuning_lib.value_text(tuning.metric, choice.trial.mean(tuning.metric))}; "
                 f"{choice.margin_text})" + "".join(f". **{note}**" for note in choice.notes) + ".")
  return lines


def _claims_markdown(summary: Summary) -> list[str]:
  lines = ["## Claims", ""]
  for result in summary.claims:
    lines += [f"- **{result.claim.citation}**: {result.claim.text}.",
              f"  - Measured: {result.measured}."]
    if result.effect_text:
      lines.append(f"  - Effect: {result.effect_text}.")
    lines.append(f"  - Verdict: **{result.verdict}**: {result.reason}.")
  return lines


def _seeds_markdown(summary: Summary) -> list[str]:
  lines = ["## Seeds", ""]
  for number, entry in enumerate(summary.seed_rounds, 1):
    lines.append(f"- Round {number}: seeds 0 to {entry['seeds'] - 1}: {entry['outcome']}.")
  if summary.stopped:
    lines.append(f"- **Stopped**: {summary.stopped}.")
  return lines


def _markdown(summary: Summary, rows: list[dict]) -> str:
  lines = [f"# Sweep: `{summary.spec}`", ""]
  if summary.stage:
    lines += [summary.stage, ""]
  lines += [f"Seeds 0 to {summary.seeds - 1} of each variant. Errors are top-1, mean ± sample "
            "standard deviation over the finished seeds; training errors are means over each "
            "log interval, with dropout and augmentation on. Epochs to the target are over the "
            "seeds that reached it. Train time is the runs' own `train_time_s`.", ""]
  if summary.tuning:
    lines += _tuning_markdown(summary) + [""]
  lines += ["## Variants", ""] + _variants_markdown(summary, rows)
  if summary.claims:
    lines += [""] + _claims_markdown(summary)
  if summary.seed_rounds:
    lines += [""] + _seeds_markdown(summary)
  unfinished = [run for run in summary.runs if run.status != "finished"]
  if unfinished:
    lines += ["", "## Runs not finished", ""]
    lines += [f"- {run.variant} seed {run.seed}: {run.status}"
              + (f" (exit {run.exit_status})" if run.exit_status is not None else "")
              + (f": {run.reason}" if run.reason else "") for run in unfinished]
  lines += ["", "The rules: docs/ablations.md; in the code, verdicts in cnnjax/sweep/summary.py, "
            "intervals and the seeds estimate in cnnjax/sweep/intervals.py, the tuning stage in "
            "cnnjax/sweep/spec.py, the stages and `--seeds auto` in cnnjax/sweep/stages.py.", ""]
  return "\n".join(lines)


def as_json(summary: Summary, rows: list[dict]) -> dict:
  target = summary.sweep.target_train_error
  return {
      "config": summary.spec,
      "updated": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
      "stage": summary.stage,
      "seeds": summary.seeds,
      "seeds_policy": summary.seeds_policy,
      "seed_rounds": summary.seed_rounds,
      "stopped": summary.stopped,
      "target_train_error": target,
      "datasets": summary.datasets,
      "level": summary.level,
      "interval_method": intervals.METHOD,
      "compute": {
          "train_time_s": sum(run.train_time_s or 0.0 for run in summary.runs),
          "tuning_train_time_s": summary.tuning.train_time_s if summary.tuning else 0.0,
          "wall_time_s": summary.wall_time_s},
      "tuning": tuning_lib.as_json(summary.tuning, target) if summary.tuning else None,
      "variants": [{"name": variant.name, "overrides": variant.overrides, **row}
                   for variant, row in zip(summary.sweep.variants, rows)],
      "claims": [{**dataclasses.asdict(result.claim),
                  **{key: value for key, value in dataclasses.asdict(result).items()
                     if key != "claim"}}
                 for result in summary.claims],
      "runs": [{**{key: value for key, value in dataclasses.asdict(run).items()
                   if key not in ("train_curve", "eval_curve", "trial")},
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
  data = as_json(summary, rows)
  texts = {"summary.csv": tables.as_csv(rows, CSV_FIELDS),
           "claims.csv": tables.as_csv(claim_rows(summary), CLAIM_FIELDS),
           "summary.md": _markdown(summary, rows),
           "sweep.json": json.dumps(data, indent=2) + "\n"}
  if summary.tuning:
    texts["tuning.csv"] = tables.as_csv(tuning_lib.rows(summary.tuning), tuning_lib.CSV_FIELDS)
    texts["tuning.json"] = json.dumps(data["tuning"], indent=2) + "\n"
  for name, text in texts.items():
    _replace(workdir / name, lambda path, text=text: path.write_text(text))
  _replace(workdir / "curves.png", lambda path: sweep_plot.plot_curves(summary, path))
