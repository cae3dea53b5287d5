"""Any TFDS image-classification dataset by name: what its DatasetInfo says.

A name outside cnnjax's table (cnnjax/data/datasets.py) is looked up in
TFDS: a dataset of its catalogue (`oxford_flowers102`, `eurosat/rgb`, ...)
or one prepared by other code in the data dir (TFDS reads those from their
files). It must be prepared there: cnnjax never downloads. What cnnjax
trains on is read from the builder's DatasetInfo, without TensorFlow:

- the label: the ClassLabel feature named "label"; else the label of the
  dataset's supervised keys, if a ClassLabel; else its only ClassLabel. Its
  classes and their names are the dataset's.
- the image: the Image feature named "image"; else the input of the
  supervised keys, if an Image; else its only Image. Its shape gives the
  channels (1 stays grey; 3, 4 or unknown become RGB: an alpha channel is
  dropped) and the native input size where the images are square and of one
  size (else the recipe and the model decide it: cnnjax.config.input_size).
- the splits and their sizes.

The normalisation's mean and standard deviation are not in DatasetInfo:
cnnjax.data.statistics computes them from the train split on first use.
"""

import dataclasses
import difflib
import pathlib

import numpy as np
import tensorflow_datasets as tfds
from google.protobuf import json_format

from cnnjax.data.datasets import DATASETS, TFDS_BUILD, DatasetSpec
from cnnjax.errors import UserError

MANUAL_DOWNLOAD = ("it needs files downloaded by hand: put them in {dir}/downloads/manual as "
                   "its catalogue page says (https://www.tensorflow.org/datasets/catalog/{name}), "
                   "then run `tfds build {name} --data_dir {dir}`")


@dataclasses.dataclass(frozen=True)
class Features:
  """The names of the features cnnjax reads: the image and the integer label."""

  image: str
  label: str


def open_builder(name: str, data_dir: str) -> tfds.core.DatasetBuilder:
  """TFDS's builder of `name`, prepared in `data_dir` ("" for TFDS's default);
  a UserError if TFDS does not know the name, or it is not prepared there."""
  root = data_dir or tfds.core.constants.DATA_DIR
  try:
    builder = tfds.builder(name, data_dir=data_dir or None)
  except json_format.ParseError as error:  # A damaged dataset_info.json.
    raise UserError(f"the metadata of dataset {name!r} in {pathlib.Path(root, name)} is damaged "
                    f"({error}); delete that directory and prepare it again: "
                    + TFDS_BUILD.format(name=name, dir=root)) from None
  except (tfds.core.registered.DatasetNotFoundError, ValueError):
    raise UserError(unknown_name(name, root)) from None
  if not builder.is_prepared():
    raise UserError(f"dataset {name!r} is not prepared in {root} (config.dataset.data_dir); "
                    + how_to_get(builder).format(name=name, dir=root))
  return builder


def how_to_get(builder: tfds.core.DatasetBuilder) -> str:
  """What a user does to prepare `builder`'s dataset; {name} and {dir} to fill in."""
  return MANUAL_DOWNLOAD if getattr(builder, "MANUAL_DOWNLOAD_INSTRUCTIONS", None) else TFDS_BUILD


def unknown_name(name: str, root: str) -> str:
  known = list(dict.fromkeys([*DATASETS, *tfds.list_builders()]))
  close = difflib.get_close_matches(name.partition("/")[0], known, n=3)
  guess = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
  return (f"unknown dataset {name!r} (config.dataset.name): not in cnnjax's table "
          f"({', '.join(sorted(DATASETS))}), not a TFDS dataset, and not prepared in {root}"
          f"{guess} (a folder of images is folder:PATH)")


def features(name: str, info: tfds.core.DatasetInfo) -> Features:
  """The image and label features of `info`, by the rules above; a UserError
  naming the features when there is none, or no way to choose."""
  return Features(image=_choose(name, info, tfds.features.Image, "image", 0, "an image"),
                  label=_choose(name, info, tfds.features.ClassLabel, "label", 1,
                                "an integer class label"))


def _choose(name: str, info: tfds.core.DatasetInfo, kind: type, usual: str, position: int,
            what: str) -> str:
  found = [key for key, feature in info.features.items() if isinstance(feature, kind)]
  if usual in found:
    return usual
  supervised = info.supervised_keys
  if (isinstance(supervised, tuple) and len(supervised) == 2
      and isinstance(supervised[position], str) and supervised[position] in found):
    return supervised[position]
  if len(found) == 1:
    return found[0]
  shown = ", ".join(f"{key} ({type(feature).__name__})" for key, feature in info.features.items())
  problem = (f"has several ({', '.join(found)}), none named {usual!r}" if found else
             f"has none (a tfds.features.{kind.__name__})")
  raise UserError(f"dataset {name!r} cannot be trained on: cnnjax needs {what} feature, and it "
                  f"{problem}; its features: {shown}")


def spec(name: str, builder: tfds.core.DatasetBuilder) -> DatasetSpec:
  """What cnnjax trains with on `builder`'s dataset; mean and std are left
  to cnnjax.data.statistics."""
  info = builder.info
  keys = features(name, info)
  image = info.features[keys.image]
  if np.dtype(image.np_dtype) != np.uint8:
    raise UserError(f"dataset {name!r} has images of {np.dtype(image.np_dtype)} ({keys.image}); "
                    "cnnjax reads 8-bit images")
  height, width, channels = image.shape
  square = height is not None and height == width
  return DatasetSpec(num_classes=info.features[keys.label].num_classes,
                     image_size=height if square else None,
                     channels=1 if channels == 1 else 3, mean=None, std=None,
                     how_to_get=how_to_get(builder))
