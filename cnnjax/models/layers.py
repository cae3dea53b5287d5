"""Pieces shared by the model families: activation and initializer tables,
local response normalisation, conv-norm-activation units, pooling.

Tables are plain dicts looked up by name, so an ablation (ReLU vs tanh, ...) is
a string in the config. An unknown name is a user error that lists the choices.
"""

from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from cnnjax.errors import UserError, choose
from cnnjax.kernels import Conv, max_pool  # noqa: F401  (the zoo's layers)


def scaled_tanh(x: jax.Array) -> jax.Array:
  """LeCun et al. 1998, Appendix A: f(a) = A tanh(S a) with A = 1.7159, S = 2/3.

  Chosen so that f(±1) = ±1 and the second derivative is largest at a = ±1.
  """
  return 1.7159 * jnp.tanh(2.0 / 3.0 * x)


ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": nn.relu,
    "tanh": jnp.tanh,
    "scaled_tanh": scaled_tanh,
    "sigmoid": nn.sigmoid,
    "leaky_relu": nn.leaky_relu,
    "elu": nn.elu,
    "gelu": nn.gelu,
}


def lookup(table: dict, kind: str, name: str):
  """`table[name]`, or a UserError naming the model option `kind` and its choices."""
  return choose(table, f"model.{kind}", name)


def activation(name: str) -> Callable[[jax.Array], jax.Array]:
  return lookup(ACTIVATIONS, "activation", name)


def lecun98_uniform(dtype=jnp.float32) -> jax.nn.initializers.Initializer:
  """LeCun et al. 1998, Appendix C: weights uniform in ±2.4 / F_in.

  F_in is the number of inputs of the unit (receptive field size times input
  maps), so the weighted sums start in the range where scaled tanh is steep.
  """

  def init(key, shape, dtype=dtype):
    fan_in = 1
    for size in shape[:-1]:
      fan_in *= size
    limit = 2.4 / fan_in
    return jax.random.uniform(key, shape, dtype, -limit, limit)

  return init


def pytorch_default_kernel() -> jax.nn.initializers.Initializer:
  """PyTorch's default for Conv2d and Linear: kaiming_uniform(a=√5), i.e.
  uniform in ±1/√fan_in (what torchvision's AlexNet is trained from)."""
  return nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform")


def pytorch_default_bias(fan_in: int) -> jax.nn.initializers.Initializer:
  """PyTorch's default bias: uniform in ±1/√fan_in of the layer's kernel."""
  limit = fan_in ** -0.5
  return lambda key, shape, dtype=jnp.float32: jax.random.uniform(key, shape, dtype, -limit, limit)


# Local response normalisation (Krizhevsky et al. 2012, §3.3). The paper
# writes b_i = a_i / (k + α Σ_j a_j²)^β, j over the n maps centred on i, and
# its α multiplies the plain sum. Caffe's LRN layer (ACROSS_CHANNELS) and
# PyTorch's nn.LocalResponseNorm multiply the *mean*: α/n Σ a_j², so the same
# constants normalise n times more weakly there (and their prototxts use k=1).
LRN_CONVENTIONS = {"paper": False, "caffe": True}  # Whether α is divided by n.


def local_response_norm(x: jax.Array, *, size: int = 5, k: float = 2.0, alpha: float = 1e-4,
                        beta: float = 0.75, alpha_over_size: bool = False) -> jax.Array:
  """b = a / (k + α Σ a²)^β over `size` adjacent channels of NHWC `x`.

  Defaults are AlexNet §3.3 (k=2, n=5, α=1e-4, β=0.75, α not divided by n);
  `alpha_over_size=True` gives Caffe's and PyTorch's α/n. Maps past either end
  of the channel axis count as zero, as in the paper's max(0, ·)/min(N-1, ·)
  bounds; an even `size` takes one more map below than above, as PyTorch does.
  The window sum is one reduce_window over the channel axis. Computed in
  float32 and cast back, so bfloat16 sums of squares don't lose the small α.
  """
  sums = _window_sum_of_squares(x, axes=(x.ndim - 1,), size=size)
  scale = alpha / size if alpha_over_size else alpha
  return (x.astype(jnp.float32) / (k + scale * sums) ** beta).astype(x.dtype)


