"""`cnnjax import-weights`: torchvision's weights (a safetensors file with its
parameter names) as a new cnnjax workdir, ready for `cnnjax eval` and for
fine-tuning with `cnnjax train`.

  cnnjax import-weights --model resnet50 --from resnet50.safetensors --workdir runs/tv_resnet50
  cnnjax eval --workdir runs/tv_resnet50 --config.dataset.data_dir=DIR

The workdir gets config.json and an orbax checkpoint of step 0: the TrainState
the trainer builds (cnnjax.training.steps), holding the imported parameters and
BatchNorm statistics and a fresh optimizer state. Its config is
`imagenet_eval_config` (torchvision's evaluation: ImageNet's `validation`
split, shorter side 256, centre crop 224, ImageNet's mean and standard
deviation), or with `--config EXPERIMENT[:ARG]` that experiment's, so that
`cnnjax train --config EXPERIMENT[:ARG] --workdir DIR` fine-tunes the
weights with its recipe.

The file must use torchvision's parameter names (its `state_dict()` keys).
Where torch is installed, any torchvision network's weights become one with

  python -c "import torchvision; from safetensors.torch import save_file; \
    save_file(torchvision.models.resnet50(weights='DEFAULT').state_dict(), 'resnet50.safetensors')"

(torchvision's old DenseNet names, "norm.1", are accepted too). Files
re-published under other libraries' names (timm's VGG, say, whose FC layers
are convolutions) do not fit: the import names the first key it cannot
place; load them into torchvision's network and save its state_dict instead.

Everything is checked before anything is written (the file, its keys and
shapes against the model, the config), and the workdir is assembled beside
its destination and renamed into place, so a refused or failed import leaves
nothing behind; an existing non-empty workdir is refused.
"""

import argparse
import functools
import os
import pathlib
import shutil

import ml_collections

from cnnjax import config as config_lib
from cnnjax.errors import UserError
from cnnjax.pretrained import torchvision as pretrained

IMPORTED_STEP = 0  # The checkpoint's step: training from it starts at step 1.


def add_arguments(command: argparse.ArgumentParser) -> None:
  command.add_argument("--model", required=True, metavar="NAME",
                       help=f"the cnnjax model: {', '.join(pretrained.supported_models())}")
  command.add_argument("--from", dest="source", required=True, type=pathlib.Path,
                       metavar="FILE.safetensors",
                       help="torchvision's weights, with torchvision's parameter names")
  command.add_argument("--workdir", required=True, type=pathlib.Path, metavar="DIR",
                       help="the new workdir (must not exist, or be empty)")
  command.add_argument("--config", metavar="EXPERIMENT[:ARG]",
                       help="optional: the experiment to fine-tune with (default: torchvision's "
                            "ImageNet evaluation, see `cnnjax.pretrained.import_weights`)")


def imagenet_eval_config(model_name: str) -> ml_collections.ConfigDict:
  """torchvision's ImageNet evaluation of `model_name` (its weights' "transforms"):
  resize the shorter side to 256, crop the central 224x224, standardise with
  ImageNet's mean and standard deviation; TFDS's labelled evaluation split of
  imagenet2012 is `validation` (its `test` has no labels). The training keys
  are base_config's: import with `--config` to fine-tune with a recipe."""
  config = config_lib.base_config()
  config.model.name = model_name
  if model_name == "googlenet_bn":  # What torchvision's loader sets with its weights.
    config.model.transform_input = True
  config.dataset.name = "imagenet2012"
  config.dataset.eval_split = "validation"
  config.dataset.image_size = 224
  config.dataset.train_preprocess = "random_area_crop_flip"  # torchvision's RandomResizedCrop.
  # Shorter side round(224 / 0.875) = 256, then the central 224x224 (the
  # recipe string "resize_shorter(256) | center_crop(224)" once preprocess.py
  # has recipe strings).
  config.dataset.eval_preprocess = "resize_center_crop"
  config.dataset.normalization = "standardize"  # ImageNet's mean and std (cnnjax.data.datasets).
  return config


def _refuse_existing(workdir: pathlib.Path) -> None:
  if workdir.exists() and not workdir.is_dir():
    raise UserError(f"--workdir {workdir} is a file; pass a new directory")
  if workdir.is_dir() and any(workdir.iterdir()):
    raise UserError(f"--workdir {workdir} is not empty; import-weights writes only into a new "
                    "(or empty) workdir, so that nothing there is lost: pass a new --workdir")


