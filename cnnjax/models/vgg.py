"""VGG (Simonyan, Zisserman 2015, "Very deep convolutional networks for
large-scale image recognition", §2 and Table 1).

Five stages of convolutions (stride 1, padded to keep the size), each closed
by a 2x2/2 max pool, then FC 4096, FC 4096 and the classifier, with ReLU after
every layer but the last and dropout 0.5 after the first two FC layers (§3.1).
Configurations A–E differ only in the stages (`CONFIGS`); C's third layer in
stages 3–5 is a 1x1 convolution. A-LRN adds local response normalisation
after the first convolution, with AlexNet's constants (§2.1). Parameters at
1000 classes: A 132,863,336; B 133,047,848; C 133,638,952; D 138,357,544;
E 143,667,240 (the paper's 133, 133, 134, 138, 144 million; A, B, D, E equal
torchvision's vgg11, vgg13, vgg16, vgg19).

The `_bn` variants are torchvision's: BatchNorm between every convolution and
its ReLU, the convolution keeping its (redundant) bias so torchvision's
weights load one to one.

Differences from the paper:
- Initialisation: the paper trains A from a zero-mean normal of variance
  10⁻² and initialises the deeper nets from A's layers, then notes that
  Glorot & Bengio's initialisation works without pre-training (§3.1); we use
  that (uniform), biases zero, for every configuration.
- Before FC6 the maps are average-pooled to 7x7 as torchvision does
  (AdaptiveAvgPool2d), so inputs of any size ≥ 32 work with the same FC
  layers; at 224 this is the identity. The paper evaluates densely instead
  (§3.2), a test-time procedure with the same parameters: called with
  `dense=True` (the eval step does so for eval images larger than the
  training input), FC6 is applied as a 7x7 convolution with its kernel read
  as [7, 7, 512, 4096], FC7 and FC8 as 1x1 convolutions, and the class score
  map is averaged over its positions. On an input whose maps before FC6 are
  exactly 7x7 (224) this is the usual forward pass; maps smaller than 7x7
  take the adaptive pool as usual.

Ablations: `activation`, `norm` ("none", "lrn" after the first convolution,
"batchnorm"), `lrn_convention`, `pooling` ("max", "avg", "conv"),
`dropout_rate`, `dense_features` (the width of FC6 and FC7).
"""

import functools
from typing import Any, Sequence

import jax
import jax.numpy as jnp
from flax import linen as nn

from cnnjax.models import layers


def stage(features: int, *kernels: int) -> tuple[int, tuple[int, ...]]:
  return features, kernels


# Table 1: (maps, kernel size of each convolution) of the five stages.
CONFIGS = {
    "A": (stage(64, 3), stage(128, 3), stage(256, 3, 3), stage(512, 3, 3), stage(512, 3, 3)),
    "B": (stage(64, 3, 3), stage(128, 3, 3), stage(256, 3, 3), stage(512, 3, 3), stage(512, 3, 3)),
    "C": (stage(64, 3, 3), stage(128, 3, 3), stage(256, 3, 3, 1), stage(512, 3, 3, 1),
          stage(512, 3, 3, 1)),
    "D": (stage(64, 3, 3), stage(128, 3, 3), stage(256, 3, 3, 3), stage(512, 3, 3, 3),
          stage(512, 3, 3, 3)),
    "E": (stage(64, 3, 3), stage(128, 3, 3), stage(256, 3, 3, 3, 3), stage(512, 3, 3, 3, 3),
          stage(512, 3, 3, 3, 3)),
}
NORMS = ("none", "lrn", "batchnorm")


class VGG(nn.Module):
  """`stages` of convolutions, each closed by pooling, then three dense layers."""

  stages: Sequence[tuple[int, Sequence[int]]]
  num_classes: int = 1000
  dense_features: int = 4096
  activation: str = "relu"
  norm: str = "none"
  lrn_convention: str = "paper"
  pooling: str = "max"
  dropout_rate: float = 0.5
  axis_name: str | None = None
  dtype: Any = jnp.float32

  def min_input_size(self) -> int:
    return layers.min_input_size([(2, 2, 0)] * len(self.stages))

  @nn.compact
  def __call__(self, images: jax.Array, *, train: bool, dense: bool = False) -> jax.Array:
    """Logits [N, classes]; `dense` evaluates fully convolutionally (§3.2, see the module)."""
    layers.check_input_size(images, self.min_input_size(), "vgg")
    layers.lookup({n: n for n in NORMS}, "norm", self.norm)
    act = layers.activation(self.activation)
    lrn = layers.lrn(self.lrn_convention)
    init = dict(kernel_init=nn.initializers.glorot_uniform(), dtype=self.dtype)

    x = images.astype(self.dtype)
    for i, (features, kernels) in enumerate(self.stages):
      for j, kernel in enumerate(kernels):
        x = layers.ConvNormAct(features, kernel, batch_norm=self.norm == "batchnorm", act=act,
                               axis_name=self.axis_name, name=f"conv{i + 1}_{j + 1}",
                               **init)(x, train=train)
        if self.norm == "lrn" and (i, j) == (0, 0):  # A-LRN (Table 1).
          x = lrn(x)
      x = layers.Pool(self.pooling, 2, 2, act, self.dtype, name=f"pool{i + 1}")(x)
    window = layers.dense_window(x, 7, dense)
    if window is None:
      x = layers.adaptive_avg_pool(x, 7)
      x = x.reshape((x.shape[0], -1))
    for name in ("fc6", "fc7"):
      x = act(layers.FullyConnected(self.dense_features, name=name, **init)(x, window))
      x = layers.Dropout(self.dropout_rate, not train, self.axis_name)(x)
      window = None  # FC7 and FC8 act on the last axis: 1x1 convolutions of a score map.
    x = layers.FullyConnected(self.num_classes, name="fc8", **init)(x)
    return x if x.ndim == 2 else x.mean(axis=(1, 2))  # §3.2: the class score map, averaged.


VGGA = functools.partial(VGG, stages=CONFIGS["A"])
VGGALRN = functools.partial(VGG, stages=CONFIGS["A"], norm="lrn")
VGGB = functools.partial(VGG, stages=CONFIGS["B"])
VGGC = functools.partial(VGG, stages=CONFIGS["C"])
VGGD = functools.partial(VGG, stages=CONFIGS["D"])
VGGE = functools.partial(VGG, stages=CONFIGS["E"])
