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
- `Sweep(variants, claims=(), target_train_error=None)`: the variants (at
  least two), the claims, and the training error that `epochs_to_target`
  counts epochs to (required when a claim uses it; e.g. 0.25 for AlexNet §3.1).

Example (AlexNet §3.1, Figure 1):

  def get_sweep(arg=None):
    return Sweep(
        variants=[Variant("relu", {"model.activation": "relu"}),
                  Variant("tanh", {"model.activation": "tanh"}),
                  Variant("sigmoid", {"model.activation": "sigmoid"})],
        claims=[Claim("a ReLU network reaches 25% training error six times faster "
                      "than the same network with tanh", "AlexNet §3.1, Figure 1",
                      metric="epochs_to_target", better="relu", worse="tanh", ratio=6.0)],
        target_train_error=0.25)

The verdict on a claim (reproduced / not reproduced / inconclusive) is
defined in cnnjax.sweep.summary and in docs/ablations.md ("The verdict").

Importing this module imports neither JAX nor TensorFlow, so `cnnjax sweep
--help` and argument errors answer at once; the model check before training
(`check_runs`) imports JAX, lazily, and nothing imports TensorFlow.
"""

import dataclasses
import functools
import importlib.util
import json
import pathlib
import re
import sys
from typing import TYPE_CHECKING

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


@dataclasses.dataclass(frozen=True)
class Sweep:
  """An ablation: its variants, the paper's claims about them, and the training
  error that `epochs_to_target` counts epochs to."""

  variants: tuple[Variant, ...]
  claims: tuple[Claim, ...] = ()
  target_train_error: float | None = None

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

  @functools.cached_property
  def stored_config(self) -> dict:
    """The config as the run's config.json holds it."""
    return json.loads(self.config.to_json_best_effort())

  @property
  def name(self) -> str:
    return f"{self.variant} seed {self.seed}"

  @property
  def command(self) -> list[str]:
    return [sys.executable, "-m", "cnnjax", "train", "--config", self.spec,
            "--workdir", str(self.workdir), *(f"--config.{k}={v}" for k, v in self.arguments)]


def plan_runs(spec: str, sweep: Sweep, seeds: int, overrides: list[tuple[str, str]],
              workdir: pathlib.Path) -> list[Run]:
  """Every (variant, seed) resolved and validated, seed by seed (all variants
  of seed 0 first, so a partial sweep already compares every variant)."""
  from cnnjax import config as config_lib

  for key, _ in overrides:
    if key == "seed":
      raise UserError("config.seed is the sweep's: --seeds N runs seeds 0..N-1; drop "
                      "--config.seed")
    for variant in sweep.variants:
      if key in variant.overrides:
        raise UserError(f"--config.{key} is what the sweep varies (variant {variant.name!r} "
                        "sets it); drop it")
  runs = []
  for seed in range(seeds):
    for variant in sweep.variants:
      arguments = (("seed", str(seed)), *variant.arguments, *overrides)
      try:
        config = config_lib.from_command_line(spec, list(arguments))
      except UserError as error:
        raise UserError(f"variant {variant.name!r}: {error}") from None
      runs.append(Run(variant.name, seed, spec, workdir / variant.name / f"seed{seed}",
                      arguments, config))
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
