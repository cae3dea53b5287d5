"""The workdir's `config.json`: which experiment a workdir holds.

A workdir accumulates one run: its checkpoints, metrics and TensorBoard
curves. Resuming it under a config that trains a different model, on
different data or with a different recipe would silently splice two
experiments into one curve, so a resumed run must agree with the stored
config except in the keys of `RESUMABLE_KEYS`: how long it runs, how often
it logs, evaluates and saves, how many checkpoints it keeps and where its
data lives. `--allow_config_change` accepts any difference; the old config
is then kept as `config.<step>.json`, the config in force until that step.

Changing `num_epochs` or `num_train_steps` changes the total, and with it a
schedule laid over the total (cosine): the learning rate continues from the
resumed step on the new schedule. That is what a user extending a run wants,
so it is allowed, with a note.
"""

import json
import os
import pathlib
import sys

import ml_collections

from cnnjax.errors import UserError
from cnnjax.workdir.provenance import flatten  # Dotted keys, as config overrides name them.

CONFIG_FILE = "config.json"
OVERRIDE_FLAG = "--allow_config_change"

# Keys a resumed training run may change without the flag.
RESUMABLE_KEYS = frozenset({
    "num_train_steps", "num_epochs", "log_every_steps", "eval_every_steps",
    "checkpoint_every_steps", "keep_checkpoints", "dataset.data_dir",
    # A folder's undecodable images are never read; the option only lets a run
    # go on without them (cnnjax.data.folder_builder).
    "dataset.skip_undecodable",
    "eval_batch_size",  # How the eval split is cut into batches, not what is computed.
    "extra_evals",  # What else is evaluated; training is the same.
})
# What `cnnjax eval` may change: how and on what a checkpoint is evaluated,
# never the network, its input or its weights.
EVAL_OVERRIDES = frozenset({"dataset.eval_split", "dataset.eval_preprocess", "dataset.data_dir",
                            "dataset.skip_undecodable", "eval_batch_size", "half_precision",
                            "extra_evals"})
# An experiment file given to `cnnjax eval` may also differ in how long and
# how it trained, which evaluation ignores.
EVAL_KEYS = RESUMABLE_KEYS | EVAL_OVERRIDES
_TOTAL_STEP_KEYS = ("num_train_steps", "num_epochs")
_ABSENT = "<absent>"


def as_json(config: ml_collections.ConfigDict) -> str:
  return config.to_json_best_effort(indent=2, sort_keys=True) + "\n"


def read_config(workdir: pathlib.Path) -> dict | None:
  """The stored config as a dict, None if there is none, or a UserError if unreadable."""
  path = workdir / CONFIG_FILE
  if not path.exists():
    return None
  try:
    stored = json.loads(path.read_text())
  except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
    raise UserError(f"{path} is unreadable ({error}); restore it, or pass {OVERRIDE_FLAG} to "
                    "replace it with the requested config (the old file is kept aside)") from None
  if not isinstance(stored, dict):
    raise UserError(f"{path} is not a JSON object; restore it, or pass {OVERRIDE_FLAG} to "
                    "replace it with the requested config (the old file is kept aside)")
  return stored


def differences(stored: dict, config: ml_collections.ConfigDict) -> dict[str, tuple]:
  """`{key: (stored value, requested value)}` for every dotted key that differs."""
  old, new = flatten(stored), flatten(json.loads(as_json(config)))
  return {key: (old.get(key, _ABSENT), new.get(key, _ABSENT))
          for key in sorted(old.keys() | new.keys()) if old.get(key, _ABSENT) != new.get(key, _ABSENT)}


def _describe(changes: dict[str, tuple]) -> str:
  return ", ".join(f"{key} {old!r} -> {new!r}" for key, (old, new) in changes.items())


