"""ResNet (He, Zhang, Ren, Sun 2016, "Deep residual learning for image
recognition", §3.3, §4.1, §4.2, Table 1).

One generic `ResNet` (a stem, stages of blocks, global average pooling, a
classifier) and one-line variants.

ImageNet networks (§3.4, Table 1): a 7x7/2 convolution of 64 maps and a 3x3/2
max pool (56x56 at 224), four stages of 64, 128, 256, 512 maps whose first
block halves the size (7x7 before the pool), global average pooling, a dense
layer. ResNet-18/34 stack basic blocks (two 3x3 convolutions), ResNet-50/101/
152 bottleneck blocks (1x1, 3x3, 1x1 with 4x the maps, Fig. 5). Shortcut B by
default, so the parameters equal torchvision's (11,689,512 for ResNet-18,
25,557,032 for ResNet-50, ...). `plain18`/`plain34` are the same stacks with
no shortcuts (§4.1).

The CIFAR networks (§4.2) have a 3x3 stem of 16 maps and three stages of n
basic blocks with 16, 32, 64 maps (6n+2 layers) and option-A shortcuts:
identity, with the input subsampled and padded with zero maps where the shape
changes, so residual and plain nets have the same parameters.

Differences from the paper:
- The bottleneck puts its stride on the 3x3 convolution, as torchvision does
  ("ResNet v1.5"); the paper strides the first 1x1 convolution, which skips
  three quarters of its input. Same parameters; about 0.5% better top-1 and a
  little more compute.
- Convolutions pad kernel_size // 2 on every side, as Caffe and PyTorch do,
  so a stride-2 3x3 convolution is centred on the pixels the 1x1 projection
  and option A's subsampling pick.

Ablations: `activation`, `shortcut` ("A", "B" projection where the shape
changes, "C" projections everywhere, "none" for the paper's plain nets),
`zero_init_residual` (zero the last BatchNorm scale of each block, Goyal et al.
2017; off by default as in the paper), `stem` ("imagenet" or "cifar").

`axis_name`: the pmap axis over which BatchNorm averages batch statistics
(set by the trainer when `sync_batch_norm` is on); None normalises each
device's batch on its own.
"""

import functools
from typing import Any, Sequence

import jax
import jax.numpy as jnp
from flax import linen as nn

from cnnjax.models import layers

SHORTCUTS = ("A", "B", "C", "none")
STEMS = ("imagenet", "cifar")


class Block(nn.Module):
  """What both blocks share: the layers they are given, and the shortcut."""

  features: int
  strides: int
  shortcut: str
  conv: Any
  norm: Any
  act: Any
  zero_init_last: bool = False

  def _last_norm(self, name: str) -> nn.Module:
    return self.norm(name=name, scale_init=nn.initializers.zeros if self.zero_init_last
                     else nn.initializers.ones)

  def _shortcut(self, x: jax.Array, features: int) -> jax.Array:
    """The paper's three options (§3.3, §4.1), or none for a plain net."""
    if self.shortcut == "none":
      return jnp.zeros((), x.dtype)
    changes_shape = self.strides != 1 or x.shape[-1] != features
    if self.shortcut == "C" or (self.shortcut == "B" and changes_shape):
      x = self.conv(features, (1, 1), self.strides, padding=0, name="conv_proj")(x)
      return self.norm(name="bn_proj")(x)
    if changes_shape:  # Option A: subsample, then pad the new maps with zeros.
      x = x[:, ::self.strides, ::self.strides, :]
      return jnp.pad(x, ((0, 0), (0, 0), (0, 0), (0, features - x.shape[-1])))
    return x


class BasicBlock(Block):
  """Two 3x3 convolutions (§3.3, Fig. 5 left); the stride is on the first."""

  expansion = 1

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    y = self.conv(self.features, (3, 3), self.strides, padding=1, name="conv1")(x)
    y = self.act(self.norm(name="bn1")(y))
    y = self._last_norm("bn2")(self.conv(self.features, (3, 3), padding=1, name="conv2")(y))
    return self.act(y + self._shortcut(x, y.shape[-1]))


class BottleneckBlock(Block):
  """1x1 reduce, 3x3, 1x1 expand to 4x the maps (Fig. 5 right); the stride
  is on the 3x3 convolution (torchvision's choice, see the module docstring)."""

  expansion = 4

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    y = self.conv(self.features, (1, 1), padding=0, name="conv1")(x)
    y = self.act(self.norm(name="bn1")(y))
    y = self.conv(self.features, (3, 3), self.strides, padding=1, name="conv2")(y)
    y = self.act(self.norm(name="bn2")(y))
    y = self.conv(self.features * self.expansion, (1, 1), padding=0, name="conv3")(y)
    y = self._last_norm("bn3")(y)
    return self.act(y + self._shortcut(x, y.shape[-1]))


