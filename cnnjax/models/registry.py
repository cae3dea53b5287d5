"""The model registry: every network cnnjax can train, by name, as its Flax
module (imported by `cnnjax.models` on first use of any of these names).

`create_model(name, num_classes=..., **overrides)` returns a Flax Linen module
called as `model.apply(variables, images, train=...)` with NHWC images; it
returns logits. The registry is a plain dict, and the tests iterate it, so a
model is tested the moment it is registered here. `NATIVE_INPUT_SIZE` and
`NATIVE_INPUT_CHANNELS` give the square input each network was designed for;
every model also has `min_input_size()`, below which it raises a UserError.
Models whose dense layers flatten a fixed map also take `dense=True`
(`evaluates_densely`): fully convolutional evaluation of larger inputs.
"""

import dataclasses
import functools
import inspect
from typing import Callable

import jax.numpy as jnp
from flax import linen as nn

from cnnjax.errors import UserError
from cnnjax.models import (
  NATIVE_INPUT_CHANNELS,
  NATIVE_INPUT_SIZE,
  alexnet,
  check_name,
  cuda_convnet,
  densenet,
  googlenet,
  lenet,
  native_input,
  resnet,
  vgg,
)

MODELS: dict[str, Callable[..., nn.Module]] = {
    "lenet5": lenet.LeNet5,
    "lenet5_modern": functools.partial(
        lenet.LeNet5, activation="relu", pooling="max", c3_connections="full",
        initialization="he"),
    "alexnet": alexnet.AlexNet,
    "alexnet_owt": alexnet.AlexNetOWT,
    "vgg_a": vgg.VGGA,
    "vgg_a_lrn": vgg.VGGALRN,
    "vgg_b": vgg.VGGB,
    "vgg_c": vgg.VGGC,
    "vgg_d": vgg.VGGD,
    "vgg_e": vgg.VGGE,
    "vgg11": vgg.VGGA,
    "vgg13": vgg.VGGB,
    "vgg16": vgg.VGGD,
    "vgg19": vgg.VGGE,
    "vgg11_bn": functools.partial(vgg.VGGA, norm="batchnorm"),
    "vgg13_bn": functools.partial(vgg.VGGB, norm="batchnorm"),
    "vgg16_bn": functools.partial(vgg.VGGD, norm="batchnorm"),
    "vgg19_bn": functools.partial(vgg.VGGE, norm="batchnorm"),
    "googlenet": googlenet.GoogLeNet,
    "googlenet_bn": googlenet.GoogLeNetBN,
    "resnet18": resnet.ResNet18,
    "resnet34": resnet.ResNet34,
    "resnet50": resnet.ResNet50,
    "resnet101": resnet.ResNet101,
    "resnet152": resnet.ResNet152,
    "plain18": resnet.Plain18,
    "plain34": resnet.Plain34,
    "resnet20": resnet.ResNet20,
    "resnet32": resnet.ResNet32,
    "resnet44": resnet.ResNet44,
    "resnet56": resnet.ResNet56,
    "resnet110": resnet.ResNet110,
    "densenet121": densenet.DenseNet121,
    "densenet169": densenet.DenseNet169,
    "densenet201": densenet.DenseNet201,
    "densenet161": densenet.DenseNet161,
    "densenet_bc100": densenet.DenseNetBC100,
    "cifar_convnet_80sec": cuda_convnet.Net80sec,
    "cifar_convnet_18pct": cuda_convnet.Net18pct,
    "cifar_convnet_13pct": cuda_convnet.Net13pct,
    "cifar_convnet_11pct": cuda_convnet.Net11pct,
}

def model_options(name: str) -> list[str]:
  """The constructor arguments a registered model accepts as overrides."""
  factory = MODELS[name]
  while isinstance(factory, functools.partial):
    factory = factory.func
  return sorted(f.name for f in dataclasses.fields(factory) if f.name not in ("parent", "name"))


def evaluates_densely(model: nn.Module) -> bool:
  """Whether `model` takes `dense=True`: dense layers that flatten a fixed map
  (VGG, AlexNet), applied as convolutions to larger inputs (VGG §3.2). Models
  closed by a global average pool (ResNet, DenseNet, GoogLeNet) are fully
  convolutional already and take no such switch."""
  return "dense" in inspect.signature(type(model).__call__).parameters


def create_model(name: str, *, num_classes: int, **overrides) -> nn.Module:
  check_name(name)
  options = model_options(name)
  unknown = sorted(set(overrides) - set(options))
  if unknown:
    raise UserError(f"model {name!r} has no option {', '.join(map(repr, unknown))}; "
                    f"its options are: {', '.join(o for o in options if o != 'num_classes')}")
  return MODELS[name](num_classes=num_classes, **overrides)


def describe(name: str) -> dict:
  """A registered model at its native input: `name`, `input` (HxWxC),
  `parameters` (trainable, at 10 classes for the MNIST/CIFAR-sized networks
  and 1000 for the ImageNet ones, as their papers count) and `options` (its
  switches with their values). Traces the model abstractly; computes nothing."""
  import jax

  size, channels = NATIVE_INPUT_SIZE[name], NATIVE_INPUT_CHANNELS[name]
  model = create_model(name, num_classes=10 if size <= 32 else 1000)
  images = jax.ShapeDtypeStruct((1, size, size, channels), jnp.float32)
  variables = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), images)
  return {"name": name, "input": native_input(name),
          "parameters": sum(leaf.size for leaf in jax.tree.leaves(variables["params"])),
          "options": model_defaults(name)}


def from_config(config, axis_name: str | None = None, num_classes: int | None = None) -> nn.Module:
  """The model `config.model` describes, for the classes of `config.dataset`
  (or `num_classes`: `cnnjax bench` has no dataset), computing in bfloat16
  under `config.half_precision`. `axis_name` (the device axis) is given to
  models that take it when `config.sync_batch_norm`."""
  from cnnjax.data import describe

  if num_classes is None:
    num_classes = describe(config.dataset).num_classes
  options = {key: value for key, value in config.model.items() if key != "name"}
  model = create_model(config.model.name, num_classes=num_classes,
                       dtype=jnp.bfloat16 if config.half_precision else jnp.float32, **options)
  if axis_name and config.sync_batch_norm and "axis_name" in model_options(config.model.name):
    model = model.clone(axis_name=axis_name)
  return model


# Set by the trainer from the config (`num_classes` from the dataset, `dtype`
# from `half_precision`, `axis_name` — the device axis over which BatchNorm
# averages its statistics and dropout draws its masks — from `sync_batch_norm`),
# not by the user.
TRAINER_OPTIONS = ("num_classes", "dtype", "axis_name")


def _is_config_value(value) -> bool:
  if isinstance(value, tuple):
    return all(map(_is_config_value, value))
  return isinstance(value, (str, int, float, bool))


def model_defaults(name: str) -> dict:
  """The user-settable options of a registered model with their values as
  registered, so an experiment's config lists every ablation switch."""
  check_name(name)
  factory, bound = MODELS[name], {}
  while isinstance(factory, functools.partial):
    bound = {**factory.keywords, **bound}
    factory = factory.func
  values = {field.name: bound.get(field.name, field.default)
            for field in dataclasses.fields(factory)
            if field.name not in ("parent", "name", *TRAINER_OPTIONS)}
  return {key: value for key, value in values.items()
          if value is not dataclasses.MISSING and _is_config_value(value)}
