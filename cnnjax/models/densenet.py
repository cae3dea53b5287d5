"""DenseNet (Huang, Liu, van der Maaten, Weinberger 2017, "Densely connected
convolutional networks", §3, Table 1).

Dense blocks in which every layer reads the concatenation of all earlier maps
of the block and adds `growth_rate` (k) new ones, joined by transitions. A
layer is BN-ReLU-Conv(3x3); with `bottleneck` (the "B" of DenseNet-BC) it is
BN-ReLU-Conv(1x1, 4k maps)-BN-ReLU-Conv(3x3, k). A transition is BN-ReLU-
Conv(1x1) to `compression` (the "C", θ = 0.5) times the maps, then a 2x2/2
average pool. After the last block: BN-ReLU, global average pooling, a dense
layer. `block_config` lists the layers per block.

ImageNet networks (Table 1): a 7x7/2 convolution of 2k maps, BN-ReLU, 3x3/2 max
pooling, four blocks; k=32 with (6, 12, 24, 16), (6, 12, 32, 32), (6, 12, 48,
32) layers for DenseNet-121/169/201, k=48 with 96 initial maps and (6, 12, 36,
24) for DenseNet-161. Parameters equal torchvision's: 7,978,856; 14,149,480;
20,013,928; 28,681,000.

CIFAR (§4.2, `densenet_bc100`): DenseNet-BC with L=100, k=12: a 3x3
convolution of 2k maps, three blocks of (L-4)/6 = 16 bottleneck layers, 32x32
→ 16x16 → 8x8; 769,162 parameters at 10 classes ("0.8M").

The paper adds dropout 0.2 after every convolution but the first when it
trains without data augmentation (§4.2); `dropout_rate` does that (default 0,
as for every augmented run and for ImageNet). Initialisation: He et al.'s
normal with fan-out, as the authors' Torch code (from fb.resnet.torch); no
convolution has a bias. torchvision draws with fan-in instead.

Ablations: `activation`, `growth_rate`, `bottleneck`, `compression`,
`dropout_rate`, `stem` ("imagenet" or "cifar").
"""

import functools
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
from flax import linen as nn

from cnnjax.models import layers

STEMS = ("imagenet", "cifar")


class DenseLayer(nn.Module):
  """[BN-ReLU-Conv(1x1, 4k)-]BN-ReLU-Conv(3x3, k), concatenated to its input."""

  growth_rate: int
  bottleneck: bool
  conv: Callable[..., nn.Module]
  norm: Callable[..., nn.Module]
  act: Callable[[jax.Array], jax.Array]
  dropout: Callable[..., nn.Module]

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    y = x
    if self.bottleneck:  # §3 "Bottleneck layers": 4k maps.
      y = self.dropout()(self.conv(4 * self.growth_rate, (1, 1), name="conv1")(
          self.act(self.norm(name="bn1")(y))))
    y = self.dropout()(self.conv(self.growth_rate, (3, 3), padding=1, name="conv2")(
        self.act(self.norm(name="bn2")(y))))
    return jnp.concatenate([x, y], axis=-1)


class DenseNet(nn.Module):
  """A stem, dense blocks joined by transitions, BN-ReLU, average pool, dense."""

  block_config: Sequence[int]
  growth_rate: int
  num_init_features: int
  num_classes: int = 1000
  stem: str = "imagenet"
  bottleneck: bool = True
  compression: float = 0.5
  activation: str = "relu"
  dropout_rate: float = 0.0
  axis_name: str | None = None
  dtype: Any = jnp.float32

  def min_input_size(self) -> int:
    stem = [(7, 2, 3), (3, 2, 1)] if self.stem == "imagenet" else []
    return layers.min_input_size(stem + [(2, 2, 0)] * (len(self.block_config) - 1))

  @nn.compact
  def __call__(self, images: jax.Array, *, train: bool) -> jax.Array:
    layers.lookup({s: s for s in STEMS}, "stem", self.stem)
    layers.check_input_size(images, self.min_input_size(), "densenet")
    act = layers.activation(self.activation)
    conv = functools.partial(layers.Conv, use_bias=False, padding=0, dtype=self.dtype,
                             kernel_init=nn.initializers.variance_scaling(2.0, "fan_out", "normal"))
    norm = functools.partial(layers.batch_norm, train=train, axis_name=self.axis_name,
                             dtype=self.dtype)
    dropout = functools.partial(layers.Dropout, self.dropout_rate, not train, self.axis_name)

    x = images.astype(self.dtype)
    if self.stem == "imagenet":  # Table 1: 7x7/2 conv, 3x3/2 max pool (torchvision adds BN-ReLU).
      x = act(norm(name="bn_init")(conv(self.num_init_features, (7, 7), 2, padding=3,
                                        name="conv_init")(x)))
      x = layers.max_pool(x, (3, 3), (2, 2), padding=((1, 1), (1, 1)))
    else:  # §3 "Implementation details": one 3x3 convolution before the first block.
      x = conv(self.num_init_features, (3, 3), padding=1, name="conv_init")(x)
    for block, layers_in_block in enumerate(self.block_config):
      for layer in range(layers_in_block):
        x = DenseLayer(self.growth_rate, self.bottleneck, conv, norm, act, dropout,
                       name=f"block{block + 1}_layer{layer + 1}")(x)
      if block < len(self.block_config) - 1:  # Transition (§3 "Compression").
        x = act(norm(name=f"transition{block + 1}_bn")(x))
        features = int(x.shape[-1] * self.compression)
        x = dropout()(conv(features, (1, 1), name=f"transition{block + 1}_conv")(x))
        x = nn.avg_pool(x, (2, 2), (2, 2))
    x = act(norm(name="bn_final")(x))
    x = jnp.mean(x, axis=(1, 2))
    return nn.Dense(self.num_classes, dtype=self.dtype, name="head")(x)


# Table 1: k=32, 2k initial maps; DenseNet-161 k=48, 96 initial maps.
DenseNet121 = functools.partial(DenseNet, block_config=(6, 12, 24, 16), growth_rate=32,
                                num_init_features=64)
DenseNet169 = functools.partial(DenseNet, block_config=(6, 12, 32, 32), growth_rate=32,
                                num_init_features=64)
DenseNet201 = functools.partial(DenseNet, block_config=(6, 12, 48, 32), growth_rate=32,
                                num_init_features=64)
DenseNet161 = functools.partial(DenseNet, block_config=(6, 12, 36, 24), growth_rate=48,
                                num_init_features=96)
# §4.2: DenseNet-BC, L=100, k=12: three blocks of 16 bottleneck layers, 2k initial maps.
DenseNetBC100 = functools.partial(DenseNet, block_config=(16, 16, 16), growth_rate=12,
                                  num_init_features=24, stem="cifar", num_classes=10)