def within_map_response_norm(x: jax.Array, *, size: int, scale: float,
                             power: float) -> jax.Array:
  """cuda-convnet's `rnorm` layer: b = a (1 + scale/size² Σ a²)^-power, the sum
  over the size x size pixels of the same map centred on a, clipped at the
  borders (pixels outside the map count as zero).

  From cuda-convnet's layer.py (NormLayerParser divides `scale` by size² for
  response normalisation, by size for the cross-map kind) and
  src/cudaconv2/conv_util.cu (kCNorm_fewfilter/kCNorm_manyfilter: the window
  starts at -size/2, the denominator is 1 + addScale Σ a², raised to -pow).
  Caffe's LRN with norm_region WITHIN_CHANNEL (lrn_layer.cpp) computes the
  same for the odd sizes it accepts. The cross-map sibling, `cmrnorm`, is
  `local_response_norm(x, size=size, k=1, alpha=scale, beta=power,
  alpha_over_size=True)`. Computed in float32 and cast back.
  """
  sums = _window_sum_of_squares(x, axes=(1, 2), size=size)
  return (x.astype(jnp.float32) * (1.0 + scale / size**2 * sums) ** -power).astype(x.dtype)


def _window_sum_of_squares(x: jax.Array, *, axes: tuple[int, ...], size: int) -> jax.Array:
  """Σ x² (in float32) over `size` neighbours along each of `axes`: size // 2
  before and (size - 1) // 2 after each element, zero outside. One
  reduce_window, whose padding stands for the clipped window."""
  window = tuple(size if axis in axes else 1 for axis in range(x.ndim))
  padding = tuple((size // 2, (size - 1) // 2) if axis in axes else (0, 0)
                  for axis in range(x.ndim))
  return jax.lax.reduce_window(jnp.square(x.astype(jnp.float32)), 0.0, jax.lax.add, window,
                               (1,) * x.ndim, padding)


def lrn(convention: str) -> Callable[[jax.Array], jax.Array]:
  """AlexNet §3.3's LRN with α as the paper (`"paper"`) or Caffe (`"caffe"`) applies it."""
  alpha_over_size = lookup(LRN_CONVENTIONS, "lrn_convention", convention)
  return lambda x: local_response_norm(x, alpha_over_size=alpha_over_size)


def batch_norm(*, train: bool, axis_name: str | None, dtype: Any, epsilon: float = 1e-5,
               **kwargs) -> nn.BatchNorm:
  """BatchNorm as every cnnjax model uses it: PyTorch's momentum and epsilon
  (so torchvision's statistics carry over) and, under pmap, batch statistics
  averaged over `axis_name`."""
  return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=epsilon,
                      axis_name=axis_name, dtype=dtype, **kwargs)


class ConvNormAct(nn.Module):
  """A square convolution, BatchNorm if asked, then the activation: the unit
  AlexNet, VGG and GoogLeNet are built from. `padding=None` pads kernel_size//2
  on every side, as Caffe and PyTorch do (Flax's "SAME" pads stride-2 layers
  asymmetrically, which would shift every map against published weights)."""

  features: int
  kernel_size: int
  strides: int = 1
  padding: int | None = None
  groups: int = 1
  batch_norm: bool = False
  use_bias: bool = True
  act: Callable[[jax.Array], jax.Array] = nn.relu
  kernel_init: Callable = nn.initializers.lecun_normal()
  bias_init: Callable = nn.initializers.zeros
  bn_epsilon: float = 1e-5
  axis_name: str | None = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    padding = self.kernel_size // 2 if self.padding is None else self.padding
    x = Conv(self.features, (self.kernel_size, self.kernel_size), self.strides, padding,
                feature_group_count=self.groups, use_bias=self.use_bias, dtype=self.dtype,
                kernel_init=self.kernel_init, bias_init=self.bias_init, name="conv")(x)
    if self.batch_norm:
      x = batch_norm(train=train, axis_name=self.axis_name, dtype=self.dtype,
                     epsilon=self.bn_epsilon, name="bn")(x)
    return self.act(x)


