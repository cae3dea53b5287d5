"""The models cnnjax can train, by name.

`create_model(name, num_classes=..., **overrides)` returns a Flax Linen module
called as `model.apply(variables, images, train=...)` with NHWC images; it
returns logits. The registry (`MODELS`, cnnjax.models.registry) is a plain
dict, and the tests iterate it, so a model is tested the moment it is
registered there. `NATIVE_INPUT_SIZE` and `NATIVE_INPUT_CHANNELS` give the
square input each network was designed for; every model also has
`min_input_size()`, below which it raises a UserError. Models whose dense
layers flatten a fixed map also take `dense=True` (`evaluates_densely`):
fully convolutional evaluation of larger inputs.

This module itself is free of JAX: the names and native inputs below are
what the command line checks a `config.model.name` against and what `cnnjax
models` lists, at once; the registry's functions (`create_model`,
`model_defaults`, `describe`, ...) import Flax and every family on first use.
"""

import importlib

from cnnjax.errors import UserError

NAMES = (
    "lenet5",
    "lenet5_modern",
    "alexnet",
    "alexnet_owt",
    "vgg_a",
    "vgg_a_lrn",
    "vgg_b",
    "vgg_c",
    "vgg_d",
    "vgg_e",
    "vgg11",
    "vgg13",
    "vgg16",
    "vgg19",
    "vgg11_bn",
    "vgg13_bn",
    "vgg16_bn",
    "vgg19_bn",
    "googlenet",
    "googlenet_bn",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "plain18",
    "plain34",
    "resnet20",
    "resnet32",
    "resnet44",
    "resnet56",
    "resnet110",
    "densenet121",
    "densenet169",
    "densenet201",
    "densenet161",
    "densenet_bc100",
    "cifar_convnet_80sec",
    "cifar_convnet_18pct",
    "cifar_convnet_13pct",
    "cifar_convnet_11pct",
)

# The input side each network was designed for. AlexNet's paper says 224 but
# its arithmetic needs 227 (224 works with conv1_padding=2, as alexnet_owt).
NATIVE_INPUT_SIZE: dict[str, int] = {name: 224 for name in NAMES} | {
    "lenet5": 32, "lenet5_modern": 32, "alexnet": 227,
    "resnet20": 32, "resnet32": 32, "resnet44": 32, "resnet56": 32, "resnet110": 32,
    "densenet_bc100": 32,
    # cuda-convnet's CIFAR-10 nets: whole 32x32 images, or 24x24 crops of them.
    "cifar_convnet_80sec": 32, "cifar_convnet_18pct": 32,
    "cifar_convnet_13pct": 24, "cifar_convnet_11pct": 24,
}
# LeNet-5 reads grey digits (§II.B); every other network RGB.
NATIVE_INPUT_CHANNELS: dict[str, int] = {name: 3 for name in NAMES} | {
    "lenet5": 1, "lenet5_modern": 1,
}



def list_models() -> list[str]:
  return sorted(NAMES)


def native_input(name: str) -> str:
  """The input a registered model was designed for, as HxWxC."""
  size, channels = NATIVE_INPUT_SIZE[name], NATIVE_INPUT_CHANNELS[name]
  return f"{size}x{size}x{channels}"


def check_name(name: str) -> None:
  """A UserError naming the registered models unless `name` is one."""
  if name not in NAMES:
    raise UserError(f"unknown model {name!r} (config.model.name); registered models: "
                    f"{', '.join(list_models())}")


def __getattr__(name: str):
  """The registry's names (MODELS, create_model, ...), imported on first use."""
  registry = importlib.import_module("cnnjax.models.registry")
  try:
    return getattr(registry, name)
  except AttributeError:
    raise AttributeError(f"module 'cnnjax.models' has no attribute {name!r}") from None
