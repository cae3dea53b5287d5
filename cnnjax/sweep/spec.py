"""An ablation's vocabulary (Variant, Claim, Sweep) and its plan: which
runs it makes, each an ordinary training run.

Each (variant, seed) is an ordinary run in its own workdir, `DIR/<variant>/seed<k>`,
trained by `python -m cnnjax train` in a subprocess (log: `train.log` there),
so `cnnjax eval`, TensorBoard and every other tool work on it unchanged. The
sweep reads back only what runs write (`config.json`, `metrics.jsonl`,
`results.json`); the training loop knows nothing about sweeps. What the sweep
writes in DIR is described in cnnjax.sweep.summary; how runs are launched,
stopped and resumed in cnnjax.sweep.local; the command in cnnjax.sweep.command.

The ablation-file contract
--------------------------
An ablation file is an experiment file (`get_config(arg=None)` returning a
ConfigDict built on `cnnjax.config.base_config()`) that also defines

  get_sweep(arg=None) -> Sweep

Both receive the same ARG of `--config FILE:ARG` (neither is called with an
argument when there is none). The vocabulary, imported from this module:

- `Variant(name, overrides)`: `overrides` maps dotted config keys of the
  file's `get_config(arg)` to values (`{"model.activation": "tanh",
  "optimizer.learning_rate": 0.01}`), applied as `--config.KEY=VALUE`
  arguments of `cnnjax train`, so each value must be a bool, int, float, str
  or tuple that survives that round trip. `model.name` may be varied too:
  the model's options are then the new model's. The name becomes a
  directory: letters, digits, `_` and `-`, starting with a letter or digit.
  `seed` is the sweep's (`--seeds`), never a variant's.
- `Claim(text, citation, metric, better, worse, ratio=None, difference=None)`:
  the paper predicts that variant `better` has a lower `metric` than variant
  `worse`, by at least `ratio` (worse / better) or at least `difference`
  (worse - better, errors as fractions: 0.02 is 2 points), or, with neither,
  just lower. A negative difference (or a ratio below 1) is a margin: "no
  worse than", e.g. strided convolutions lose at most 0.5 points to pooling is
  `Claim(..., better="strided", worse="pooling", difference=-0.005)`.
  `metric` is one of METRICS; lower is better for each.
- `Sweep(variants, claims=(), target_train_error=None, tuning=None)`: the
  variants (at least two), the claims, the training error that
  `epochs_to_target` counts epochs to (required when a claim or the tuning
  uses it; e.g. 0.25 for AlexNet §3.1), and the tuning stage, if any.
- `Tuning(metric, grid={}, variant_grids={}, trial_overrides={}, seeds=1)`:
  a stage before the seeds, for papers that tuned each variant ("the
  learning rates for each network were chosen independently", AlexNet
  §3.1). Each variant trains once per point of its grid (a trial, in
  `DIR/tuning/<variant>/<trial>/seed<k>`); the point whose trials rank first
  on `metric` becomes that variant's setting for every seed that measures the
  claims. `grid` maps dotted config keys to the values to try, for every
  variant (several keys: every combination); `variant_grids` maps a variant's
  name to a grid of its own instead (a variant with neither is not tuned). A
  trial trains with `trial_overrides` on top (say `{"num_epochs": 5.0}`: how
  long a trial trains), with `seeds` seeds of its own, TRIAL_SEED_BASE and
  up: never one of the seeds that measure, so no measured seed is the trial
  a value was chosen on. `metric` is one of TUNING_METRICS, lower is better:
  `epochs_to_target` (fastest to the sweep's target), `final
  train/top1_error`, or an eval error (which chooses on the eval split: do so
  only where the paper did, or where that split is a validation split).

  The tie rule: trials rank by the mean of `metric` over their seeds, lower
  first; a trial with a seed that diverged (exit 3: a NaN or Inf) ranks
  last; for `epochs_to_target` a trial whose seeds missed the target less
  often ranks first, a miss counting as the epochs it ran. Equal means are
  broken by the lower mean final training error (unless that is the metric),
  then by the grid's order: the point listed first wins. The summary shows
  every trial, the choice with its margin to the runner-up, and flags a
  choice at the edge of a numeric grid (extend the grid), see
  cnnjax.sweep.tuning.

Example (AlexNet §3.1, Figure 1):

  def get_sweep(arg=None):
    return Sweep(
        variants=[Variant("relu", {"model.activation": "relu"}),
                  Variant("tanh", {"model.activation": "tanh"})],
        claims=[Claim("a ReLU network reaches 25% training error six times faster "
                      "than the same network with tanh", "AlexNet §3.1, Figure 1",
                      metric="epochs_to_target", better="relu", worse="tanh", ratio=6.0)],
        target_train_error=0.25,
        tuning=Tuning("epochs_to_target",
                      grid={"optimizer.learning_rate": (1e-3, 3e-3, 1e-2, 3e-2)}))

The verdict on a claim (reproduced / not reproduced / inconclusive) is
defined in cnnjax.sweep.summary and in docs/ablations.md ("The verdict").

Importing this module imports neither JAX nor TensorFlow, so `cnnjax sweep
--help` and argument errors answer at once; the model check before training
(`check_runs`) imports JAX, lazily, and nothing imports TensorFlow.
"""