def check_config(config: ml_collections.ConfigDict, workdir: pathlib.Path, *,
                 allow_change: bool = False) -> dict[str, tuple] | None:
  """Refuses a training config that disagrees with the workdir's, before anything is touched.

  Returns the differences from the stored config (None when there is no
  stored config, or it is unreadable and `allow_change` replaces it).
  """
  if workdir.exists() and not workdir.is_dir():
    raise UserError(f"--workdir {workdir} is a file, not a directory")
  try:
    stored = read_config(workdir)
  except UserError:
    if allow_change:
      return None
    raise
  if stored is None:
    return None
  changes = differences(stored, config)
  refused = {key: change for key, change in changes.items() if key not in RESUMABLE_KEYS}
  if refused and not allow_change:
    raise UserError(
        f"{workdir / CONFIG_FILE} holds another experiment: {_describe(refused)}; use a new "
        f"--workdir, or pass {OVERRIDE_FLAG} to train this one with the new values")
  return changes


def check_eval_config(config: ml_collections.ConfigDict, workdir: pathlib.Path) -> None:
  """Refuses to evaluate the workdir's weights through another network: `config`
  may differ from its config.json only in EVAL_KEYS. There is no way around
  it: weights evaluated with another architecture give a silently wrong result."""
  stored = read_config(workdir)
  if stored is None:
    raise UserError(f"{workdir} has no {CONFIG_FILE}, so its network is unknown: is it a "
                    "cnnjax workdir?")
  refused = {key: change for key, change in differences(stored, config).items()
             if key not in EVAL_KEYS}
  if refused:
    raise UserError(
        f"{workdir / CONFIG_FILE} was trained with another network or recipe: "
        f"{_describe(refused)}; leave out --config to evaluate it as trained (eval may change "
        f"only {', '.join(sorted(EVAL_OVERRIDES))})")


def check_eval_overrides(overrides: list[tuple[str, str]]) -> None:
  """A UserError for a command-line override that would change the network."""
  for key, _ in overrides:
    if key not in EVAL_OVERRIDES:
      raise UserError(f"config.{key} cannot change in `cnnjax eval`: the checkpoint was trained "
                      f"with the workdir's config.json; eval may change only "
                      f"{', '.join('config.' + k for k in sorted(EVAL_OVERRIDES))}")


def write_config(config: ml_collections.ConfigDict, workdir: pathlib.Path, step: int,
                 changes: dict[str, tuple] | None, schedule_over_total: bool = False) -> None:
  """Writes `config.json` for a run starting at `step`; `changes` is what
  `check_config` returned; `schedule_over_total` says that the run's schedule
  is laid over its total steps (the note when the total changes). A change it accepted only with `allow_change` (or
  an unreadable old file) keeps the old file as `config.<step>.json`, and
  says so on stderr.
  """
  path = workdir / CONFIG_FILE
  text = as_json(config)
  if path.exists() and changes == {}:
    return
  if changes and schedule_over_total and any(key in changes for key in _TOTAL_STEP_KEYS):
    print(f"cnnjax: note: {_describe({k: changes[k] for k in _TOTAL_STEP_KEYS if k in changes})} "
          f"changes the length of the {config.schedule.name} schedule; the learning rate "
          f"continues from step {step} on the new schedule", file=sys.stderr)
  refused = {key: change for key, change in (changes or {}).items() if key not in RESUMABLE_KEYS}
  if path.exists() and (changes is None or refused):
    kept = _free_name(workdir, step)
    os.replace(path, kept)
    what = _describe(refused) if refused else "the old config.json was unreadable"
    print(f"cnnjax: note: config changed at step {step} ({what}); the previous config is kept "
          f"as {kept}", file=sys.stderr)
  temporary = path.with_suffix(".json.tmp")
  temporary.write_text(text)
  os.replace(temporary, path)


def _free_name(workdir: pathlib.Path, step: int) -> pathlib.Path:
  """`config.<step>.json`, or `config.<step>-<n>.json` if the config changed twice at `step`."""
  candidate, copy = workdir / f"config.{step}.json", 1
  while candidate.exists():
    candidate, copy = workdir / f"config.{step}-{copy}.json", copy + 1
  return candidate
