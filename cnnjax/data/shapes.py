"""`shapes`: a synthetic TFDS dataset embedded in cnnjax, generated with no network.

32x32 RGB images of ten shapes, sized like CIFAR-10: 50,000 train and 10,000
test images, exactly 5,000 and 1,000 per class. A class is a shape and nothing
else; position, scale, rotation, stroke width, colour, illumination, clutter
and occlusion are drawn independently of it, so a model must be invariant to
them. Some pairs are close by design: ring and disc (a thick ring at a small
scale), ring and arc (a pole across a ring), bar and L, cross and L, square,
triangle and star at a few pixels.

| class | shape, in units of its radius (its reach) |
| --- | --- |
| 0 disc | filled circle, radius 0.75 |
| 1 ring | stroked circle, outer radius 0.75 |
| 2 square | filled, half side 0.62 |
| 3 triangle | filled equilateral, circumradius 0.95 |
| 4 cross | two stroked segments of length 1.7 crossing at their middles |
| 5 bar | one stroked segment of length 1.8 |
| 6 L | two stroked arms of length 1.2 meeting at a right angle |
| 7 arc | the ring with a 120-degree gap |
| 8 star | filled five-pointed star, radii 0.95 and 0.4 |
| 9 two dots | two filled circles of radius 0.3, centres 1.1 apart |

The local frame's second axis points down the image's rows, so unrotated the L
reads as a Γ and the triangle and star point down.

Builder configs fix the nuisance ranges (`shapes/clean`, `shapes/hard`,
and `shapes/jpeg`, which is `hard` at other sizes, below); each factor is
drawn uniformly from its range, independently per image:

| nuisance | clean | hard |
| --- | --- | --- |
| radius, pixels | 10 to 12 | 6 to 13 |
| centre offset per axis, pixels (1) | +-2 | +-8 |
| rotation, degrees | +-15 | any |
| stroke width, radii | 0.3 | 0.2 to 0.4 |
| luminance contrast of shape and background (2) | >= 0.3 | >= 0.15 |
| background ramp, change per channel across the image | 0 | +-0.25 |
| illumination ramp: gain from 1 on one side down to | 1 | 0.5 to 1 |
| clutter: scratches behind the shape (3) | none | 0 to 5 |
| occlusion: a pole in front of the shape (4) | never | 40% of images |
| Gaussian pixel noise, std (pixels in [0, 1]) | 0 | 0 to 0.04 |

(1) At most 16 - radius, so the shape stays in the image (+-3 at radius 13).
(2) Shape and background are otherwise any RGB colours, and either may be the
brighter: the class is in the outline, not in light or dark.
(3) Segments 2 to 6 pixels long, 0.7 to 1.2 wide, anywhere, any colour.
(4) A band across the whole image, 0.16 to 0.3 radii wide (half a dot's width
at most, so it never hides a whole part), passing within 0.7 radii of the
centre at any angle, its luminance at least the contrast away from the shape's.

`shapes/jpeg` is the ImageNet recipes' offline stand-in: the same scenes
as `hard` (in units of the 32x32 image's pixels, its shorter side 32 units),
drawn at varying size and aspect ratio and stored as JPEG, as ImageNet's
photographs are, small enough for CPU smoke runs. Each image's shorter side
is a whole number of pixels drawn uniformly from 64 to 128 (ImageNet's
are a few hundred), its longer side that times a ratio drawn uniformly from
1 to 4/3, landscape or portrait with even odds (width/height 3/4 to 4/3).
JPEG quality 95 with 4:2:0 chroma (tf.io.encode_jpeg's defaults). Splits,
as imagenet2012 names them: `train`, 2,000 images (200 per class), and
`validation`, 500 (50 per class). Image b is a block of its own (a shared
canvas would be as large as the block's largest image): its scene drawn as
below, its size from another generator, seeded by (split seed, 2, b).

Generation is deterministic: the labels of a split are a permutation of
`per_class` copies of each class from the split's seed; its images are drawn
in blocks of 500, block b from a generator seeded by (split seed, b). The test
split has its own seed, so it is the same distribution, other images.
Two builds write byte-identical TFRecord files. Rendering is
cnnjax/data/shapes_render.py.

`shapes/jpeg`, measured on the same machine: build 7.1 s of CPU time
(10.7 s wall on the loaded machine; drawing is most of it), 13 MB on disk;
shorter sides 64 to 128 and width/height 0.748 to 1.337 (the longer side is
rounded) over the train split; its pixel mean and std per channel
(0.4324, 0.4355, 0.4342), (0.2572, 0.2584, 0.2538)
(PYTHONPATH=$PWD python scripts/pixel_statistics.py shapes/jpeg).

Measured on 2 CPU cores (AMD EPYC) shared with other work:
- Build (first use): 17 to 29 s for `clean`, 26 to 28 s for `hard` (about
  25 s of CPU time each: a third drawing, the rest TFDS encoding and writing).
- Train-split pixel mean and std per channel (cnnjax/data/datasets.py):
  clean (0.5018, 0.4994, 0.4995), (0.2857, 0.2911, 0.2856);
  hard (0.4392, 0.4365, 0.4370), (0.2556, 0.2563, 0.2560).
- Test top-1 error (chance: 90%):

| model | clean | hard |
| --- | ---: | ---: |
| logistic regression on pixels (200 L-BFGS iterations) | 69.3% | 89.8% |
| modern LeNet-5, 5 epochs (experiments/lenet5_shapes.py) | 0.00% | 23.75% |

  PYTHONPATH=$PWD python scripts/shapes_baselines.py shapes/clean shapes/hard
  cnnjax train --config experiments/lenet5_shapes.py --workdir runs/shapes_hard
  (and --config.dataset.name=shapes/clean --workdir runs/shapes_clean)

The linear model is near chance on `hard` (72.7% train error: what it fits
does not carry over): with either of shape and background the brighter, no
weighted sum of pixels says which shape is there. LeNet's 23.75% is with He's
initialisation (measured at commit 924c011; 23.4% at e8678b8); two earlier
runs with the paper's, whose ReLUs partly died, gave 21.4% and 25.7%
(experiments/lenet5_shapes.py).
Calibration: the first `hard` occluded half the images and gave 24.6% and
25.6%; occluding 40% was meant to bring it well inside the 10-25% aimed at.
"""

