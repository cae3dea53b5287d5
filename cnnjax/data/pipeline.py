"""The tf.data input pipeline: TFDS split into shards read per process, a
seeded per-epoch shuffle, preprocessing recipes, batches shaped
[local_devices, per_device, ...].

The sequence of global batches is a function of the seed and the dataset
alone, whatever the number of devices and processes. The train split is cut
into `dataset.num_shards` even shards (`tfds.even_splits`); each shard is a
stream of its own, shuffled and augmented from seeds derived from (seed,
epoch, shard, position) only. Global batch t is the concatenation, in shard
order, of `batch_size / num_shards` examples from every shard. Devices hold
consecutive shards (device d of D holds shards d·K/D .. (d+1)·K/D - 1), so
any device count dividing `num_shards` sees the same global batches, and a
process reads only its own devices' shards. A run can thus resume on another
number of devices (elastic resume) exactly where it stopped. The shuffle
buffer is per shard.

Every dataset is read as a TFDS builder (cnnjax.data.source): a table
dataset, any other TFDS dataset by name, and a folder of images, which
cnnjax.data.folder_builder prepares as one; so the guarantees here hold for
each of them.

Training is exactly resumable: epoch e of shard k is that shard shuffled with
a seed derived from (seed, e, k), cut to a whole number of steps, and every
example's augmentation is seeded by its position in the epoch. Starting at
step s rebuilds the streams and skips the examples of the steps already
taken, before they are decoded. Evaluation reads a per-process split: its
sums do not depend on the order.
"""

import contextlib
import dataclasses
import functools
import io
import pathlib
from typing import Iterator

import ml_collections
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from google.protobuf import json_format

from cnnjax import locks
from cnnjax.data import (
  digits,
  folder_builder,
  folders,
  pixel_mean,
  preprocess,
  recipes,
  shapes,
  tfds_info,
)
from cnnjax.data.datasets import DATASETS, DatasetSpec, dataset_spec, folder_path, is_folder
from cnnjax.data.source import Source
from cnnjax.errors import UserError, choose

tf.config.set_visible_devices([], "GPU")
# TFDS calls deprecated tf.data APIs (e.g. CounterV2 for `tfds_id`); their
# warnings are TensorFlow's business, not the user's.
tf.get_logger().setLevel("ERROR")

Batch = dict[str, np.ndarray]

# tf.data functions are plain TensorFlow ops, written without Python control
# flow on tensors, so AutoGraph's source-to-source conversion, which each
# shard's stream would otherwise pay again, is skipped: a run starts sooner.
_graph = tf.autograph.experimental.do_not_convert
CACHE_LIMIT_BYTES = 2**30  # Splits smaller than this are kept in memory (still encoded).


# The datasets cnnjax generates itself, offline, on first use: the TFDS
# builder class of each name (`NAME` or `NAME/CONFIG`) before the slash.
EMBEDDED_BUILDERS: dict[str, type[tfds.core.GeneratorBasedBuilder]] = {
    "digits": digits.Digits,
    "shapes": shapes.Shapes,
}


def open_builder(dataset: ml_collections.ConfigDict) -> tfds.core.DatasetBuilder:
  """The TFDS builder for `dataset.name`: an embedded one is built on first
  use, a folder prepared (again, if it changed); any other TFDS dataset must
  be prepared already (cnnjax.data.tfds_info)."""
  if is_folder(dataset.name):
    return folder_builder.open_folder(folders.scan(folder_path(dataset.name)), dataset.data_dir,
                                      dataset.skip_undecodable)
  if dataset.name not in DATASETS:
    return tfds_info.open_builder(dataset.name, dataset.data_dir)
  spec = dataset_spec(dataset.name)
  data_dir = dataset.data_dir or None
  try:
    family, _, builder_config = dataset.name.partition("/")
    if family in EMBEDDED_BUILDERS:
      return _prepared_embedded(functools.partial(
          EMBEDDED_BUILDERS[family], config=builder_config or None, data_dir=data_dir),
          dataset.name)
    return tfds.builder(dataset.name, data_dir=data_dir)
  except json_format.ParseError as error:  # A damaged dataset_info.json.
    where = pathlib.Path(data_dir or tfds.core.constants.DATA_DIR, dataset.name)
    raise UserError(f"the metadata of dataset {dataset.name!r} in {where} is damaged ({error}); "
                    f"delete {where} and prepare it again: " + spec.how_to_get.format(
                        name=dataset.name, dir=where.parent)) from None


