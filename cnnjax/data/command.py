"""`cnnjax data NAME`: what cnnjax will train on, before any training.

  cnnjax data cifar10
  cnnjax data oxford_flowers102 --config.dataset.data_dir=DIR
  cnnjax data folder:photos [--config.dataset.skip_undecodable=True] [--format json]

Prints the classes and their names, the splits and their sizes, the image
shape (or "varying" and the range of sizes), the normalisation's mean and
standard deviation (the table's published ones, or the train split's, and
from what), and where the prepared copy is. It opens the dataset as
`cnnjax train` would: an embedded dataset is built and a folder prepared on
first use, and a dataset's statistics computed, each saying so as it does.
`--config.dataset.KEY=VALUE` sets what `cnnjax train` would take from the
config (data_dir, train_split, skip_undecodable, mean and std). Importing
this module imports neither JAX nor TensorFlow.
"""

import argparse
import contextlib
import json
import pathlib
import sys

from cnnjax.errors import UserError

DATASET_PREFIX = "dataset."


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("name", metavar="NAME",
                      help="a dataset: one of cnnjax's table (cifar10, digits, ...), any other "
                           "TFDS dataset prepared in the data dir, or folder:PATH")
  parser.add_argument("--format", choices=("text", "json"), default="text",
                      help="text for people (default), or json on stdout with the status "
                           "lines on stderr")


def run(args, overrides) -> int:
  from cnnjax import config as config_lib
  from cnnjax.data import datasets, lookup

  config = config_lib.base_config()
  config.lock()
  for key, text in overrides:
    if not key.startswith(DATASET_PREFIX) or key == "dataset.name":
      raise UserError(f"--config.{key}: `cnnjax data` takes config.dataset keys only (and the "
                      "dataset as NAME)")
    config_lib.override(config, key, text)
  config.dataset.name = datasets.canonical_name(args.name)
  config_lib.validate_dataset(config.dataset)
  lookup.describe(config.dataset, splits=False)  # Its mistakes, before any preparing.
  if args.format == "json":  # Status lines (preparing, computing) to stderr: stdout is JSON.
    with contextlib.redirect_stdout(sys.stderr):
      description = describe(config.dataset)
    print(json.dumps(description, indent=2))
  else:
    print(as_text(describe(config.dataset)), end="")
  return 0


def describe(dataset) -> dict:
  """What cnnjax will use of `dataset` (config.dataset), as plain data."""
  from cnnjax.data import folder_builder, open_builder
  from cnnjax.data.datasets import DATASETS, is_folder
  from cnnjax.data.source import Source

  source = Source(open_builder(dataset), dataset)
  if not source.builder.is_prepared():  # A table dataset TFDS has not prepared.
    root = source.builder.data_dir_root
    raise UserError(f"dataset {dataset.name!r} is not prepared in {root} "
                    "(config.dataset.data_dir); "
                    + source.spec.how_to_get.format(name=dataset.name, dir=root))
  info = source.builder.info
  spec = source.spec
  height, width, _ = info.features[source.features.image].shape
  mean, std = source.mean_and_std
  if dataset.mean:
    how = "config.dataset.mean and std"
  elif spec.mean is not None:
    how = "published, in cnnjax's table"
  else:
    how = f"{source.measured_statistics.source} of {dataset.train_split!r}"
  description = {
      "name": dataset.name,
      "kind": ("table" if dataset.name in DATASETS else "folder" if is_folder(dataset.name)
               else "tfds"),
      "prepared_in": str(source.builder.data_dir),
      "num_classes": spec.num_classes,
      "class_names": list(source.class_names),
      "splits": {name: split.num_examples for name, split in info.splits.items()},
      "image_shape": [height, width, spec.channels],  # None where the images vary.
      "native_image_size": spec.image_size,
      "mean": list(mean), "std": list(std), "statistics": how,
      "features": {"image": source.features.image, "label": source.features.label},
  }
  if is_folder(dataset.name):
    metadata = folder_builder.metadata(pathlib.Path(source.builder.data_dir))
    description.update(source=metadata["source"], image_sizes=metadata["sizes"],
                       ignored_files=metadata["ignored"],
                       undecodable=[{"path": path, "reason": reason}
                                    for path, reason in metadata["undecodable"]])
  return description


def as_text(description: dict) -> str:
  height, width, channels = description["image_shape"]
  if height is None:
    sizes = description.get("image_sizes")
    shape = f"varying, {channels} channels" + (
        f" (height {sizes[0]} to {sizes[1]}, width {sizes[2]} to {sizes[3]})" if sizes else "")
  else:
    shape = f"{height}x{width}x{channels}"
  native = description["native_image_size"]
  names = description["class_names"]
  shown = ", ".join(f"{index} {name}" for index, name in enumerate(names[:20]))
  lines = [
      f"dataset       {description['name']} ({description['kind']})",
      f"prepared in   {description['prepared_in']}",
      f"classes       {description['num_classes']}: {shown}"
      + (f", ... ({len(names) - 20} more)" if len(names) > 20 else ""),
      "splits        " + ", ".join(f"{name} {count}"
                                   for name, count in description["splits"].items()),
      f"images        {shape}",
      "input size    " + (f"{native} (config.dataset.image_size to change)" if native else
                          "config.dataset.image_size, else the train recipe's, else the model's"),
      f"mean          {_numbers(description['mean'])}",
      f"std           {_numbers(description['std'])}  ({description['statistics']})",
  ]
  if description["kind"] == "folder":
    ignored = description["ignored_files"]
    lines.append(f"source        {description['source']}" + (
        f" ({ignored} files ignored: not images)" if ignored else ""))
    for item in description["undecodable"]:
      lines.append(f"undecodable   {item['path']}: {item['reason']}")
  return "\n".join(lines) + "\n"


def _numbers(values) -> str:
  return "(" + ", ".join(f"{value:.4f}" for value in values) + ")"
