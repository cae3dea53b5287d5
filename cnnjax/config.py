"""Experiment configs: the base every experiment starts from, loading an
experiment file or a workdir's `config.json`, command-line overrides and
validation.

An experiment is a Python file exposing `get_config(arg=None)` that returns a
ConfigDict built on `base_config()`. Loading locks it, so an override of an
unknown key or of the wrong type is a UserError naming the key, raised before
any device work. Values derived from others (steps per epoch, boundaries in
steps) are computed by the trainer, never stored here.

Loading is in two phases so that mistakes are reported at once: everything
but the model's options is checked without importing JAX (well under a
second); then cnnjax.models (Flax) adds and checks the model's options.
"""

import ast
import importlib.machinery
import importlib.util
import pathlib
import re
import traceback

import ml_collections

from cnnjax.errors import UserError

MODEL_PREFIX = "model."


def base_config() -> ml_collections.ConfigDict:
  """Every key an experiment has, with defaults; experiments override them."""
  config = ml_collections.ConfigDict()
  # `name`; `load` adds every option of that model (see cnnjax.models).
  config.model = ml_collections.ConfigDict({"name": ""})
  config.dataset = ml_collections.ConfigDict(dict(
      name="",
      data_dir="",  # "" → TFDS's default (~/tensorflow_datasets or $TFDS_DATA_DIR).
      train_split="train",
      eval_split="test",
      image_size=0,  # Side of the square model input; 0 → the dataset's own.
      # A recipe: a name or ops joined by "|" (cnnjax.data.recipes), e.g.
      # "resize_shorter(256, 480) | random_crop(224) | flip | pca_lighting(0.1)".
      train_preprocess="resize",
      eval_preprocess="resize",
      # Or "subtract_mean" (per channel, 0-255 scale; AlexNet §2, VGG §2.1), or
      # "subtract_pixel_mean" (the train split's mean image; ResNet §3.4).
      normalization="standardize",
      # The train split is read as this many shards, and each step takes
      # batch_size / num_shards examples from every shard; the data order
      # depends on it and on the seed, never on the devices, whose count must
      # divide it (cnnjax.data.pipeline).
      num_shards=8,
      shuffle_buffer=10_000,  # Per shard of the train split.
      # The normalisation's mean and standard deviation per channel (pixels in
      # [0, 1]); () → the dataset's own: its published ones, or computed from
      # the train split (cnnjax.data.statistics). Fine-tuning sets the
      # pretrained network's (experiments/finetune_folder.py).
      mean=(),
      std=(),
      # A folder (name "folder:PATH"): leave out the images that do not decode,
      # saying how many, instead of stopping at the first (cnnjax.data.folders).
      skip_undecodable=False,
  ))
  config.batch_size = 128  # Global: across all devices and processes.
  config.eval_batch_size = 0  # 0 → batch_size.
  config.num_epochs = 10.0
  config.num_train_steps = -1  # -1 → derived from num_epochs.
  config.seed = 0
  config.log_every_steps = 50
  config.eval_every_steps = -1  # -1 → once per epoch.
  config.checkpoint_every_steps = -1  # -1 → once per epoch.
  config.keep_checkpoints = 3  # The latest N, plus the best by eval/top1_error.
  config.optimizer = ml_collections.ConfigDict(dict(
      name="sgd",  # sgd, adam, adamw, rmsprop.
      learning_rate=0.1,
      # Linear scaling (Goyal et al. 2017): with a base batch size B0 > 0 the
      # rate used is learning_rate * batch_size / B0, so a recipe states the
      # paper's rate and batch and keeps them when the user changes the batch.
      base_batch_size=0,
      momentum=0.9,  # sgd and rmsprop; 0 disables.
      nesterov=False,
      b1=0.9,
      b2=0.999,
      eps=1e-8,
      rms_decay=0.9,
      weight_decay=0.0,  # On kernels only.
      # ((pattern, decay), ...): a kernel whose path ("conv1/kernel") contains a
      # match of a pattern (a regular expression) takes the first such pair's
      # decay instead of weight_decay (cuda-convnet's per-layer `wc`).
      weight_decay_by_layer=(),
      decoupled_weight_decay=False,  # False: L2 added to the gradient, as the papers do.
      # Biases' learning rate over the weights' (cuda-convnet's epsB = 2 epsW).
      bias_learning_rate_scale=1.0,
      grad_clip_norm=0.0,  # 0 disables.
  ))
  config.schedule = ml_collections.ConfigDict(dict(
      name="constant",  # constant, multistep, exponential, cosine, plateau.
      warmup_epochs=0.0,
      # "linear": from 0 up to the rate; "constant": the rate x warmup_factor
      # throughout (ResNet §4.2: ResNet-110 starts at 0.01 of 0.1).
      warmup_kind="linear",
      warmup_factor=0.1,
      boundaries_epochs=(),  # multistep: where the rate is multiplied by decay_factor.
      decay_factor=0.1,  # multistep, exponential and plateau.
      decay_every_epochs=1.0,  # exponential (staircase).
      plateau_patience_epochs=5.0,  # plateau: epochs without improvement of plateau_metric.
      # plateau: what must improve: "train/loss" (averaged over each epoch) or
      # a metric of the evaluations, e.g. "eval/top1_error" (AlexNet §5, VGG
      # §3.1: "when the validation set accuracy stopped improving"); see
      # cnnjax.training.optim.plateau_scaling.
      plateau_metric="train/loss",
  ))
  # Evaluations beside dataset.eval_preprocess's: ((NAME, RECIPE), ...), each
  # written as eval_NAME/loss, eval_NAME/top1_error, eval_NAME/top5_error, e.g.
  # (("10crop", "ten_crop"), ("dense_multiscale", "dense(256, 384, 512)")).
  config.extra_evals = ()
  # Polyak averaging (GoogLeNet §6) as an exponential moving average of the
  # parameters and BatchNorm statistics with this decay per step, evaluated
  # beside them as eval_ema/... (and eval_NAME_ema/...); 0 disables it.
  config.ema_decay = 0.0
  # Fine-tuning (cnnjax.training.finetune): start from another run's weights, a workdir
  # or its checkpoints/ (its latest step, or init_from_step), leaving the
  # parameters matching init_from_exclude fresh; `frozen` parameters (and the
  # BatchNorm statistics of a frozen scale) are not trained; the loaded,
  # trainable ones learn at pretrained_learning_rate_scale x the rate. All
  # patterns are regular expressions searched in paths like "layer1/0/conv1/kernel".
  config.init_from = ""
  config.init_from_step = -1
  config.init_from_exclude = ()
  config.frozen = ()
  config.pretrained_learning_rate_scale = 1.0
  config.label_smoothing = 0.0
  config.aux_loss_weight = 0.3  # Auxiliary classifiers (GoogLeNet §5); 0 disables them.
  config.half_precision = False  # bfloat16 compute; parameters stay float32.
  config.sync_batch_norm = True  # BatchNorm statistics over the global batch.
  # A NaN or Inf in the loss, gradients or updated parameters: "stop" the run
  # (exit status 3), or "skip" that update and stop after more than
  # max_consecutive_skips skipped in a row.
  config.nonfinite = ml_collections.ConfigDict(dict(policy="stop", max_consecutive_skips=10))
  # Append each step's example ids (TFDS `tfds_id`) to
  # example_ids/process_<index>.jsonl in the workdir, to audit the data order.
  config.log_example_ids = False
  return config


