"""GoogLeNet, Inception v1 (Szegedy et al. 2015, "Going deeper with
convolutions", §5, Table 1, Fig. 2b and Fig. 3).

conv 7x7/2 (64) → max pool 3x3/2 → LRN → conv 1x1 (64) → conv 3x3 (192) →
LRN → max pool → Inception 3a, 3b → max pool → 4a–4e → max pool → 5a, 5b →
average pool over the 7x7 maps → dropout 0.4 → linear. An Inception module
concatenates four branches: 1x1; 1x1 reduce → 3x3; 1x1 reduce → 5x5; 3x3/1 max
pool → 1x1 projection (Fig. 2b), with the widths of Table 1 (`INCEPTION`).
Every convolution, inside the modules too, is followed by a ReLU. Pools round
up (Caffe's convention, layers.max_pool_ceil), giving Table 1's 112 → 56 → 28
→ 14 → 7. Auxiliary classifiers on the outputs of 4a and 4d (§5): average
pool 5x5/3 → 1x1 conv (128) → FC 1024 → dropout 0.7 → linear. They run in
training only and are sown as ("intermediates", "aux_logits"); the train step
adds their losses with weight 0.3. `aux_classifiers=False` drops them.

`googlenet_bn` is torchvision's `googlenet` (the TF-slim Inception v1 its
weights come from): BatchNorm after every convolution in place of conv biases
and LRN, a 3x3 kernel in the "5x5" branch (`branch5x5_kernel=3`), a 2x2/2
pool before 5a (`pool4_window=2`), BatchNorm epsilon 1e-3 (`bn_epsilon`) and
dropout 0.2; 6,624,904 parameters at 1000
classes without the auxiliary heads, as torchvision counts (its published
weights have none), 13,004,888 with them. The paper's network has 6,998,552
parameters without the heads (Table 1 sums to about 6.8M).

Differences from the paper:
- The paper gives no LRN constants: we use AlexNet's (§3.3), α not divided by
  n. The BVLC Caffe replication uses n=5, α=1e-4 divided by n, β=0.75, k=1.
- Nor an initialisation: convolutions use the BVLC replication's ("xavier":
  uniform with variance 1/fan_in, conv biases 0.2); dense layers the same with
  zero biases. torchvision draws a truncated N(0, 0.01) for googlenet_bn.
- The auxiliary heads' pooled 4x4 maps are average-pooled to 4x4 as
  torchvision's AdaptiveAvgPool2d does (the identity at 224), so that other
  input sizes keep the FC sizes.

`aux_pooling` is how an auxiliary head pools 4a/4d's maps: "paper" (§5's
5x5/3 average pool, windows at 0, 3, 6, 9 of the 14x14 maps at 224) in
`googlenet`; "adaptive" in `googlenet_bn`: torchvision's InceptionAux pools
with AdaptiveAvgPool2d((4, 4)), windows of 4 at 0, 3, 7, 10. From the same
weights the two give different auxiliary logits (up to 0.94 apart, logits up
to 1.8, with the golden weights of tests/test_pretrained.py; torchvision's
pooling matches torchvision to 2e-5), so googlenet_bn pools as torchvision
does, and weights imported from torchvision (cnnjax.pretrained) fine-tune
with the heads they were trained with.

`transform_input` is torchvision's option of the same name, which its
loader turns on with the published googlenet weights (they come from
TF-slim, which reads pixels scaled to [-1, 1]): images standardised with
ImageNet's mean and standard deviation are mapped to (x - 0.5) / 0.5, x in
[0, 1], before conv1. Off by default; `cnnjax import-weights` turns it on.

- Table 1's 7x7 average pool is a global mean (torchvision's
  AdaptiveAvgPool2d(1)), so an eval input larger than 224 is evaluated fully
  convolutionally as ResNet's is: the classifier, linear, scores the mean
  feature, which is its class score map averaged over positions. A 7x7/1
  pool applied densely would instead average overlapping 7x7 means,
  weighting central positions more; the paper evaluates on crops (§7: 144
  per image), never densely, so the global mean stays.

Ablations: `activation`, `norm` ("lrn", "none", "batchnorm"), `lrn_convention`,
`branch5x5_kernel`, `pool4_window`, `dropout_rate`, `aux_classifiers`,
`aux_pooling`, `aux_dropout_rate` (§5's 0.7),
`bn_epsilon` (1e-5 as everywhere in cnnjax; googlenet_bn keeps TF-slim's 1e-3
so that torchvision's running statistics give torchvision's outputs).
"""

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
from flax import linen as nn

