"""Preprocessing: the papers' augmentation as small tf.data ops on one image,
chained by a recipe (cnnjax.data.recipes parses it), then a normalisation.

Images are float32 [H, W, C] with pixels in [0, 1] from decoding to the end
of the recipe; a normalisation (`dataset.normalization`) follows. Every random
op takes a stateless seed: op k of a recipe draws from the example's seed
folded with k's rank among the recipe's random ops, so an example's
augmentation depends only on (run seed, epoch, shard, position in the epoch)
and is the same after a resume. A multi-view op (ten_crop) ends a recipe and
returns [views, size, size, channels]; the eval step averages the softmax
over the views.

Resizing is tf.image.resize's, bilinear with antialiasing (the triangle
filter widened by the scale factor when shrinking, as PIL does), computed
by cnnjax.data.resample: the same pixels, faster. torchvision's
evaluation of its published weights is PIL's bilinear resize of the shorter
side to 256 (the longer side truncated: int(256 * long / short)), then the
224 centre crop with offsets round((H - 224) / 2) — the recipe
"resize_shorter(256) | center_crop(224)", which follows both conventions.
JPEG decoding matches PIL's exactly (see `decode`). What still differs is
arithmetic: PIL filters in fixed point and rounds the result to uint8,
tf.image.resize filters floats. Measured end to end against Pillow 13
(scripts/compare_resize_with_pil.py: two 640x427 photographs bundled with
scikit-learn, four shapes/jpeg images, upsampled): 0.27 to 0.30 grey levels
(pixels 0-255) on average, 1.0 at most, about what rounding to uint8 alone
gives (0.25 on average).
"""

from typing import Callable

import numpy as np
import tensorflow as tf

from cnnjax.data import recipes, resample
from cnnjax.data.datasets import DatasetSpec
from cnnjax.data.recipes import Op

Example = dict[str, tf.Tensor]

# AlexNet §4.1's PCA of ImageNet's RGB pixel covariance (pixels in [0, 1]):
# eigenvalues, and the eigenvectors as the columns of PCA_EIGENVECTORS. The
# values the reimplementations share, from fb.resnet.torch
# (datasets/imagenet.lua, `pca`); the paper does not publish its own.
PCA_EIGENVALUES = np.array([0.2175, 0.0188, 0.0045], np.float32)
PCA_EIGENVECTORS = np.array([[-0.5675, 0.7192, 0.4009],
                             [-0.5808, -0.0045, -0.8140],
                             [-0.5836, -0.6948, 0.4203]], np.float32)

# TF-slim's distort_color (tensorflow/models research/slim/preprocessing/
# inception_preprocessing.py, fast_mode=False): brightness +-32/255,
# saturation and contrast x[0.5, 1.5], hue +-0.2, in one of four orders
# drawn per image, then clipped to [0, 1]. GoogLeNet §6 only names Andrew
# Howard's photometric distortions; slim's is the implementation commonly
# used for Inception.
BRIGHTNESS_DELTA = 32 / 255
SATURATION_RANGE = (0.5, 1.5)
HUE_DELTA = 0.2
CONTRAST_RANGE = (0.5, 1.5)
COLOUR_ORDERS = (("brightness", "saturation", "hue", "contrast"),
                 ("saturation", "brightness", "contrast", "hue"),
                 ("contrast", "hue", "brightness", "saturation"),
                 ("hue", "saturation", "contrast", "brightness"))


def decode(example: Example, channels: int) -> Example:
  """Images arrive undecoded (TFDS SkipDecoding) so skipped examples cost no
  decode; here they become float32 in [0, 1]."""
  image = decode_pixels(example["image"], channels)
  return {**example, "image": tf.cast(image, tf.float32) / 255.0}


def decode_pixels(encoded: tf.Tensor, channels: int) -> tf.Tensor:
  """An encoded image (JPEG, PNG, GIF's first frame, BMP, WebP, JPEG XL) as
  uint8 [H, W, channels]. JPEG is decoded with libjpeg's accurate integer
  DCT, as PIL (and so torchvision) decodes it: pixel for pixel the same,
  where TensorFlow's default, the fast DCT, differs by about a grey level on
  average and up to 18 (scripts/compare_resize_with_pil.py)."""
  return tf.cond(
      tf.io.is_jpeg(encoded),
      lambda: tf.io.decode_jpeg(encoded, channels=channels, dct_method="INTEGER_ACCURATE"),
      lambda: tf.io.decode_image(encoded, channels=channels, expand_animations=False))


