"""The tf.data input pipeline: TFDS split per device and per process, seeded
per-epoch shuffle, preprocessing recipes, batches shaped
[local_devices, per_device, ...].

Training data is split per device, not just per process: the train split is
cut into one even shard per device of the whole run (`tfds.even_splits`), and
each process reads only the shards of its own devices. A device's stream
(shuffle, augmentation) depends on the seed and its global index alone, so
the global batch at every step is the same however the devices are grouped
into processes: 2 processes x 2 devices train exactly like 1 process x 4
devices. (A per-process split shuffled per process would tie the data order
to the process count.) The shuffle buffer is per device shard.

Training is exactly resumable: epoch e of device d is its shard shuffled with
a seed derived from (seed, e, d), cut to a whole number of batches, and every
example's augmentation is seeded by its position in the epoch. Starting at
step s rebuilds that stream and skips the examples of the steps already
taken, before they are decoded. Evaluation reads a per-process split: its
sums do not depend on the order.
"""

import dataclasses
import pathlib
from typing import Iterator

import ml_collections
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from google.protobuf import json_format

from cnnjax.data import preprocess
from cnnjax.data.datasets import DatasetSpec, dataset_spec
from cnnjax.errors import UserError, choose

Batch = dict[str, np.ndarray]

CACHE_LIMIT_BYTES = 2**30  # Splits smaller than this are kept in memory (still encoded).


def open_builder(dataset: ml_collections.ConfigDict) -> tfds.core.DatasetBuilder:
  """The TFDS builder for `dataset.name`; the embedded `digits` is built on first use."""
  spec = dataset_spec(dataset.name)
  data_dir = dataset.data_dir or None
  try:
    if dataset.name == "digits":
      from cnnjax.data import digits  # Defining the builder class registers it with TFDS.

      builder = digits.Digits(data_dir=data_dir)
      builder.download_and_prepare()  # Offline; a no-op once prepared.
      return builder
    return tfds.builder(dataset.name, data_dir=data_dir)
  except json_format.ParseError as error:  # A damaged dataset_info.json.
    where = pathlib.Path(data_dir or tfds.core.constants.DATA_DIR, dataset.name)
    raise UserError(f"the metadata of dataset {dataset.name!r} in {where} is damaged ({error}); "
                    f"delete {where} and prepare it again: " + spec.how_to_get.format(
                        name=dataset.name, dir=where.parent)) from None