def _run_experiment(spec: str) -> ml_collections.ConfigDict:
  """Runs the experiment file of `PATH[:ARG]` and returns its get_config(ARG)."""
  path, _, arg = spec.partition(":")
  file = pathlib.Path(path)
  if file.is_dir():
    raise UserError(f"config file {path!r} is a directory; pass a file in it, e.g. "
                    f"--config {file / 'NAME.py'}")
  if not file.is_file():
    raise UserError(f"config file {path!r} does not exist; pass --config experiments/NAME.py")
  if file.suffix != ".py":
    raise UserError(f"config file {path!r} is not a Python file: an experiment is a .py file "
                    "with a get_config(arg=None) function (see experiments/)")
  loader = importlib.machinery.SourceFileLoader(f"cnnjax_experiment_{file.stem}", str(file))
  module = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
  try:
    loader.exec_module(module)
    if not hasattr(module, "get_config"):
      raise UserError(f"config file {path!r} has no get_config(arg=None) function")
    config = module.get_config(arg) if arg else module.get_config()
  except UserError:
    raise
  except Exception as error:  # The experiment's own code failed: say where, in one line.
    raise UserError(f"config file {spec!r} failed: {where_it_failed(error, file)}") from None
  if not isinstance(config, ml_collections.ConfigDict):
    raise UserError(f"get_config of {path!r} returned {type(config).__name__}, not the "
                    "ConfigDict of cnnjax.config.base_config()")
  return config


