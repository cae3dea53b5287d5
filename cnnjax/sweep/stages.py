"""A sweep's stages, advanced from what is on disk.

A sweep is a small state machine whose state is its runs' workdirs:

  tuning    (with a Tuning) every trial of cnnjax.sweep.spec.plan_trials;
            complete when each is done (cnnjax.sweep.tuning), then
  choice    each tuned variant's values, derived from the trials (and written
            to tuning.json), never trained again;
  seeds     the runs that measure the claims, seeds 0..N-1 of every
            variant with its chosen values; with `--seeds auto`, in rounds;
  done      every run of the last round finished.

`derive` reads the workdirs and says which stage the sweep is in and which
runs that stage still needs; it writes nothing. `advance` hands those runs
to a launcher, writes the summary, and derives again, until the sweep is done
or the launcher returns without waiting for its runs (a scheduler's launcher
submits and returns: the next `cnnjax sweep` finds what they left and goes
on). A launcher is anything with

  waits: bool   # True: launch returns when the runs have ended
  name: str     # how the sweep's history names it ("local")
  launch(runs, refresh) -> int | None

where `refresh(running)` rewrites the summary while runs train (`running`:
their names), and the result is None when the launcher is done with the runs
(trained, or submitted), or an exit status that stops the sweep now (a
signal). The sweep never retrains a run that finished, and never relaunches,
in the same invocation, a run its launcher already had: a run that failed
stops the sweep (exit 1; 75 when it was preempted), as a failing run of the
seeds always did; a trial that diverged is an outcome, not a failure.

**`--seeds auto`**: the seeds come in rounds, and a round is added only while
some claim is inconclusive. Rounds stop at the counts of `Seeds.schedule`:
3, then doubling, up to `--max-seeds` (3, 6, 10 for the default 10). After
a round, the next is the first count of the schedule at or above the largest
"seeds to settle" estimate of the inconclusive claims (capped at the
maximum; the next count where no claim has an estimate). It stops when every
claim is settled or the maximum is reached, and the summary says which.
Looking at an interval after every round and stopping when it first
excludes the paper's value is a sequential test: at 95% a look, a claim whose
true effect is exactly the paper's value was settled, wrongly, in 7.5% of
simulated sweeps with the default schedule, not 5%. So with `--seeds auto`
every interval is at 1 - 0.05 / K, K the number of counts in the schedule
(Bonferroni: 98.3% for 3, 6, 10), which bounds that chance by 5% however the
rounds fall (2.8% simulated). The price is power: with a true effect of one
standard deviation beyond the paper's value, 37.8% of the simulated sweeps
settled it, against 58.3% at 95% a look and 56.5% with a fixed 10 seeds at
95% (scripts/sweep_interval_checks.py, 4,000 sweeps each). `--seeds N`
keeps one look at 95%. The rounds' claims are judged on the seeds below each
round's count alone, so the rounds, like the choice, are derived again
identically from the workdirs.
"""

import dataclasses
import datetime
import json
import pathlib
import time
from typing import Callable, Protocol

from cnnjax.errors import PREEMPTED_STATUS
from cnnjax.sweep import intervals
from cnnjax.sweep import summary as summary_lib
from cnnjax.sweep import tuning as tuning_lib
from cnnjax.sweep.results import FINISHED, read_run
from cnnjax.sweep.spec import Run, Sweep, plan_runs, plan_trials, resolve_config

TUNING, SEEDS, DONE = "tuning", "seeds", "done"
AUTO_FIRST_SEEDS = 3
DEFAULT_MAX_SEEDS = 10
HISTORY_FILE = "invocations.jsonl"


@dataclasses.dataclass(frozen=True)
class Seeds:
  """`--seeds N` (`fixed`) or `--seeds auto` (rounds up to `maximum`)."""

  fixed: int | None = None
  maximum: int = DEFAULT_MAX_SEEDS

  @property
  def schedule(self) -> list[int]:
    """The seed counts the sweep may stop at."""
    if self.fixed is not None:
      return [self.fixed]
    counts = [min(AUTO_FIRST_SEEDS, self.maximum)]
    while counts[-1] < self.maximum:
      counts.append(min(2 * counts[-1], self.maximum))
    return counts

  @property
  def level(self) -> float:
    """Each interval's level: 95%, Bonferroni-adjusted over the looks of `auto`."""
    return 1 - (1 - intervals.LEVEL) / len(self.schedule)

  def as_json(self) -> dict:
    if self.fixed is not None:
      return {"mode": "fixed", "seeds": self.fixed, "level": self.level}
    return {"mode": "auto", "maximum": self.maximum, "schedule": self.schedule,
            "level": self.level}