import dataclasses
import functools
import importlib.util
import itertools
import json
import pathlib
import re
import sys
from typing import TYPE_CHECKING, Callable

from cnnjax.errors import UserError

if TYPE_CHECKING:  # Imported by cnnjax.config when runs are planned, not by `--help`.
  import ml_collections

DEFAULT_SEEDS = 3
# What a claim can be about; lower is better for every one. Training errors
# are those logged by `cnnjax train`: means over a log interval, with dropout
# and augmentation on.
METRICS = {
    "epochs_to_target": "epochs to the target training error",
    "final eval/top1_error": "final eval top-1 error",
    "best eval/top1_error": "best eval top-1 error",
    "final train/top1_error": "final training top-1 error",
    "train-test gap": "train-test gap (final eval minus final training top-1 error)",
}
# Ratios need a metric that is positive; the gap can be negative.
_RATIO_METRICS = {"epochs_to_target", "final eval/top1_error", "best eval/top1_error",
                  "final train/top1_error"}
_VARIANT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
# What a tuning stage may rank trials by: not the gap, which is not a
# quality to minimise.
TUNING_METRICS = ("epochs_to_target", "final train/top1_error", "final eval/top1_error",
                  "best eval/top1_error")
TIE_BREAK_METRIC = "final train/top1_error"
# A tuning trial's seeds: apart from the measured seeds 0..N-1 (see Tuning).
TRIAL_SEED_BASE = 1000
# A trial's directory name: the characters kept from its values' text.
_UNSAFE = re.compile(r"[^A-Za-z0-9._=,+-]")


@dataclasses.dataclass(frozen=True)
class Variant:
  """One arm of an ablation: `overrides` (dotted config keys) on the file's config."""

  name: str
  overrides: dict = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    if not isinstance(self.name, str) or not _VARIANT_NAME.fullmatch(self.name):
      raise UserError(f"variant name {self.name!r} cannot be a directory name; use letters, "
                      "digits, '_' and '-' (at most 64, starting with a letter or digit)")
    for key, value in self.overrides.items():
      if key == "seed":
        raise UserError(f"variant {self.name!r} sets seed; seeds are the sweep's (--seeds N)")
      command_line_text(value, f"variant {self.name!r}: {key}")

  @property
  def arguments(self) -> list[tuple[str, str]]:
    """The overrides as `--config.KEY=VALUE` pairs (key, text)."""
    return [(key, command_line_text(value, key)) for key, value in self.overrides.items()]


