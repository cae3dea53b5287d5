"""`cnnjax summary --all`: every registered model's totals at its native input,
beside the published parameter and multiply-accumulate counts.

The published figures are torchvision's model metadata (params, and "GFLOPS"
that count multiply-accumulates of convolutions and dense layers, at 224x224)
where torchvision has the same network, else the paper's (each model's
docstring cites its table); None where neither gives one.
"""

import dataclasses

from cnnjax import models
from cnnjax.analysis import summary as summary_lib

COLUMNS = ("model", "input", "params", "training_only_params", "registry_params",
           "published_params", "macs", "xla_macs", "published_gmacs", "receptive_field",
           "published_source")


@dataclasses.dataclass(frozen=True)
class Published:
  params: int | None
  gmacs: float | None
  source: str


def _torchvision(params: int, gmacs: float) -> Published:
  return Published(params, gmacs, "torchvision")


PUBLISHED = {
    "lenet5": Published(60_000, None, "LeNet-5 paper: about 60,000"),
    "alexnet": Published(60_000_000, None, "AlexNet abstract: 60 million"),
    "alexnet_owt": _torchvision(61_100_840, 0.714),
    # VGG Table 2 (millions); A, B, D, E are torchvision's vgg11, 13, 16, 19.
    "vgg_a": Published(133_000_000, 7.61, "VGG Table 2; MACs torchvision vgg11"),
    "vgg_a_lrn": Published(133_000_000, None, "VGG Table 2"),
    "vgg_b": Published(133_000_000, 11.31, "VGG Table 2; MACs torchvision vgg13"),
    "vgg_c": Published(134_000_000, None, "VGG Table 2"),
    "vgg_d": Published(138_000_000, 15.47, "VGG Table 2; MACs torchvision vgg16"),
    "vgg_e": Published(144_000_000, 19.63, "VGG Table 2; MACs torchvision vgg19"),
    "vgg11": _torchvision(132_863_336, 7.61),
    "vgg13": _torchvision(133_047_848, 11.31),
    "vgg16": _torchvision(138_357_544, 15.47),
    "vgg19": _torchvision(143_667_240, 19.63),
    "vgg11_bn": _torchvision(132_868_840, 7.61),
    "vgg13_bn": _torchvision(133_053_736, 11.31),
    "vgg16_bn": _torchvision(138_365_992, 15.47),
    "vgg19_bn": _torchvision(143_678_248, 19.63),
    "googlenet": Published(6_800_000, 1.5, "GoogLeNet Table 1 (no aux heads), §1: 1.5G"),
    "googlenet_bn": _torchvision(6_624_904, 1.50),
    "resnet18": _torchvision(11_689_512, 1.81),
    "resnet34": _torchvision(21_797_672, 3.66),
    "resnet50": _torchvision(25_557_032, 4.09),
    "resnet101": _torchvision(44_549_160, 7.80),
    "resnet152": _torchvision(60_192_808, 11.51),
    # ResNet §4.2, Table 6 (millions).
    "resnet20": Published(270_000, None, "ResNet Table 6"),
    "resnet32": Published(460_000, None, "ResNet Table 6"),
    "resnet44": Published(660_000, None, "ResNet Table 6"),
    "resnet56": Published(850_000, None, "ResNet Table 6"),
    "resnet110": Published(1_700_000, None, "ResNet Table 6"),
    "densenet121": _torchvision(7_978_856, 2.83),
    "densenet169": _torchvision(14_149_480, 3.36),
    "densenet201": _torchvision(20_013_928, 4.29),
    "densenet161": _torchvision(28_681_000, 7.73),
    "densenet_bc100": Published(800_000, None, "DenseNet Table 2: 0.8M"),
}


def zoo_row(name: str) -> dict:
  """One registered model's totals at its native input: `params` those of the
  inference network's layers, `training_only_params` those of modules that
  run only in training (GoogLeNet's auxiliary heads), whose sum is the
  registry's own count (`registry_params`, cnnjax.models.describe); `macs`
  the table's and `xla_macs` XLA's (summary.xla_macs says how they differ)."""
  size, channels, classes = summary_lib.default_input(name)
  spec = summary_lib.Model(name, size, channels, classes, {})
  table = summary_lib.summarize(spec)
  total = table.rows[-1]
  published = PUBLISHED.get(name, Published(None, None, ""))
  return {"model": name, "input": f"{size}x{size}x{channels}", "params": total.params,
          "training_only_params": sum(table.unused_params.values()),
          "registry_params": models.describe(name)["parameters"],
          "published_params": published.params, "macs": total.macs,
          "xla_macs": round(summary_lib.xla_macs(spec)), "published_gmacs": published.gmacs,
          "receptive_field": total.receptive_field, "published_source": published.source}


def zoo_rows() -> list[dict]:
  return [zoo_row(name) for name in models.list_models()]
