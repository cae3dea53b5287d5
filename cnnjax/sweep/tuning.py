"""The tuning stage's choice: each tuned variant's trials ranked by the rule
of cnnjax.sweep.spec.Tuning, the first one's values kept for the seeds that
measure the claims, and what a reader needs to trust the choice: every
trial's numbers, the margin to the runner-up, and a flag when the choice lies
at the edge of a numeric grid (the best value may lie beyond it: extend the
grid).

The choice is a function of the trials' workdirs alone, derived again on
every `cnnjax sweep` (and written to DIR/tuning.json), so a finished stage is
never trained again and always gives the same choice. A trial is done when
every seed of it finished or diverged (exit 3, a NaN or Inf: an outcome of
that setting, ranked last); the stage is complete when every trial is done.
"""

import dataclasses
import shlex
import statistics

from cnnjax.sweep.results import FINISHED, RunResult, samples
from cnnjax.sweep.spec import METRICS, Run, Sweep, Tuning


@dataclasses.dataclass
class Trial:
  """One point of a variant's grid: its runs, one per trial seed."""

  variant: str
  name: str
  values: dict
  index: int  # Its place in the grid: the last tie-break.
  results: list[RunResult]

  @property
  def done(self) -> bool:
    return all(result.status == FINISHED or result.diverged for result in self.results)

  @property
  def diverged(self) -> bool:
    return any(result.diverged for result in self.results)

  @property
  def status(self) -> str:
    if self.diverged:
      return "diverged"
    unfinished = [result.status for result in self.results if result.status != FINISHED]
    return unfinished[0] if unfinished else FINISHED

  def mean(self, metric: str | None) -> float | None:
    """The mean of `metric` over the finished seeds (a miss of the target
    counting as the epochs run); None without a value."""
    values = [value for value, _ in samples(self.results, metric)] if metric else []
    return statistics.fmean(values) if values else None

  def misses(self, metric: str) -> int:
    """Seeds that never reached the target (for epochs_to_target)."""
    return sum(censored for _, censored in samples(self.results, metric))

  @property
  def train_time_s(self) -> float:
    return sum(result.train_time_s or 0.0 for result in self.results)


def _infinite_if_none(value: float | None) -> float:
  return float("inf") if value is None else value


def rank(trials: list[Trial], tuning: Tuning) -> list[Trial]:
  """The trials best first, by the tie rule of cnnjax.sweep.spec.Tuning."""
  def key(trial: Trial):
    return (trial.diverged, trial.misses(tuning.metric),
            _infinite_if_none(trial.mean(tuning.metric)),
            _infinite_if_none(trial.mean(tuning.tie_break)), trial.index)
  return sorted(trials, key=key)


def value_text(metric: str, value: float | None) -> str:
  if value is None:
    return "—"
  return f"{value:.2f} epochs" if metric == "epochs_to_target" else f"{100 * value:.2f}%"


def _delta_text(metric: str, delta: float) -> str:
  return f"{delta:+.2f} epochs" if metric == "epochs_to_target" else f"{100 * delta:+.2f} points"


@dataclasses.dataclass
class Choice:
  """A tuned variant's values, and why."""

  variant: str
  trial: Trial
  ranking: list[Trial]  # Best first; ranking[0] is `trial`.
  margin: float | None  # The runner-up's metric minus the chosen one's (None: not comparable).
  margin_text: str
  at_edge: list[str]  # Numeric keys whose chosen value is the smallest or largest tried.
  notes: list[str]

  @property
  def values(self) -> dict:
    return self.trial.values


def _margin(best: Trial, runner: Trial | None, tuning: Tuning) -> tuple[float | None, str]:
  metric, tie_break = tuning.metric, tuning.tie_break
  if runner is None:
    return None, "the only trial"
  if runner.diverged:
    return None, f"the runner-up, {runner.name}, diverged"
  if runner.misses(metric) != best.misses(metric):
    return None, (f"the runner-up, {runner.name}, missed the target in {runner.misses(metric)} "
                  f"of {len(runner.results)} seeds")
  ours, theirs = best.mean(metric), runner.mean(metric)
  if ours != theirs and ours is not None and theirs is not None:
    return theirs - ours, (f"the runner-up, {runner.name}: {value_text(metric, theirs)} "
                           f"({_delta_text(metric, theirs - ours)})")
  tied = f"tied with {runner.name} at {value_text(metric, ours)}"
  ours_b, theirs_b = best.mean(tie_break), runner.mean(tie_break)
  if tie_break and ours_b != theirs_b and ours_b is not None and theirs_b is not None:
    return 0.0, (f"{tied}; the lower {METRICS[tie_break]} decided, {value_text(tie_break, ours_b)}"
                 f" against {value_text(tie_break, theirs_b)}")
  return 0.0, f"{tied}; listed first in the grid"


def _at_edge(tuning: Tuning, variant: str, values: dict) -> list[str]:
  edges = []
  for key, tried in tuning.grid_of(variant).items():
    numbers = [value for value in tried
               if isinstance(value, (int, float)) and not isinstance(value, bool)]
    if len(numbers) == len(tried) and len(set(numbers)) > 1 and values[key] in (
        min(numbers), max(numbers)):
      edges.append(key)
  return edges


