"""LeNet-5 (LeCun, Bottou, Bengio, Haffner 1998, "Gradient-based learning
applied to document recognition", §II.B and Fig. 2).

C1 (6@5x5) → S2 → C3 (16@5x5) → S4 → C5 (120@5x5) → F6 (84) → output (10),
on a 32x32 grey input. Every layer up to F6 is followed by the squashing
function (scaled tanh, Appendix A).

Defaults follow the paper, with one documented difference: the output layer is
a dense layer trained with softmax cross-entropy, not the paper's Euclidean RBF
units with fixed, hand-designed 7x12 bitmaps (§II.B), so the model plugs into
the same loss and metrics as every other network here. With the paper's C3
table this gives 60,850 trainable parameters (paper: "about 60,000"); with a
fully connected C3, 61,750.

Ablations: `activation` (any of layers.ACTIVATIONS), `pooling` ("trainable" —
the paper's subsampling: 2x2 sum times a trainable coefficient plus a trainable
bias per map, then the activation; "avg"; "max"), `c3_connections` ("paper" —
Table I; "full"), `initialization` ("paper": uniform in ±2.4/F_in, Appendix
C; "he": N(0, 2/F_in), He et al. 2015 §2.2). The modern variant is
`activation="relu", pooling="max", c3_connections="full", initialization="he"`,
registered as `lenet5_modern`. The paper's initialisation is scaled for its
squashing function: with ReLU and max pooling it shrinks the signal about
tenfold per layer (outputs near 1e-4 at the start), and many ReLUs never
become active, so the modern variant starts as ReLU networks are started.
"""

from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn

from cnnjax.errors import UserError
from cnnjax.models import layers

# Table I: the S2 maps each C3 map reads. The first six read 3 contiguous maps,
# the next six 4 contiguous, the next three 4 discontinuous, the last all 6;
# "keeps the number of connections within reasonable bounds" and "forces a
# break of symmetry" (§II.B). 60 connections of 5x5 + 16 biases = 1,516.
C3_TABLE = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (4, 5, 0), (5, 0, 1),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (3, 4, 5, 0), (4, 5, 0, 1), (5, 0, 1, 2),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)

POOLINGS = {"trainable": None, "avg": nn.avg_pool, "max": layers.max_pool}  # None: Subsampling.
INITIALIZATIONS = {
    "paper": layers.lecun98_uniform,
    "he": lambda: nn.initializers.variance_scaling(2.0, "fan_in", "normal"),
}

MIN_INPUT_SIZE = 32  # C5's 5x5 kernels need S4 maps of at least 5x5 (§II.B).


class Subsampling(nn.Module):
  """S2/S4 (§II.B): the sum of each 2x2 window times a trainable coefficient,
  plus a trainable bias, one pair per feature map."""

  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    maps = x.shape[-1]
    coefficient = self.param("coefficient", nn.initializers.ones, (maps,))
    bias = self.param("bias", nn.initializers.zeros, (maps,))
    window_sum = nn.avg_pool(x, (2, 2), strides=(2, 2)) * 4
    return window_sum * coefficient.astype(self.dtype) + bias.astype(self.dtype)


class PartialConv(nn.Module):
  """A 5x5 convolution in which output map j reads only the input maps
  `connections[j]` (Table I).

  The parameters are exactly the paper's: one 5x5 kernel per connection (60
  for Table I) plus a bias per map, scattered into a dense kernel whose other
  weights are constant zeros, so the layer is a single convolution. Each
  kernel starts as `initialization` has it for F_in = 25 x its map's inputs:
  uniform in ±2.4 / F_in ("paper") or N(0, 2 / F_in) ("he").
  """

  connections: tuple[tuple[int, ...], ...]
  initialization: str = "paper"
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    inputs = [i for maps in self.connections for i in maps]
    outputs = [j for j, maps in enumerate(self.connections) for _ in maps]
    fan_in = jnp.array([25.0 * len(self.connections[j]) for j in outputs])
    if self.initialization == "he":
      init = lambda key, shape: jax.random.normal(key, shape) * jnp.sqrt(2.0 / fan_in)
    else:
      init = lambda key, shape: jax.random.uniform(key, shape, minval=-1.0) * 2.4 / fan_in
    weights = self.param("kernel", init, (5, 5, len(inputs)))
    bias = self.param("bias", nn.initializers.zeros, (len(self.connections),))
    kernel = jnp.zeros((5, 5, x.shape[-1], len(self.connections)), weights.dtype)
    kernel = kernel.at[:, :, inputs, outputs].set(weights)
    y = jax.lax.conv_general_dilated(
        x, kernel.astype(self.dtype), (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return y + bias.astype(self.dtype)


class LeNet5(nn.Module):
  """LeNet-5; see the module docstring for the paper's choices and options."""

  num_classes: int = 10
  activation: str = "scaled_tanh"
  pooling: str = "trainable"
  c3_connections: str = "paper"
  initialization: str = "paper"
  dtype: Any = jnp.float32

  def min_input_size(self) -> int:
    return MIN_INPUT_SIZE

  @nn.compact
  def __call__(self, images: jax.Array, *, train: bool) -> jax.Array:
    del train  # No dropout or normalisation in LeNet-5.
    height, width = images.shape[1:3]
    if min(height, width) < MIN_INPUT_SIZE:
      raise UserError(
          f"lenet5 needs inputs of at least {MIN_INPUT_SIZE}x{MIN_INPUT_SIZE}, got "
          f"{height}x{width}; set config.dataset.image_size (the paper pads 28x28 MNIST to 32x32)")
    act = layers.activation(self.activation)
    kernel_init = layers.lookup(INITIALIZATIONS, "initialization", self.initialization)()
    conv = lambda features, name: layers.Conv(
        features, (5, 5), padding="VALID", dtype=self.dtype, kernel_init=kernel_init, name=name)

    x = act(conv(6, "C1")(images.astype(self.dtype)))
    x = self._pool(x, "S2", act)
    x = act(self._c3(x, conv))
    x = self._pool(x, "S4", act)
    x = act(conv(120, "C5")(x))
    x = x.reshape((x.shape[0], -1))
    x = act(nn.Dense(84, dtype=self.dtype, kernel_init=kernel_init, name="F6")(x))
    return nn.Dense(self.num_classes, dtype=self.dtype, name="output")(x)

  def _pool(self, x, name, act):
    pool = layers.lookup(POOLINGS, "pooling", self.pooling)
    if pool is None:
      return act(Subsampling(dtype=self.dtype, name=name)(x))
    return pool(x, (2, 2), strides=(2, 2))

  def _c3(self, x, conv):
    connections = layers.lookup({"paper": C3_TABLE, "full": None}, "c3_connections",
                                self.c3_connections)
    if connections is None:
      return conv(16, "C3")(x)
    return PartialConv(connections, self.initialization, dtype=self.dtype, name="C3")(x)
