"""A prepared dataset as cnnjax reads it, whatever its kind (table, TFDS by
name, folder): what it is (its spec, classes, splits, the normalisation's
statistics) and its examples, images still encoded, under the names
"image" and "label" whatever the dataset calls them. cnnjax.data.pipeline
makes batches of them; `cnnjax data` shows them.
"""

import dataclasses
import functools

import ml_collections
import tensorflow as tf
import tensorflow_datasets as tfds

from cnnjax.data import class_names, folders, statistics, tfds_info
from cnnjax.data.datasets import DATASETS, DatasetSpec, folder_path, is_folder
from cnnjax.errors import UserError


@dataclasses.dataclass(frozen=True)
class Source:
  """`builder`'s dataset as `dataset` (config.dataset) names and reads it."""

  builder: tfds.core.DatasetBuilder
  dataset: ml_collections.ConfigDict

  @functools.cached_property
  def spec(self) -> DatasetSpec:
    """The table's entry; or, for any other dataset, what its DatasetInfo says."""
    if self.dataset.name in DATASETS:
      return DATASETS[self.dataset.name]
    if is_folder(self.dataset.name):  # As check_model saw it, before the folder was prepared.
      return folders.scan(folder_path(self.dataset.name)).spec
    return tfds_info.spec(self.dataset.name, self.builder)

  @functools.cached_property
  def features(self) -> tfds_info.Features:
    return tfds_info.features(self.dataset.name, self.builder.info)

  @property
  def class_names(self) -> tuple[str, ...]:
    """The classes' names, by label (TFDS names unnamed classes "0", "1", ...),
    ImageNet's WordNet ids as their synonyms (cnnjax.data.class_names)."""
    return class_names.readable(self.builder.info.features[self.features.label].names)

  @functools.cached_property
  def mean_and_std(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) per channel, pixels in [0, 1], that the normalisation uses:
    config.dataset.mean and std if set; else the table's; else the train
    split's, computed on first use (cnnjax.data.statistics)."""
    if self.dataset.mean:
      if len(self.dataset.mean) != self.spec.channels:
        raise UserError(f"config.dataset.mean and std have {len(self.dataset.mean)} values, and "
                        f"the images of {self.dataset.name!r} {self.spec.channels} channels")
      return tuple(self.dataset.mean), tuple(self.dataset.std)
    if self.spec.mean is not None:
      return self.spec.mean, self.spec.std
    measured = self.measured_statistics
    return measured.mean, measured.std

  @functools.cached_property
  def measured_statistics(self) -> statistics.Statistics:
    """The train split's pixel statistics, computed once and cached beside the data."""
    split = self.dataset.train_split
    return statistics.channel_statistics(
        lambda part: self.open(split, part, whole=False), split,
        int(self.open(split, split, whole=False).cardinality()), self.dataset.name,
        self.spec.channels, self.builder.data_dir)

  def open(self, split: str, part, with_ids: bool = False, whole: bool = True) -> tf.data.Dataset:
    """`part` of `split` as examples {"image": encoded, "label"[, "tfds_id"]},
    read from the dataset's image and label features; no image is decoded
    here (the recipe decodes the one it reads), and the other features are
    dropped. `whole`: it will be read to the end, so TFDS may keep a small
    split in memory."""
    keys = self.features
    features = self.builder.info.features
    try:
      ds = self.builder.as_dataset(
          split=part, shuffle_files=False,
          decoders={key: tfds.decode.SkipDecoding() for key, feature in features.items()
                    if isinstance(feature, tfds.features.Image)},
          read_config=tfds.ReadConfig(add_tfds_id=with_ids, try_autocache=whole))
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
    if set(features) == {keys.image, keys.label} == {"image", "label"}:
      return ds
    rename = lambda example: {"image": example[keys.image], "label": example[keys.label],
                              **({"tfds_id": example["tfds_id"]} if with_ids else {})}
    return ds.map(tf.autograph.experimental.do_not_convert(rename))