def _prepared_embedded(make_builder, name: str) -> tfds.core.DatasetBuilder:
  """An embedded dataset's builder, built on first use, offline, saying so in
  one line (TFDS's own messages speak of downloads of unknown size, which
  are not). Several processes starting at once (a sweep's runs) build it
  once: the others wait on a lock file beside it, then read what it wrote."""
  builder = make_builder()
  if builder.is_prepared():
    return builder
  root = pathlib.Path(builder.data_dir_root)
  root.mkdir(parents=True, exist_ok=True)
  with locks.FileLock(root / f".{name.replace('/', '-')}.build.lock",
                      waiting=f"waiting for another process building {name} in {root}"):
    builder = make_builder()  # Anew: the other process may have built it meanwhile.
    if builder.is_prepared():
      return builder
    print(f"building the embedded dataset {name} in {root} (once, offline)", flush=True)
    tfds.display_progress_bar(False)
    try:
      with contextlib.redirect_stdout(io.StringIO()):
        builder.download_and_prepare()
    finally:
      tfds.display_progress_bar(True)
  return builder


@dataclasses.dataclass(frozen=True)
class InputPipeline:
  """Batches for one process: `process_batch` examples split over `local_devices`."""

  builder: tfds.core.DatasetBuilder
  dataset: ml_collections.ConfigDict
  seed: int
  process_index: int
  process_count: int
  local_devices: int
  # ((NAME, RECIPE), ...): evaluations beside dataset.eval_preprocess's (config.extra_evals).
  extra_evals: tuple = ()
  # The model's input side (cnnjax.config.input_size); 0: dataset.image_size
  # or the dataset's own.
  input_size: int = 0

  def __post_init__(self):
    """Parses and checks the recipes and the normalisation, and computes the
    statistics it needs (a mean image, or a dataset's mean and standard
    deviation) unless cached: a mistake is a UserError now, before anything
    is compiled, and tf.data functions traced later find them computed."""
    choose(preprocess.NORMALIZATIONS, "dataset.normalization", self.dataset.normalization)
    for key in self._texts:
      self._check_recipe(key)
    self._normalize  # noqa: B018 (computed now, once)

  def _check_recipe(self, key: str) -> None:
    """A crop larger than the dataset's images (when TFDS knows their size),
    or a recipe that does not end at the model's input size, would fail
    inside tf.data, possibly only at the first evaluation."""
    height, width = self.builder.info.features[self.source.features.image].shape[:2]
    recipes.check_fits(self._ops[key], height, width, self.spec.channels, self.image_size, key,
                       self._texts[key], self.dataset.name)

  @functools.cached_property
  def _texts(self) -> dict[str, str]:
    """Every recipe of the run by its key: the two dataset keys, then each
    extra evaluation's as "extra_evals['NAME']"."""
    texts = {key: self.dataset[key] for key in ("train_preprocess", "eval_preprocess")}
    texts.update({_extra_key(name): recipe for name, recipe in self.extra_evals})
    return texts

  @functools.cached_property
  def _ops(self) -> dict[str, tuple[recipes.Op, ...]]:
    """The recipes' ops, parsed once."""
    return {key: recipes.parse(text, self.image_size, key) for key, text in self._texts.items()}

  @functools.cached_property
  def _recipe(self) -> dict[str, preprocess.Recipe]:
    return {key: preprocess.recipe(ops, self.spec.channels) for key, ops in self._ops.items()}

  @functools.cached_property
  def _normalize(self):
    """image -> image, with the training set's statistics (cnnjax.data.preprocess)."""
    normalization = preprocess.NORMALIZATIONS[self.dataset.normalization]
    mean = None
    if self.dataset.normalization == "subtract_pixel_mean":
      split = self.dataset.train_split
      ops = recipes.single_view(self._ops["eval_preprocess"])
      mean = pixel_mean.mean_image(
          self._open(split, split), preprocess.recipe(ops, self.spec.channels),
          self.dataset.name, split, recipes.canonical(ops), self.image_size, self.spec.channels,
          self.builder.data_dir)
      return functools.partial(normalization, spec=self.spec, pixel_mean=mean)
    mean, std = self.mean_and_std
    return functools.partial(normalization, spec=dataclasses.replace(self.spec, mean=mean, std=std),
                             pixel_mean=None)

  @functools.cached_property
  def source(self) -> Source:
    return Source(self.builder, self.dataset)

  @property
  def spec(self) -> DatasetSpec:
    return self.source.spec

  @property
  def class_names(self) -> tuple[str, ...]:
    return self.source.class_names

  @property
  def mean_and_std(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
    return self.source.mean_and_std

  @property
  def image_size(self) -> int:
    size = self.input_size or self.dataset.image_size or self.spec.image_size
    if not size:
      raise UserError(f"the images of {self.dataset.name!r} vary in size: set "
                      "config.dataset.image_size, the side of the model's input")
    return size

  @property
  def device_count(self) -> int:
    """Devices of all processes (pmap gives every process as many)."""
    return self.process_count * self.local_devices

  def read(self, split: str, process_index: int | None = None,
           whole: bool = True) -> tf.data.Dataset:
    """One process's share of `split`, images still encoded. `whole`: it will
    be read to the end, so TFDS may keep a small split in memory."""
    process_index = self.process_index if process_index is None else process_index
    return self._open(split, tfds.split_for_jax_process(
        split, process_index=process_index, process_count=self.process_count), whole=whole)

  @functools.cached_property
  def _train_shards(self) -> tuple[tf.data.Dataset, ...]:
    """The train split's `dataset.num_shards` even shards, images still
    encoded, each example with its `tfds_id` (training reports which examples
    each step saw). Opened once, for counting and for reading: opening them
    was a fifth of a small run's start."""
    split = self.dataset.train_split
    return tuple(self._open(split, part, with_ids=True)
                 for part in tfds.even_splits(split, n=self.dataset.num_shards))

  def _open(self, split: str, part, with_ids: bool = False, whole: bool = True) -> tf.data.Dataset:
    return self.source.open(split, part, with_ids, whole)

  def check_sharding(self, global_batch: int) -> None:
    """A UserError unless the devices and the batch split the shards evenly."""
    shards = self.dataset.num_shards
    if shards % self.device_count:
      raise UserError(
          f"config.dataset.num_shards={shards} is not a multiple of the {self.device_count} "
          f"devices; set it to a multiple of {self.device_count} that divides batch_size (the "
          "data order depends on num_shards, never on the devices)")
    if global_batch % shards:
      raise UserError(f"config.batch_size={global_batch} is not a multiple of "
                      f"config.dataset.num_shards={shards}; each step takes the same number of "
                      "examples from every shard")

  def _shards_of_this_process(self) -> range:
    """Shards in the order of pmap's axis: processes in turn, then their devices."""
    per_process = self.dataset.num_shards // self.process_count
    return range(self.process_index * per_process, (self.process_index + 1) * per_process)

  def steps_per_epoch(self, global_batch: int) -> int:
    """Steps in an epoch: the smallest shard decides, so every shard takes the same steps."""
    per_shard = global_batch // self.dataset.num_shards
    smallest = min(int(shard.cardinality()) for shard in self._train_shards)
    steps = smallest // per_shard
    if steps == 0:
      raise UserError(
          f"batch_size is larger than the {self.dataset.train_split!r} split of "
          f"{self.dataset.name!r} ({smallest} examples per shard, "
          f"{smallest * self.dataset.num_shards} in all); lower config.batch_size")
    return steps

  def eval_steps(self, process_batch: int) -> int:
    largest = max(int(self.read(self.dataset.eval_split, index).cardinality())
                  for index in range(self.process_count))
    return -(-largest // process_batch)

  def train_batches(self, global_batch: int, start_step: int = 0) -> Iterator[Batch]:
    """This process's training batches from `start_step` on, forever.

    `id` holds each example's TFDS id (bytes, e.g. b"digits-train.tfrecord-00000-of-00001__42"),
    for the host only: take it out before the batch goes to the devices.
    """
    per_shard = global_batch // self.dataset.num_shards
    steps_per_epoch = self.steps_per_epoch(global_batch)
    # Each step takes `per_shard` examples from every shard, in shard order.
    # Each shard decodes and batches on its own, in parallel: as fast as the
    # former one stream per device (measured on digits and shapes), where
    # merging the shards example by example before decoding was slower.
    streams = tuple(
        self._shard_stream(shard, per_shard, steps_per_epoch, start_step)
        .map(_graph(self._prepare_for_training), num_parallel_calls=tf.data.AUTOTUNE,
             deterministic=True)
        .batch(per_shard, drop_remainder=True)
        for shard in self._shards_of_this_process())
    ds = tf.data.Dataset.zip(streams).map(_graph(
        lambda *parts: {key: tf.concat([part[key] for part in parts], 0) for key in parts[0]}))
    for batch in self._as_numpy(ds.prefetch(tf.data.AUTOTUNE), self.dataset.train_split):
      yield self._per_device(batch)

  def _shard_stream(self, shard: int, per_shard: int, steps_per_epoch: int,
                    start_step: int) -> tf.data.Dataset:
    """Shard `shard`'s examples from `start_step` on, each as (epoch, shard, position, example)."""
    base = self._maybe_cache(self._train_shards[shard])

    def epoch(index):
      shuffle_seed = (self.seed * 1_000_003 + index) * 1009 + shard
      shuffled = base.shuffle(self.dataset.shuffle_buffer, seed=shuffle_seed)
      examples = shuffled.take(steps_per_epoch * per_shard).enumerate()
      return examples.map(_graph(lambda position, example: (index, shard, position, example)))

    first_epoch, offset = divmod(start_step, steps_per_epoch)
    ds = tf.data.Dataset.range(first_epoch, np.iinfo(np.int64).max).flat_map(_graph(epoch))
    return ds.skip(offset * per_shard)

  def _prepare_for_training(self, epoch, shard, position, example):
    """Decodes and augments one example, seeded by where it is in the stream."""
    seed = tf.stack([tf.cast(self.seed, tf.int64), epoch])
    seed = tf.random.experimental.stateless_fold_in(seed, shard)
    seed = tf.random.experimental.stateless_fold_in(seed, position)
    example_id = example["tfds_id"]
    example = self._recipe["train_preprocess"](example, seed)
    return {"image": self._normalize(example["image"]),
            "label": tf.cast(example["label"], tf.int32), "id": example_id}

  def eval_batches(self, process_batch: int, recipe: str | None = None) -> Iterator[Batch]:
    """The whole eval split once through `recipe` (default dataset.eval_preprocess),
    padded to full batches; `mask` marks real examples.

    Every process yields the same number of batches (collectives stay in step).
    A multi-view recipe's images keep their view axis after the batch axes:
    [local_devices, per_device, views, size, size, channels]; a multi-scale
    one's further view groups (`image_1`, ...) come normalised the same way.
    """
    ds = self._eval_examples(recipe)
    image_shapes = _view_group_shapes(ds)
    ds = ds.batch(process_batch).prefetch(tf.data.AUTOTUNE)
    steps = 0
    for batch in self._as_numpy(ds, self.dataset.eval_split):
      steps += 1
      yield self._per_device(_pad(batch, process_batch))
    empty = {key: np.zeros((0, *shape), np.float32) for key, shape in image_shapes.items()}
    empty["label"] = np.zeros((0,), np.int32)
    for _ in range(self.eval_steps(process_batch) - steps):
      yield self._per_device(_pad(empty, process_batch))

  def eval_image_shapes(self, recipe: str | None = None) -> dict[str, tuple]:
    """([views,] height, width, channels) of each view group `recipe` gives
    (None where the size varies); builds the tf.data graph, reads nothing."""
    return _view_group_shapes(self._eval_examples(recipe))

  def eval_examples(self, count: int, first: int = 0) -> Batch:
    """`count` examples of the eval split from position `first` (fewer if it
    ends sooner) through dataset.eval_preprocess, normalised, as one batch
    without the device axis: what analysis tools look at."""
    ds = self._eval_examples(None, whole=False).skip(first).take(count).batch(count)
    return next(iter(self._as_numpy(ds, self.dataset.eval_split)), None)

  def eval_image(self, encoded: bytes) -> Batch:
    """One encoded image (JPEG, PNG, BMP, GIF) through dataset.eval_preprocess
    and the normalisation, as a batch of one (its view groups): what `cnnjax
    predict` shows the network. Raises tf.errors.OpError if it cannot be decoded."""
    example = self._recipe["eval_preprocess"](
        {"image": tf.constant(encoded), "label": tf.constant(0, tf.int64)},
        tf.zeros((2,), tf.int64))
    return {key: self._normalize(value).numpy()[None]
            for key, value in example.items() if _is_view_group(key)}

  def _eval_examples(self, recipe: str | None, whole: bool = True) -> tf.data.Dataset:
    """This process's eval examples through `recipe` (an extra evaluation's
    recipe, or by default dataset.eval_preprocess), normalised, one by one."""
    keys = {text: key for key, text in self._texts.items() if key != "train_preprocess"}
    if recipe is None:
      recipe = self._recipe["eval_preprocess"]
    elif recipe in keys:
      recipe = self._recipe[keys[recipe]]
    else:  # Another recipe (a test's, say), parsed here.
      recipe = preprocess.recipe(recipes.parse(recipe, self.image_size, "eval_preprocess"),
                                 self.spec.channels)
    no_seed = tf.zeros((2,), tf.int64)

    def prepare(example):
      example = recipe(example, no_seed)
      images = {key: self._normalize(value)
                for key, value in example.items() if _is_view_group(key)}
      return {**images, "label": tf.cast(example["label"], tf.int32)}

    return self.read(self.dataset.eval_split, whole=whole).map(
        _graph(prepare), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

  def _as_numpy(self, ds: tf.data.Dataset, split: str) -> Iterator[Batch]:
    """`ds` as NumPy; a damaged or missing file of `split` is a UserError naming it.

    tf.data finds a damaged record only when it reads it, which may be
    mid-training: the checkpoints already written stay, and the run can
    resume once the dataset is prepared again.
    """
    batches = iter(tfds.as_numpy(ds.with_options(dataset_options())))
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


def _is_view_group(key: str) -> bool:
  """`image`, `image_1`, `image_2`, ...: the images of an eval example (see steps.view_groups)."""
  return key == "image" or (key.startswith("image_") and key[len("image_"):].isdigit())


def _extra_key(name: str) -> str:
  return f"extra_evals[{name!r}]"


def _view_group_shapes(ds: tf.data.Dataset) -> dict[str, tuple]:
  return {key: tuple(spec.shape) for key, spec in ds.element_spec.items() if _is_view_group(key)}


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


def dataset_options() -> tf.data.Options:
  """Each map call runs its ops on one thread: the parallelism is across
  examples (a call per core), and ops that also split one image's work
  across threads only add hand-offs. bench-input, ResNet's recipe on 2
  cores: 8% more images/s while the standardisation broadcast slowly, level
  since (preprocess.per_channel)."""
  options = tf.data.Options()
  options.threading.max_intra_op_parallelism = 1
  return options
