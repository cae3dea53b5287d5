"""Per-channel pixel mean and standard deviation of a dataset's train split
(pixels in [0, 1], every pixel weighted alike), for datasets whose images
vary in size, which scripts/shapes_baselines.py cannot stack. Builds an
embedded dataset first if needed.

  PYTHONPATH=$PWD python scripts/pixel_statistics.py shapes/jpeg
"""

import argparse

import numpy as np
import tensorflow_datasets as tfds

from cnnjax.config import base_config
from cnnjax.data import open_builder


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("names", nargs="+", help="dataset names, e.g. shapes/jpeg")
  parser.add_argument("--data_dir", default="", help="TFDS data dir (default: TFDS's)")
  args = parser.parse_args()
  for name in args.names:
    dataset = base_config().dataset
    dataset.name, dataset.data_dir = name, args.data_dir
    total, squares, count = 0.0, 0.0, 0
    for example in tfds.as_numpy(open_builder(dataset).as_dataset(split="train")):
      pixels = example["image"].reshape(-1, example["image"].shape[-1]) / 255
      total, squares, count = total + pixels.sum(0), squares + (pixels**2).sum(0), count + len(pixels)
    mean = total / count
    std = np.sqrt(squares / count - mean**2)
    print(f"{name}: train mean {np.round(mean, 4).tolist()} std {np.round(std, 4).tolist()}")


if __name__ == "__main__":
  main()