class Setup:
  """What a `cnnjax sweep` command asks for; plans its runs, resolving each
  distinct config once."""

  def __init__(self, spec: str, sweep: Sweep, seeds: Seeds, overrides: list[tuple[str, str]],
               workdir: pathlib.Path):
    self.spec, self.sweep, self.seeds = spec, sweep, seeds
    self.overrides, self.workdir = list(overrides), workdir
    self._configs = {}
    self._trials = None

  def _resolve(self, spec: str, arguments: list[tuple[str, str]]):
    key = (spec, tuple(arguments))
    if key not in self._configs:
      self._configs[key] = resolve_config(spec, arguments)
    return self._configs[key]

  def trials(self) -> list[Run]:
    if self._trials is None:
      self._trials = plan_trials(self.spec, self.sweep, self.overrides, self.workdir,
                                 self._resolve)
    return self._trials

  def runs(self, seeds: int, chosen: dict[str, dict] | None = None) -> list[Run]:
    return plan_runs(self.spec, self.sweep, seeds, self.overrides, self.workdir, chosen,
                     self._resolve)

  def check(self) -> list[Run]:
    """Plans (resolving and validating) a run of every variant and every
    trial, so a mistake stops the sweep before anything trains; returns them
    for the model check (cnnjax.sweep.spec.check_runs)."""
    return self.runs(1) + self.trials()


@dataclasses.dataclass
class State:
  """Where a sweep is: its stage, the runs that stage still needs, and its summary."""

  stage: str
  pending: list[Run]
  summary: summary_lib.Summary
  seeds: int  # The seeds of the current (or last) round.
  done: int  # Of the stage's runs (done: of all the sweep's runs).
  total: int


def _round_outcome(summary: summary_lib.Summary, seeds: Seeds, count: int
                   ) -> tuple[int | None, str, str]:
  """(the next round's seed count or None, the round's outcome, why it stopped)."""
  open_claims = [claim for claim in summary.claims if claim.verdict not in summary_lib.SETTLED]
  settled = f"{len(summary.claims) - len(open_claims)} of {len(summary.claims)} claims settled"
  if not open_claims:
    why = (f"every claim settled at {count} seeds" if summary.claims else
           f"the sweep has no claims to settle; {count} seeds")
    return None, settled, why
  if count >= seeds.maximum:
    return None, settled, (f"the maximum of {seeds.maximum} seeds reached with "
                           f"{len(open_claims)} claim{'s' * (len(open_claims) > 1)} inconclusive")
  estimates = [claim.seeds_to_settle for claim in open_claims if claim.seeds_to_settle]
  wanted = min(max(estimates), seeds.maximum) if estimates else count + 1
  following = next(step for step in seeds.schedule if step >= max(wanted, count + 1))
  basis = (f"the largest estimate, {max(estimates)} seeds" if estimates else
           "no claim has an estimate")
  return following, f"{settled}; {basis}: on to {following} seeds", ""


def derive(setup: Setup, running: frozenset = frozenset()) -> State:
  """The sweep's state from its workdirs (see the module docstring); `running`
  names the runs a launcher is training now, for the summary."""
  sweep, spec, seeds = setup.sweep, setup.spec, setup.seeds
  context = dict(level=seeds.level, seeds_policy=seeds.as_json())
  trials = setup.trials()
  trial_results = [read_run(run, sweep.target_train_error, running=run.name in running)
                   for run in trials]
  stage = tuning_lib.outcome(sweep, trials, trial_results) if sweep.tuning else None
  done = sum(result.status == FINISHED or result.diverged for result in trial_results)
  if stage is not None and not stage.complete:
    pending = [run for run, result in zip(trials, trial_results)
               if not (result.status == FINISHED or result.diverged)]
    summary = summary_lib.summarize(
        sweep, [], spec, seeds=seeds.schedule[0], tuning=stage, **context,
        stage=f"Stage: tuning, {done} of {len(trials)} trials done.")
    return State(TUNING, pending, summary, seeds.schedule[0], done, len(trials))
  chosen = stage.chosen if stage else {}
  rounds, count = [], seeds.schedule[0]
  while True:
    runs = setup.runs(count, chosen)
    summary = summary_lib.summarize(sweep, runs, spec, running, count, tuning=stage,
                                    seed_rounds=rounds, **context)
    pending = [run for run, result in zip(runs, summary.runs) if result.status != FINISHED]
    finished = len(runs) - len(pending)
    if pending:
      summary.stage = (f"Stage: seeds 0 to {count - 1}, {finished} of {len(runs)} runs "
                       "finished.")
      return State(SEEDS, pending, summary, count, finished, len(runs))
    everything = len(trials) + len(runs)
    if seeds.fixed is not None:
      summary.stage = f"Stage: done, seeds 0 to {count - 1}."
      return State(DONE, [], summary, count, everything, everything)
    following, outcome, why = _round_outcome(summary, seeds, count)
    rounds.append({"seeds": count, "level": seeds.level, "outcome": outcome,
                   "verdicts": {claim.claim.text: claim.verdict for claim in summary.claims},
                   "next": following})
    if following is None:
      summary.stopped = why
      summary.stage = f"Stage: done, seeds 0 to {count - 1} (--seeds auto: {why})."
      return State(DONE, [], summary, count, everything, everything)
    count = following