def where_it_failed(error: Exception, file: pathlib.Path) -> str:
  """`Type: message (line N)`, N the last line of `file` in the traceback."""
  if isinstance(error, SyntaxError):
    return f"SyntaxError: {error.msg} (line {error.lineno})"
  lines = [frame.lineno for frame in traceback.extract_tb(error.__traceback__)
           if pathlib.Path(frame.filename).resolve() == file.resolve()]
  where = f" (line {lines[-1]})" if lines else ""
  return f"{type(error).__name__}: {error}{where}"


def _add_model_options(config: ml_collections.ConfigDict) -> None:
  """Adds every option of the config's model with its registered value,
  unless already set, so any ablation switch can be overridden and
  config.json describes the model completely. Imports the models (Flax)."""
  from cnnjax import models

  models.check_name(config.model.name)  # Before Flax is imported for the options.
  with config.unlocked():
    for key, value in models.model_defaults(config.model.name).items():
      if key not in config.model:
        config.model[key] = value


def load(spec: str, model_name: str | None = None) -> ml_collections.ConfigDict:
  """Loads `PATH[:ARG]`: runs the experiment file and calls get_config(ARG).

  The model's every option is added to `config.model` (see
  `_add_model_options`). `model_name` (a command-line `model.name`) replaces
  the experiment's model first. Experiment files are Python and run as code:
  load only files you trust.
  """
  config = _run_experiment(spec)
  if model_name is not None:
    config.model = ml_collections.ConfigDict({"name": model_name})
  _add_model_options(config)
  config.lock()
  return config


def check_model(config: ml_collections.ConfigDict) -> None:
  """Builds the config's model and traces it abstractly at the dataset's
  input size: a bad model switch or too small an input is a UserError now,
  before any data is read. Imports JAX; computes nothing."""
  import functools

  import jax
  import jax.numpy as jnp

  from cnnjax import models
  from cnnjax.data import describe

  spec = describe(config.dataset)
  size = input_size(config, spec)
  model = models.from_config(config, num_classes=spec.num_classes)
  jax.eval_shape(functools.partial(model.init, train=False), jax.random.key(0),
                 jnp.zeros((1, size, size, spec.channels)))


def input_size(config: ml_collections.ConfigDict, spec) -> int:
  """The side of the model's square input: config.dataset.image_size if set;
  else the dataset's own (`spec`: its table entry, or a TFDS dataset whose
  images are all of one square size); else, for images of varying size, the
  size the train recipe's own arguments end at ("inception_crop(160) |
  flip": 160); else the model's native input (224 for the ImageNet networks)."""
  from cnnjax import models
  from cnnjax.data import recipes

  recipe = recipes.fixed_output_side(config.dataset.train_preprocess)
  return (config.dataset.image_size or spec.image_size or recipe
          or models.NATIVE_INPUT_SIZE[config.model.name])


def parse_value(text: str):
  """A command-line value as Python: literals (1, 0.1, (1, 2), True) or a string."""
  if text.lower() in ("true", "false"):
    return text.lower() == "true"
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text


def override(config: ml_collections.ConfigDict, key: str, text: str) -> None:
  """Sets `config.<key>` (dotted) from its command-line text, keeping its type."""
  set_value(config, key, parse_value(text), text)


