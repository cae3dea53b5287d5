"""Preprocessing recipes as strings: the ops a recipe chains, parsed and
checked without TensorFlow, so a config is checked before any pipeline or
device work starts (cnnjax.data.preprocess runs them).

A recipe (`dataset.train_preprocess`, `dataset.eval_preprocess`) is a
registered name (`NAMED`) or ops joined by "|" with numeric arguments:

  "resize_shorter(256, 480) | random_crop(224) | flip | pca_lighting(0.1)"

An op's size argument may be left out where the op takes the model's input
size (`dataset.image_size`) by default ("random_crop" is "random_crop(size)").
A bad op name, argument count or value is a UserError naming the config key
and the valid ops. `geometry` follows the image size through the ops, so a
crop larger than the image, or a recipe that does not end at the model's
input size, is refused when the pipeline is built.
"""

import dataclasses
import re
from typing import Callable

from cnnjax.errors import UserError


@dataclasses.dataclass(frozen=True)
class OpSpec:
  """An op's arguments: `arguments` names them; the first `required` must be
  given; `size_default` says the first defaults to the input size. And what
  the op means to the tools that read recipes (cnnjax report): whether it
  draws at random, and whether its arguments are scales."""

  arguments: tuple[str, ...]
  required: int
  integer: bool  # Sizes (whole pixels), or a real number (a standard deviation).
  usage: str
  size_default: bool = False
  defaults: tuple[float, ...] = ()  # The optional arguments' values when left out.
  variadic: bool = False  # Any number of arguments, at least `required`.
  # Draws from the example's seed: a data augmentation ("+" in the CIFAR
  # papers' tables, e.g. C10+). Each such op takes the next seed of a recipe
  # (cnnjax.data.preprocess), so changing this changes every run's draws.
  random: bool = False
  # Random only when given a range (S_min < S_max): scale jittering, VGG §3.1.
  random_if_range: bool = False
  # Its arguments are scales, the shorter side's length: S in a training
  # recipe (VGG §3.1), Q in an evaluation's (VGG §3.2, ResNet Table 4).
  scales: bool = False


OPS: dict[str, OpSpec] = {
    "resize": OpSpec(("S",), 0, True, "resize(S)", size_default=True),
    "resize_shorter": OpSpec(("S_min", "S_max"), 1, True, "resize_shorter(S) or (S_min, S_max)",
                             random=True, random_if_range=True, scales=True),
    "center_crop": OpSpec(("C",), 0, True, "center_crop(C)", size_default=True),
    "random_crop": OpSpec(("C",), 0, True, "random_crop(C)", size_default=True, random=True),
    "pad": OpSpec(("S",), 0, True, "pad(S)", size_default=True),
    "flip": OpSpec((), 0, True, "flip", random=True),
    # AlexNet §4.1: alpha ~ N(0, 0.1).
    "pca_lighting": OpSpec(("STD",), 0, False, "pca_lighting(STD)", defaults=(0.1,),
                           random=True),
    "inception_crop": OpSpec(("C",), 0, True, "inception_crop(C)", size_default=True,
                             random=True),
    "photometric": OpSpec((), 0, True, "photometric", random=True),
    "ten_crop": OpSpec(("C",), 0, True, "ten_crop(C)", size_default=True),
    # VGG §3.2, ResNet Table 4: the network applied densely at each scale Q.
    "dense": OpSpec(("Q",), 1, True, "dense(Q, ...)", variadic=True, scales=True),
}

# Ops that give several views on a new leading axis: they end a recipe.
MULTI_VIEW = frozenset({"ten_crop", "dense"})

# Ops defined on RGB images only.
COLOUR = frozenset({"pca_lighting", "photometric"})

# The registered names, as recipe strings at model input size `size`.
NAMED: dict[str, Callable[[int], str]] = {
    "resize": lambda size: "resize",
    # LeNet-5 §III.A: 28x28 MNIST digits centred in a 32x32 field.
    "pad": lambda size: "pad",
    # ResNet §4.2 (CIFAR): 4 pixels padded on each side, a random crop, a flip.
    "pad_crop_flip": lambda size: f"pad({size + 8}) | random_crop | flip",
    # cuda-convnet's cropped CIFAR provider: a random size x size crop of the
    # image as it is (9x9 positions for 24 of 32), mirrored half the time.
    "random_crop_flip": lambda size: "random_crop | flip",
    "random_area_crop_flip": lambda size: "inception_crop | flip",
    # The middle size x size: cuda-convnet's single view.
    "center_crop": lambda size: "center_crop",
    # The usual single-crop evaluation: shorter side to size / 0.875 (256 for 224), centre crop.
    "resize_center_crop": lambda size: f"resize_shorter({round(size / 0.875)}) | center_crop",
    "ten_crop": lambda size: "ten_crop",  # Multi-view: [10, size, size, channels].
}