import dataclasses
import pathlib
from typing import Iterator

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from cnnjax.data import shapes_render
from cnnjax.data.shapes_render import Nuisances

EXAMPLES_PER_CLASS = {"train": 5_000, "test": 1_000}
JPEG_EXAMPLES_PER_CLASS = {"train": 200, "validation": 50}
SPLIT_SEEDS = {"train": 1, "test": 2, "validation": 3}
BLOCK = 500  # Images drawn together; block b's randomness depends on (split seed, b) alone.
JPEG_BLOCK = 1  # Each image on a canvas of its own size: twice as fast as blocks of 50.

CLEAN = Nuisances(radius=(10.0, 12.0), shift=2.0, rotation=15.0, stroke=(0.3, 0.3),
                  contrast=0.3, background_ramp=0.0, shading=0.0, clutter=0, occlusion=0.0,
                  noise=0.0)
HARD = Nuisances(radius=(6.0, 13.0), shift=8.0, rotation=180.0, stroke=(0.2, 0.4),
                 contrast=0.15, background_ramp=0.25, shading=0.5, clutter=5, occlusion=0.4,
                 noise=0.04)


@dataclasses.dataclass(frozen=True)
class ImageSizes:
  """Images of varying size: the shorter side a whole number of pixels in
  `shorter` (inclusive), the longer side that times a ratio in [1, `max_ratio`]."""

  shorter: tuple[int, int]
  max_ratio: float


JPEG_SIZES = ImageSizes(shorter=(64, 128), max_ratio=4 / 3)


@dataclasses.dataclass(eq=False)
class ShapesConfig(tfds.core.BuilderConfig):
  """A `shapes` variant: the ranges its nuisances are drawn from, and the
  images' sizes (None: 32x32, stored as PNG; else stored as JPEG)."""

  nuisances: Nuisances | None = None
  sizes: ImageSizes | None = None


def split_labels(split: str, per_class: int) -> np.ndarray:
  """The split's labels in order: `per_class` of each class, shuffled by the split's seed."""
  rng = np.random.default_rng(np.random.SeedSequence(SPLIT_SEEDS[split], spawn_key=(0,)))
  classes = len(shapes_render.CLASSES)
  return rng.permutation(np.repeat(np.arange(classes), per_class))


def draw_sizes(sizes: ImageSizes, rng: np.random.Generator, count: int) -> shapes_render.Frame:
  """`count` images' heights and widths, drawn as `sizes` says."""
  shorter = rng.integers(sizes.shorter[0], sizes.shorter[1] + 1, count)
  longer = np.round(shorter * rng.uniform(1.0, sizes.max_ratio, count)).astype(int)
  landscape = rng.uniform(0.0, 1.0, count) < 0.5
  return shapes_render.Frame(heights=np.where(landscape, shorter, longer),
                             widths=np.where(landscape, longer, shorter))