def resize(image: tf.Tensor, size: int) -> tf.Tensor:
  """To size x size, ignoring the aspect ratio (AlexNet's "resize(256)" of square images)."""
  return resample.resize(image, (size, size))


def resize_shorter(image: tf.Tensor, seed: tf.Tensor, smallest: int,
                   largest: int | None = None) -> tf.Tensor:
  """The shorter side to `smallest`, or to a whole number drawn uniformly
  from [smallest, largest] (VGG §3.1's and ResNet §3.4's scale jittering),
  keeping the aspect ratio; the longer side truncated as torchvision does."""
  new_size = _shorter_side_to(tf.shape(image)[:2], seed, smallest, largest)
  return resample.resize(image, new_size)


def _shorter_side_to(shape: tf.Tensor, seed: tf.Tensor, smallest: int,
                     largest: int | None) -> tf.Tensor:
  """resize_shorter's new (height, width) for an image of (height, width) `shape`."""
  side = tf.constant(smallest, tf.int32) if largest is None else tf.random.stateless_uniform(
      (), seed, smallest, largest + 1, dtype=tf.int32)
  height, width = tf.unstack(shape)
  shorter = tf.minimum(height, width)
  longer_side = tf.maximum(height, width) * side // shorter
  return tf.where(height <= width, tf.stack([side, longer_side]), tf.stack([longer_side, side]))


# Rows and columns decoded beyond those the resize kernel reads: a JPEG's
# largest block (16 pixels, chroma at half resolution) and its smoothing.
DECODE_MARGIN = 16


def decode_resize_shorter_then_crop(encoded: tf.Tensor, channels: int, resize_seed: tf.Tensor,
                                    smallest: int, largest: int | None, size: int,
                                    crop_seed: tf.Tensor | None = None) -> tf.Tensor:
  """decode, resize_shorter then random_crop (or center_crop, without
  `crop_seed`), computing only the crop's pixels: the resize's own kernel
  evaluated there, the crop's offset drawn as tf.image.stateless_random_crop
  draws it (or placed as center_crop places it), and of a JPEG only the part
  the kernel reads decoded. The same pixels to rounding
  (tests/test_preprocess.py). ResNet's jitter to [256, 480] keeps a quarter
  of the resized image or less; resizing all of it took 4 of the 5 ms an
  image cost (1 ms decoding). The crop must fit the resized image
  (`size` <= `smallest`): center_crop would pad otherwise."""
  def offset_and_scale(shape):
    new_size = _shorter_side_to(shape, resize_seed, smallest, largest)
    if crop_seed is None:  # As center_crop: round((side - size) / 2), half to even.
      offset = tf.cast(tf.round(tf.cast(new_size - size, tf.float32) / 2), tf.int32)
    else:
      limit = tf.concat([new_size - size + 1, [1]], 0)
      offset = tf.random.stateless_uniform([3], crop_seed, maxval=tf.int32.max,
                                           dtype=tf.int32)[:2] % limit[:2]
    return offset, tf.cast(new_size, tf.float32) / tf.cast(shape, tf.float32)

  def crop(image, offset, scale, origin):
    """The crop from `image` (uint8, scaled to [0, 1] here, where there are
    fewer pixels), the part at `origin` of the whole image."""
    # Output pixel x of the crop is pixel x + offset of the whole resized image.
    translation = tf.cast(origin, tf.float32) * scale - tf.cast(offset, tf.float32)
    return resample.scale_and_translate(image, [size, size], scale, translation) / 255.0

  def jpeg():
    shape = tf.image.extract_jpeg_shape(encoded)[:2]
    offset, scale = offset_and_scale(shape)
    # The triangle kernel reads max(1, 1 / scale) input pixels either side.
    reach = tf.maximum(1.0, 1.0 / scale) + DECODE_MARGIN
    first = tf.cast(tf.floor(tf.cast(offset, tf.float32) / scale - reach), tf.int32)
    last = tf.cast(tf.math.ceil(tf.cast(offset + size, tf.float32) / scale + reach), tf.int32)
    first, last = tf.maximum(first, 0), tf.minimum(last, shape)
    window = tf.image.decode_and_crop_jpeg(encoded, tf.concat([first, last - first], 0),
                                           channels=channels, dct_method="INTEGER_ACCURATE")
    return crop(window, offset, scale, first)

  def other():
    image = tf.io.decode_image(encoded, channels=channels, expand_animations=False)
    offset, scale = offset_and_scale(tf.shape(image)[:2])
    return crop(image, offset, scale, tf.zeros([2], tf.int32))

  return tf.cond(tf.io.is_jpeg(encoded), jpeg, other)


