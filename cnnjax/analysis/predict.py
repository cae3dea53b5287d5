"""`cnnjax predict`: a trained (or imported) network's top classes for image
files, through the workdir's own evaluation preprocessing.

  cnnjax predict --workdir DIR IMAGE_OR_FOLDER... [--top-k K] [--format text|json]
                 [--step N | --best]

Each image goes through what evaluation does to the test images: the
config's `dataset.eval_preprocess` at its input size, then its normalisation
(the dataset's mean and standard deviation, or mean image), and a multi-view
recipe's softmax averaged over its views (cnnjax.training.steps.eval_logits).
Class names are the dataset's (cnnjax.data: a table dataset's builder, a TFDS
dataset's metadata, a folder's class folders), ImageNet's WordNet ids as their
synonyms; so a workdir of torchvision's weights (`cnnjax import-weights`) can
be checked on a few photographs without ImageNet. A file that cannot be read
or decoded is one line on stderr and the others are still predicted; the
exit status is then 1. Importing this module imports neither JAX nor
TensorFlow: flag mistakes are one line at once.
"""

import argparse
import contextlib
import json
import pathlib
import sys

from cnnjax.errors import UserError

# What a folder given on the command line is searched for (TensorFlow's decoders).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
SOME_FAILED_STATUS = 1


def add_arguments(command: argparse.ArgumentParser) -> None:
  command.add_argument("--workdir", required=True, type=pathlib.Path, metavar="DIR",
                       help="a trained workdir (`cnnjax train`, `cnnjax import-weights`); it is "
                            "only read")
  command.add_argument("images", nargs="+", type=pathlib.Path, metavar="IMAGE",
                       help="image files (JPEG, PNG, BMP, GIF), or folders whose images are "
                            "predicted in name order")
  command.add_argument("--top-k", type=int, default=5, metavar="K",
                       help="how many classes to show per image (default: 5)")
  command.add_argument("--format", choices=("text", "json"), default="text",
                       help="one line per image, or a JSON list (default: text)")
  which = command.add_mutually_exclusive_group()
  which.add_argument("--step", type=int, metavar="N", help="the checkpoint of step N "
                     "(default: the latest)")
  which.add_argument("--best", action="store_true",
                     help="the checkpoint with the lowest eval top-1 error")


def image_files(paths: list[pathlib.Path]) -> list[pathlib.Path]:
  """The files given, and the images (IMAGE_SUFFIXES) of each folder given, in
  name order; a folder without any is a UserError. Files are kept whatever
  they hold: one that cannot be read is reported as the others are predicted."""
  files = []
  for path in paths:
    if not path.is_dir():
      files.append(path)
      continue
    found = sorted(child for child in path.rglob("*")
                   if child.suffix.lower() in IMAGE_SUFFIXES and child.is_file())
    if not found:
      raise UserError(f"{path} holds no image ({', '.join(IMAGE_SUFFIXES)}); give image files "
                      "or folders of them")
    files.extend(found)
  return files


def run(args, overrides) -> int:
  del overrides
  if args.top_k < 1:
    raise UserError(f"--top-k must be at least 1, got {args.top_k}")
  if not args.workdir.is_dir():
    raise UserError(f"--workdir {args.workdir} is not a directory; pass the workdir of a "
                    "`cnnjax train` or `cnnjax import-weights` run")
  files = image_files(args.images)
  from cnnjax import config as config_lib

  config = config_lib.from_workdir(args.workdir)
  # What preparing the dataset says (an embedded dataset built, a folder
  # prepared) goes to stderr: stdout holds the predictions alone.
  with contextlib.redirect_stdout(sys.stderr):
    predictor = Predictor.load(args.workdir, config, args.step, args.best)
  predictions, failed = [], 0
  for path in files:
    try:
      encoded = path.read_bytes()
    except OSError as error:
      failed += _unreadable(path, error.strerror or str(error))
      continue
    try:
      probabilities = predictor.probabilities(encoded)
    except ValueError as error:  # tf.errors.OpError is not importable here; see Predictor.
      failed += _unreadable(path, str(error))
      continue
    top = probabilities.argsort()[::-1][:args.top_k]
    predictions.append({
        "image": str(path),
        "top_k": [{"label": int(label), "class": predictor.class_names[label],
                   "probability": float(probabilities[label])} for label in top]})
    if args.format == "text":
      from cnnjax.data import class_names

      print(f"{path}: " + ", ".join(f"{class_names.short(guess['class'])} "
                                    f"{100 * guess['probability']:.1f}%"
                                    for guess in predictions[-1]["top_k"]), flush=True)
  if args.format == "json":
    print(json.dumps({"workdir": str(args.workdir), "step": predictor.step,
                      "predictions": predictions}, indent=2))
  return SOME_FAILED_STATUS if failed else 0


def _unreadable(path: pathlib.Path, reason: str) -> int:
  reason = reason.strip().splitlines()[0] if reason.strip() else "unreadable"
  print(f"cnnjax: cannot predict {path}: {reason[:200]}", file=sys.stderr, flush=True)
  return 1


class Predictor:
  """A workdir's network at one checkpoint, with its evaluation preprocessing."""

  def __init__(self, pipeline, model, variables, step: int, class_names: tuple[str, ...]):
    import functools

    import jax

    from cnnjax.training import steps

    self.pipeline, self.step, self.class_names = pipeline, step, class_names
    self._variables = variables
    # One program per image shape: a fixed-size recipe compiles once.
    self._logits = jax.jit(functools.partial(steps.eval_logits, model=model,
                                             train_size=pipeline.image_size))

  @classmethod
  def load(cls, workdir: pathlib.Path, config, step: int | None, best: bool) -> "Predictor":
    """Holds the workdir shared while it reads the checkpoint, which it chooses
    from the index before the dataset's metadata is opened."""
    import jax

    from cnnjax import config as config_lib
    from cnnjax import models
    from cnnjax.data import InputPipeline, describe, open_builder
    from cnnjax.training import parallel
    from cnnjax.workdir import checkpoint as checkpoint_lib
    from cnnjax.workdir.checkpoint import Checkpointer

    with parallel.own_workdir(workdir, "predict", shared=True):
      chosen = checkpoint_lib.choose_step(workdir, config.keep_checkpoints, step, best)
      pipeline = InputPipeline(
          open_builder(config.dataset), config.dataset, seed=config.seed, process_index=0,
          process_count=1, local_devices=1,
          input_size=config_lib.input_size(config, describe(config.dataset)))
      names = pipeline.class_names
      model = models.from_config(config, num_classes=pipeline.spec.num_classes)
      checkpointer = Checkpointer(workdir / "checkpoints", config.keep_checkpoints,
                                  read_only=True)
      try:
        saved = checkpointer.restore_as_saved(chosen)
      finally:
        checkpointer.close()
    variables = {"params": saved["params"], "batch_stats": saved.get("batch_stats") or {}}
    return cls(pipeline, model, jax.device_put(variables), chosen, names)

  def probabilities(self, encoded: bytes):
    """The softmax over the classes of one encoded image; ValueError naming
    why if TensorFlow cannot decode it."""
    import jax
    import numpy as np
    import tensorflow as tf

    try:
      batch = self.pipeline.eval_image(encoded)
    except (tf.errors.OpError, ValueError) as error:
      message = getattr(error, "message", None) or str(error)  # Without TF's op names:
      raise ValueError(message.split("}} ")[-1].split(" [Op:")[0]) from None
    logits = self._logits(self._variables, batch)
    return np.asarray(jax.nn.softmax(logits[0]))

