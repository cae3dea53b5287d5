"""`digits`: a real TFDS dataset embedded in cnnjax, built with no network.

The 1,797 handwritten digits (8x8, 17 grey levels, 10 classes) of the UCI
"Optical Recognition of Handwritten Digits" test set (Alpaydin and Kaynak
1998, CC BY 4.0), in the file scikit-learn bundles, `digits.csv.gz` (one row
per image: 64 pixels, then the label), shipped here beside this module so
that neither building it nor importing TensorFlow (whose Keras imports
scikit-learn when it is installed) pays for scikit-learn. Pixel values 0..16
are scaled to 0..255. The split is fixed: a
permutation of the 1,797 images with NumPy seed 0; the first 1,497 are `train`,
the last 300 `test`. The preprocessing resizes the 8x8 images to 32x32 so that
LeNet-5 sees its native input.
"""

import pathlib

import numpy as np
import tensorflow_datasets as tfds

SOURCE = pathlib.Path(__file__).with_name("digits.csv.gz")
NUM_TEST = 300
SPLIT_SEED = 0


class Digits(tfds.core.GeneratorBasedBuilder):
  """The scikit-learn handwritten digits as a TFDS dataset."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Seeded 1,497/300 split of sklearn.datasets.load_digits."}

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        description=__doc__,
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(8, 8, 1)),
            "label": tfds.features.ClassLabel(num_classes=10),
        }),
        supervised_keys=("image", "label"),
        homepage="https://archive.ics.uci.edu/dataset/80",
        citation="Alpaydin, E. and Kaynak, C. (1998). Optical Recognition of Handwritten Digits.",
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download: the images ship with cnnjax.
    table = np.loadtxt(SOURCE, delimiter=",")  # As sklearn.datasets.load_digits reads it.
    images = np.round(table[:, :-1].reshape(-1, 8, 8) * (255 / 16)).astype(np.uint8)[..., None]
    labels = table[:, -1].astype(int)
    order = np.random.RandomState(SPLIT_SEED).permutation(len(images))
    return {
        "train": self._generate_examples(images, labels, order[:-NUM_TEST]),
        "test": self._generate_examples(images, labels, order[-NUM_TEST:]),
    }

  def _generate_examples(self, images, labels, indices):
    for index in indices:
      yield int(index), {"image": images[index], "label": int(labels[index])}
