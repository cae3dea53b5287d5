"""What the papers' experiment files (experiments/*_imagenet.py, *_cifar*.py)
share: their argument words, the ImageNet and CIFAR dataset settings, and the
`smoke` stand-ins that run a recipe end to end on embedded data.

A recipe's `smoke` keeps everything that makes it that recipe — the
preprocessing ops, the normalisation, the evaluation modes, the optimizer,
the schedule's kind — and changes only what the embedded stand-in and a
minute of CPU force: the dataset (`shapes/jpeg`, JPEG images of varying size
and aspect ratio like ImageNet's; `shapes/hard`, 32x32 like CIFAR's), a few
steps on a few images, and, for the ImageNet recipes, every image size in
the recipe multiplied by the file's `SMOKE_SCALE` (224 → 56 at 1/4), the
largest scale a CPU trains in seconds that the network still accepts.
"""

import ml_collections

from cnnjax.errors import UserError

SMOKE_STEPS = 4
SMOKE_BATCH = 8  # One example from each of the 8 shards of the train split.

# TFDS's ImageNet (imagenet2012): 1,281,167 training images; the labelled
# images the papers report on are its `validation` split (50,000), since
# TFDS's `test` split has no labels.
IMAGENET_TRAIN_IMAGES = 1_281_167


def words(arg: str | None, file: str, allowed: dict[str, str]) -> list[str]:
  """The comma-separated words of an experiment's ARG (`50,smoke`), in
  order, each a key of `allowed` (word: what it selects)."""
  given = [word.strip() for word in arg.split(",")] if arg else []
  for word in given:
    if word not in allowed:
      choices = "; ".join(f"{key}: {meaning}" for key, meaning in allowed.items())
      example = next(iter(allowed)) + (",smoke" if "smoke" in allowed else "")
      raise UserError(f"{file} has no argument {word!r}; combine with commas any of "
                      f"({choices}), e.g. --config {file}:{example}")
  return given


def one_of(given: list[str], choices, file: str, default: str) -> str:
  """The one word of `given` among `choices` (`default` when none is)."""
  chosen = [word for word in given if word in choices]
  if len(chosen) > 1:
    raise UserError(f"{file}: {' and '.join(repr(w) for w in chosen)} exclude each other; "
                    f"choose one of {', '.join(choices)}")
  return chosen[0] if chosen else default


def sizes(smoke: bool, scale: float):
  """n -> the image size a recipe uses: n, or n x `scale` in its smoke run."""
  return (lambda n: round(n * scale)) if smoke else (lambda n: n)


def sgd(config: ml_collections.ConfigDict, *, learning_rate: float, batch_size: int,
        weight_decay: float, nesterov: bool = False) -> None:
  """The papers' optimizer: SGD with momentum 0.9 and L2 weight decay, at the
  paper's rate for the paper's batch, scaled linearly for another batch."""
  config.batch_size = batch_size
  config.optimizer.update(name="sgd", momentum=0.9, nesterov=nesterov,
                          learning_rate=learning_rate, base_batch_size=batch_size,
                          weight_decay=weight_decay)


def plateau_on_validation(config: ml_collections.ConfigDict, patience_epochs: float = 5.0) -> None:
  """"Divided by 10 when the validation error stopped improving" (AlexNet §5,
  VGG §3.1, ResNet §3.4): the rate follows the validation top-1 error,
  evaluated every epoch; the papers do not give a patience, 5 epochs is ours."""
  config.schedule.update(name="plateau", decay_factor=0.1,
                         plateau_patience_epochs=patience_epochs,
                         plateau_metric="eval/top1_error")


def imagenet(config: ml_collections.ConfigDict) -> None:
  """ImageNet (ILSVRC-2012) as TFDS prepares it: train on `train`, report on
  `validation`."""
  config.dataset.name = "imagenet2012"
  config.dataset.train_split = "train"
  config.dataset.eval_split = "validation"
  config.log_every_steps = 500


def epochs_of(iterations: int, batch_size: int, train_images: int) -> float:
  """A paper's iteration count as epochs of this run (whose epoch is
  train_images // batch_size steps), so that at the paper's batch the run
  takes exactly the paper's iterations, and at another it sees as many images."""
  return iterations / (train_images // batch_size)


def smoke_imagenet(config: ml_collections.ConfigDict) -> None:
  """The recipe on `shapes/jpeg` for SMOKE_STEPS steps; the caller has scaled
  the recipe's image sizes already."""
  config.dataset.name = "shapes/jpeg"
  config.dataset.train_split = "train[:256]"
  config.dataset.eval_split = "validation[:16]"
  _few_steps(config)


def smoke_cifar(config: ml_collections.ConfigDict) -> None:
  """The recipe on `shapes/hard` (32x32 RGB, CIFAR-10's format) for SMOKE_STEPS steps."""
  config.dataset.name = "shapes/hard"
  config.dataset.train_split = "train[:256]"
  config.dataset.eval_split = "test[:64]"
  _few_steps(config)


def _few_steps(config: ml_collections.ConfigDict) -> None:
  config.batch_size = SMOKE_BATCH
  config.eval_batch_size = SMOKE_BATCH
  config.dataset.shuffle_buffer = 256
  config.num_train_steps = SMOKE_STEPS
  config.log_every_steps = 1
  config.eval_every_steps = SMOKE_STEPS
  config.checkpoint_every_steps = SMOKE_STEPS
