"""What cnnjax knows about each dataset before opening it.

Kept free of TensorFlow so a config can be checked (dataset name, classes,
image size) before any input pipeline or device work starts.
"""

import dataclasses

from cnnjax.errors import UserError


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  """A TFDS dataset as cnnjax trains on it."""

  num_classes: int
  image_size: int  # Side of the model input the dataset is usually trained at.
  channels: int
  mean: tuple[float, ...]  # Per channel, of pixels scaled to [0, 1].
  std: tuple[float, ...]
  how_to_get: str  # What a user does when TFDS has no prepared copy; {name}, {dir} filled in.


_TFDS_BUILD = ("run `tfds build {name} --data_dir {dir}` (it downloads; or build it on a machine "
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
    "mnist": DatasetSpec(10, 28, 1, (0.1307,), (0.3081,), _TFDS_BUILD),
    "fashion_mnist": DatasetSpec(10, 28, 1, (0.2860,), (0.3530,), _TFDS_BUILD),
    "cifar10": DatasetSpec(10, 32, 3, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616),
                           _TFDS_BUILD),
    "cifar100": DatasetSpec(100, 32, 3, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762),
                            _TFDS_BUILD),
    "imagenet2012": DatasetSpec(
        1000, 224, 3, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225),
        "ImageNet needs a manual download: put ILSVRC2012_img_train.tar and "
        "ILSVRC2012_img_val.tar (from image-net.org) in {dir}/downloads/manual, then run "
        "`tfds build imagenet2012 --data_dir {dir}`"),
}


def dataset_spec(name: str) -> DatasetSpec:
  if name not in DATASETS:
    raise UserError(f"unknown dataset {name!r} (config.dataset.name); supported: "
                    f"{', '.join(sorted(DATASETS))}")
  return DATASETS[name]
