"""The simulations behind the sweep's statistics (cnnjax/sweep/intervals.py
and cnnjax/sweep/stages.py), with the sweep's own code where it has one:

1. Coverage of 95% intervals for a difference of means at 3, 5 and 10 seeds
   per variant (normal seeds, standard deviations 1 and 2): Welch's t
   interval (cnnjax.sweep.intervals), the percentile bootstrap and the BCa
   bootstrap (scipy.stats.bootstrap).
2. `--seeds auto` (its schedule 3, 6, 10, its next-round rule and its
   Bonferroni level, cnnjax.sweep.stages) against an effect exactly at the
   paper's value (how often a claim is settled, wrongly) and against effects
   of 1 and 1.5 standard deviations (how often it is settled, and with how
   many seeds), beside one look at 95% per round and a fixed 10 seeds.

  python scripts/sweep_interval_checks.py [--repeats N]

Takes about a minute on one core with the default repeats. Prints the
figures the docstrings quote.
"""

import argparse

import numpy as np
from scipy import stats

from cnnjax.sweep import intervals, stages
from cnnjax.sweep import summary as sweep_summary


def _samples(values):
  return [(float(value), False) for value in values]


def _welch(better, worse, level=0.95):
  interval = intervals.effect_interval(_samples(better), _samples(worse), False, level)
  return interval.low, interval.high


def _percentile(better, worse, generator, resamples=2000):
  b = better[generator.integers(0, len(better), (resamples, len(better)))].mean(axis=1)
  w = worse[generator.integers(0, len(worse), (resamples, len(worse)))].mean(axis=1)
  return tuple(np.quantile(w - b, [0.025, 0.975]))


def _bca(better, worse, generator):
  result = stats.bootstrap((better, worse), lambda b, w, axis=-1: w.mean(axis) - b.mean(axis),
                           method="BCa", n_resamples=1000, random_state=generator,
                           vectorized=True)
  return result.confidence_interval.low, result.confidence_interval.high


def coverage(repeats: int) -> None:
  generator = np.random.default_rng(0)
  for seeds in (3, 5, 10):
    covered = {"Welch": 0, "percentile bootstrap": 0, "BCa bootstrap": 0}
    bca_repeats = max(repeats // 5, 1)
    for repeat in range(repeats):
      better, worse = generator.normal(0, 1, seeds), generator.normal(1, 2, seeds)
      for name, (low, high) in (("Welch", _welch(better, worse)),
                                ("percentile bootstrap", _percentile(better, worse, generator))):
        covered[name] += low <= 1 <= high
      if repeat < bca_repeats:
        low, high = _bca(better, worse, generator)
        covered["BCa bootstrap"] += low <= 1 <= high
    print(f"{seeds} seeds: " + ", ".join(
        f"{name} {covered[name] / (bca_repeats if name.startswith('BCa') else repeats):.1%}"
        for name in covered))


def _auto(effect: float, seeds: stages.Seeds, generator, adjusted: bool = True):
  """One sweep of `--seeds auto` on one claim "worse - better > 0" whose true
  effect is `effect` (sd 1): (settled, seeds used)."""
  better = generator.normal(0, 1, seeds.maximum)
  worse = generator.normal(effect, 1, seeds.maximum)
  level = seeds.level if adjusted else intervals.LEVEL
  count = seeds.schedule[0]
  while True:
    low, high = _welch(better[:count], worse[:count], level)
    if low > 0 or high < 0:
      return True, count
    estimate, _ = intervals.seeds_to_settle(_samples(better[:count]), _samples(worse[:count]),
                                            False, 0.0, level)
    claim = sweep_summary.ClaimResult(None, sweep_summary.INCONCLUSIVE, "", "",
                                      seeds_to_settle=estimate)
    following, _, _ = stages._round_outcome(sweep_summary.Summary("", None, count, [], [claim]),
                                            seeds, count)
    if following is None:
      return False, count
    count = following


def sequential(repeats: int) -> None:
  seeds = stages.Seeds()
  print(f"--seeds auto: schedule {seeds.schedule}, each interval at {seeds.level:.2%}")
  for effect in (0.0, 1.0, 1.5):
    for adjusted in (True, False):
      generator = np.random.default_rng(1)
      outcomes = [_auto(effect, seeds, generator, adjusted) for _ in range(repeats)]
      settled = np.mean([settled for settled, _ in outcomes])
      used = np.mean([count for _, count in outcomes])
      name = f"at {seeds.level:.1%} a look" if adjusted else "at 95% a look"
      print(f"  true effect {effect} sd, {name}: settled {settled:.1%}, mean seeds {used:.1f}")
    generator = np.random.default_rng(2)
    fixed = np.mean([(lambda low, high: low > 0 or high < 0)(*_welch(
        generator.normal(0, 1, 10), generator.normal(effect, 1, 10))) for _ in range(repeats)])
    print(f"  true effect {effect} sd, fixed 10 seeds at 95%: settled {fixed:.1%}")


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--repeats", type=int, default=4000)
  repeats = parser.parse_args().repeats
  coverage(repeats)
  sequential(repeats)


if __name__ == "__main__":
  main()