class Dropout(nn.Module):
  """Dropout (Srivastava et al. 2014; AlexNet §4.2) whose masks do not depend
  on how the global batch is split over devices.

  With `axis_name` (the device axis under pmap), every device draws the mask
  of the whole global batch from the same key and keeps its own rows, so
  example i of a step gets the same mask on 1, 2 or 8 devices and a run's
  result does not depend on the device count (cnnjax.data.pipeline makes the
  global batches themselves independent of it). That draws devices x more
  random bits, which is little next to the layer it follows. Without
  `axis_name` it is Flax's dropout: the caller must give each device its own
  key. Kept units are scaled by 1 / (1 - rate), as Flax and PyTorch do.
  """

  rate: float
  deterministic: bool
  axis_name: str | None = None

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    if self.deterministic or self.rate == 0:
      return x
    keep = 1.0 - self.rate
    key = self.make_rng("dropout")
    if self.axis_name is None:
      mask = jax.random.bernoulli(key, keep, x.shape)
    else:
      rows = x.shape[0]
      devices = jax.lax.axis_size(self.axis_name)
      every_row = jax.random.bernoulli(key, keep, (rows * devices, *x.shape[1:]))
      start = jax.lax.axis_index(self.axis_name) * rows
      mask = jax.lax.dynamic_slice_in_dim(every_row, start, rows)
    return jnp.where(mask, x / jnp.asarray(keep, x.dtype), jnp.zeros((), x.dtype))


class FullyConnected(nn.Dense):
  """`nn.Dense` (the same parameters, names and initialisation), which can also
  be applied fully convolutionally (VGG §3.2: "the first FC layer is converted
  to a 7x7 conv. layer, the last two FC layers to 1x1 conv. layers").

  Called with `window=W` on maps [N, H, W', C], the kernel [W·W·C, F] is read
  as a W x W convolution [W, W, C, F] (the row order of a flattened
  [N, W, W, C] input, so it equals the dense layer on every W x W window), run
  without padding at stride 1: [N, H-W+1, W'-W+1, F]. A later dense layer
  needs no window: `nn.Dense` on [N, h, w, F] is a 1x1 convolution already.
  """

  @nn.compact
  def __call__(self, inputs: jax.Array, window: int | None = None) -> jax.Array:
    if window is None:
      return super().__call__(inputs)
    channels = inputs.shape[-1]
    kernel = self.param("kernel", self.kernel_init, (window * window * channels, self.features),
                        self.param_dtype)
    bias = (self.param("bias", self.bias_init, (self.features,), self.param_dtype)
            if self.use_bias else None)
    inputs, kernel, bias = nn.dtypes.promote_dtype(inputs, kernel, bias, dtype=self.dtype)
    maps = jax.lax.conv_general_dilated(
        inputs, kernel.reshape(window, window, channels, self.features), (1, 1), "VALID",
        dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=self.precision)
    return maps if bias is None else maps + bias


def dense_window(maps: jax.Array, window: int, dense: bool) -> int | None:
  """The window with which to apply the first dense layer fully convolutionally
  to `maps` (see FullyConnected), or None for the usual flattened input:
  `dense` evaluation of maps at least `window` on each side."""
  return window if dense and min(maps.shape[1:3]) >= window else None


POOLINGS = ("max", "avg", "conv")


class Pool(nn.Module):
  """Downsampling by name: "max", "avg", or "conv" — a learned convolution
  with the pooling's window and stride, then the activation, in place of the
  pooling (Springenberg et al. 2015, "Striving for simplicity: the all
  convolutional net", §3.1). Floor mode (no padding), or with `ceil_mode` the
  output sides of max_pool_ceil, an overhanging average dividing by the pixels
  inside the image (avg_pool_ceil) and the convolution seeing zeros there."""

  kind: str
  window: int
  strides: int
  act: Callable[[jax.Array], jax.Array] = nn.relu
  dtype: Any = jnp.float32
  ceil_mode: bool = False

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    lookup({kind: kind for kind in POOLINGS}, "pooling", self.kind)
    window, strides = (self.window, self.window), (self.strides, self.strides)
    if self.kind == "conv":
      padding = _ceil_mode_padding(x, self.window, self.strides, 0) if self.ceil_mode else "VALID"
      conv = Conv(x.shape[-1], window, strides, padding, dtype=self.dtype, name="conv")
      return self.act(conv(x))
    if self.ceil_mode:
      return (max_pool_ceil if self.kind == "max" else avg_pool_ceil)(x, self.window, self.strides)
    return (max_pool if self.kind == "max" else nn.avg_pool)(x, window, strides)