def set_value(config: ml_collections.ConfigDict, key: str, value, text: str | None = None) -> None:
  """Sets `config.<key>` (dotted) to `value`, converted to the key's type
  where that loses nothing (1 → 1.0, a list or a scalar → a tuple); else a
  UserError naming the key (and showing `text`, what the user wrote)."""
  *parents, leaf = key.split(".")
  node = config
  for depth, part in enumerate(parents):
    node = node.get(part) if isinstance(node, ml_collections.ConfigDict) else None
    if not isinstance(node, ml_collections.ConfigDict):
      raise UserError(f"unknown config key 'config.{'.'.join(parents[:depth + 1])}'")
  if leaf not in node:
    raise UserError(f"unknown config key 'config.{key}'; keys here: "
                    f"{', '.join(sorted(node.keys()))}")
  old = node[leaf]
  if isinstance(old, (tuple, list)) and isinstance(value, (int, float, str)):
    value = (value,)  # `--config.x=30` for a one-element tuple.
  if isinstance(old, tuple) and isinstance(value, list):
    value = tuple(tuple(item) if isinstance(item, list) else item for item in value)
  if isinstance(old, float) and isinstance(value, int) and not isinstance(value, bool):
    value = float(value)
  if old is not None and not isinstance(value, type(old)) and not (
      isinstance(old, (tuple, list)) and isinstance(value, (tuple, list))):
    shown = repr(text if text is not None else value)
    raise UserError(f"config.{key} must be {type(old).__name__}, got {shown}")
  try:
    node[leaf] = value
  except (TypeError, ValueError) as error:
    raise UserError(f"config.{key}: {error}") from None


def from_command_line(spec: str, overrides: list[tuple[str, str]]) -> ml_collections.ConfigDict:
  """The experiment at `spec` with `--config.KEY=VALUE` overrides, validated.

  Everything but the model's options is checked before JAX is imported.
  """
  return with_overrides(_run_experiment(spec), overrides)


def with_overrides(config: ml_collections.ConfigDict,
                   overrides: list[tuple[str, str]]) -> ml_collections.ConfigDict:
  """An experiment's unlocked `config` with `--config.KEY=VALUE` overrides and
  every model option added, locked and validated (see `from_command_line`)."""
  overrides = dict(overrides)
  model_name = overrides.pop("model.name", None)
  if model_name is not None:
    config.model = ml_collections.ConfigDict({"name": model_name})
  config.lock()
  model_overrides = {key: text for key, text in overrides.items()
                     if key.startswith(MODEL_PREFIX)}
  for key, text in overrides.items():
    if key not in model_overrides:
      override(config, key, text)
  from cnnjax.data import datasets  # Free of TensorFlow.

  config.dataset.name = datasets.canonical_name(config.dataset.name)
  validate(config)
  _add_model_options(config)
  for key, text in model_overrides.items():
    override(config, key, text)
  return config


def from_workdir(workdir: pathlib.Path) -> ml_collections.ConfigDict:
  """The config a workdir was trained with (its `config.json`), locked, as
  `load` would return it; a UserError if it is missing or unreadable."""
  from cnnjax.workdir import config_file as workdir_lib

  stored = workdir_lib.read_config(workdir)
  if stored is None:
    raise UserError(f"{workdir} has no {workdir_lib.CONFIG_FILE}: is it a cnnjax workdir? "
                    "(`cnnjax train --workdir` writes it)")
  config = base_config()
  model = stored.get("model")
  if not isinstance(model, dict) or not isinstance(model.get("name"), str):
    raise UserError(f"{workdir / workdir_lib.CONFIG_FILE} names no model; restore it from a copy")
  config.model = ml_collections.ConfigDict({"name": model["name"]})
  _add_model_options(config)
  config.lock()
  for key, value in workdir_lib.flatten(stored).items():
    try:
      set_value(config, key, value)
    except UserError as error:
      raise UserError(f"{workdir / workdir_lib.CONFIG_FILE} does not fit this version of "
                      f"cnnjax: {error}") from None
  validate(config)
  return config


