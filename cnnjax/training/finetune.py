"""Fine-tuning: a run that starts from another run's weights (transfer
learning), with chosen layers left at their fresh initialisation or frozen.

  config.init_from = "runs/imagenet_resnet50"   # a workdir, or its checkpoints/ directory
  config.init_from_step = -1                    # its latest checkpoint, or a given step
  config.init_from_exclude = ("^fc/",)          # parameters left fresh (the classifier)
  config.frozen = ("^conv1/", "^bn1/", "^layer1/")  # parameters not trained
  config.pretrained_learning_rate_scale = 0.1   # the loaded, trainable part learns slower

Patterns are regular expressions searched in each variable's path, written
with "/" ("layer1/0/conv1/kernel"); `cnnjax summary MODEL` lists the layer
names. A pattern that matches nothing is a UserError (a typo would silently
fine-tune everything).

- Loading happens once, when the workdir has no checkpoint of its own: the
  parameters and BatchNorm statistics are taken from the source where their
  path and shape agree, the excluded ones are kept fresh, and any other
  difference (a classifier for another number of classes, another network)
  is a UserError naming it and the patterns that would leave it fresh. The
  optimizer state is fresh; the moving averages (config.ema_decay) start at
  the loaded values. A resumed run continues from its own checkpoints.
- Frozen parameters get no update at all (optax's masking sets their
  updates, weight decay included, to zero), and a frozen BatchNorm keeps its
  running statistics: those of a BatchNorm whose `scale` is frozen are not
  updated either. During training it still normalises with the batch's
  statistics, as a frozen torch module in train mode does.
- `pretrained_learning_rate_scale` multiplies the updates of the loaded
  parameters that are neither excluded nor frozen, so a classifier trained
  from scratch can learn faster than the features it sits on.
"""

import pathlib
import re
from typing import Callable

import jax
import ml_collections
import numpy as np

from cnnjax.errors import UserError
from cnnjax.workdir.checkpoint import Checkpointer


def path_name(path) -> str:
  """A variable's path in a tree as "layer1/0/conv1/kernel"."""
  return "/".join(str(getattr(key, "key", getattr(key, "name", key))) for key in path)


def _patterns(config: ml_collections.ConfigDict, key: str) -> list[re.Pattern]:
  try:
    return [re.compile(pattern) for pattern in config[key]]
  except re.error as error:
    raise UserError(f"config.{key}: {error.pattern!r} is not a regular expression "
                    f"({error})") from None


def _mask(config: ml_collections.ConfigDict, key: str, tree):
  """True where a pattern of config.<key> is found in the leaf's path; a
  pattern matching no leaf is a UserError naming it."""
  patterns = _patterns(config, key)
  names = [path_name(path) for path, _ in jax.tree_util.tree_leaves_with_path(tree)]
  for pattern in patterns:
    if not any(pattern.search(name) for name in names):
      shown = ", ".join(names[:6]) + (", ..." if len(names) > 6 else "")
      raise UserError(f"config.{key}: {pattern.pattern!r} matches no parameter of this model "
                      f"(they are named like {shown}; `cnnjax summary MODEL` lists the layers)")
  return jax.tree_util.tree_map_with_path(
      lambda path, _: any(p.search(path_name(path)) for p in patterns), tree)


def frozen_mask(config: ml_collections.ConfigDict):
  """params -> True for the frozen parameters (for optax.masked)."""
  return lambda params: _mask(config, "frozen", params)


def pretrained_mask(config: ml_collections.ConfigDict):
  """params -> True for the loaded parameters that train (neither excluded nor frozen)."""

  def mask(params):
    excluded = _mask(config, "init_from_exclude", params)
    frozen = _mask(config, "frozen", params)
    return jax.tree.map(lambda e, f: not (e or f), excluded, frozen)

  return mask


def frozen_statistics(config: ml_collections.ConfigDict) -> Callable[[str], bool]:
  """path of a BatchNorm statistic ("layer1/0/bn1/mean") -> whether it is
  frozen: whether its module's `scale` is a frozen parameter."""
  patterns = _patterns(config, "frozen")
  return lambda path: any(p.search(path.rsplit("/", 1)[0] + "/scale") for p in patterns)


def _checkpoints(init_from: str) -> pathlib.Path:
  source = pathlib.Path(init_from)
  if (source / "checkpoints").is_dir():
    return source / "checkpoints"
  if source.is_dir() and any(child.name.isdigit() for child in source.iterdir()):
    return source
  raise UserError(f"config.init_from={init_from!r} is neither a workdir with checkpoints nor a "
                  "checkpoints directory; give the workdir of the run to start from (e.g. one "
                  "written by `cnnjax train` or `cnnjax import-weights`)")


