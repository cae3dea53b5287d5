"""The small CIFAR-10 networks of cuda-convnet (Krizhevsky 2011-2012), behind
AlexNet's §3.1 (ReLU vs tanh, Figure 1) and §3.3 (LRN: 13% → 11% CIFAR-10
test error) claims; AlexNet's footnote 3 says such a net "is specified
precisely by the code and parameter files" of cuda-convnet.

Each variant is one layer-definition file of cuda-convnet's svn trunk,
`example-layers/`, as last changed there (r434 to r554, December 2011 to June
2012; read, with their history, in the git mirror
github.com/dnouri/cuda-convnet). Layer names are the files', except the dense
layers, numbered by position like the others:

- `cifar_convnet_80sec` (`layers-80sec.cfg`; Caffe's `cifar10_quick`): conv1
  32@5x5 → max pool1 → conv2 32@5x5 → avg pool2 → conv3 64@5x5 → avg pool3 →
  fc4 64 (the file's fc64) → fc5 (fc10). 145,578 parameters.
- `cifar_convnet_18pct` (`layers-18pct.cfg`; Caffe's `cifar10_full`): the same
  convolutions and pools, within-map response normalisation (`rnorm`, size 3,
  scale 5e-5, power 0.75) after pool1 and after pool2, and only fc4 (fc10).
  89,578 parameters.
- `cifar_convnet_13pct` (`layers-conv-local-13pct.cfg`): conv1 64@5x5 → max
  pool1 → conv2 64@5x5 → max pool2 → local3 32@3x3 → local4 32@3x3 → fc5
  (fc10). The local layers are locally connected: a kernel and a bias per
  output position (untied, flax.linen.ConvLocal). 1,116,490 parameters at
  24x24, the random crops it trains on.
- `cifar_convnet_11pct` (`layers-conv-local-11pct.cfg`): the 13pct layers with
  local3 of 64 maps, and cross-map response normalisation (`cmrnorm`, size 9,
  scale 0.001, power 0.75) after pool1 and after conv2, before pool2.
  2,112,970 parameters at 24x24.

In all of them the convolutions are "same" (5x5 padded by 2, the local 3x3
layers by 1) with stride 1, ReLU follows every layer but the classifier, and
pooling is 3x3 with stride 2, rounded up (layer.py, PoolLayerParser):
32 → 16 → 8 → 4 and 24 → 12 → 6, an overhanging average dividing by the
pixels inside the map (layers.max_pool_ceil, layers.avg_pool_ceil). Weights
start N(0, initW²) with the file's per-layer initW, biases 0 (initB's default).
Both normalisations have k = 1: b = a (1 + α' Σ a²)^-β with α' = scale/size
over `size` adjacent maps (cmrnorm, layers.local_response_norm) or
α' = scale/size² over size x size pixels of the map (rnorm,
layers.within_map_response_norm).

Differences from the files:
- The 80sec and 18pct files apply conv1's ReLU after pool1 (`neuron=relu` on
  the pool, since r434 "Apply neuron after doing max, where applicable", a
  speed edit); here it follows conv1, as in the 13pct file. Max pooling
  commutes with any non-decreasing activation (every one of
  layers.ACTIVATIONS but gelu), so the networks are the same; with gelu, or
  another pooling at pool1, they are not.
- The dense layers read the maps in NHWC order, cuda-convnet's in
  (channel, y, x) order: the same family of functions with permuted weights.
- The 11pct file's first version (r540, 13 March 2012) put size-5 cmrnorm
  after conv1 and conv2, before pooling, with local3 of 32 maps: the 13pct
  net plus LRN. It was replaced 93 seconds later (r541) by the version above,
  which the trunk kept to its end and which is registered. The first version
  is `cifar_convnet_13pct` with `norm="cross_map"`,
  `norm_after=("conv1", "conv2")`, `norm_size=5`.

Ablations: `activation`, `pooling` (one kind per pool: "max", "avg", "conv"),
`overlapping_pooling` (False: 2x2/2, the same sizes at 32 and 24), `norm` ("none",
"within_map", "cross_map") with `norm_after` (the layers it follows),
`norm_size`, `norm_scale`, `norm_power`. The 80sec and 13pct variants carry
the normalisation settings of 18pct and 11pct with `norm="none"`, so
`norm=within_map` or `norm=cross_map` adds exactly that file's normalisation
to an otherwise unchanged network. Widths and initialisation:
`conv_features`, `local_features`, `hidden_dense_features`, `init_stddevs`
(one per weight layer, in order).
"""

import functools
from typing import Any, Sequence

import jax
import jax.numpy as jnp
from flax import linen as nn

from cnnjax.errors import UserError
from cnnjax.models import layers

NORMS = ("none", "within_map", "cross_map")