@dataclasses.dataclass(frozen=True)
class Op:
  name: str
  args: tuple[float, ...]  # Every argument, defaults filled in.

  def __str__(self):
    shown = ", ".join(map(str, self.args))
    return f"{self.name}({shown})" if self.args else self.name

  @property
  def augments(self) -> bool:
    """Whether the op draws at random with these arguments (see OpSpec.random)."""
    spec = OPS[self.name]
    return spec.random and (not spec.random_if_range or min(self.args) < max(self.args))


def augmented(ops: tuple[Op, ...]) -> bool:
  """Whether a training recipe augments its data: any op drawing at random."""
  return any(op.augments for op in ops)


def scales(ops: tuple[Op, ...]) -> tuple[int, ...] | None:
  """The scales the recipe resizes to (S when training, Q when evaluating;
  see OpSpec.scales): the first scale op's arguments, None if it has none."""
  return next((tuple(op.args) for op in ops if OPS[op.name].scales), None)


def setting(key: str) -> str:
  """Where a recipe is set: "config.dataset.train_preprocess", or an extra
  evaluation's "config.extra_evals['10crop']" (key "extra_evals['10crop']")."""
  return f"config.{key}" if key.startswith("extra_evals") else f"config.dataset.{key}"


_OP = re.compile(r"^([a-z_0-9]+)\s*(?:\((.*)\))?$")


def _valid_ops() -> str:
  return "ops joined by '|': " + ", ".join(spec.usage for spec in OPS.values())


def parse(text: str, size: int, key: str) -> tuple[Op, ...]:
  """The ops of recipe `text` for model input size `size`, arguments filled
  in; a UserError naming `config.dataset.<key>` if it is not a recipe."""
  if not isinstance(text, str) or not text.strip():
    raise UserError(f"{setting(key)}={text!r} is empty; name a recipe "
                    f"({', '.join(sorted(NAMED))}) or give {_valid_ops()}")
  written = NAMED[text.strip()](size) if text.strip() in NAMED else text
  ops = tuple(_parse_op(part.strip(), text, size, key) for part in written.split("|"))
  for op in ops[:-1]:
    if op.name in MULTI_VIEW:
      raise UserError(f"{setting(key)}={text!r}: {op.name} gives several views and "
                      "must be the last op")
  return ops


def _parse_op(part: str, text: str, size: int, key: str) -> Op:
  where = f"{setting(key)}={text!r}"
  match = _OP.match(part)
  if match is None or match.group(1) not in OPS:
    name = match.group(1) if match else part
    if "|" not in text and "(" not in text:  # A lone word: most likely a mistyped name.
      raise UserError(f"unknown {key} {text!r}; choose one of: {', '.join(sorted(NAMED))} "
                      f"({setting(key)}), or {_valid_ops()}")
    raise UserError(f"{where}: unknown op {name!r}; a recipe is {_valid_ops()}")
  name, arguments = match.group(1), match.group(2)
  spec = OPS[name]
  values = [] if arguments is None or not arguments.strip() else [
      item.strip() for item in arguments.split(",")]
  if not spec.required <= len(values) <= (len(values) if spec.variadic else len(spec.arguments)):
    raise UserError(f"{where}: {name} takes {spec.usage}, got {part!r}")
  numbers = [_number(value, spec.integer, f"{where}: {spec.usage}") for value in values]
  if spec.size_default and not numbers:
    numbers = [size]
  numbers += spec.defaults[len(numbers) - spec.required:] if spec.defaults else []
  if name == "resize_shorter" and len(numbers) == 2 and numbers[0] > numbers[1]:
    raise UserError(f"{where}: resize_shorter(S_min, S_max) needs S_min <= S_max")
  return Op(name, tuple(numbers))


def _number(value: str, integer: bool, usage: str) -> float:
  try:
    number = int(value) if integer else float(value)
  except ValueError:
    kind = "a whole number of pixels" if integer else "a number"
    raise UserError(f"{usage}: {value!r} is not {kind}") from None
  if number < (1 if integer else 0) or number != number or number == float("inf"):
    raise UserError(f"{usage}: {value!r} must be {'positive' if integer else '0 or more'}")
  return number


def single_view(ops: tuple[Op, ...]) -> tuple[Op, ...]:
  """`ops` with ten_crop(C) replaced by its centre view, center_crop(C), and
  dense(Q, ...) by its first scale's square: the geometry of one view."""
  def one(op):
    if op.name == "ten_crop":
      return (Op("center_crop", op.args),)
    if op.name == "dense":
      return (Op("resize_shorter", op.args[:1]), Op("center_crop", op.args[:1]))
    return (op,)
  return tuple(single for op in ops for single in one(op))


def canonical(ops: tuple[Op, ...]) -> str:
  """The recipe written out in full, e.g. "resize_shorter(256) | center_crop(224)":
  two spellings of one recipe (a name, its string) give the same text."""
  return " | ".join(map(str, ops))


@dataclasses.dataclass(frozen=True)
class Geometry:
  """What is known of the image size between ops: `height` x `width` when
  fixed, else the least its shorter side can be (`shorter`, None if unknown)."""

  height: int | None
  width: int | None
  shorter: int | None

  @classmethod
  def fixed(cls, side: int) -> "Geometry":
    return cls(side, side, side)