def source_step(config: ml_collections.ConfigDict) -> tuple[Checkpointer, int]:
  """The checkpoints to start from and the step: a UserError if either is missing."""
  checkpointer = Checkpointer(_checkpoints(config.init_from), keep=1, read_only=True)
  steps = checkpointer.all_steps()
  step = max(steps, default=None) if config.init_from_step < 0 else config.init_from_step
  if step is None or step not in steps:
    raise UserError(f"config.init_from={config.init_from!r} has no checkpoint of step "
                    f"{config.init_from_step} (it has {', '.join(map(str, steps)) or 'none'}); "
                    "set config.init_from_step, or -1 for the latest")
  return checkpointer, step


COLLECTIONS = ("params", "batch_stats")  # What is taken from the source.


def _differences(config: ml_collections.ConfigDict, fresh: dict, saved: dict) -> list[str]:
  """Where the source's `saved` arrays (or their shapes) do not fit `fresh`'s
  (a dict of COLLECTIONS), outside config.init_from_exclude: one line each."""
  patterns = _patterns(config, "init_from_exclude")
  problems = []
  for collection in COLLECTIONS:
    saved_leaves = {path_name(path): leaf for path, leaf
                    in jax.tree_util.tree_leaves_with_path(saved.get(collection, {}))}
    for path, leaf in jax.tree_util.tree_leaves_with_path(fresh.get(collection, {})):
      name = path_name(path)
      if any(p.search(name) for p in patterns):
        continue
      if name not in saved_leaves:
        problems.append((name, f"{collection} {name} is not in the checkpoint"))
      elif np.shape(saved_leaves[name]) != np.shape(leaf):
        problems.append((name, f"{collection} {name} is {list(np.shape(saved_leaves[name]))} "
                               f"there and {list(np.shape(leaf))} here"))
  return problems


def _refusal(source: pathlib.Path, problems: list[tuple[str, str]]) -> UserError:
  """The first difference, how many more, and the exclusion of cnnjax's own
  parameter paths (their top-level layers, e.g. `head/`) that would leave them fresh."""
  layers = list(dict.fromkeys(name.split("/")[0] for name, _ in problems))
  patterns = "(" + " ".join(f'"^{layer}/",' for layer in layers) + ")"
  more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
  return UserError(f"cannot start from {source}: {problems[0][1]}{more}; leave such parameters "
                   f"at their fresh initialisation with --config.init_from_exclude='{patterns}' "
                   "(regular expressions on this model's parameter paths; `cnnjax summary "
                   "MODEL` lists its layers)")


def check_source(config: ml_collections.ConfigDict, variables) -> None:
  """Refuses, before any data is prepared, a source that is missing, lacks the
  step, or whose weights do not fit `variables` (the model's, from
  `jax.eval_shape`) outside config.init_from_exclude: only the checkpoint's
  metadata is read, no array."""
  checkpointer, step = source_step(config)
  try:
    saved = checkpointer.shapes(step)
  finally:
    checkpointer.close()
  _mask(config, "init_from_exclude", variables["params"])  # A pattern matching nothing.
  _mask(config, "frozen", variables["params"])
  problems = _differences(config, variables, saved)
  if problems:
    raise _refusal(checkpointer.directory / str(step), problems)


def load(config: ml_collections.ConfigDict, fresh):
  """`fresh` (a host TrainState) with the source's parameters and BatchNorm
  statistics wherever they are not excluded; a UserError for any other
  difference, naming the first and counting the rest. Says how many arrays
  were loaded, left fresh and frozen."""
  checkpointer, step = source_step(config)
  saved = checkpointer.restore_as_saved(step)
  excluded = _mask(config, "init_from_exclude", fresh.params)  # A pattern matching nothing.
  frozen = _mask(config, "frozen", fresh.params)
  problems = _differences(config, {"params": fresh.params, "batch_stats": fresh.batch_stats},
                          saved)
  if problems:
    raise _refusal(checkpointer.directory / str(step), problems)
  patterns = _patterns(config, "init_from_exclude")
  counts = {"loaded": 0, "fresh": 0}

  def take(collection):
    saved_leaves = {path_name(path): leaf for path, leaf
                    in jax.tree_util.tree_leaves_with_path(saved.get(collection, {}))}

    def one(path, fresh_leaf):
      name = path_name(path)
      if any(p.search(name) for p in patterns):
        counts["fresh"] += 1
        return fresh_leaf
      counts["loaded"] += 1
      return np.asarray(saved_leaves[name]).astype(np.asarray(fresh_leaf).dtype)

    return jax.tree_util.tree_map_with_path(one, getattr(fresh, collection))

  params, batch_stats = take("params"), take("batch_stats")
  ema = None if fresh.ema is None else {"params": params, "batch_stats": batch_stats}
  leaves = lambda mask: sum(jax.tree.leaves(mask))
  print(f"starting from {checkpointer.directory / str(step)} (config.init_from): "
        f"{counts['loaded']} arrays loaded, {counts['fresh']} left fresh "
        f"({leaves(excluded)} parameters and {counts['fresh'] - leaves(excluded)} BatchNorm "
        f"statistics, config.init_from_exclude), {leaves(frozen)} parameters frozen "
        "(config.frozen)", flush=True)
  return fresh.replace(params=params, batch_stats=batch_stats, ema=ema)