from cnnjax.models import layers

# Table 1: #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj.
INCEPTION = {
    "3a": (64, 96, 128, 16, 32, 32),
    "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64),
    "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}
AUX_AFTER = ("4a", "4d")  # §5: auxiliary classifiers on the outputs of 4a and 4d.
NORMS = ("lrn", "none", "batchnorm")
AUX_POOLINGS = ("paper", "adaptive")
# torchvision's transform_input: ImageNet's channel statistics (pixels in [0, 1]).
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
# Caffe's "xavier" filler: uniform, variance 1/fan_in (not Glorot's 2/(fan_in + fan_out)).
XAVIER = nn.initializers.variance_scaling(1.0, "fan_in", "uniform")


class Inception(nn.Module):
  """Fig. 2b: four branches, concatenated along the channels."""

  widths: tuple[int, ...]
  conv: Callable[..., nn.Module]  # layers.ConvNormAct with everything but size bound.
  branch5x5_kernel: int = 5

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    n1x1, n3x3_reduce, n3x3, n5x5_reduce, n5x5, pool_proj = self.widths

    def branch(y, features, kernel, name):
      return self.conv(features, kernel, name=name)(y, train=train)

    return jnp.concatenate([
        branch(x, n1x1, 1, "1x1"),
        branch(branch(x, n3x3_reduce, 1, "3x3_reduce"), n3x3, 3, "3x3"),
        branch(branch(x, n5x5_reduce, 1, "5x5_reduce"), n5x5, self.branch5x5_kernel, "5x5"),
        branch(layers.max_pool_ceil(x, 3, 1, padding=1), pool_proj, 1, "pool_proj"),
    ], axis=-1)


def aux_pool(x: jax.Array, pooling: str) -> jax.Array:
  """4a's or 4d's maps pooled to 4x4 for an auxiliary head: "paper", §5's
  5x5/3 average pool (then adaptive, the identity at 224); "adaptive",
  torchvision's AdaptiveAvgPool2d((4, 4)) (InceptionAux)."""
  if pooling == "paper":
    x = nn.avg_pool(x, (5, 5), (3, 3))
  return layers.adaptive_avg_pool(x, 4)


class AuxClassifier(nn.Module):
  """§5: average pool 5x5/3 ("paper") or to 4x4 ("adaptive", torchvision's
  InceptionAux), 1x1 conv 128, FC 1024, dropout 0.7, linear."""

  num_classes: int
  conv: Callable[..., nn.Module]
  act: Callable[[jax.Array], jax.Array]
  pooling: str = "paper"
  dropout_rate: float = 0.7
  axis_name: str | None = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    x = aux_pool(x, self.pooling)
    x = self.conv(128, 1, name="conv")(x, train=train)
    x = x.reshape((x.shape[0], -1))
    x = self.act(nn.Dense(1024, dtype=self.dtype, kernel_init=XAVIER, name="fc1")(x))
    x = layers.Dropout(self.dropout_rate, not train, self.axis_name)(x)
    return nn.Dense(self.num_classes, dtype=self.dtype, kernel_init=XAVIER, name="fc2")(x)


class GoogLeNet(nn.Module):
  """Table 1; see the module docstring."""

  num_classes: int = 1000
  activation: str = "relu"
  norm: str = "lrn"
  lrn_convention: str = "paper"
  branch5x5_kernel: int = 5
  pool4_window: int = 3
  dropout_rate: float = 0.4
  aux_classifiers: bool = True
  aux_pooling: str = "paper"
  aux_dropout_rate: float = 0.7
  transform_input: bool = False
  bn_epsilon: float = 1e-5
  axis_name: str | None = None
  dtype: Any = jnp.float32

  def min_input_size(self) -> int:
    to_4a = [(7, 2, 3), (3, 2, 0, True), (3, 2, 0, True), (3, 2, 0, True)]
    main = layers.min_input_size(to_4a + [(self.pool4_window, 2, 0, True)])
    paper_aux = self.aux_classifiers and self.aux_pooling == "paper"
    aux = layers.min_input_size(to_4a + [(5, 3, 0)]) if paper_aux else 1
    return max(main, aux)

  @nn.compact
  def __call__(self, images: jax.Array, *, train: bool) -> jax.Array:
    layers.check_input_size(images, self.min_input_size(), "googlenet")
    layers.lookup({n: n for n in NORMS}, "norm", self.norm)
    layers.lookup({p: p for p in AUX_POOLINGS}, "aux_pooling", self.aux_pooling)
    act = layers.activation(self.activation)
    local_response_norm = layers.lrn(self.lrn_convention)
    lrn = local_response_norm if self.norm == "lrn" else lambda x: x
    batch_norm = self.norm == "batchnorm"
    conv = functools.partial(
        layers.ConvNormAct, batch_norm=batch_norm, use_bias=not batch_norm, act=act,
        kernel_init=XAVIER, bias_init=nn.initializers.constant(0.2), bn_epsilon=self.bn_epsilon,
        axis_name=self.axis_name, dtype=self.dtype)

    x = images.astype(self.dtype)
    if self.transform_input:  # torchvision: back to [0, 1], then to [-1, 1].
      mean, std = jnp.asarray(IMAGENET_MEAN, self.dtype), jnp.asarray(IMAGENET_STD, self.dtype)
      x = (x * std + mean - 0.5) / 0.5
    x = conv(64, 7, strides=2, name="conv1")(x, train=train)
    x = lrn(layers.max_pool_ceil(x, 3, 2))
    x = conv(64, 1, name="conv2_reduce")(x, train=train)
    x = lrn(conv(192, 3, name="conv2")(x, train=train))
    x = layers.max_pool_ceil(x, 3, 2)
    for name, widths in INCEPTION.items():
      if name in ("4a", "5a"):
        window = 3 if name == "4a" else self.pool4_window
        x = layers.max_pool_ceil(x, window, 2)
      x = Inception(widths, conv, self.branch5x5_kernel, name=f"inception{name}")(x, train=train)
      # The heads are built at init even for train=False, so the parameters
      # exist when training applies them.
      if name in AUX_AFTER and self.aux_classifiers and (train or self.is_initializing()):
        aux_logits = AuxClassifier(self.num_classes, conv, act, self.aux_pooling,
                                   self.aux_dropout_rate, self.axis_name, self.dtype,
                                   name=f"aux{name}")(x, train=train)
        if train:
          self.sow("intermediates", "aux_logits", aux_logits)
    x = jnp.mean(x, axis=(1, 2))  # Table 1's 7x7 average pool, at any input size.
    x = layers.Dropout(self.dropout_rate, not train, self.axis_name)(x)
    return nn.Dense(self.num_classes, dtype=self.dtype, kernel_init=XAVIER, name="fc")(x)


# torchvision's googlenet (see the module docstring).
GoogLeNetBN = functools.partial(GoogLeNet, norm="batchnorm", branch5x5_kernel=3, pool4_window=2,
                                bn_epsilon=1e-3, dropout_rate=0.2, aux_pooling="adaptive")