def check_fits(ops: tuple[Op, ...], height: int | None, width: int | None, channels: int,
               size: int, key: str, text: str, dataset: str) -> Geometry:
  """Follows the image size through `ops`, from `height` x `width` (None:
  unknown, the images vary), and returns the output's; a UserError for a
  colour op on grey images, a crop larger than the image, a pad smaller than
  it, a crop or pad of images of varying size (they need a fixed size: a
  resize first), or an output that is not `size` x `size` (the model's input)."""
  where = f"{setting(key)}={text!r}"
  for op in ops:
    if op.name in COLOUR and channels != 3:
      raise UserError(f"{where}: {op.name} changes RGB colours, and the images of {dataset!r} "
                      f"have {channels} channel{'s' if channels > 1 else ''}")
  shape = Geometry(height, width, None if None in (height, width) else min(height, width))
  for op in ops:
    if op.name in ("random_crop", "ten_crop", "pad") and shape.shorter is None:
      raise UserError(f"{where} {'pads' if op.name == 'pad' else 'crops'} images to a fixed size, "
                      f"and those of {dataset!r} vary in size; resize them first (e.g. "
                      f"'resize_shorter(S) | {op}' or 'resize | ...'), or use a resizing recipe "
                      "(random_area_crop_flip, resize_center_crop, resize)")
    if op.name in ("random_crop", "ten_crop"):
      crop = op.args[0]
      if shape.shorter is not None and crop > shape.shorter:
        seen = (f"{shape.height}x{shape.width} images" if shape.height is not None
                else f"images whose shorter side can be {shape.shorter}")
        fix = (f"set config.dataset.image_size to {shape.shorter} or less" if crop == size
               else f"crop {shape.shorter} or less, or resize first")
        raise UserError(f"{where} cuts {crop}x{crop} crops out of the {seen} of {dataset!r}; "
                        f"{fix}")
      shape = Geometry.fixed(crop)
    elif op.name == "pad":
      side = op.args[0]
      if shape.height is not None and max(shape.height, shape.width) > side:
        raise UserError(f"{where} pads the {shape.height}x{shape.width} images of {dataset!r} "
                        f"to {side}x{side}, smaller than they are")
      shape = Geometry.fixed(side)
    elif op.name in ("resize", "center_crop", "inception_crop"):
      shape = Geometry.fixed(op.args[0])
    elif op.name == "resize_shorter":
      shape = Geometry(None, None, op.args[0])
    elif op.name == "dense":
      # Squares of any scale: the eval step runs the network fully
      # convolutionally on those larger than its input (cnnjax.training.steps.eval_step).
      return Geometry.fixed(int(op.args[0]))
  if shape.height is None:
    raise UserError(f"{where} gives images of varying size from {dataset!r}; end it with a "
                    f"crop or resize to {size}")
  if (shape.height, shape.width) != (size, size):
    raise UserError(f"{where} gives {shape.height}x{shape.width} images, but the model takes "
                    f"{size}x{size} (config.dataset.image_size)")
  return shape


def fixed_output_side(text: str) -> int | None:
  """The side of the square recipe `text` ends at when its own arguments fix
  it ("inception_crop(160) | flip": 160), else None (an op at the input
  size's default, or an output of varying size). Parsed at two input sizes:
  a side that does not follow them is the recipe's own."""
  sides = {_output_side(parse(text, size, "train_preprocess")) for size in (1, 2)}
  return sides.pop() if len(sides) == 1 else None


# Ops whose output is a square of the side of their first argument.
SQUARE_OUTPUT = frozenset({"resize", "center_crop", "random_crop", "pad", "inception_crop",
                           "ten_crop", "dense"})


def _output_side(ops: tuple[Op, ...]) -> int | None:
  side = None
  for op in ops:
    if op.name == "resize_shorter":
      side = None
    elif op.name in SQUARE_OUTPUT:
      side = int(op.args[0])
  return side


def check(dataset, extra_evals=()) -> None:
  """Parses `dataset.train_preprocess`, `eval_preprocess` and the extra
  evaluations' recipes (config validation, before TensorFlow or JAX is
  imported), and checks the dataset's name: a table name, any other name
  (TFDS looks it up when the data is opened), or folder:PATH with a PATH."""
  from cnnjax.data.datasets import DATASETS, folder_path, is_folder

  if is_folder(dataset.name):
    folder_path(dataset.name)
  # The size only fills in ops' default arguments: whether a recipe parses
  # does not depend on it (the data checks the sizes, cnnjax.data.pipeline).
  size = dataset.image_size or (DATASETS[dataset.name].image_size
                                if dataset.name in DATASETS else 1)
  for key in ("train_preprocess", "eval_preprocess"):
    parse(dataset[key], size, key)
  for name, recipe in extra_evals:
    parse(recipe, size, f"extra_evals[{name!r}]")
