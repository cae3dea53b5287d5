"""A claim's effect with its confidence interval, and how many seeds would
likely settle it: the statistics behind the sweep's verdicts (the rule itself
is in cnnjax.sweep.summary).

A claim says that variant `better` has a lower metric than `worse`. Its effect
is, as the claim is stated,
  a difference: mean(worse) - mean(better), or
  a ratio: worse / better, as the ratio of the geometric means: the
    difference of the mean log values, exponentiated. Epochs to a target are
    positive and skewed, and a paper's "six times faster" is a ratio, so the
    log scale is where a difference of means is the natural model.

**The interval: Welch's t interval**, at LEVEL (two-sided), on the values or
their logs: d ± t(df) · sqrt(s_b²/n_b + s_w²/n_w), with the
Welch-Satterthwaite degrees of freedom. Not a bootstrap: at the 3-10 seeds a
sweep has, resampling seeds sees only the spread between the seeds at hand
(10 distinct resamples of 3 seeds) and has no small-sample correction, so its
intervals are too narrow. Simulated with scripts/sweep_interval_checks.py
(normal seeds, standard deviations 1 and 2, 95% intervals for the
difference, 4,000 sweeps): Welch's interval covered the true difference in
95.7% of them with 3 seeds per variant, 95.5% with 5 and 95.0% with 10; the
percentile bootstrap in 78.5%, 86.5% and 91.5%; the BCa bootstrap (800
sweeps) in 77.5%, 84.9% and 92.1%. Welch's
interval assumes each variant's values (or logs) are roughly normal across
seeds and allows their spreads to differ. When neither variant varies at all
(every seed measured the same value) the interval is the estimate itself.

**Censored seeds.** A seed that never reached the target training error has
no epochs-to-target, only a bound: more than the epochs it ran, B. It counts
as B. The values then are a complete sample of min(X, B), whose mean is at
most that of X, so the interval computed from them is a valid interval for a
quantity that understates the censored variant: when only `worse` has
censored seeds, the true effect is at least that quantity, the interval's low
end keeps its meaning and its high end is dropped (open above); when only
`better` has, the high end keeps its meaning and the low end is dropped (open
below); when both have, the interval is open both ways and nothing is settled
(longer runs would be, not more seeds).

**Seeds to settle** an inconclusive claim: the smallest n (seeds per variant)
at which a two-sided Welch test at LEVEL of "the effect equals the paper's
value P" would reject it with probability POWER, taking the measured effect
and standard deviations as the truth: |d - P| >= (t(1 - α/2, df) + t(POWER,
df)) · sqrt((s_b² + s_w²) / n), df the Welch-Satterthwaite value at n seeds
each. It is an estimate from few seeds, not a promise. None when more seeds
cannot settle it: both variants censored, the known end of a censored
interval on the side of P away from the estimate, no spread to scale, or
more than MAX_SEEDS_ESTIMATE.

Imports SciPy's special functions (Student's t quantiles) lazily, when an
interval is computed.
"""

import dataclasses
import math
import statistics

LEVEL = 0.95
POWER = 0.8
METHOD = "Welch's t interval"
MAX_SEEDS_ESTIMATE = 1000

# A seed's value of the claim's metric, and whether it is censored (a lower
# bound: the seed never reached the target within that many epochs).
Sample = tuple[float, bool]


@dataclasses.dataclass(frozen=True)
class Interval:
  """The effect (worse - better, or worse / better) and its interval at `level`;
  an end is None where censored seeds leave it open."""

  estimate: float
  low: float | None
  high: float | None
  level: float
  degrees_of_freedom: float | None  # None: neither variant varies; the interval is the point.
  ratio: bool

  @property
  def method(self) -> str:
    return f"{METHOD} on log values" if self.ratio else METHOD


def t_quantile(probability: float, degrees_of_freedom: float) -> float:
  """Student's t quantile."""
  from scipy import special

  return float(special.stdtrit(degrees_of_freedom, probability))


def unusable(better: list[Sample], worse: list[Sample], ratio: bool) -> str:
  """Why no interval can be computed from these seeds ("" if one can)."""
  if len(better) < 2 or len(worse) < 2:
    return "fewer than 2 finished seeds of a variant"
  if ratio and any(value <= 0 for value, _ in better + worse):
    return "a ratio needs positive values, and a seed measured 0"
  return ""


def _scaled(samples: list[Sample], ratio: bool) -> list[float]:
  return [math.log(value) if ratio else value for value, _ in samples]


def _welch(better: list[float], worse: list[float]) -> tuple[float, float, float | None]:
  """(worse - better at the means, its standard error, Welch's degrees of freedom)."""
  variance_b = statistics.variance(better) / len(better)
  variance_w = statistics.variance(worse) / len(worse)
  error = math.sqrt(variance_b + variance_w)
  denominator = variance_b ** 2 / (len(better) - 1) + variance_w ** 2 / (len(worse) - 1)
  freedom = (variance_b + variance_w) ** 2 / denominator if denominator > 0 else None
  return statistics.fmean(worse) - statistics.fmean(better), error, freedom


def effect_interval(better: list[Sample], worse: list[Sample], ratio: bool,
                    level: float = LEVEL) -> Interval:
  """The effect and Welch's interval at `level` (see the module docstring);
  the seeds must be usable (see `unusable`)."""
  difference, error, freedom = _welch(_scaled(better, ratio), _scaled(worse, ratio))
  half = 0.0 if freedom is None else t_quantile(0.5 + level / 2, freedom) * error
  low, high = difference - half, difference + half
  if ratio:
    difference, low, high = math.exp(difference), math.exp(low), math.exp(high)
  censored_b = any(censored for _, censored in better)
  censored_w = any(censored for _, censored in worse)
  return Interval(difference, None if censored_b else low, None if censored_w else high, level,
                  freedom, ratio)


# Why `seeds_to_settle` has no number.
BOTH_CENSORED, CENSORED_SIDE, NO_SPREAD, AT_THRESHOLD, TOO_MANY = (
    "both censored", "censored side", "no spread", "at threshold", "too many")


def seeds_to_settle(better: list[Sample], worse: list[Sample], ratio: bool, threshold: float,
                    level: float = LEVEL, power: float = POWER) -> tuple[int | None, str]:
  """(seeds per variant that would likely settle whether the effect is beyond
  `threshold`, "") or (None, why not: one of the reasons above); see the
  module docstring."""
  censored_b = any(censored for _, censored in better)
  censored_w = any(censored for _, censored in worse)
  values_b, values_w = _scaled(better, ratio), _scaled(worse, ratio)
  gap = statistics.fmean(values_w) - statistics.fmean(values_b) - (
      math.log(threshold) if ratio else threshold)
  if censored_b and censored_w:
    return None, BOTH_CENSORED
  if (censored_w and gap <= 0) or (censored_b and gap >= 0):
    return None, CENSORED_SIDE
  variance_b, variance_w = statistics.variance(values_b), statistics.variance(values_w)
  spread = variance_b + variance_w
  if spread == 0:
    return None, NO_SPREAD
  if gap == 0:
    return None, AT_THRESHOLD
  for seeds in range(max(len(better), len(worse)) + 1, MAX_SEEDS_ESTIMATE + 1):
    freedom = (seeds - 1) * spread ** 2 / (variance_b ** 2 + variance_w ** 2)
    needed = t_quantile(0.5 + level / 2, freedom) + t_quantile(power, freedom)
    if abs(gap) >= needed * math.sqrt(spread / seeds):
      return seeds, ""
  return None, TOO_MANY