def _config(args, overrides) -> ml_collections.ConfigDict:
  if args.config is None:
    return config_lib.with_overrides(imagenet_eval_config(args.model), overrides)
  config = config_lib.from_command_line(args.config, overrides)
  if config.model.name != args.model:
    raise UserError(f"--config {args.config} trains {config.model.name!r}, not --model "
                    f"{args.model!r}; pass the experiment of that model")
  return config


def run(args, overrides) -> int:
  pretrained.check_supported(args.model)
  _refuse_existing(args.workdir)
  config = _config(args, overrides)
  tensors = pretrained.read_safetensors(args.source)
  config_lib.check_model(config)  # Imports JAX.
  state, notes = imported_state(config, tensors, str(args.source))
  if config.model.name == "googlenet_bn" and not config.model.transform_input:
    notes.append("torchvision's googlenet weights expect model.transform_input=True (its "
                 "loader sets it; see cnnjax.models.googlenet): pass "
                 "--config.model.transform_input=True unless these weights were trained without")
  for note in notes:
    print(f"cnnjax: note: {note}", flush=True)
  write_workdir(config, state, args.workdir, {"imported_from": str(args.source.absolute())})
  print(f"imported {len(tensors)} tensors of {args.source} as {args.model} into {args.workdir} "
        f"(step {IMPORTED_STEP}); evaluate them with `cnnjax eval --workdir {args.workdir}`",
        flush=True)
  return 0


def imported_state(config: ml_collections.ConfigDict, tensors, source: str):
  """The TrainState the trainer would build for `config`, holding torchvision's
  `tensors` and a fresh optimizer state, on the host; and the import's notes."""
  import jax
  import numpy as np

  from cnnjax import models
  from cnnjax.data import describe
  from cnnjax.training import optim, steps

  spec = describe(config.dataset)
  size = config_lib.input_size(config, spec)
  model = models.from_config(config, steps.AXIS, num_classes=spec.num_classes)
  # The optimizer state's arrays do not depend on the schedule's lengths
  # (steps per epoch come from the data, which need not be here); the
  # trainer rebuilds the schedule from the data when it resumes.
  optimizer = optim.create_optimizer(
      config, optim.create_schedule(config.schedule, config.optimizer.learning_rate, 1, 1), 1)
  create = functools.partial(steps.create_train_state, jax.random.key(config.seed), model,
                             optimizer, (size, size, spec.channels))
  shapes = jax.eval_shape(create)  # Keys and shapes are checked before anything is computed.
  _, notes = pretrained.check_fits(config.model.name, model, _variables(shapes), tensors, source)
  # Only variables the file lacks (notes say which) need the initialiser,
  # whose compilation takes longer than the rest of the import.
  state = (jax.device_get(create()) if notes else
           jax.tree.map(lambda leaf: np.zeros(leaf.shape, leaf.dtype), shapes))
  variables = _variables(state)
  imported, notes = pretrained.torchvision_variables(config.model.name, model, variables,
                                                     tensors, source)
  params = imported["params"]
  return state.replace(params=params, batch_stats=imported.get("batch_stats", {}),
                       opt_state=jax.device_get(optimizer.init(params))), notes


def _variables(state) -> dict:
  return {"params": state.params, "batch_stats": state.batch_stats}


def write_workdir(config: ml_collections.ConfigDict, state, workdir: pathlib.Path,
                  extra: dict) -> None:
  """config.json and the checkpoint of `state` at IMPORTED_STEP, assembled in
  a hidden sibling and renamed to `workdir` (new, or empty) when complete."""
  from cnnjax.workdir import config_file as workdir_lib
  from cnnjax.workdir.checkpoint import Checkpointer

  workdir = workdir.absolute()
  workdir.parent.mkdir(parents=True, exist_ok=True)
  staging = workdir.parent / f".{workdir.name}.importing-{os.getpid()}"
  try:
    staging.mkdir()
    workdir_lib.write_config(config, staging, IMPORTED_STEP, None)
    checkpointer = Checkpointer(staging / "checkpoints", config.keep_checkpoints)
    checkpointer.save(IMPORTED_STEP, state, extra=extra)
    checkpointer.close()
    try:
      os.rename(staging, workdir)  # Replaces an empty directory, refuses a non-empty one.
    except OSError as error:
      raise UserError(f"cannot create --workdir {workdir}: {error.strerror} (did something "
                      "write there meanwhile?); nothing was written") from None
  finally:
    shutil.rmtree(staging, ignore_errors=True)
