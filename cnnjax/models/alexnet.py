"""AlexNet (Krizhevsky, Sutskever, Hinton 2012, "ImageNet classification with
deep convolutional neural networks", §3 and §5), and the one-tower network
torchvision trains (Krizhevsky 2014, "One weird trick for parallelizing
convolutional neural networks").

The paper's network (`alexnet`): conv1 96@11x11/4 → 55x55, conv2 256@5x5,
conv3 384@3x3, conv4 384@3x3, conv5 256@3x3, FC6 4096, FC7 4096, FC8
(§3.5, Fig. 2). ReLU everywhere (§3.1); LRN after the ReLU of conv1 and conv2
(§3.3); overlapping 3x3/2 max pooling after both LRNs and after conv5 (§3.4),
leaving 6x6x256 before FC6; dropout 0.5 on the outputs of FC6 and FC7 (§4.2).
`groups=2` reproduces the two-GPU split (§3.2): conv2, conv4 and conv5 see
only the maps of their own GPU, conv3 and the FC layers see all of them;
60,965,224 parameters at 1000 classes ("60 million"). `groups=1` is the
one-tower network with the same widths (62,378,344). Initialisation (§5):
weights N(0, 0.01), biases 1 in conv2, conv4, conv5, FC6 and FC7, 0 elsewhere.

The paper's input is 227x227 (its "224x224" does not give 55x55 after an
11x11/4 convolution without padding): `NATIVE_INPUT_SIZE` is 227. A 224 input
with `conv1_padding=2` (torchvision) also gives 55x55.

`alexnet_owt` is torchvision's `alexnet`: 64-192-384-256-256 maps, one tower,
no LRN, conv1 padded by 2 for 224 inputs, PyTorch's default initialisation
(uniform ±1/√fan_in for weights and biases); 61,100,840 parameters.

Differences, both networks:
- Before FC6 the maps are average-pooled to 6x6 the way torchvision's
  AdaptiveAvgPool2d does it, so other input sizes work with the same FC6. At
  the native sizes the maps are already 6x6 and this is the identity; smaller
  maps are repeated, larger ones averaged over unequal bins.
- Dense evaluation (`dense=True`, which the eval step passes for eval images
  larger than the training input): FC6 is applied as a 6x6 convolution with
  its kernel read as [6, 6, 256, 4096], FC7 and FC8 as 1x1 convolutions, and
  the class score map averaged over its positions: VGG §3.2's procedure,
  with the same parameters. The paper evaluates AlexNet on 10 crops instead
  (§4.1). At the native input size (6x6 maps) it is the usual forward pass.
- Dropout sits after the ReLUs of FC6 and FC7 as the paper (and Caffe) have
  it; torchvision drops the pooled conv features and FC6's output instead
  (before FC6 and FC7). Same rate, same parameters.
- Max pooling rounds down (floor mode), as torchvision; Caffe rounds up, which
  gives the same sizes at 227.

Ablations: `activation`, `norm` ("lrn", "none", "batchnorm": BatchNorm
between every conv and its ReLU, conv biases dropped), `lrn_convention`
("paper" or "caffe": α/n), `pooling` ("max", "avg", "conv": a strided
convolution, see layers.Pool), `overlapping_pooling` (False: 2x2/2, the
paper's s = z = 2 comparison in §3.4, same output sizes), `groups`,
`dropout_rate`, `initialization` ("paper" or "pytorch"); widths: `features`
(conv1..conv5), `dense_features` (FC6, FC7).
"""

import functools
from typing import Any, Sequence

import jax
import jax.numpy as jnp
from flax import linen as nn

from cnnjax.models import layers

NORMS = ("lrn", "none", "batchnorm")
INITIALIZATIONS = ("paper", "pytorch")
# (kernel, stride, split over the two GPUs) of conv1..conv5 (§3.5; §3.2: the
# kernels of conv2, conv4, conv5 see only the maps of their own GPU).
CONVS = ((11, 4, False), (5, 1, True), (3, 1, False), (3, 1, True), (3, 1, True))
BIAS_ONE = ("conv2", "conv4", "conv5", "fc6", "fc7")  # §5: "with the constant 1".