def pad(image: tf.Tensor, size: int) -> tf.Tensor:
  """Zeros (black) around the image, centred, to size x size: LeNet-5 §III.A
  places 28x28 MNIST digits in a 32x32 field; ResNet §4.2 pads CIFAR by 4."""
  return tf.image.pad_to_bounding_box(
      image, (size - tf.shape(image)[0]) // 2, (size - tf.shape(image)[1]) // 2, size, size)


def center_crop(image: tf.Tensor, size: int) -> tf.Tensor:
  """The middle size x size, offsets round((H - size) / 2) rounded half to
  even as torchvision's CenterCrop (Python's round); an image smaller than
  that is first padded with zeros, centred, as torchvision does too."""
  height, width = tf.unstack(tf.shape(image)[:2])
  image = tf.image.resize_with_crop_or_pad(image, tf.maximum(height, size), tf.maximum(width, size))
  spare = tf.cast(tf.shape(image)[:2] - size, tf.float32)
  top, left = tf.unstack(tf.cast(tf.round(spare / 2), tf.int32))  # tf.round: half to even.
  return tf.image.crop_to_bounding_box(image, top, left, size, size)


def random_crop(image: tf.Tensor, seed: tf.Tensor, size: int) -> tf.Tensor:
  return tf.image.stateless_random_crop(image, (size, size, image.shape[-1]), seed)


def flip(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
  """Mirrored left to right half the time."""
  return tf.image.stateless_random_flip_left_right(image, seed)


def per_channel(op: Callable[[tf.Tensor, tf.Tensor], tf.Tensor], image: tf.Tensor,
                values) -> tf.Tensor:
  """op(image, values), `values` one per channel: the same numbers as
  broadcasting, faster. TensorFlow broadcasts a 3-vector over the pixels
  without vectorising (0.7 ms for (x - mean) / std on a 224x224x3 image, 0.2 ms
  with operands of the image's shape); here it runs on rows of the image,
  each a line of pixels, against `values` repeated along a line (0.25 ms)."""
  shape = tf.shape(image)
  lines = tf.reshape(image, tf.concat([shape[:-2], [shape[-2] * shape[-1]]], 0))
  line_values = tf.tile(tf.convert_to_tensor(values, image.dtype), shape[-2:-1])
  return tf.ensure_shape(tf.reshape(op(lines, line_values), shape), image.shape)


def pca_lighting(image: tf.Tensor, seed: tf.Tensor, std: float) -> tf.Tensor:
  """AlexNet §4.1: adds the colour eigvec @ (alpha * eigval) to every pixel,
  alpha ~ N(0, std) per image and per component (the paper: std 0.1). Not
  clipped, as in fb.resnet.torch's Lighting."""
  alpha = tf.random.stateless_normal((3,), seed) * std
  return per_channel(tf.add, image, tf.linalg.matvec(PCA_EIGENVECTORS, alpha * PCA_EIGENVALUES))


def inception_box(shape: tf.Tensor, seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
  """(begin, size) of a crop of 8%-100% of the area with aspect ratio in
  [3/4, 4/3] (GoogLeNet §6; the ranges torchvision's RandomResizedCrop
  uses), of an image of `shape` [H, W, C]; after 10 failed draws, the whole image."""
  begin, crop_size, _ = tf.image.stateless_sample_distorted_bounding_box(
      shape, tf.zeros((0, 0, 4)), seed, area_range=(0.08, 1.0),
      aspect_ratio_range=(3 / 4, 4 / 3), max_attempts=10, use_image_if_no_bounding_boxes=True)
  return begin, crop_size


def inception_crop(image: tf.Tensor, seed: tf.Tensor, size: int) -> tf.Tensor:
  """The crop of `inception_box`, resized to size x size."""
  crop = tf.slice(image, *inception_box(tf.shape(image), seed))
  return resample.resize(crop, (size, size))


def decode_inception_crop(encoded: tf.Tensor, channels: int, seed: tf.Tensor,
                          size: int) -> tf.Tensor:
  """decode then inception_crop, of a JPEG only the box decoded (with a
  margin, so that its edges decode as in the whole image): the same pixels
  (tests/test_preprocess.py). The box is a quarter of the image on average;
  decoding all of it was half of what GoogLeNet's recipe cost."""
  def jpeg():
    shape = tf.image.extract_jpeg_shape(encoded)[:2]
    begin, box = inception_box(tf.concat([shape, [channels]], 0), seed)
    first = tf.maximum(begin[:2] - DECODE_MARGIN, 0)
    last = tf.minimum(begin[:2] + box[:2] + DECODE_MARGIN, shape)
    window = tf.image.decode_and_crop_jpeg(encoded, tf.concat([first, last - first], 0),
                                           channels=channels, dct_method="INTEGER_ACCURATE")
    crop = tf.slice(window, tf.concat([begin[:2] - first, [0]], 0), box)
    return resample.resize(tf.cast(crop, tf.float32) / 255.0, (size, size))

  def other():
    return inception_crop(decode({"image": encoded}, channels)["image"], seed, size)

  return tf.cond(tf.io.is_jpeg(encoded), jpeg, other)


def photometric(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
  """Brightness, saturation, hue and contrast changed in one of
  COLOUR_ORDERS, drawn per image, as TF-slim's distort_color; then clipped."""
  order_seed, *seeds = tf.unstack(tf.random.experimental.stateless_split(seed, 5))
  distort = {
      "brightness": lambda x: tf.image.stateless_random_brightness(x, BRIGHTNESS_DELTA, seeds[0]),
      "saturation": lambda x: tf.image.stateless_random_saturation(x, *SATURATION_RANGE, seeds[1]),
      "hue": lambda x: tf.image.stateless_random_hue(x, HUE_DELTA, seeds[2]),
      "contrast": lambda x: tf.image.stateless_random_contrast(x, *CONTRAST_RANGE, seeds[3]),
  }

  def in_order(order):
    def apply():
      distorted = image
      for name in order:
        distorted = distort[name](distorted)
      return distorted
    return apply

  order = tf.random.stateless_uniform((), order_seed, 0, len(COLOUR_ORDERS), dtype=tf.int32)
  distorted = tf.switch_case(order, [in_order(order) for order in COLOUR_ORDERS])
  return tf.clip_by_value(distorted, 0.0, 1.0)


def ten_crop(image: tf.Tensor, size: int) -> tf.Tensor:
  """The four corner and the centre size x size crops, then their mirror
  images, as 10 views on a new leading axis: AlexNet §4.1's ten test patches,
  and cuda-convnet's --multiview-test (convdata.py, CroppedCIFARDataProvider:
  corners and centre of the 32x32 image, each also flipped)."""
  spare_height, spare_width = tf.shape(image)[0] - size, tf.shape(image)[1] - size
  corners = [(0, 0), (0, spare_width), (spare_height, 0), (spare_height, spare_width),
             (spare_height // 2, spare_width // 2)]
  crops = [tf.image.crop_to_bounding_box(image, top, left, size, size) for top, left in corners]
  return tf.stack(crops + [tf.image.flip_left_right(crop) for crop in crops])


def dense(image: tf.Tensor, *scales: int) -> dict[str, tf.Tensor]:
  """Dense multi-scale evaluation's views (VGG §3.2, ResNet Table 4): for each
  scale Q, the image with its shorter side resized to Q, its central Q x Q
  square, and that square's mirror image, as a group [2, Q, Q, channels]: the
  first scale's as `image`, the next as `image_1`, `image_2`, ... The eval
  step applies the network fully convolutionally to each (its class score
  map averaged over positions) and averages the softmax over all views.

  Departure: the paper applies the network to the whole rescaled image, of
  any aspect ratio; the central square keeps every batch rectangular (one
  shape per scale), and loses the ends of the longer side.
  """
  groups = {}
  for index, scale in enumerate(scales):
    square = center_crop(resize_shorter(image, None, scale), scale)
    groups["image" if index == 0 else f"image_{index}"] = tf.stack(
        [square, tf.image.flip_left_right(square)])
  return groups


# Each op as (image, seed, *arguments) -> image; the random ones (recipes.OPS) use the seed.
OPS: dict[str, Callable[..., tf.Tensor]] = {
    "resize": lambda image, seed, size: resize(image, size),
    "resize_shorter": resize_shorter,
    "center_crop": lambda image, seed, size: center_crop(image, size),
    "random_crop": random_crop,
    "pad": lambda image, seed, size: pad(image, size),
    "flip": flip,
    "pca_lighting": pca_lighting,
    "inception_crop": inception_crop,
    "photometric": photometric,
    "ten_crop": lambda image, seed, size: ten_crop(image, size),
    "dense": lambda image, seed, *scales: dense(image, *scales),  # View groups: a dict.
}

# A recipe: (example, seed) -> the example, its image decoded and processed.
Recipe = Callable[[Example, tf.Tensor], Example]


def recipe(ops: tuple[Op, ...], channels: int) -> Recipe:
  """Decoding to `channels`, then `ops` (from cnnjax.data.recipes.parse) in order."""

  def apply(example, seed):
    seed_of = lambda rank: tf.random.experimental.stateless_fold_in(seed, rank)
    rest, rank = ops, 0
    crop = len(ops) > 1 and ops[0].name == "resize_shorter" and ops[1].name
    if crop in ("random_crop", "center_crop") and ops[1].args[0] <= ops[0].args[0]:
      smallest, largest = (*ops[0].args, None)[:2]
      random = crop == "random_crop"
      image = decode_resize_shorter_then_crop(
          example["image"], channels, seed_of(0), smallest, largest, ops[1].args[0],
          seed_of(1) if random else None)
      rest, rank = ops[2:], 1 + random
    elif ops and ops[0].name == "inception_crop":
      image = decode_inception_crop(example["image"], channels, seed_of(0), *ops[0].args)
      rest, rank = ops[1:], 1
    else:
      image = decode(example, channels)["image"]
    for op in rest:
      image = OPS[op.name](image, seed_of(rank), *op.args)
      rank += recipes.OPS[op.name].random
    if isinstance(image, dict):  # View groups (dense): image, image_1, ...
      return {**example, **image}
    return {**example, "image": image}

  return apply


def standardize(image: tf.Tensor, spec: DatasetSpec, pixel_mean: np.ndarray | None) -> tf.Tensor:
  """Zero mean and unit variance per channel, with the training set's statistics."""
  return standardized(image, spec.mean, spec.std)


def standardized(image: tf.Tensor, mean, std) -> tf.Tensor:
  """(image - mean) / std, `mean` and `std` per channel."""
  return per_channel(tf.divide, per_channel(tf.subtract, image, mean), std)


def subtract_mean(image: tf.Tensor, spec: DatasetSpec, pixel_mean: np.ndarray | None) -> tf.Tensor:
  """Pixel values (0-255) minus the training set's mean per channel, and no
  scaling: AlexNet's only preprocessing (§2) and VGG's (§2.1). AlexNet's
  initialisation, N(0, 0.01) with biases of 1 (§5), assumes inputs this large;
  on standardised inputs its signal dies out within a few layers."""
  return per_channel(tf.subtract, image, spec.mean) * 255.0


def subtract_pixel_mean(image: tf.Tensor, spec: DatasetSpec,
                        pixel_mean: np.ndarray | None) -> tf.Tensor:
  """Pixel values (0-255) minus the training set's mean image, pixel by pixel
  (AlexNet §2, "the mean activity over the training set"; ResNet §3.4, "the
  per-pixel mean subtracted"), at the model's input size
  (cnnjax.data.pixel_mean says how it is computed). Images of another size
  (a dense evaluation's whole image) have the mean image resized to theirs
  subtracted."""
  if image.shape[-3:-1] != pixel_mean.shape[:2]:
    pixel_mean = tf.image.resize(pixel_mean, tf.shape(image)[-3:-1], antialias=True)
  return (image - pixel_mean) * 255.0


# Each normalisation as (image, spec, the train split's mean image or None) -> image.
NORMALIZATIONS = {"standardize": standardize, "subtract_mean": subtract_mean,
                  "subtract_pixel_mean": subtract_pixel_mean}