class ResNet(nn.Module):
  """A stem, `len(stage_sizes)` stages of `block_cls`, average pool, dense."""

  stage_sizes: Sequence[int]
  stage_features: Sequence[int]
  num_classes: int = 1000
  block_cls: Any = BasicBlock
  stem: str = "cifar"
  activation: str = "relu"
  shortcut: str = "A"
  zero_init_residual: bool = False
  axis_name: str | None = None
  dtype: Any = jnp.float32

  def min_input_size(self) -> int:
    return 1  # Every layer is padded; global average pooling takes any size.

  @nn.compact
  def __call__(self, images: jax.Array, *, train: bool) -> jax.Array:
    layers.lookup({s: s for s in SHORTCUTS}, "shortcut", self.shortcut)
    layers.lookup({s: s for s in STEMS}, "stem", self.stem)
    act = layers.activation(self.activation)
    # He et al. 2015 ("Delving deep") initialisation, as §3.4 says.
    conv = functools.partial(layers.Conv, use_bias=False, dtype=self.dtype,
                             kernel_init=nn.initializers.variance_scaling(2.0, "fan_out", "normal"))
    norm = functools.partial(layers.batch_norm, train=train, axis_name=self.axis_name,
                             dtype=self.dtype)

    x = images.astype(self.dtype)
    if self.stem == "imagenet":  # Table 1, conv1 and the 3x3/2 max pool of conv2_x.
      x = act(norm(name="bn_init")(conv(self.stage_features[0], (7, 7), 2, padding=3,
                                        name="conv_init")(x)))
      x = layers.max_pool(x, (3, 3), (2, 2), padding=((1, 1), (1, 1)))
    else:  # §4.2: "The first layer is 3x3 convolutions" with 16 maps.
      x = act(norm(name="bn_init")(conv(self.stage_features[0], (3, 3), padding=1,
                                        name="conv_init")(x)))
    for stage, (blocks, features) in enumerate(zip(self.stage_sizes, self.stage_features)):
      for block in range(blocks):
        strides = 2 if stage > 0 and block == 0 else 1
        x = self.block_cls(features, strides, self.shortcut, conv, norm, act,
                           zero_init_last=self.zero_init_residual,
                           name=f"stage{stage + 1}_block{block + 1}")(x)
    x = jnp.mean(x, axis=(1, 2))
    return nn.Dense(self.num_classes, dtype=self.dtype, name="head")(x)


# Table 1: 64, 128, 256, 512 maps after the 7x7/2 stem; projection shortcuts
# only where the shape changes (B), as torchvision.
ImageNetResNet = functools.partial(ResNet, stage_features=(64, 128, 256, 512), stem="imagenet",
                                   shortcut="B")
ResNet18 = functools.partial(ImageNetResNet, stage_sizes=(2, 2, 2, 2))
ResNet34 = functools.partial(ImageNetResNet, stage_sizes=(3, 4, 6, 3))
ResNet50 = functools.partial(ImageNetResNet, stage_sizes=(3, 4, 6, 3), block_cls=BottleneckBlock)
ResNet101 = functools.partial(ImageNetResNet, stage_sizes=(3, 4, 23, 3), block_cls=BottleneckBlock)
ResNet152 = functools.partial(ImageNetResNet, stage_sizes=(3, 8, 36, 3), block_cls=BottleneckBlock)
Plain18 = functools.partial(ResNet18, shortcut="none")
Plain34 = functools.partial(ResNet34, shortcut="none")

# §4.2: 6n+2 layers, n basic blocks in each of three stages of 16, 32, 64 maps.
CifarResNet = functools.partial(ResNet, stage_features=(16, 32, 64), num_classes=10)
ResNet20 = functools.partial(CifarResNet, stage_sizes=(3, 3, 3))
ResNet32 = functools.partial(CifarResNet, stage_sizes=(5, 5, 5))
ResNet44 = functools.partial(CifarResNet, stage_sizes=(7, 7, 7))
ResNet56 = functools.partial(CifarResNet, stage_sizes=(9, 9, 9))
ResNet110 = functools.partial(CifarResNet, stage_sizes=(18, 18, 18))
