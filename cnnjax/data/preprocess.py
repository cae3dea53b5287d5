"""Preprocessing: small ops on one example (a dict of tensors), and the
recipes that chain them.

Every op takes and returns the example dict; random ops take a stateless seed,
so an example's augmentation depends only on (run seed, epoch, position in the
epoch) and is the same after a resume. Recipes are looked up by name from the
config (`dataset.train_preprocess`, `dataset.eval_preprocess`) and leave
pixels in [0, 1]; a normalisation (`dataset.normalization`) follows them. A
multi-view evaluation recipe ("ten_crop") returns an image with a leading
view axis, [views, size, size, channels]; the eval step averages the softmax
over the views.
"""

from typing import Callable

import tensorflow as tf

from cnnjax.data.datasets import DatasetSpec

Example = dict[str, tf.Tensor]


def decode(example: Example, channels: int) -> Example:
  """Images arrive undecoded (TFDS SkipDecoding) so skipped examples cost no decode."""
  image = tf.io.decode_image(example["image"], channels=channels, expand_animations=False)
  return {**example, "image": tf.cast(image, tf.float32) / 255.0}


def resize(example: Example, size: int) -> Example:
  """Resizes to size x size, ignoring the aspect ratio (square inputs only)."""
  return {**example, "image": tf.image.resize(example["image"], (size, size), antialias=True)}


def resize_shorter_side(example: Example, size: int) -> Example:
  image = example["image"]
  height, width = tf.unstack(tf.cast(tf.shape(image)[:2], tf.float32))
  scale = tf.cast(size, tf.float32) / tf.minimum(height, width)
  new_size = tf.cast(tf.round(tf.stack([height, width]) * scale), tf.int32)
  return {**example, "image": tf.image.resize(image, new_size, antialias=True)}