@dataclasses.dataclass(frozen=True)
class InputPipeline:
  """Batches for one process: `process_batch` examples split over `local_devices`."""

  builder: tfds.core.DatasetBuilder
  dataset: ml_collections.ConfigDict
  seed: int
  process_index: int
  process_count: int
  local_devices: int

  def __post_init__(self):
    for key, table in (("train_preprocess", preprocess.RECIPES),
                       ("eval_preprocess", preprocess.RECIPES),
                       ("normalization", preprocess.NORMALIZATIONS)):
      choose(table, f"dataset.{key}", self.dataset[key])
    self._check_crop_size()

  def _check_crop_size(self) -> None:
    """A crop larger than the dataset's images (when TFDS knows their size)
    would fail inside tf.data, possibly only at the first evaluation."""
    height, width = self.builder.info.features["image"].shape[:2]
    for key in ("train_preprocess", "eval_preprocess"):
      recipe = self.dataset[key]
      if (recipe in preprocess.CROPS_OF_THE_IMAGE and None not in (height, width)
          and self.image_size > min(height, width)):
        raise UserError(
            f"config.dataset.{key}={recipe!r} cuts {self.image_size}x{self.image_size} crops "
            f"out of the {height}x{width} images of {self.dataset.name!r}; set "
            f"config.dataset.image_size to {min(height, width)} or less")

  @property
  def spec(self) -> DatasetSpec:
    return dataset_spec(self.dataset.name)

  @property
  def image_size(self) -> int:
    return self.dataset.image_size or self.spec.image_size

  @property
  def device_count(self) -> int:
    """Devices of all processes (pmap gives every process as many)."""
    return self.process_count * self.local_devices

  def read(self, split: str, process_index: int | None = None) -> tf.data.Dataset:
    """One process's share of `split`, images still encoded."""
    process_index = self.process_index if process_index is None else process_index
    return self._open(split, tfds.split_for_jax_process(
        split, process_index=process_index, process_count=self.process_count))

  def read_device_shard(self, split: str, device: int) -> tf.data.Dataset:
    """Global device `device`'s share of `split`, images still encoded, each
    with its `tfds_id` (training reports which examples each step saw)."""
    return self._open(split, tfds.even_splits(split, n=self.device_count)[device], with_ids=True)

  def _open(self, split: str, part, with_ids: bool = False) -> tf.data.Dataset:
    try:
      return self.builder.as_dataset(
          split=part, shuffle_files=False,
          decoders={"image": tfds.decode.SkipDecoding()},
          read_config=tfds.ReadConfig(add_tfds_id=with_ids))
    except AssertionError:  # TFDS's way of saying the data is not prepared.
      data_dir = self.builder.data_dir_root
      how_to_get = self.spec.how_to_get.format(name=self.dataset.name, dir=data_dir)
      raise UserError(f"dataset {self.dataset.name!r} is not prepared in {data_dir} "
                      f"(config.dataset.data_dir); {how_to_get}") from None
    except ValueError as error:
      if "split" not in str(error).lower():
        raise
      key = "eval_split" if split == self.dataset.eval_split else "train_split"
      raise UserError(f"dataset {self.dataset.name!r} has no split {split!r} "
                      f"(config.dataset.{key}): {error}") from None

  def _local_device_indices(self) -> range:
    """This process's devices in the order of pmap's axis: processes in turn."""
    return range(self.process_index * self.local_devices,
                 (self.process_index + 1) * self.local_devices)

  def _smallest_shard(self, split: str) -> int:
    """The fewest examples any device gets, so all devices take the same steps."""
    return min(int(self.read_device_shard(split, device).cardinality())
               for device in range(self.device_count))

  def steps_per_epoch(self, process_batch: int) -> int:
    smallest = self._smallest_shard(self.dataset.train_split)
    steps = smallest // (process_batch // self.local_devices)
    if steps == 0:
      raise UserError(
          f"batch_size is larger than the {self.dataset.train_split!r} split of "
          f"{self.dataset.name!r} ({smallest} examples per device, "
          f"{smallest * self.device_count} in all); lower config.batch_size")
    return steps

  def eval_steps(self, process_batch: int) -> int:
    largest = max(int(self.read(self.dataset.eval_split, index).cardinality())
                  for index in range(self.process_count))
    return -(-largest // process_batch)

  def train_batches(self, process_batch: int, start_step: int = 0) -> Iterator[Batch]:
    """Training batches from `start_step` on, forever: each local device's stream, stacked.

    `id` holds each example's TFDS id (bytes, e.g. b"digits-train.tfrecord-00000-of-00001__42"),
    for the host only: take it out before the batch goes to the devices.
    """
    device_batch = process_batch // self.local_devices
    steps_per_epoch = self.steps_per_epoch(process_batch)
    streams = tuple(self._device_stream(device, device_batch, steps_per_epoch, start_step)
                    for device in self._local_device_indices())
    ds = tf.data.Dataset.zip(streams).map(
        lambda *batches: {key: tf.stack([batch[key] for batch in batches]) for key in batches[0]})
    yield from self._as_numpy(ds.prefetch(tf.data.AUTOTUNE), self.dataset.train_split)

  def _device_stream(self, device: int, device_batch: int, steps_per_epoch: int,
                     start_step: int) -> tf.data.Dataset:
    """Global device `device`'s batches from `start_step` on."""
    base = self._maybe_cache(self.read_device_shard(self.dataset.train_split, device))
    recipe = preprocess.RECIPES[self.dataset.train_preprocess]
    normalize = preprocess.NORMALIZATIONS[self.dataset.normalization]

    def epoch(index):
      shuffle_seed = (self.seed * 1_000_003 + index) * 1009 + device
      shuffled = base.shuffle(self.dataset.shuffle_buffer, seed=shuffle_seed)
      examples = shuffled.take(steps_per_epoch * device_batch).enumerate()
      return examples.map(lambda position, example: (index, position, example))

    def prepare(epoch_index, position, example):
      seed = tf.stack([tf.cast(self.seed, tf.int64), epoch_index])
      seed = tf.random.experimental.stateless_fold_in(seed, device)
      seed = tf.random.experimental.stateless_fold_in(seed, position)
      example_id = example["tfds_id"]
      example = normalize(recipe(example, seed, self.image_size, self.spec), self.spec)
      return {"image": example["image"], "label": tf.cast(example["label"], tf.int32),
              "id": example_id}

    first_epoch, offset = divmod(start_step, steps_per_epoch)
    ds = tf.data.Dataset.range(first_epoch, np.iinfo(np.int64).max).flat_map(epoch)
    ds = ds.skip(offset * device_batch)
    ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(device_batch, drop_remainder=True)

  def eval_batches(self, process_batch: int) -> Iterator[Batch]:
    """The whole eval split once, padded to full batches; `mask` marks real examples.

    Every process yields the same number of batches (collectives stay in step).
    A multi-view recipe's images keep their view axis after the batch axes:
    [local_devices, per_device, views, size, size, channels].
    """
    recipe = preprocess.RECIPES[self.dataset.eval_preprocess]
    normalize = preprocess.NORMALIZATIONS[self.dataset.normalization]
    no_seed = tf.zeros((2,), tf.int64)

    def prepare(example):
      example = normalize(recipe(example, no_seed, self.image_size, self.spec), self.spec)
      return {"image": example["image"], "label": tf.cast(example["label"], tf.int32)}

    ds = self.read(self.dataset.eval_split).map(
        prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    image_shape = tuple(ds.element_spec["image"].shape)  # ([views,] size, size, channels)
    ds = ds.batch(process_batch).prefetch(tf.data.AUTOTUNE)
    steps = 0
    for batch in self._as_numpy(ds, self.dataset.eval_split):
      steps += 1
      yield self._per_device(_pad(batch, process_batch))
    empty = {"image": np.zeros((0, *image_shape), np.float32), "label": np.zeros((0,), np.int32)}
    for _ in range(self.eval_steps(process_batch) - steps):
      yield self._per_device(_pad(empty, process_batch))

  def _as_numpy(self, ds: tf.data.Dataset, split: str) -> Iterator[Batch]:
    """`ds` as NumPy; a damaged or missing file of `split` is a UserError naming it.

    tf.data finds a damaged record only when it reads it, which may be
    mid-training: the checkpoints already written stay, and the run can
    resume once the dataset is prepared again.
    """
    batches = iter(tfds.as_numpy(ds))
    while True:
      try:
        batch = next(batches)
      except StopIteration:
        return
      except (tf.errors.DataLossError, tf.errors.NotFoundError) as error:
        raise UserError(self._damaged(split, error)) from None
      yield batch

  def _damaged(self, split: str, error: tf.errors.OpError) -> str:
    files = [instruction.filename
             for instruction in self.builder.info.splits[split].file_instructions]
    reason = error.message.split("}} ")[-1].split(" [Op:")[0].strip()  # Without TF's op names.
    if isinstance(error, tf.errors.NotFoundError):
      problem = f"is missing a file ({reason})"
    else:  # TF does not say which file; find it when that means reading little.
      small = sum(tf.io.gfile.stat(str(file)).length for file in files) <= CACHE_LIMIT_BYTES
      damaged = [str(file) for file in files if small and _unreadable(file)]
      where = ", ".join(damaged) or f"one of the {len(files)} files of split {split!r}"
      problem = f"has a damaged record in {where} ({reason})"
    how_to_get = self.spec.how_to_get.format(name=self.dataset.name,
                                             dir=self.builder.data_dir_root)
    return (f"dataset {self.dataset.name!r} in {self.builder.data_dir} {problem}; delete "
            f"{self.builder.data_dir} and prepare it again: {how_to_get}")

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


def _unreadable(file) -> bool:
  """Whether reading every record of a TFRecord file fails its checksums."""
  try:
    tf.data.TFRecordDataset(str(file)).reduce(0, lambda count, _: count + 1)
    return False
  except tf.errors.OpError:
    return True