@dataclasses.dataclass(frozen=True)
class Claim:
  """A paper's prediction: `better` has a lower `metric` than `worse`, by at
  least `ratio` (worse / better) or `difference` (worse - better), or at all."""

  text: str
  citation: str
  metric: str
  better: str
  worse: str
  ratio: float | None = None
  difference: float | None = None

  def __post_init__(self):
    if self.metric not in METRICS:
      raise UserError(f"claim {self.text!r}: unknown metric {self.metric!r}; choose one of: "
                      f"{', '.join(METRICS)}")
    if self.better == self.worse:
      raise UserError(f"claim {self.text!r} compares variant {self.better!r} with itself")
    if self.ratio is not None and self.difference is not None:
      raise UserError(f"claim {self.text!r} gives both a ratio and a difference; give one")
    if self.ratio is not None and (self.ratio <= 0 or self.metric not in _RATIO_METRICS):
      raise UserError(f"claim {self.text!r}: a ratio must be positive and about one of "
                      f"{', '.join(sorted(_RATIO_METRICS))}")


def effect_text(value: float, *, ratio: bool, metric: str) -> str:
  """An effect or a threshold as a claim states it: a ratio worse / better
  ("1.09x"), a difference worse - better in epochs ("+0.50 epochs") or in
  error points ("+2.10 points"). The sweep's summary and `cnnjax report
  --claims` both word effects so."""
  if ratio:
    return f"{value:.2f}x"
  if metric == "epochs_to_target":
    return f"{value:+.2f} epochs"
  return f"{100 * value:+.2f} points"


def _grid(grid, where: str) -> dict[str, tuple]:
  """`grid` (dotted key: values) checked, its values as tuples."""
  if not isinstance(grid, dict):
    raise UserError(f"tuning: {where} must map dotted config keys to the values to try, got "
                    f"{type(grid).__name__}")
  checked = {}
  for key, values in grid.items():
    if key == "seed":
      raise UserError("tuning: seed cannot be tuned; seeds are the sweep's (--seeds)")
    values = tuple(values) if isinstance(values, (tuple, list)) else (values,)
    if not values:
      raise UserError(f"tuning: the grid of {key} ({where}) is empty; give the values to try")
    texts = [command_line_text(value, f"tuning: {key}") for value in values]
    repeated = sorted({text for text in texts if texts.count(text) > 1})
    if repeated:
      raise UserError(f"tuning: the grid of {key} ({where}) repeats {', '.join(repeated)}")
    checked[key] = values
  return checked


@dataclasses.dataclass(frozen=True)
class Tuning:
  """A tuning stage: each variant's grid tried (a trial per point), the point
  whose trials rank first on `metric` kept for the seeds (see the module
  docstring for the rule)."""

  metric: str
  grid: dict = dataclasses.field(default_factory=dict)
  variant_grids: dict = dataclasses.field(default_factory=dict)
  trial_overrides: dict = dataclasses.field(default_factory=dict)
  seeds: int = 1

  def __post_init__(self):
    if self.metric not in TUNING_METRICS:
      raise UserError(f"tuning: unknown metric {self.metric!r}; choose one of: "
                      f"{', '.join(TUNING_METRICS)}")
    object.__setattr__(self, "grid", _grid(self.grid, "grid"))
    if not isinstance(self.variant_grids, dict):
      raise UserError("tuning: variant_grids must map variant names to grids")
    object.__setattr__(self, "variant_grids", {
        name: _grid(grid, f"variant_grids[{name!r}]")
        for name, grid in self.variant_grids.items()})
    if not self.grid and not any(self.variant_grids.values()):
      raise UserError("tuning: the grid is empty; give grid={KEY: VALUES} for every variant, "
                      "or variant_grids={VARIANT: {KEY: VALUES}}")
    if isinstance(self.seeds, bool) or not isinstance(self.seeds, int) or self.seeds < 1:
      raise UserError(f"tuning: seeds={self.seeds!r} must be a positive integer")
    for key, value in self.trial_overrides.items():
      command_line_text(value, f"tuning: trial_overrides: {key}")
      if key == "seed":
        raise UserError("tuning: trial_overrides sets seed; a trial's seeds are the stage's")
      if any(key in grid for grid in (self.grid, *self.variant_grids.values())):
        raise UserError(f"tuning: trial_overrides sets {key}, which the grid searches")
    for name in self.variant_grids:
      self.trials_of(name)  # Trial names that would share a directory are refused now.
    self.trials_of(None)

  @property
  def tie_break(self) -> str | None:
    """The metric that breaks ties of `metric` (None: the grid's order)."""
    return None if self.metric == TIE_BREAK_METRIC else TIE_BREAK_METRIC

  @property
  def trial_seeds(self) -> list[int]:
    return [TRIAL_SEED_BASE + index for index in range(self.seeds)]

  def grid_of(self, variant: str | None) -> dict[str, tuple]:
    """The grid `variant` is tuned on ({}: not tuned)."""
    return self.variant_grids.get(variant, self.grid)

  @property
  def keys(self) -> set[str]:
    return {key for grid in (self.grid, *self.variant_grids.values()) for key in grid}

  def trials_of(self, variant: str | None) -> list[tuple[str, dict]]:
    """(name, {key: value}) per point of the variant's grid, in grid order
    (the first key varying slowest). The name is the trial's directory:
    `learning_rate=0.001` (`key=value` pairs, comma-separated, each key by its
    last part unless two keys share it)."""
    grid = self.grid_of(variant)
    if not grid:
      return []
    lasts = [key.rpartition(".")[2] for key in grid]
    labels = [last if lasts.count(last) == 1 else key for key, last in zip(grid, lasts)]
    trials, names = [], {}
    for point in itertools.product(*grid.values()):
      values = dict(zip(grid, point))
      name = _UNSAFE.sub("_", ",".join(f"{label}={command_line_text(value, key)}"
                                       for label, (key, value) in zip(labels, values.items())))
      if name in names or len(name) > 200:
        raise UserError(f"tuning: the trials {names.get(name, values)} and {values} would share "
                        f"the directory {name[:200]!r}; use values whose text differs")
      names[name] = values
      trials.append((name, values))
    return trials