def _ceil_mode_padding(x: jax.Array, window: int, strides: int,
                       padding: int) -> list[tuple[int, int]]:
  """(top, bottom) and (left, right) padding that give ceil-mode output sides:
  ceil((n + 2p - window) / strides) + 1, less one if the last window would
  start past the image and its top/left padding (Caffe, PyTorch)."""
  pads = []
  for size in x.shape[1:3]:
    out = -(-(size + 2 * padding - window) // strides) + 1
    if (out - 1) * strides >= size + padding:
      out -= 1
    pads.append((padding, max((out - 1) * strides + window - size - padding, 0)))
  return pads


def max_pool_ceil(x: jax.Array, window: int, strides: int, padding: int = 0) -> jax.Array:
  """Max pooling in Caffe's rounding (PyTorch's ceil_mode=True): the output
  side is ceil((n + 2p - window) / strides) + 1, the last window overhanging
  the bottom/right edge, as long as it starts inside the image or its top/left
  padding. GoogLeNet's pools are specified this way (112 → 56 → 28 → 14 → 7),
  and so are cuda-convnet's (layer.py, PoolLayerParser: outputsX =
  ceil((imgSize - start - sizeX) / stride) + 1 with start = 0: 32 → 16 → 8 → 4)."""
  pads = _ceil_mode_padding(x, window, strides, padding)
  return max_pool(x, (window, window), (strides, strides), pads)


def avg_pool_ceil(x: jax.Array, window: int, strides: int) -> jax.Array:
  """Average pooling with max_pool_ceil's output sides, each window averaged
  over its pixels inside the image: an overhanging window at the bottom/right
  edge divides by fewer than window² (cuda-convnet, conv_util.cuh kLocalPool:
  regionSize is the clipped window's area; Caffe's AVE pooling without padding
  and PyTorch's ceil_mode=True divide the same way)."""
  pads = _ceil_mode_padding(x, window, strides, 0)
  sums = nn.pool(x, 0.0, jax.lax.add, (window, window), (strides, strides), pads)
  rows, columns = (np.minimum(np.arange(out) * strides + window, size) - np.arange(out) * strides
                   for size, out in zip(x.shape[1:3], sums.shape[1:3]))
  return sums / jnp.asarray(np.outer(rows, columns)[:, :, None], x.dtype)


def _adaptive_pool_matrix(size_in: int, size_out: int) -> np.ndarray:
  """Row i averages inputs floor(i n/m) .. ceil((i+1) n/m) - 1, as PyTorch does."""
  matrix = np.zeros((size_out, size_in), np.float32)
  for i in range(size_out):
    start, end = i * size_in // size_out, -(-(i + 1) * size_in // size_out)
    matrix[i, start:end] = 1 / (end - start)
  return matrix


def adaptive_avg_pool(x: jax.Array, size: int) -> jax.Array:
  """PyTorch's AdaptiveAvgPool2d((size, size)) on NHWC `x`: the identity when
  the maps are already size x size, bins of unequal width otherwise (each
  output repeats the input where the maps are smaller than `size`)."""
  height, width = x.shape[1:3]
  if (height, width) == (size, size):
    return x
  rows = jnp.asarray(_adaptive_pool_matrix(height, size), x.dtype)
  columns = jnp.asarray(_adaptive_pool_matrix(width, size), x.dtype)
  return jnp.einsum("ih,jw,nhwc->nijc", rows, columns, x)


def min_input_size(path: Sequence[tuple[int, ...]]) -> int:
  """The smallest input side for which every layer of `path` — (window,
  stride, padding per side[, ceil_mode]) from input to output — yields at
  least one output pixel. Floor mode: n ≥ (m-1)s + w - 2p; ceil mode (see
  max_pool_ceil): n ≥ (m-2)s + w + 1 - 2p for m ≥ 2."""
  size = 1
  for window, stride, padding, *ceil_mode in reversed(path):
    if ceil_mode and ceil_mode[0] and size > 1:
      size = (size - 2) * stride + window + 1 - 2 * padding
    else:
      size = (size - 1) * stride + window - 2 * padding
    size = max(size, 1)
  return size


def check_input_size(images: jax.Array, minimum: int, model: str) -> None:
  """A UserError naming the minimum when `images` are too small for `model`."""
  height, width = images.shape[1:3]
  if min(height, width) < minimum:
    raise UserError(f"{model} needs inputs of at least {minimum}x{minimum}, got {height}x{width}; "
                    f"set config.dataset.image_size to {minimum} or more")
