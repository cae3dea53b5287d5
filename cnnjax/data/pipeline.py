"""The tf.data input pipeline: TFDS split per process, seeded per-epoch
shuffle, preprocessing recipes, batches shaped [local_devices, per_device, ...].

Training is exactly resumable: epoch e is the process's split shuffled with a
seed derived from (seed, e, process), cut to a whole number of batches, and
every example's augmentation is seeded by its position in the epoch. Starting
at step s rebuilds that stream and skips the examples of the steps already
taken, before they are decoded.
"""

import dataclasses
from typing import Iterator

import ml_collections
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from cnnjax.data import preprocess
from cnnjax.data.datasets import DatasetSpec, dataset_spec
from cnnjax.errors import UserError

Batch = dict[str, np.ndarray]

CACHE_LIMIT_BYTES = 2**30  # Splits smaller than this are kept in memory (still encoded).


def open_builder(dataset: ml_collections.ConfigDict) -> tfds.core.DatasetBuilder:
  """The TFDS builder for `dataset.name`; the embedded `digits` is built on first use."""
  dataset_spec(dataset.name)
  data_dir = dataset.data_dir or None
  if dataset.name == "digits":
    from cnnjax.data import digits  # Defining the builder class registers it with TFDS.

    builder = digits.Digits(data_dir=data_dir)
    builder.download_and_prepare()  # Offline; a no-op once prepared.
    return builder
  return tfds.builder(dataset.name, data_dir=data_dir)


@dataclasses.dataclass(frozen=True)
class InputPipeline:
  """Batches for one process: `process_batch` examples split over `local_devices`."""

  builder: tfds.core.DatasetBuilder
  dataset: ml_collections.ConfigDict
  seed: int
  process_index: int
  process_count: int
  local_devices: int

  @property
  def spec(self) -> DatasetSpec:
    return dataset_spec(self.dataset.name)

  @property
  def image_size(self) -> int:
    return self.dataset.image_size or self.spec.image_size

  def read(self, split: str, process_index: int | None = None) -> tf.data.Dataset:
    """One process's share of `split`, images still encoded."""
    process_index = self.process_index if process_index is None else process_index
    process_split = tfds.split_for_jax_process(
        split, process_index=process_index, process_count=self.process_count)
    try:
      return self.builder.as_dataset(
          split=process_split, shuffle_files=False,
          decoders={"image": tfds.decode.SkipDecoding()},
          read_config=tfds.ReadConfig(add_tfds_id=True))
    except AssertionError:  # TFDS's way of saying the data is not prepared.
      raise UserError(
          f"dataset {self.dataset.name!r} is not prepared in {self.builder.data_dir_root} "
          f"(config.dataset.data_dir); {self.spec.how_to_get}") from None
    except ValueError as error:
      if "split" not in str(error).lower():
        raise
      raise UserError(f"dataset {self.dataset.name!r} has no split {split!r} "
                      f"(config.dataset.*_split): {error}") from None

  def _smallest_share(self, split: str) -> int:
    """The fewest examples any process gets, so all processes take the same steps."""
    return min(int(self.read(split, index).cardinality())
               for index in range(self.process_count))

  def steps_per_epoch(self, process_batch: int) -> int:
    steps = self._smallest_share(self.dataset.train_split) // process_batch
    if steps == 0:
      raise UserError(
          f"batch_size is larger than the {self.dataset.train_split!r} split of "
          f"{self.dataset.name!r} ({self._smallest_share(self.dataset.train_split)} examples "
          f"per process); lower config.batch_size")
    return steps

  def eval_steps(self, process_batch: int) -> int:
    largest = max(int(self.read(self.dataset.eval_split, index).cardinality())
                  for index in range(self.process_count))
    return -(-largest // process_batch)

  def train_batches(self, process_batch: int, start_step: int = 0) -> Iterator[Batch]:
    """Training batches from `start_step` on, forever.

    `id` holds each example's TFDS id (bytes, e.g. b"digits-train.tfrecord-00000-of-00001__42"),
    for the host only: take it out before the batch goes to the devices.
    """
    steps_per_epoch = self.steps_per_epoch(process_batch)
    examples_per_epoch = steps_per_epoch * process_batch
    base = self._maybe_cache(self.read(self.dataset.train_split))
    recipe = preprocess.RECIPES[self.dataset.train_preprocess]

    def epoch(index):
      shuffle_seed = (self.seed * 1_000_003 + index) * 1009 + self.process_index
      shuffled = base.shuffle(self.dataset.shuffle_buffer, seed=shuffle_seed)
      examples = shuffled.take(examples_per_epoch).enumerate()
      return examples.map(lambda position, example: (index, position, example))

    def prepare(epoch_index, position, example):
      seed = tf.stack([tf.cast(self.seed, tf.int64), epoch_index])
      seed = tf.random.experimental.stateless_fold_in(seed, self.process_index)
      seed = tf.random.experimental.stateless_fold_in(seed, position)
      example_id = example["tfds_id"]
      example = recipe(example, seed, self.image_size, self.spec)
      return {"image": example["image"], "label": tf.cast(example["label"], tf.int32),
              "id": example_id}

    first_epoch, offset = divmod(start_step, steps_per_epoch)
    ds = tf.data.Dataset.range(first_epoch, np.iinfo(np.int64).max).flat_map(epoch)
    ds = ds.skip(offset * process_batch)
    ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(process_batch, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
    for batch in tfds.as_numpy(ds):
      yield self._per_device(batch)

  def eval_batches(self, process_batch: int) -> Iterator[Batch]:
    """The whole eval split once, padded to full batches; `mask` marks real examples.

    Every process yields the same number of batches (collectives stay in step).
    """
    recipe = preprocess.RECIPES[self.dataset.eval_preprocess]
    no_seed = tf.zeros((2,), tf.int64)

    def prepare(example):
      example = recipe(example, no_seed, self.image_size, self.spec)
      return {"image": example["image"], "label": tf.cast(example["label"], tf.int32)}

    ds = self.read(self.dataset.eval_split).map(
        prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(process_batch).prefetch(tf.data.AUTOTUNE)
    steps = 0
    for batch in tfds.as_numpy(ds):
      steps += 1
      yield self._per_device(_pad(batch, process_batch))
    empty = {"image": np.zeros((0, self.image_size, self.image_size, self.spec.channels),
                               np.float32), "label": np.zeros((0,), np.int32)}
    for _ in range(self.eval_steps(process_batch) - steps):
      yield self._per_device(_pad(empty, process_batch))

  def _maybe_cache(self, ds: tf.data.Dataset) -> tf.data.Dataset:
    return ds.cache() if self.builder.info.dataset_size < CACHE_LIMIT_BYTES else ds

  def _per_device(self, batch: Batch) -> Batch:
    return {key: value.reshape((self.local_devices, -1) + value.shape[1:])
            for key, value in batch.items()}


def _pad(batch: Batch, size: int) -> Batch:
  """Pads a final partial batch to `size` with zeros and adds the `mask`."""
  count = len(batch["label"])
  padded = {key: np.concatenate([value, np.zeros((size - count,) + value.shape[1:], value.dtype)])
            for key, value in batch.items()}
  padded["mask"] = (np.arange(size) < count).astype(np.float32)
  return padded