def validate(config: ml_collections.ConfigDict) -> None:
  """Values that no run can use; checks needing the devices or data live with them."""
  checks = [
      ("model.name", config.model.name, bool(config.model.name), "a registered model name"),
      ("batch_size", config.batch_size, config.batch_size > 0, "positive"),
      ("eval_batch_size", config.eval_batch_size, config.eval_batch_size >= 0, "0 or positive"),
      ("num_epochs", config.num_epochs,
       config.num_epochs > 0 or config.num_train_steps > 0, "positive"),
      ("num_train_steps", config.num_train_steps,
       config.num_train_steps == -1 or config.num_train_steps > 0, "-1 or positive"),
      ("log_every_steps", config.log_every_steps, config.log_every_steps > 0, "positive"),
      ("eval_every_steps", config.eval_every_steps,
       config.eval_every_steps == -1 or config.eval_every_steps > 0, "-1 or positive"),
      ("checkpoint_every_steps", config.checkpoint_every_steps,
       config.checkpoint_every_steps == -1 or config.checkpoint_every_steps > 0, "-1 or positive"),
      ("keep_checkpoints", config.keep_checkpoints, config.keep_checkpoints > 0, "positive"),
      ("optimizer.learning_rate", config.optimizer.learning_rate,
       config.optimizer.learning_rate >= 0, "0 or positive"),
      ("optimizer.weight_decay", config.optimizer.weight_decay,
       config.optimizer.weight_decay >= 0, "0 or positive"),
      ("optimizer.weight_decay_by_layer", config.optimizer.weight_decay_by_layer,
       _are_layer_decays(config.optimizer.weight_decay_by_layer),
       "((pattern, decay), ...): regular expressions and decays of 0 or more"),
      ("optimizer.bias_learning_rate_scale", config.optimizer.bias_learning_rate_scale,
       config.optimizer.bias_learning_rate_scale >= 0, "0 or positive"),
      ("optimizer.momentum", config.optimizer.momentum, 0 <= config.optimizer.momentum < 1,
       "in [0, 1)"),
      ("optimizer.grad_clip_norm", config.optimizer.grad_clip_norm,
       config.optimizer.grad_clip_norm >= 0, "0 (off) or positive"),
      ("optimizer.b1", config.optimizer.b1, 0 <= config.optimizer.b1 < 1, "in [0, 1)"),
      ("optimizer.b2", config.optimizer.b2, 0 <= config.optimizer.b2 < 1, "in [0, 1)"),
      ("optimizer.eps", config.optimizer.eps, config.optimizer.eps >= 0, "0 or positive"),
      ("optimizer.rms_decay", config.optimizer.rms_decay, 0 <= config.optimizer.rms_decay < 1,
       "in [0, 1)"),
      ("label_smoothing", config.label_smoothing, 0 <= config.label_smoothing < 1, "in [0, 1)"),
      ("aux_loss_weight", config.aux_loss_weight, config.aux_loss_weight >= 0, "0 or positive"),
      ("schedule.warmup_epochs", config.schedule.warmup_epochs,
       config.schedule.warmup_epochs >= 0, "0 or positive"),
      ("schedule.warmup_kind", config.schedule.warmup_kind,
       config.schedule.warmup_kind in ("linear", "constant"), "'linear' or 'constant'"),
      ("schedule.warmup_factor", config.schedule.warmup_factor,
       config.schedule.warmup_factor > 0, "positive"),
      ("optimizer.base_batch_size", config.optimizer.base_batch_size,
       config.optimizer.base_batch_size >= 0, "0 (no scaling) or positive"),
      ("schedule.decay_factor", config.schedule.decay_factor,
       0 < config.schedule.decay_factor <= 1, "in (0, 1]"),
      ("schedule.decay_every_epochs", config.schedule.decay_every_epochs,
       config.schedule.decay_every_epochs > 0, "positive"),
      ("schedule.plateau_patience_epochs", config.schedule.plateau_patience_epochs,
       config.schedule.plateau_patience_epochs >= 0, "0 or positive"),
      ("extra_evals", config.extra_evals, _are_extra_evals(config.extra_evals),
       "((NAME, RECIPE), ...) with distinct names of a-z, 0-9 and _ (not 'ema' nor ending "
       "in '_ema') and recipe strings"),
      ("ema_decay", config.ema_decay, 0 <= config.ema_decay < 1, "in [0, 1) (0: off)"),
      ("init_from_exclude", config.init_from_exclude, _are_patterns(config.init_from_exclude),
       "a tuple of regular expressions, e.g. ('^fc/',)"),
      ("frozen", config.frozen, _are_patterns(config.frozen),
       "a tuple of regular expressions, e.g. ('^conv1/', '^layer1/')"),
      ("pretrained_learning_rate_scale", config.pretrained_learning_rate_scale,
       config.pretrained_learning_rate_scale >= 0, "0 or positive"),
      ("init_from_step", config.init_from_step, config.init_from_step >= -1,
       "-1 (the latest) or a step"),
      ("schedule.plateau_metric", config.schedule.plateau_metric,
       config.schedule.plateau_metric in plateau_metrics(config),
       "one of " + ", ".join(plateau_metrics(config))),
      ("nonfinite.policy", config.nonfinite.policy, config.nonfinite.policy in ("stop", "skip"),
       "'stop' or 'skip'"),
      ("nonfinite.max_consecutive_skips", config.nonfinite.max_consecutive_skips,
       config.nonfinite.max_consecutive_skips >= 0, "0 or positive"),
  ]
  _refuse_impossible(checks)
  validate_dataset(config.dataset, config.extra_evals)