@dataclasses.dataclass(frozen=True)
class Sweep:
  """An ablation: its variants, the paper's claims about them, the training
  error that `epochs_to_target` counts epochs to, and its tuning stage."""

  variants: tuple[Variant, ...]
  claims: tuple[Claim, ...] = ()
  target_train_error: float | None = None
  tuning: Tuning | None = None

  def __post_init__(self):
    object.__setattr__(self, "variants", tuple(self.variants))
    object.__setattr__(self, "claims", tuple(self.claims))
    names = [variant.name for variant in self.variants]
    if len(names) < 2:
      raise UserError(f"a sweep needs at least two variants, got {names}")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
      raise UserError(f"variant names must be unique; repeated: {', '.join(duplicates)}")
    if self.target_train_error is not None and not 0 < self.target_train_error < 1:
      raise UserError(f"target_train_error={self.target_train_error!r} must be in (0, 1)")
    for claim in self.claims:
      unknown = [name for name in (claim.better, claim.worse) if name not in names]
      if unknown:
        raise UserError(f"claim {claim.text!r} names no variant {unknown[0]!r}; variants: "
                        f"{', '.join(names)}")
      if claim.metric == "epochs_to_target" and self.target_train_error is None:
        raise UserError(f"claim {claim.text!r} is about epochs_to_target; set the sweep's "
                        "target_train_error")
    if self.tuning is not None:
      self._check_tuning(names)

  def _check_tuning(self, names: list[str]) -> None:
    tuning = self.tuning
    if not isinstance(tuning, Tuning):
      raise UserError(f"tuning must be a cnnjax.sweep.Tuning, got {type(tuning).__name__}")
    unknown = sorted(set(tuning.variant_grids) - set(names))
    if unknown:
      raise UserError(f"tuning: variant_grids names no variant {unknown[0]!r}; variants: "
                      f"{', '.join(names)}")
    if tuning.metric == "epochs_to_target" and self.target_train_error is None:
      raise UserError("tuning: the metric epochs_to_target needs a target; set the sweep's "
                      "target_train_error")
    for variant in self.variants:
      searched = sorted(set(variant.overrides) & set(tuning.grid_of(variant.name)))
      if searched:
        raise UserError(f"tuning: variant {variant.name!r} sets {searched[0]}, which its grid "
                        "searches; drop it from the variant")

  def with_choices(self, chosen: dict[str, dict] | None) -> list[Variant]:
    """The variants with their tuned values added (`chosen`: variant -> {key: value})."""
    chosen = chosen or {}
    return [Variant(variant.name, {**variant.overrides, **chosen.get(variant.name, {})})
            for variant in self.variants]