def generate(nuisances: Nuisances, split: str, per_class: int, stop: int | None = None,
             sizes: ImageSizes | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
  """The split's (images, labels) from the start, a block at a time, up to
  example `stop` (default: all): uint8 (n, 32, 32, 3) and int64 (n,); with
  `sizes`, images is a list of n uint8 arrays (height, width, 3)."""
  labels = split_labels(split, per_class)
  stop = len(labels) if stop is None else min(stop, len(labels))
  block_size = BLOCK if sizes is None else JPEG_BLOCK
  for block, start in enumerate(range(0, stop, block_size)):
    seed = SPLIT_SEEDS[split]
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1, block)))
    block_labels = labels[start:start + block_size]  # Drawn whole, then cut at `stop`.
    count = min(block_size, stop - start)
    if sizes is None:
      images = shapes_render.render(block_labels, rng, nuisances)
      yield images[:count], block_labels[:count]
    else:
      size_rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2, block)))
      frame = draw_sizes(sizes, size_rng, len(block_labels))
      canvas = shapes_render.render(block_labels, rng, nuisances, frame)
      images = [image[:height, :width] for image, height, width
                in zip(canvas[:count], frame.heights, frame.widths)]
      yield images, block_labels[:count]


def examples_per_class(config: ShapesConfig) -> dict[str, int]:
  return EXAMPLES_PER_CLASS if config.sizes is None else JPEG_EXAMPLES_PER_CLASS


class Shapes(tfds.core.GeneratorBasedBuilder):
  """Ten shapes under controlled nuisances, as a TFDS dataset."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Ten shapes, 50,000 / 10,000 images; clean and hard nuisances; "
                            "jpeg: hard at varying sizes, 2,000 / 500 JPEG images."}
  BUILDER_CONFIGS = [
      ShapesConfig(name="clean", description="Shape, colour and a little jitter only.",
                   nuisances=CLEAN),
      ShapesConfig(name="hard", description="Every nuisance: pose, scale, colour, "
                   "illumination, clutter, occlusion, noise.", nuisances=HARD),
      ShapesConfig(name="jpeg", description="hard, as JPEG images of varying size and aspect "
                   "ratio (ImageNet's format, small).", nuisances=HARD, sizes=JPEG_SIZES),
  ]

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        description=__doc__,
        features=tfds.features.FeaturesDict({
            "image": self._image_feature(),
            "label": tfds.features.ClassLabel(names=shapes_render.CLASSES),
        }),
        supervised_keys=("image", "label"),
    )

  def _image_feature(self) -> tfds.features.Image:
    if self.builder_config.sizes is None:
      return tfds.features.Image(shape=(32, 32, 3))
    return tfds.features.Image(shape=(None, None, 3), encoding_format="jpeg")

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download: the images are drawn here.
    return {split: self._generate_examples(split, per_class)
            for split, per_class in examples_per_class(self.builder_config).items()}

  def _generate_examples(self, split: str, per_class: int):
    index = 0
    config = self.builder_config
    for images, labels in generate(config.nuisances, split, per_class, sizes=config.sizes):
      if config.sizes is not None:  # Encoded here: TFDS builds a graph per image shape.
        images = [tf.io.encode_jpeg(image, quality=95).numpy() for image in images]
      for image, label in zip(images, labels):
        yield index, {"image": image, "label": int(label)}
        index += 1


def write_folder(path: str, per_class: dict[str, int], nuisances: Nuisances = HARD) -> None:
  """`shapes` written out as a folder of images in class sub-folders, the
  layout of `folder:PATH` (cnnjax.data.folders): PATH/SPLIT/CLASS/INDEX.jpg
  or .png for each split of `per_class` ("train", "val", "validation" or
  "test": that many images per class). The scenes of `nuisances` at
  shapes/jpeg's varying sizes, alternately JPEG (quality 95) and PNG:
  ImageNet's photographs' offline stand-in, as a user's folder holds them.
  A held-out folder draws from `validation`'s seed ("val") or `test`'s."""
  for split, count in per_class.items():
    seed_split = {"val": "validation"}.get(split, split)
    index = 0
    for images, labels in generate(nuisances, seed_split, count, sizes=JPEG_SIZES):
      for image, label in zip(images, labels):
        directory = pathlib.Path(path, split, shapes_render.CLASSES[label])
        directory.mkdir(parents=True, exist_ok=True)
        encoded = (tf.io.encode_jpeg(image, quality=95) if index % 2 == 0
                   else tf.io.encode_png(image))
        (directory / f"{index}.{'jpg' if index % 2 == 0 else 'png'}").write_bytes(encoded.numpy())
        index += 1
