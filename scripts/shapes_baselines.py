"""Pixel statistics and a linear baseline for the embedded `shapes` datasets.

For each dataset named: the per-channel mean and standard deviation of its
train split (pixels in [0, 1], the numbers cnnjax/data/datasets.py holds), and
the test top-1 error of multinomial logistic regression on its raw pixels
(standardised per feature; scikit-learn, L-BFGS), the linear model a convnet
should beat by far. Builds the datasets first if needed. Needs scikit-learn
(pip install ".[scripts]").

  PYTHONPATH=$PWD python scripts/shapes_baselines.py shapes/clean shapes/hard
"""

import argparse
import time
import warnings

import numpy as np
import tensorflow_datasets as tfds
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from cnnjax.config import base_config
from cnnjax.data import open_builder


def load(builder, split):
  data = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1))
  return data["image"].astype(np.float32) / 255, data["label"]


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("names", nargs="+", help="dataset names, e.g. shapes/hard")
  parser.add_argument("--data_dir", default="", help="TFDS data dir (default: TFDS's)")
  parser.add_argument("--max_iter", type=int, default=200, help="L-BFGS iterations")
  args = parser.parse_args()
  for name in args.names:
    dataset = base_config().dataset
    dataset.name, dataset.data_dir = name, args.data_dir
    builder = open_builder(dataset)
    train_images, train_labels = load(builder, "train")
    test_images, test_labels = load(builder, "test")
    pixels = train_images.reshape(-1, 3).astype(np.float64)
    print(f"{name}: train mean {np.round(pixels.mean(0), 4).tolist()} "
          f"std {np.round(pixels.std(0), 4).tolist()}")
    train_features = train_images.reshape(len(train_images), -1)
    scaler = StandardScaler().fit(train_features)
    train_features = scaler.transform(train_features)
    test_features = scaler.transform(test_images.reshape(len(test_images), -1))
    start = time.time()
    with warnings.catch_warnings():  # Said in the result line instead.
      warnings.simplefilter("ignore", ConvergenceWarning)
      model = LogisticRegression(max_iter=args.max_iter).fit(train_features, train_labels)
    converged = "converged" if model.n_iter_[0] < args.max_iter else "not converged"
    train_error = 1 - model.score(train_features, train_labels)
    test_error = 1 - model.score(test_features, test_labels)
    print(f"{name}: logistic regression on pixels: test top-1 error {test_error:.2%}, "
          f"train {train_error:.2%} ({model.n_iter_[0]} iterations, {converged}, "
          f"{time.time() - start:.0f} s)")


if __name__ == "__main__":
  main()