def _is_plain(value) -> bool:
  if isinstance(value, (tuple, list)):
    return all(map(_is_plain, value))
  return isinstance(value, (bool, int, float, str))


def command_line_text(value, key: str) -> str:
  """`value` as the text of `--config.KEY=TEXT`, which cnnjax.config.parse_value
  reads back as the same value; a UserError naming `key` if there is none."""
  from cnnjax.config import parse_value  # Lazily: cnnjax.config imports the models.

  if isinstance(value, bool):
    text = "true" if value else "false"
  elif isinstance(value, str) and isinstance(parse_value(value), str):
    text = value
  else:
    text = repr(value)
  parsed = parse_value(text)
  same = parsed == value and (type(parsed) is type(value) or
                              isinstance(value, (tuple, list)) and isinstance(parsed, (tuple, list)))
  if not (_is_plain(value) and same) or "\n" in text:
    raise UserError(f"{key}={value!r} cannot be given on a command line; use a bool, int, "
                    "float, str or a tuple of them")
  return text


def load_sweep(spec: str) -> Sweep:
  """Runs the ablation file of `PATH[:ARG]` and returns its get_sweep(ARG); a
  file that fails says where, in one line, as cnnjax.config does for
  get_config. Ablation files are Python and run as code: load only files you
  trust."""
  from cnnjax import config as config_lib

  path, _, arg = spec.partition(":")
  file = pathlib.Path(path)
  if not file.is_file() or file.suffix != ".py":
    raise UserError(f"config file {path!r} is not a Python file; pass --config "
                    "experiments/ablations/NAME.py")
  module_spec = importlib.util.spec_from_file_location(f"cnnjax_ablation_{file.stem}", file)
  module = importlib.util.module_from_spec(module_spec)
  failed = lambda error: UserError(f"config file {spec!r} failed: "
                                   f"{config_lib.where_it_failed(error, file)}")
  try:
    module_spec.loader.exec_module(module)
  except Exception as error:  # The file's own code.
    raise failed(error) from None
  if not callable(getattr(module, "get_sweep", None)):
    raise UserError(f"config file {path!r} has no get_sweep(arg=None) function; an ablation "
                    "file defines get_config and get_sweep (see cnnjax.sweep)")
  try:
    sweep = module.get_sweep(arg) if arg else module.get_sweep()
  except UserError as error:  # A variant or claim that cannot be.
    raise UserError(f"{path}: {error}") from None
  except Exception as error:
    raise failed(error) from None
  if not isinstance(sweep, Sweep):
    raise UserError(f"get_sweep() of {path!r} returned {type(sweep).__name__}, not a "
                    "cnnjax.sweep.Sweep")
  return sweep


@dataclasses.dataclass(frozen=True)
class Run:
  """One (variant, seed): an ordinary `cnnjax train` run in its own workdir."""

  variant: str
  seed: int
  spec: str  # The ablation file, PATH[:ARG].
  workdir: pathlib.Path
  arguments: tuple[tuple[str, str], ...]  # Every --config.KEY=VALUE, the seed first.
  config: "ml_collections.ConfigDict"  # Resolved and validated.
  trial: str = ""  # The tuning trial's name; "" for a seed that measures the claims.

  @functools.cached_property
  def stored_config(self) -> dict:
    """The config as the run's config.json holds it."""
    return json.loads(self.config.to_json_best_effort())

  @property
  def name(self) -> str:
    return f"{self.variant} {self.trial + ' ' if self.trial else ''}seed {self.seed}"

  @property
  def command(self) -> list[str]:
    return [sys.executable, "-m", "cnnjax", "train", "--config", self.spec,
            "--workdir", str(self.workdir), *(f"--config.{k}={v}" for k, v in self.arguments)]


Resolve = Callable[[str, list[tuple[str, str]]], "ml_collections.ConfigDict"]


