"""`digits`: a real TFDS dataset embedded in cnnjax, built with no network.

The 1,797 handwritten digits (8x8, 17 grey levels, 10 classes) of the UCI
"Optical Recognition of Handwritten Digits" test set, as bundled with
scikit-learn. Pixel values 0..16 are scaled to 0..255. The split is fixed: a
permutation of the 1,797 images with NumPy seed 0; the first 1,497 are `train`,
the last 300 `test`. The preprocessing resizes the 8x8 images to 32x32 so that
LeNet-5 sees its native input.
"""

import numpy as np
import tensorflow_datasets as tfds

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
    del dl_manager  # Nothing to download: the images ship with scikit-learn.
    from sklearn.datasets import load_digits  # Only needed to build the dataset once.

    digits = load_digits()
    images = np.round(digits.images * (255 / 16)).astype(np.uint8)[..., None]
    order = np.random.RandomState(SPLIT_SEED).permutation(len(images))
    return {
        "train": self._generate_examples(images, digits.target, order[:-NUM_TEST]),
        "test": self._generate_examples(images, digits.target, order[-NUM_TEST:]),
    }

  def _generate_examples(self, images, labels, indices):
    for index in indices:
      yield int(index), {"image": images[index], "label": int(labels[index])}
