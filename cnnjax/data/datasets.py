"""What cnnjax knows about each dataset before opening it.

Three kinds of `config.dataset.name`:
- a name of the table below: the datasets whose published statistics and
  native sizes cnnjax records (and the embedded ones it builds itself);
- any other TFDS image-classification dataset, prepared by TFDS
  (cnnjax.data.tfds_info reads what it needs from its DatasetInfo);
- `folder:PATH`, a folder of images in class sub-folders (cnnjax.data.folders).

This module holds the table and the names; cnnjax.data.lookup describes a
dataset of any kind. Kept free of TensorFlow so a config can be checked
(dataset name, classes, image size) before any input pipeline or device work
starts.
"""

import dataclasses
import os

from cnnjax.errors import UserError

FOLDER_PREFIX = "folder:"


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  """A dataset as cnnjax trains on it."""

  num_classes: int
  # Side of the model input the dataset is usually trained at; None where its
  # images vary in size or are not square (cnnjax.config.input_size decides).
  image_size: int | None
  channels: int
  # Per channel, of pixels scaled to [0, 1]; None: computed from the train
  # split on first use (cnnjax.data.statistics).
  mean: tuple[float, ...] | None
  std: tuple[float, ...] | None
  how_to_get: str  # What a user does when TFDS has no prepared copy; {name}, {dir} filled in.


TFDS_BUILD = ("run `tfds build {name} --data_dir {dir}` (it downloads; or build it on a machine "
              "with internet and copy its {name}/ directory into {dir})")

DATASETS: dict[str, DatasetSpec] = {
    # Embedded: built offline from the digits bundled with scikit-learn
    # (cnnjax/data/digits.py); 8x8 images resized to LeNet-5's 32x32, whose
    # smoothing lowers the standard deviation from 0.376 (8x8) to 0.323.
    "digits": DatasetSpec(10, 32, 1, (0.3053,), (0.3234,), "it is built offline on first use"),
    # Embedded: generated offline (cnnjax/data/shapes.py). Mean and standard
    # deviation of the train split, measured (scripts/shapes_baselines.py).
    "shapes/clean": DatasetSpec(10, 32, 3, (0.5018, 0.4994, 0.4995), (0.2857, 0.2911, 0.2856),
                                "it is built offline on first use"),
    "shapes/hard": DatasetSpec(10, 32, 3, (0.4392, 0.4365, 0.4370), (0.2556, 0.2563, 0.2560),
                               "it is built offline on first use"),
    # Embedded: `hard` as JPEG images of varying size (shorter side 64-128),
    # ImageNet's offline stand-in; trained at ImageNet's 224 so its recipes
    # run unchanged. Train-split pixel statistics, measured (cnnjax/data/shapes.py).
    "shapes/jpeg": DatasetSpec(10, 224, 3, (0.4324, 0.4355, 0.4342), (0.2572, 0.2584, 0.2538),
                               "it is built offline on first use"),
    "mnist": DatasetSpec(10, 28, 1, (0.1307,), (0.3081,), TFDS_BUILD),
    "fashion_mnist": DatasetSpec(10, 28, 1, (0.2860,), (0.3530,), TFDS_BUILD),
    "cifar10": DatasetSpec(10, 32, 3, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616),
                           TFDS_BUILD),
    "cifar100": DatasetSpec(100, 32, 3, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762),
                            TFDS_BUILD),
    "imagenet2012": DatasetSpec(
        1000, 224, 3, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225),
        "ImageNet needs a manual download: put ILSVRC2012_img_train.tar and "
        "ILSVRC2012_img_val.tar (from image-net.org) in {dir}/downloads/manual, then run "
        "`tfds build imagenet2012 --data_dir {dir}`"),
}


def dataset_spec(name: str) -> DatasetSpec:
  """The table's entry for `name`."""
  if name not in DATASETS:
    raise UserError(f"unknown dataset {name!r} (config.dataset.name); supported: "
                    f"{', '.join(sorted(DATASETS))}")
  return DATASETS[name]


def is_folder(name: str) -> bool:
  return name.startswith(FOLDER_PREFIX)


def folder_path(name: str) -> str:
  """PATH of `folder:PATH`, "~" expanded; a UserError if it is empty."""
  path = name[len(FOLDER_PREFIX):].strip()
  if not path:
    raise UserError(f"config.dataset.name={name!r} names no folder; write folder:PATH, PATH "
                    "holding train/CLASS/* and val/ (or validation/ or test/)")
  return os.path.expanduser(path)


def canonical_name(name: str) -> str:
  """`name`, with a folder's PATH made absolute: config.json then finds the
  folder from any working directory (`cnnjax eval`, a sweep's runs)."""
  return FOLDER_PREFIX + os.path.abspath(folder_path(name)) if is_folder(name) else name