def validate_dataset(dataset: ml_collections.ConfigDict, extra_evals=()) -> None:
  """config.dataset's values that no run can use (`validate`'s, and `cnnjax data`'s)."""
  _refuse_impossible([
      ("dataset.name", dataset.name, bool(dataset.name), "a dataset name"),
      ("dataset.image_size", dataset.image_size, dataset.image_size >= 0,
       "0 (the dataset's own) or positive"),
      ("dataset.num_shards", dataset.num_shards, dataset.num_shards > 0, "positive"),
      ("dataset.shuffle_buffer", dataset.shuffle_buffer, dataset.shuffle_buffer > 0,
       "positive (1: no shuffling)"),
      ("dataset.mean", dataset.mean, _are_statistics(dataset.mean, 0),
       "() (the dataset's own) or a value in [0, 1] per channel"),
      ("dataset.std", dataset.std,
       _are_statistics(dataset.std, 1e-12) and len(dataset.std) == len(dataset.mean),
       "() or a positive value per channel, as many as dataset.mean"),
  ])
  from cnnjax.data import recipes  # Free of TensorFlow.

  recipes.check(dataset, extra_evals)


def _refuse_impossible(checks) -> None:
  for key, value, ok, expected in checks:
    if not ok:
      raise UserError(f"config.{key}={value!r} is impossible; it must be {expected}")


def _are_statistics(values, least: float) -> bool:
  """Whether `values` is () or 1 or 3 numbers in [least, 1]."""
  return len(values) in (0, 1, 3) and all(
      isinstance(value, (int, float)) and not isinstance(value, bool) and least <= value <= 1
      for value in values)


def _are_layer_decays(pairs) -> bool:
  """Whether `pairs` is ((regular expression, decay ≥ 0), ...)."""
  for pair in pairs:
    if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and isinstance(pair[0], str)
            and isinstance(pair[1], (int, float)) and not isinstance(pair[1], bool)
            and pair[1] >= 0):
      return False
    try:
      re.compile(pair[0])
    except re.error:
      return False
  return True


EVAL_MODE_NAME = re.compile(r"[a-z0-9_]+")


def _are_patterns(patterns) -> bool:
  return isinstance(patterns, (tuple, list)) and all(isinstance(p, str) and p for p in patterns)


def _are_extra_evals(pairs) -> bool:
  """Whether `pairs` is ((NAME, RECIPE), ...) with distinct well-formed names
  that cannot be mistaken for the EMA's (eval_ema/..., eval_NAME_ema/...)."""
  if not all(isinstance(pair, (tuple, list)) and len(pair) == 2
             and all(isinstance(part, str) and part for part in pair) for pair in pairs):
    return False
  names = [name for name, _ in pairs]
  return len(set(names)) == len(names) and all(
      EVAL_MODE_NAME.fullmatch(name) and name != "ema" and not name.endswith("_ema")
      for name in names)


def eval_prefixes(config: ml_collections.ConfigDict) -> list[str]:
  """The metric prefixes each evaluation writes: "eval", "eval_NAME" for each
  extra evaluation, and the same with "_ema" with config.ema_decay."""
  names = [name for name, _ in config.extra_evals] if _are_extra_evals(config.extra_evals) else []
  prefixes = ["eval"] + [f"eval_{name}" for name in names]
  return prefixes + [f"{prefix}_ema" for prefix in prefixes] if config.ema_decay else prefixes


def plateau_metrics(config: ml_collections.ConfigDict) -> list[str]:
  """What schedule.plateau_metric may follow in this config."""
  return ["train/loss"] + [f"{prefix}/{metric}" for prefix in eval_prefixes(config)
                           for metric in ("loss", "top1_error", "top5_error")]
