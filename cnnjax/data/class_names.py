"""Class names people can read: ImageNet's WordNet ids ("n02123045") as their
synonyms ("tabby, tabby cat"), from the list shipped beside this module.

TFDS names imagenet2012's classes (and those of the datasets sharing its
labels: imagenet_v2, imagenet_a, ...) by WordNet id; every other name is
kept as its dataset gives it. Free of TensorFlow.
"""

import functools
import pathlib

IMAGENET_CLASSES = pathlib.Path(__file__).with_name("imagenet2012_classes.tsv")


@functools.cache
def wordnet_synonyms() -> dict[str, str]:
  """WordNet id -> its synonyms, for ImageNet's 1000 classes, in label order."""
  lines = IMAGENET_CLASSES.read_text().splitlines()
  return dict(line.split("\t") for line in lines if line and not line.startswith("#"))


def readable(names) -> tuple[str, ...]:
  """`names` with each ImageNet WordNet id replaced by its synonyms."""
  synonyms = wordnet_synonyms()
  return tuple(synonyms.get(name, name) for name in names)


def short(name: str) -> str:
  """The first of a class's synonyms ("tabby" of "tabby, tabby cat")."""
  return name.split(",")[0].strip()