def pad_to(example: Example, size: int) -> Example:
  """Pads with zeros (black) to size x size, the image centred: LeNet-5 §III.A
  places 28x28 MNIST digits in a 32x32 field."""
  image = example["image"]
  return {**example, "image": tf.image.pad_to_bounding_box(
      image, (size - tf.shape(image)[0]) // 2, (size - tf.shape(image)[1]) // 2, size, size)}


def center_crop(example: Example, size: int) -> Example:
  return {**example, "image": tf.image.resize_with_crop_or_pad(example["image"], size, size)}


def random_crop(example: Example, size: int, seed: tf.Tensor) -> Example:
  channels = example["image"].shape[-1]
  image = tf.image.stateless_random_crop(example["image"], (size, size, channels), seed)
  return {**example, "image": image}


def ten_crops(example: Example, size: int) -> Example:
  """The four corner and the centre size x size crops, then their mirror
  images, as 10 views on a new leading axis: AlexNet §4.1's ten test patches,
  and cuda-convnet's --multiview-test (convdata.py, CroppedCIFARDataProvider:
  corners and centre of the 32x32 image, each also flipped)."""
  image = example["image"]
  spare_height, spare_width = tf.shape(image)[0] - size, tf.shape(image)[1] - size
  corners = [(0, 0), (0, spare_width), (spare_height, 0), (spare_height, spare_width),
             (spare_height // 2, spare_width // 2)]
  crops = [tf.image.crop_to_bounding_box(image, top, left, size, size) for top, left in corners]
  return {**example, "image": tf.stack(crops + [tf.image.flip_left_right(c) for c in crops])}


def random_flip(example: Example, seed: tf.Tensor) -> Example:
  return {**example, "image": tf.image.stateless_random_flip_left_right(example["image"], seed)}


def random_area_crop(example: Example, size: int, seed: tf.Tensor) -> Example:
  """A crop of 8%-100% of the area with aspect ratio in [3/4, 4/3], resized to
  size x size (GoogLeNet §6, as commonly implemented)."""
  image = example["image"]
  begin, crop_size, _ = tf.image.stateless_sample_distorted_bounding_box(
      tf.shape(image), tf.zeros((0, 0, 4)), seed, area_range=(0.08, 1.0),
      aspect_ratio_range=(3 / 4, 4 / 3), max_attempts=10, use_image_if_no_bounding_boxes=True)
  crop = tf.slice(image, begin, crop_size)
  return {**example, "image": tf.image.resize(crop, (size, size), antialias=True)}


def standardize(example: Example, spec: DatasetSpec) -> Example:
  """Zero mean and unit variance per channel, with the training set's statistics."""
  return {**example, "image": (example["image"] - spec.mean) / spec.std}


def subtract_mean(example: Example, spec: DatasetSpec) -> Example:
  """Pixel values (0-255) minus the training set's mean per channel, and no
  scaling: AlexNet's only preprocessing (§2) and VGG's (§2.1). AlexNet's
  initialisation, N(0, 0.01) with biases of 1 (§5), assumes inputs this large;
  on standardised inputs its signal dies out within a few layers."""
  return {**example, "image": (example["image"] - spec.mean) * 255.0}


NORMALIZATIONS = {"standardize": standardize, "subtract_mean": subtract_mean}

# A recipe: (example, seed, size, spec) -> example with pixels in [0, 1].
Recipe = Callable[[Example, tf.Tensor, int, DatasetSpec], Example]


def _chain(*ops) -> Recipe:
  """Decode, then the ops in order; each random op gets its own seed."""

  def recipe(example, seed, size, spec):
    example = decode(example, spec.channels)
    for index, op in enumerate(ops):
      op_seed = tf.random.experimental.stateless_fold_in(seed, index)
      example = op(example, size=size, seed=op_seed)
    return example

  return recipe


def _deterministic(op):
  return lambda example, size, seed: op(example, size)


def _random_flip(example, size, seed):
  del size
  return random_flip(example, seed)


def _pad_then_random_crop(example, size, seed):
  """ResNet §4.2 (CIFAR): 4 pixels padded on each side, a random size x size crop."""
  return random_crop(pad_to(example, size + 8), size, seed)


def _resize_then_center_crop(example, size, seed):
  """The standard single-crop evaluation: shorter side to size / 0.875, centre crop."""
  del seed
  return center_crop(resize_shorter_side(example, round(size / 0.875)), size)


# The recipes that cut size x size out of the image as it is, which must be that large.
CROPS_OF_THE_IMAGE = frozenset({"random_crop_flip", "ten_crop"})

RECIPES: dict[str, Recipe] = {
    "resize": _chain(_deterministic(resize)),
    "pad": _chain(_deterministic(pad_to)),
    "pad_crop_flip": _chain(_pad_then_random_crop, _random_flip),
    # cuda-convnet's cropped CIFAR provider: a random size x size crop of the
    # image as it is (9x9 positions for 24 of 32), mirrored half the time.
    "random_crop_flip": _chain(random_crop, _random_flip),
    "random_area_crop_flip": _chain(random_area_crop, _random_flip),
    # The middle size x size (the whole image when it is that size): cuda-convnet's single view.
    "center_crop": _chain(_deterministic(center_crop)),
    "resize_center_crop": _chain(_resize_then_center_crop),
    "ten_crop": _chain(_deterministic(ten_crops)),  # Multi-view: [10, size, size, channels].
}


def dense_views(example: Example, scales: tuple[int, ...]) -> Example:
  """Dense multi-scale evaluation's views (VGG §3.2, ResNet Table 4): for each
  scale Q, the image with its shorter side resized to Q, its central Q x Q
  square, and that square's mirror image, as a group [2, Q, Q, channels]: the
  first scale's as `image`, the next as `image_1`, `image_2`, ... The eval step
  applies the network fully convolutionally to each (its class score map
  averaged over positions) and averages the softmax over all views.

  Departure: the paper applies the network to the whole rescaled image, of
  any aspect ratio; the central square keeps every batch rectangular (one
  shape per scale), and loses the ends of the longer side.
  """
  groups = {}
  for index, scale in enumerate(scales):
    square = center_crop(resize_shorter_side(example, scale), scale)["image"]
    groups["image" if index == 0 else f"image_{index}"] = tf.stack(
        [square, tf.image.flip_left_right(square)])
  return {**example, **groups}


def _dense(*scales: int) -> Recipe:
  return _chain(lambda example, size, seed: dense_views(example, scales))


# The papers' test scales, until recipe strings take any: VGG Table 3's single
# Q (= S, or 384 for S in [256, 512]), Table 4's Q ∈ {S−32, S, S+32} for S =
# 256, 384 and {256, 384, 512} for jittered S; ResNet Table 4's shorter sides
# {224, 256, 384, 480, 640} (§3.4).
for _scales in ((224,), (256,), (384,), (224, 256, 288), (352, 384, 416), (256, 384, 512),
                (224, 256, 384, 480, 640)):
  RECIPES[f"dense({', '.join(map(str, _scales))})"] = _dense(*_scales)
