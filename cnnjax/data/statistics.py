"""The mean and standard deviation per channel that `standardize` and
`subtract_mean` normalise with, for datasets outside cnnjax's table (whose
published values it records): TFDS datasets by name and folders.

They are those of the train split (`dataset.train_split`), of pixels scaled
to [0, 1], every pixel weighted alike, at the images' own sizes (as the
table's values are measured: scripts/pixel_statistics.py): exact over the
whole split when it has at most SAMPLE_IMAGES images; else from a fixed
sample of SAMPLE_IMAGES, the first SAMPLE_IMAGES / SAMPLE_PARTS images of
each of SAMPLE_PARTS equal parts of the split (TFDS's even splits of its
stored order, which TFDS shuffles when it prepares a dataset), the same
images on every machine. Why a sample: an exact pass decodes every image,
an hour of CPU for ImageNet's 1.28 million, where 10,000 images put a
channel's mean within about 0.002 of the whole split's (the spread of image
means, about 0.2, over the root of 10,000): far below anything training
notices. A folder's come exact and free: its preparation decodes every
image anyway (cnnjax.data.folder_builder).

Computed once, with a status line, and cached beside the prepared dataset
as `channel_statistics-<key>.json` (the key a hash of the split and the
channel count), under a lock: several processes starting at once compute
them once. A dataset directory that cannot be written to gets them computed
in every run, which says so.
"""

import dataclasses
import hashlib
import json
import math
import os
import pathlib
import time
from typing import Callable

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from cnnjax import locks
from cnnjax.data import preprocess

SAMPLE_IMAGES = 10_000
SAMPLE_PARTS = 100


@dataclasses.dataclass(frozen=True)
class Statistics:
  """Per-channel mean and standard deviation (pixels in [0, 1]) of `images`
  images of a split; `exact`: all of the split's, else a fixed sample."""

  mean: tuple[float, ...]
  std: tuple[float, ...]
  images: int
  exact: bool

  @property
  def source(self) -> str:
    return f"all {self.images} images" if self.exact else f"a fixed sample of {self.images} images"


class Sums:
  """Running sums of pixels and of their squares, per channel (uint8 values),
  in Python's integers: exact, so the result does not depend on the order
  the images come in (tf.data's parallel map does not keep it)."""

  def __init__(self, channels: int):
    self.sums = [0] * channels
    self.squares = [0] * channels
    self.pixels = 0
    self.images = 0

  def add(self, height: int, width: int, sums: np.ndarray, squares: np.ndarray) -> None:
    self.sums = [total + int(value) for total, value in zip(self.sums, sums)]
    self.squares = [total + int(value) for total, value in zip(self.squares, squares)]
    self.pixels += int(height) * int(width)
    self.images += 1

  def statistics(self, exact: bool) -> Statistics:
    mean = np.array([total / self.pixels for total in self.sums])
    second = np.array([total / self.pixels for total in self.squares])
    std = np.sqrt(np.maximum(second - mean**2, 0.0))
    # Pixels in [0, 1]: the sums are of uint8 values.
    return Statistics(tuple(round(float(m) / 255, 6) for m in mean),
                      tuple(round(float(s) / 255, 6) for s in std), self.images, exact)


def measure(encoded: tf.Tensor, channels: int) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
  """An encoded image's (height and width, per-channel sum of its uint8
  pixels, and of their squares), decoded as training decodes it. Exact: rows
  are summed in int32 (a row of 33,000 pixels or fewer cannot overflow), rows
  in int64."""
  image = preprocess.decode_pixels(encoded, channels)
  values = tf.cast(image, tf.int32)
  sums = tf.reduce_sum(tf.cast(tf.reduce_sum(values, axis=1), tf.int64), axis=0)
  squares = tf.reduce_sum(tf.cast(tf.reduce_sum(values * values, axis=1), tf.int64), axis=0)
  return tf.shape(image)[:2], sums, squares


def cache_file(data_dir: str, split: str, channels: int) -> pathlib.Path:
  key = hashlib.sha256(f"{split}|{channels}".encode()).hexdigest()[:16]
  return pathlib.Path(data_dir) / f"channel_statistics-{key}.json"


def store(path: pathlib.Path, split: str, statistics: Statistics) -> None:
  """Writes `statistics` to `path` whole (readers never see part of it)."""
  partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
  partial.write_text(json.dumps({"split": split, **dataclasses.asdict(statistics)}, indent=2))
  os.replace(partial, path)


def read(path: pathlib.Path) -> Statistics | None:
  try:
    stored = json.loads(path.read_text())
    return Statistics(tuple(stored["mean"]), tuple(stored["std"]), stored["images"],
                      stored["exact"])
  except (OSError, ValueError, KeyError, TypeError):
    return None


def channel_statistics(open_split: Callable[[str], tf.data.Dataset], split: str,
                       num_examples: int, name: str, channels: int, data_dir: str
                       ) -> Statistics:
  """The statistics of `split` (of `num_examples` examples): from the cache in
  `data_dir`, or computed and cached. `open_split(part)` gives a part of the
  split ("train[0:120]"), images still encoded."""
  path = cache_file(data_dir, split, channels)
  cached = read(path)
  if cached is not None:
    return cached
  compute = lambda: _compute(open_split, split, num_examples, name, channels)
  try:
    with locks.FileLock(path.with_name(f".{path.name}.lock"),
                        waiting=f"waiting for another process computing {path}"):
      cached = read(path)  # The other process computed them meanwhile.
      if cached is not None:
        return cached
      statistics = compute()
      store(path, split, statistics)
      return statistics
  except OSError as error:
    print(f"cannot cache the pixel statistics in {path.parent} ({error.strerror}); computing "
          "them for this run only", flush=True)
    return compute()


def _compute(open_split: Callable[[str], tf.data.Dataset], split: str, num_examples: int,
             name: str, channels: int) -> Statistics:
  exact = num_examples <= SAMPLE_IMAGES
  if exact:
    examples = open_split(split)
  else:
    per_part = math.ceil(SAMPLE_IMAGES / SAMPLE_PARTS)
    parts = [open_split(part).take(per_part) for part in tfds.even_splits(split, SAMPLE_PARTS)]
    examples = parts[0]
    for part in parts[1:]:
      examples = examples.concatenate(part)
  what = f"all {num_examples} images" if exact else f"a fixed sample of {SAMPLE_IMAGES} images"
  print(f"computing the pixel mean and standard deviation of {name} {split!r} from {what} "
        "(once)", flush=True)
  start = time.monotonic()
  measured = examples.map(
      tf.autograph.experimental.do_not_convert(lambda example: measure(example["image"], channels)),
      num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
  sums = Sums(channels)
  for (height, width), image_sums, image_squares in measured.as_numpy_iterator():
    sums.add(height, width, image_sums, image_squares)
  statistics = sums.statistics(exact)
  print(f"pixel mean {statistics.mean} and std {statistics.std} of {sums.images} images, "
        f"in {time.monotonic() - start:.1f} s", flush=True)
  return statistics