class CudaConvnet(nn.Module):
  """5x5 convolutions each followed by pooling, 3x3 locally connected layers,
  dense layers; see the module docstring for the variants."""

  conv_features: Sequence[int] = (32, 32, 64)
  pooling: Sequence[str] = ("max", "avg", "avg")
  local_features: Sequence[int] = ()
  hidden_dense_features: Sequence[int] = (64,)
  init_stddevs: Sequence[float] = (1e-4, 0.01, 0.01, 0.1, 0.1)  # layers-80sec.cfg initW.
  num_classes: int = 10
  activation: str = "relu"
  overlapping_pooling: bool = True
  norm: str = "none"
  norm_after: Sequence[str] = ("pool1", "pool2")
  norm_size: int = 3
  norm_scale: float = 5e-5
  norm_power: float = 0.75
  dtype: Any = jnp.float32

  @property
  def pool_window(self) -> int:
    return 3 if self.overlapping_pooling else 2

  def min_input_size(self) -> int:
    """Every pool's first window inside its input (cuda-convnet checks sizeX ≤ imgSize)."""
    convolve_and_pool = [(5, 1, 2), (self.pool_window, 2, 0, True)]
    return layers.min_input_size(convolve_and_pool * len(self.conv_features))

  @nn.compact
  def __call__(self, images: jax.Array, *, train: bool) -> jax.Array:
    del train  # No dropout, no batch statistics.
    layers.check_input_size(images, self.min_input_size(), "cifar_convnet")
    self._check_options()
    act = layers.activation(self.activation)
    stddevs = iter(self.init_stddevs)
    init = lambda: dict(kernel_init=nn.initializers.normal(next(stddevs)), dtype=self.dtype)

    x = images.astype(self.dtype)
    for i, (features, pooling) in enumerate(zip(self.conv_features, self.pooling), 1):
      x = act(layers.Conv(features, (5, 5), padding=2, name=f"conv{i}", **init())(x))
      x = self._normalize(x, f"conv{i}")
      x = layers.Pool(pooling, self.pool_window, 2, act, self.dtype, ceil_mode=True,
                      name=f"pool{i}")(x)
      x = self._normalize(x, f"pool{i}")
    index = len(self.conv_features)
    for features in self.local_features:
      index += 1
      x = act(nn.ConvLocal(features, (3, 3), padding=1, name=f"local{index}", **init())(x))
    x = x.reshape((x.shape[0], -1))
    for features in self.hidden_dense_features:
      index += 1
      x = act(nn.Dense(features, name=f"fc{index}", **init())(x))
    return nn.Dense(self.num_classes, name=f"fc{index + 1}", **init())(x)

  def _normalize(self, x: jax.Array, after: str) -> jax.Array:
    if self.norm == "none" or after not in self.norm_after:
      return x
    if self.norm == "within_map":  # layers-18pct.cfg `rnorm`.
      return layers.within_map_response_norm(x, size=self.norm_size, scale=self.norm_scale,
                                             power=self.norm_power)
    # layers-conv-local-11pct.cfg `cmrnorm`: α' = scale / size, k = 1.
    return layers.local_response_norm(x, size=self.norm_size, k=1.0, alpha=self.norm_scale,
                                      beta=self.norm_power, alpha_over_size=True)

  def _check_options(self) -> None:
    layers.lookup({n: n for n in NORMS}, "norm", self.norm)
    convs = len(self.conv_features)
    if len(self.pooling) != convs:
      raise UserError(f"config.model.pooling has {len(self.pooling)} entries for {convs} "
                      "convolutions; give one pooling (max, avg or conv) per convolution")
    weight_layers = convs + len(self.local_features) + len(self.hidden_dense_features) + 1
    if len(self.init_stddevs) != weight_layers:
      raise UserError(f"config.model.init_stddevs has {len(self.init_stddevs)} values for "
                      f"{weight_layers} weight layers; give one standard deviation per layer")
    places = [f"{kind}{i}" for i in range(1, convs + 1) for kind in ("conv", "pool")]
    for place in self.norm_after:
      layers.lookup({p: p for p in places}, "norm_after", place)
    if self.norm != "none" and not self.norm_after:
      raise UserError(f"config.model.norm_after is empty, so norm={self.norm!r} normalises "
                      "nothing; name the layers it follows, e.g. ('pool1', 'pool2')")


# The four layer files; see the module docstring. Per-layer initW in order.
Net80sec = CudaConvnet
Net18pct = functools.partial(
    CudaConvnet, hidden_dense_features=(), init_stddevs=(1e-4, 0.01, 0.01, 0.01),
    norm="within_map")
Net13pct = functools.partial(
    CudaConvnet, conv_features=(64, 64), pooling=("max", "max"), local_features=(32, 32),
    hidden_dense_features=(), init_stddevs=(1e-4, 0.01, 0.04, 0.04, 0.01),
    norm_after=("pool1", "conv2"), norm_size=9, norm_scale=0.001)
Net11pct = functools.partial(Net13pct, local_features=(64, 32), norm="cross_map")