def resolve_config(spec: str, arguments: list[tuple[str, str]]) -> "ml_collections.ConfigDict":
  """The config of `spec` with `--config.KEY=VALUE` `arguments`, validated."""
  from cnnjax import config as config_lib

  return config_lib.from_command_line(spec, arguments)


def check_overrides(sweep: Sweep, overrides: list[tuple[str, str]]) -> None:
  """The sweep's own keys (the seed, what a variant sets, what the tuning
  searches) cannot be set for every run from the command line."""
  for key, _ in overrides:
    if key == "seed":
      raise UserError("config.seed is the sweep's: --seeds N runs seeds 0..N-1; drop "
                      "--config.seed")
    for variant in sweep.variants:
      if key in variant.overrides:
        raise UserError(f"--config.{key} is what the sweep varies (variant {variant.name!r} "
                        "sets it); drop it")
    if sweep.tuning is not None and key in sweep.tuning.keys:
      raise UserError(f"--config.{key} is what the tuning stage searches; drop it")


def plan_runs(spec: str, sweep: Sweep, seeds: int, overrides: list[tuple[str, str]],
              workdir: pathlib.Path, chosen: dict[str, dict] | None = None,
              resolve: Resolve = resolve_config) -> list[Run]:
  """Every (variant, seed) resolved and validated, seed by seed (all variants
  of seed 0 first, so a partial sweep already compares every variant), with
  the tuning stage's `chosen` values (variant -> {key: value})."""
  check_overrides(sweep, overrides)
  runs = []
  for seed in range(seeds):
    for variant in sweep.with_choices(chosen):
      arguments = (("seed", str(seed)), *variant.arguments, *overrides)
      try:
        config = resolve(spec, list(arguments))
      except UserError as error:
        raise UserError(f"variant {variant.name!r}: {error}") from None
      runs.append(Run(variant.name, seed, spec, workdir / variant.name / f"seed{seed}",
                      arguments, config))
  return runs


def plan_trials(spec: str, sweep: Sweep, overrides: list[tuple[str, str]],
                workdir: pathlib.Path, resolve: Resolve = resolve_config) -> list[Run]:
  """Every trial of the tuning stage (none without one), seed by seed, each a
  run in DIR/tuning/<variant>/<trial>/seed<k>: the variant's overrides, the
  trial's values, the command line's overrides, then the trial overrides."""
  tuning = sweep.tuning
  if tuning is None:
    return []
  check_overrides(sweep, overrides)
  path = spec.partition(":")[0]
  trial_overrides = [(key, command_line_text(value, key))
                     for key, value in tuning.trial_overrides.items()]
  runs = []
  for seed in tuning.trial_seeds:
    for variant in sweep.variants:
      for name, values in tuning.trials_of(variant.name):
        arguments = (("seed", str(seed)), *variant.arguments,
                     *((key, command_line_text(value, key)) for key, value in values.items()),
                     *overrides, *trial_overrides)
        try:
          config = resolve(spec, list(arguments))
        except UserError as error:
          raise UserError(f"{path}: tuning: variant {variant.name!r}, trial {name}: "
                          f"{error}") from None
        runs.append(Run(variant.name, seed, spec,
                        workdir / "tuning" / variant.name / name / f"seed{seed}", arguments,
                        config, trial=name))
  return runs


def check_runs(runs: list[Run]) -> None:
  """Builds each distinct model abstractly on its input before any run starts
  (cnnjax.config.check_model: no FLOPs, no TensorFlow), so that, say, an
  input too small for the network stops the sweep at once. JAX runs on the
  CPU here, leaving accelerators to the runs."""
  import jax

  from cnnjax import config as config_lib

  jax.config.update("jax_platforms", "cpu")
  checked = set()
  for run in runs:
    stored = run.stored_config
    key = json.dumps([stored["model"], stored["dataset"]["name"], stored["dataset"]["image_size"],
                      stored["half_precision"]], sort_keys=True)
    if key in checked:
      continue
    try:
      config_lib.check_model(run.config)
    except UserError as error:
      raise UserError(f"variant {run.variant!r}: {error}") from None
    checked.add(key)