def choose(trials: list[Trial], tuning: Tuning) -> Choice:
  """The choice among one variant's trials, every one done."""
  ranking = rank(trials, tuning)
  best = ranking[0]
  margin, margin_text = _margin(best, ranking[1] if len(ranking) > 1 else None, tuning)
  at_edge = _at_edge(tuning, best.variant, best.values)
  notes = []
  if all(trial.diverged for trial in trials):
    notes.append("every trial diverged; the first in the grid is kept")
  elif tuning.metric == "epochs_to_target" and all(
      trial.misses(tuning.metric) == len(trial.results) for trial in trials if not trial.diverged):
    notes.append("no trial reached the target, so the tie rule chose")
  for key in at_edge:
    side = "largest" if best.values[key] == max(tuning.grid_of(best.variant)[key]) else "smallest"
    notes.append(f"at the edge of the grid: the {side} {key} tried; extend the grid")
  return Choice(best.variant, best, ranking, margin, margin_text, at_edge, notes)


@dataclasses.dataclass
class Outcome:
  """The tuning stage as its trials' workdirs show it."""

  tuning: Tuning
  trials: dict[str, list[Trial]]  # By variant, in grid order; only tuned variants.
  choices: dict[str, Choice]  # By variant, once the stage is complete.

  @property
  def complete(self) -> bool:
    return all(trial.done for trials in self.trials.values() for trial in trials)

  @property
  def chosen(self) -> dict[str, dict]:
    return {variant: choice.values for variant, choice in self.choices.items()}

  @property
  def train_time_s(self) -> float:
    return sum(trial.train_time_s for trials in self.trials.values() for trial in trials)


def outcome(sweep: Sweep, runs: list[Run], results: list[RunResult]) -> Outcome:
  """The stage from its planned trial runs (cnnjax.sweep.spec.plan_trials) and
  what their workdirs show (cnnjax.sweep.results.read_run)."""
  tuning = sweep.tuning
  by_trial = {}
  for run, result in zip(runs, results):
    by_trial.setdefault((run.variant, run.trial), []).append(result)
  trials = {}
  for variant in sweep.variants:
    points = tuning.trials_of(variant.name)
    if points:
      trials[variant.name] = [Trial(variant.name, name, values, index, by_trial[variant.name, name])
                              for index, (name, values) in enumerate(points)]
  stage = Outcome(tuning, trials, {})
  if stage.complete:
    stage.choices = {variant: choose(variant_trials, tuning)
                     for variant, variant_trials in trials.items()}
  return stage


# --- Outputs ---------------------------------------------------------------------

CSV_FIELDS = ("variant", "trial", "values", "status", "seeds", "finished", "metric", "metric_mean",
              "target_missed", "tie_break_mean", "train_time_s", "rank", "chosen")


def rows(stage: Outcome) -> list[dict]:
  """One row per trial with CSV_FIELDS, raw numbers, None where unknown."""
  tuning, found = stage.tuning, []
  for variant, trials in stage.trials.items():
    choice = stage.choices.get(variant)
    places = {trial.name: place for place, trial in enumerate(choice.ranking, 1)} if choice else {}
    for trial in trials:
      found.append({
          "variant": variant, "trial": trial.name,
          "values": ", ".join(f"{key}={value!r}" for key, value in trial.values.items()),
          "status": trial.status, "seeds": len(trial.results),
          "finished": sum(result.status == FINISHED for result in trial.results),
          "metric": tuning.metric, "metric_mean": trial.mean(tuning.metric),
          "target_missed": (trial.misses(tuning.metric)
                            if tuning.metric == "epochs_to_target" else None),
          "tie_break_mean": trial.mean(tuning.tie_break), "train_time_s": trial.train_time_s,
          "rank": places.get(trial.name), "chosen": bool(choice and choice.trial is trial)})
  return found


def describe(tuning: Tuning, target: float | None) -> str:
  """The stage's rule in a sentence."""
  what = METRICS[tuning.metric]
  if tuning.metric == "epochs_to_target":
    what = f"the fewest epochs to {100 * target:.2f}% training error"
  else:
    what = f"the lowest {what}"
  trial = ", ".join(f"{key}={value!r}" for key, value in tuning.trial_overrides.items())
  seeds = ", ".join(map(str, tuning.trial_seeds))
  ties = (f"then the lower {METRICS[tuning.tie_break]}, " if tuning.tie_break else "")
  return (f"Each variant keeps the trial with {what} (mean over its seed{'s' * (tuning.seeds > 1)}"
          f" {seeds}; a diverged trial ranks last" +
          ("; fewer misses of the target first, a miss counting as the epochs run"
           if tuning.metric == "epochs_to_target" else "") +
          f"). Ties: {ties}then the grid's order. Trials train "
          f"{'with ' + trial if trial else 'as the seeds do'}.")


def as_json(stage: Outcome, target: float | None) -> dict:
  tuning = stage.tuning
  return {
      "metric": tuning.metric, "tie_break": tuning.tie_break, "trial_seeds": tuning.trial_seeds,
      "trial_overrides": tuning.trial_overrides, "rule": describe(tuning, target),
      "complete": stage.complete,
      "grids": {variant: {key: list(values) for key, values in tuning.grid_of(variant).items()}
                for variant in stage.trials},
      "choices": {variant: {"values": choice.values, "trial": choice.trial.name,
                            "metric_mean": choice.trial.mean(tuning.metric),
                            "margin": choice.margin, "margin_text": choice.margin_text,
                            "at_edge": choice.at_edge, "notes": choice.notes}
                  for variant, choice in stage.choices.items()},
      "trials": rows(stage),
      "runs": [{"variant": result.variant, "trial": result.trial, "seed": result.seed,
                "workdir": result.workdir, "status": result.status,
                "exit_status": result.exit_status, "reason": result.reason,
                "command_line": shlex.join(result.command)}
               for trials in stage.trials.values() for trial in trials
               for result in trial.results],
  }
