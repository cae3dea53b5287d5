"""Small TFDS datasets outside cnnjax's table, prepared by TFDS itself in a
test's data dir: cnnjax reads them by name from their files (TFDS's
read-only builders), as it would a dataset prepared by other code."""

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

BLOB_CLASSES = ("dark", "light")


class Blobs(tfds.core.GeneratorBasedBuilder):
  """16x16 RGB noise, dark or light: learnt in a few steps. Its features are
  named as cnnjax's rules must find them: the only Image ("picture"), the
  only ClassLabel ("kind"), and a text feature beside them."""

  VERSION = tfds.core.Version("1.0.0")
  pkg_dir_path = epath.Path(__file__).parent  # TFDS infers it from a package; tests/ is none.

  def _info(self):
    return self.dataset_info_from_configs(features=tfds.features.FeaturesDict({
        "picture": tfds.features.Image(shape=(16, 16, 3)),
        "kind": tfds.features.ClassLabel(names=BLOB_CLASSES),
        "caption": tfds.features.Text()}))

  def _split_generators(self, dl_manager):
    del dl_manager
    return {"train": self._generate_examples(64, 0), "test": self._generate_examples(16, 1)}

  def _generate_examples(self, count, seed):
    rng = np.random.default_rng(seed)
    for index in range(count):
      label = index % 2
      image = (rng.random((16, 16, 3)) * 100 + 110 * label).astype(np.uint8)
      yield index, {"picture": image, "kind": label, "caption": BLOB_CLASSES[label]}


class Captions(tfds.core.GeneratorBasedBuilder):
  """Images with a text label only: nothing cnnjax can train a classifier on."""

  VERSION = tfds.core.Version("1.0.0")
  pkg_dir_path = epath.Path(__file__).parent

  def _info(self):
    return self.dataset_info_from_configs(features=tfds.features.FeaturesDict({
        "image": tfds.features.Image(shape=(8, 8, 3)), "label": tfds.features.Text()}))

  def _split_generators(self, dl_manager):
    del dl_manager
    return {"train": self._generate_examples(), "test": self._generate_examples()}

  def _generate_examples(self):
    for index in range(4):
      yield index, {"image": np.zeros((8, 8, 3), np.uint8), "label": f"image {index}"}


def prepare(data_dir: str) -> None:
  """Prepares `blobs` and `captions` in `data_dir`, quietly."""
  tfds.display_progress_bar(False)
  try:
    for builder in (Blobs, Captions):
      builder(data_dir=data_dir).download_and_prepare()
  finally:
    tfds.display_progress_bar(True)
