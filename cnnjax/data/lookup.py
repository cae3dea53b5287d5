"""A dataset of any kind described: cnnjax's table (cnnjax.data.datasets), a
folder (cnnjax.data.folders) or any other TFDS dataset (cnnjax.data.tfds_info),
each checked without TensorFlow and without preparing anything."""

from cnnjax.data import folders
from cnnjax.data.datasets import DATASETS, DatasetSpec, folder_path, is_folder
from cnnjax.errors import UserError


def describe(dataset, splits: bool = True) -> DatasetSpec:
  """What cnnjax trains with on `dataset` (config.dataset: its name and
  data_dir), any kind; a UserError naming what is wrong with it, and with
  `splits`, naming a train or eval split it lacks. A folder is checked (its
  class folders, without decoding), a TFDS dataset looked up (without
  TensorFlow); neither is prepared here. (A table dataset's splits are
  checked when it is opened.)"""
  if dataset.name in DATASETS:
    return DATASETS[dataset.name]
  if is_folder(dataset.name):
    folder = folders.scan(folder_path(dataset.name))
    if splits:
      check_splits(dataset, folder.splits)
    return folder.spec
  from cnnjax.data import tfds_info  # TensorFlow Datasets: only for a name outside the table.

  builder = tfds_info.open_builder(dataset.name, dataset.data_dir)
  if splits:
    check_splits(dataset, list(builder.info.splits))
  return tfds_info.spec(dataset.name, builder)


def check_splits(dataset, available) -> None:
  """A UserError naming config.dataset.train_split or eval_split if a split
  it reads ("train", "train[:90%]", "train+validation") is not `available`
  (none: TFDS does not say, as under tfds.testing.mock_data)."""
  if not available:
    return
  for key in ("train_split", "eval_split"):
    for part in dataset[key].split("+"):
      split = part.partition("[")[0].strip()
      if split not in available:
        raise UserError(f"dataset {dataset.name!r} has no split {split!r} "
                        f"(config.dataset.{key}={dataset[key]!r}); it has "
                        f"{', '.join(available)}: set config.dataset.{key} to one of them")