class AlexNet(nn.Module):
  """Five convolutions and three dense layers; see the module docstring."""

  num_classes: int = 1000
  features: Sequence[int] = (96, 256, 384, 384, 256)
  dense_features: int = 4096
  conv1_padding: int = 0
  groups: int = 2
  activation: str = "relu"
  norm: str = "lrn"
  lrn_convention: str = "paper"
  pooling: str = "max"
  overlapping_pooling: bool = True
  dropout_rate: float = 0.5
  initialization: str = "paper"
  axis_name: str | None = None
  dtype: Any = jnp.float32

  def min_input_size(self) -> int:
    window = 3 if self.overlapping_pooling else 2
    pool = (window, 2, 0)
    return layers.min_input_size([(11, 4, self.conv1_padding), pool, (5, 1, 2), pool,
                                  (3, 1, 1), (3, 1, 1), (3, 1, 1), pool])

  @nn.compact
  def __call__(self, images: jax.Array, *, train: bool, dense: bool = False) -> jax.Array:
    """Logits [N, classes]; `dense` evaluates fully convolutionally (see the module)."""
    layers.check_input_size(images, self.min_input_size(), "alexnet")
    layers.lookup({n: n for n in NORMS}, "norm", self.norm)
    layers.lookup({i: i for i in INITIALIZATIONS}, "initialization", self.initialization)
    act = layers.activation(self.activation)
    lrn = layers.lrn(self.lrn_convention)
    window = 3 if self.overlapping_pooling else 2
    pool = lambda x, name: layers.Pool(self.pooling, window, 2, act, self.dtype, name=name)(x)

    x = images.astype(self.dtype)
    for i, (features, (kernel, strides, grouped)) in enumerate(zip(self.features, CONVS)):
      padding = self.conv1_padding if i == 0 else None  # None: kernel // 2.
      groups = self.groups if grouped else 1
      x = layers.ConvNormAct(
          features, kernel, strides, padding, groups, batch_norm=self.norm == "batchnorm",
          use_bias=self.norm != "batchnorm", act=act, axis_name=self.axis_name, dtype=self.dtype,
          **self._init(f"conv{i + 1}", kernel * kernel * x.shape[-1] // groups),
          name=f"conv{i + 1}")(x, train=train)
      if i < 2:
        x = lrn(x) if self.norm == "lrn" else x
        x = pool(x, f"pool{i + 1}")  # §3.4: pooling follows both LRN layers...
    x = pool(x, "pool5")  # ... and conv5.
    window = layers.dense_window(x, 6, dense)
    fan_in = 6 * 6 * x.shape[-1]
    if window is None:
      x = layers.adaptive_avg_pool(x, 6)
      x = x.reshape((x.shape[0], -1))
    for name in ("fc6", "fc7"):
      x = act(layers.FullyConnected(self.dense_features, dtype=self.dtype, name=name,
                                    **self._init(name, fan_in))(x, window))
      x = layers.Dropout(self.dropout_rate, not train, self.axis_name)(x)
      window, fan_in = None, x.shape[-1]  # FC7 and FC8 act on the last axis (1x1 convolutions).
    x = layers.FullyConnected(self.num_classes, dtype=self.dtype, name="fc8",
                              **self._init("fc8", fan_in))(x)
    return x if x.ndim == 2 else x.mean(axis=(1, 2))  # The class score map, averaged.

  def _init(self, layer: str, fan_in: int) -> dict:
    if self.initialization == "pytorch":
      return dict(kernel_init=layers.pytorch_default_kernel(),
                  bias_init=layers.pytorch_default_bias(fan_in))
    return dict(kernel_init=nn.initializers.normal(0.01),
                bias_init=nn.initializers.constant(1.0 if layer in BIAS_ONE else 0.0))


# torchvision's alexnet: one tower, 64-192-384-256-256, no LRN, 224 inputs.
AlexNetOWT = functools.partial(
    AlexNet, features=(64, 192, 384, 256, 256), conv1_padding=2, groups=1, norm="none",
    initialization="pytorch")