# --- Advancing -------------------------------------------------------------------

class Launcher(Protocol):
  """Trains runs (see the module docstring)."""

  waits: bool
  name: str

  def launch(self, runs: list[Run], refresh: Callable[[frozenset], None]) -> int | None:
    ...


def _history(workdir: pathlib.Path) -> list[dict]:
  try:
    lines = (workdir / HISTORY_FILE).read_text().splitlines()
  except OSError:
    return []
  entries = []
  for line in lines:
    try:
      entries.append(json.loads(line))
    except ValueError:
      continue
  return [entry for entry in entries if isinstance(entry, dict)]


def wall_time(workdir: pathlib.Path, current: float = 0.0) -> float | None:
  """Seconds spent in this sweep's `cnnjax sweep` invocations (`current`: the
  running one's so far); None if a launcher that does not wait ran any."""
  entries = _history(workdir)
  if any(not entry.get("waits", True) for entry in entries):
    return None
  return sum(float(entry.get("seconds", 0.0)) for entry in entries) + current


def _stuck_status(state: State) -> int:
  """The exit status when runs the launcher had are still pending: 75 if
  they were all preempted (run again to resume), 1 if one failed."""
  if state.stage == TUNING:
    results = [result for trials in state.summary.tuning.trials.values() for trial in trials
               for result in trial.results if not trial.done]
  else:
    results = [result for result in state.summary.runs if result.status != FINISHED]
  stopped = [result for result in results if result.status == "stopped"]
  return PREEMPTED_STATUS if results and len(stopped) == len(results) else 1


def _announce(state: State, say: Callable[[str], None]) -> None:
  if state.stage == TUNING:
    say(f"tuning: {state.done} of {state.total} trials done; training {len(state.pending)}")
  else:
    say(f"seeds 0 to {state.seeds - 1}: {state.done} of {state.total} runs already finished; "
        f"training {len(state.pending)}")


def advance(setup: Setup, launcher: Launcher, say: Callable[[str], None] = print) -> int:
  """Runs the sweep's stages through `launcher` until it is done, a run fails,
  a signal stops it or the launcher returns without waiting; writes the
  summary after each step and returns the exit status."""
  started, start_time = time.monotonic(), datetime.datetime.now().isoformat(timespec="seconds")
  workdir = setup.workdir

  def write(state: State) -> None:
    state.summary.wall_time_s = wall_time(workdir, time.monotonic() - started)
    summary_lib.write(state.summary, workdir)

  launched, status, trained = frozenset(), 0, 0
  while True:
    state = derive(setup)
    write(state)
    if state.stage == DONE:
      if not trained:
        say(f"{state.total} of {state.total} runs already finished: nothing to train")
      break
    names = frozenset(run.name for run in state.pending)
    if names & launched:
      status = _stuck_status(state)
      break
    _announce(state, say)
    stopped = launcher.launch(state.pending, lambda running: write(derive(setup, running)))
    trained += len(state.pending)
    if stopped is not None:
      status = stopped
      write(derive(setup))
      break
    if not launcher.waits:
      write(derive(setup))
      say("submitted; run the same command again to advance the sweep once they have ended")
      break
    launched = names
  with (workdir / HISTORY_FILE).open("a") as history:
    history.write(json.dumps({"started": start_time, "seconds": time.monotonic() - started,
                              "launcher": launcher.name, "waits": launcher.waits,
                              "trained": trained, "exit_status": status}) + "\n")
  say(f"summary: {workdir / 'summary.md'}")
  return status
