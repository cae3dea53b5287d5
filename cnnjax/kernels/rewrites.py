"""What convolutions and max pools are lowered to for the CPU, where XLA's CPU
kernels are slow for the zoo's layers: the same sums and maxima, by oneDNN
or in an order XLA's CPU backend compiles well. These functions run while a
program is lowered for the CPU (cnnjax.kernels.convolution and .pooling
make them the CPU lowering of their primitives); every other platform keeps
XLA's primitives.

A float32 convolution whose output map has 4x4 units or more runs, with both
its gradients, as oneDNN's (cnnjax.kernels.onednn) where it can be built:
measured on 2 cores of an Intel Xeon (Sapphire Rapids, AVX-512), one layer
alone against XLA's (JAX 0.10.2) at the zoo's shapes: forward 1.2 to 10
times faster, the input's gradient 1.2 to 3.6 times, the kernel's 1.0 (7x7
maps of 512) to 21 times (LeNet-5's C1); 1x1 kernels 1.3 to 2.9 times with
both gradients; below 4x4 the patches below were faster. Without oneDNN, as
measured on 2 cores of an AMD EPYC (AVX-512), forward and gradients of one
layer alone:
- a convolution whose output map has at most 4x4 units, as image patches
  (slices of the padded input, no arithmetic) times the kernel as a matrix:
  1.3 to 5 times faster from 4x4 down to 1x1, 80 times at ResNet-18's 2x2
  stage at 32x32 inputs (Eigen's convolution is slow where the map is small);
  at 7x7 the two are level, at 8x8 and above XLA's is 2 to 4 times faster;
- a 1x1 convolution as the maps (every stride-th unit) times the kernel as
  a matrix: 1.8 to 4.7 times faster with both gradients at ResNet-50's
  shapes, whose training step it makes about twice as fast (the profile of
  XLA's convolution shows the kernel's gradient spending most of its time
  transposing the maps; a matrix product's gradient needs no transpose);
- a grouped convolution as one convolution per group, concatenated: 7.6
  to 12 times faster with its gradients at AlexNet's two-tower layers
  (XLA's CPU kernel for feature_group_count > 1 is slow);
- max pooling as the maximum of the window's strided slices, its gradient
  routed to the first maximum of each window in row-major order, as XLA's
  select_and_scatter (and PyTorch) route it, by comparisons and padding:
  the gradient 4 to 7 times faster than select_and_scatter's, LeNet-5's
  training step (modern, batch 256) 1.7 times faster. Where windows do not
  overlap the gradient is bitwise XLA's; where they overlap,
  an input that is the maximum of several windows sums their gradients in
  another order, equal to rounding.

The gradients of the matrix-product forms are their transposes, derived by
JAX from the forms themselves (jax.linear_transpose), as autodiff derived
them when these forms were written into the traced program.
"""

import functools

import jax
import jax.numpy as jnp
from jax import lax

from cnnjax.kernels import onednn as onednn_kernels

SMALL_MAP_UNITS = 16  # Output maps up to 4x4 are convolved as patches times a matrix.
ONEDNN_MAP_UNITS = 16  # With oneDNN: output maps from 4x4 up by oneDNN, smaller ones as patches.


# Convolutions: NHWC maps, HWIO kernels, no dilation. A grouped one is one
# convolution per group: the groups' input maps and kernels (or gradients)
# along the last axis, the results concatenated along it.

def conv(x, w, *, window_strides, padding, feature_group_count, precision, onednn):
  """The convolution of maps `x` with kernel `w`."""
  def one_group(x, w):
    if _uses_onednn(x.shape, w.shape, x.dtype, window_strides, padding, precision, onednn):
      return onednn_kernels.convolution(x, w, window_strides, padding)
    return _conv_without_onednn(x, w, window_strides, padding, precision)
  return _by_group(one_group, feature_group_count, x, w)


def conv_input_grad(g, w, *, input_size, window_strides, padding, feature_group_count,
                    precision, onednn):
  """The gradient of <conv(x, w), g> with respect to x, of `input_size`."""
  def one_group(g, w):
    shape = (g.shape[0], *input_size, w.shape[2])
    if _uses_onednn(shape, w.shape, g.dtype, window_strides, padding, precision, onednn):
      return onednn_kernels.input_gradient(g, w, shape, window_strides, padding)
    forward = lambda x: _conv_without_onednn(x, w, window_strides, padding, precision)
    return jax.linear_transpose(forward, jax.ShapeDtypeStruct(shape, g.dtype))(g)[0]
  return _by_group(one_group, feature_group_count, g, w)


def conv_kernel_grad(x, g, *, window, window_strides, padding, feature_group_count, precision,
                     onednn):
  """The gradient of <conv(x, w), g> with respect to w, of `window`."""
  def one_group(x, g):
    shape = (*window, x.shape[3], g.shape[3])
    if _uses_onednn(x.shape, shape, x.dtype, window_strides, padding, precision, onednn):
      return onednn_kernels.kernel_gradient(x, g, shape, window_strides, padding)
    forward = lambda w: _conv_without_onednn(x, w, window_strides, padding, precision)
    return jax.linear_transpose(forward, jax.ShapeDtypeStruct(shape, x.dtype))(g)[0]
  return _by_group(one_group, feature_group_count, x, g)


def _by_group(one_group, groups, first, second):
  if groups == 1:
    return one_group(first, second)
  return jnp.concatenate([one_group(a, b) for a, b in zip(
      jnp.split(first, groups, axis=3), jnp.split(second, groups, axis=3))], axis=3)


def _output_map(x_shape, w_shape, window_strides, padding) -> tuple[int, int]:
  return tuple((n + low + high - k) // s + 1 for n, k, s, (low, high)
               in zip(x_shape[1:3], w_shape[:2], window_strides, padding))


def _uses_onednn(x_shape, w_shape, dtype, window_strides, padding, precision, onednn) -> bool:
  """Whether oneDNN convolves these maps (and gives both gradients); builds it
  the first time it is asked for (see cnnjax.kernels.onednn)."""
  rows, columns = _output_map(x_shape, w_shape, window_strides, padding)
  cropped = any(side < 0 for pair in padding for side in pair)
  return (onednn and dtype == jnp.float32 and precision is None and not cropped
          and rows * columns >= ONEDNN_MAP_UNITS and onednn_kernels.available())


def _conv_without_onednn(x, w, window_strides, padding, precision):
  """1x1 kernels as a matrix product, output maps of at most SMALL_MAP_UNITS
  as patches times a matrix, others by XLA (see the module docstring)."""
  height, width, fan_in, features = w.shape
  down, across = window_strides
  rows, columns = _output_map(x.shape, w.shape, window_strides, padding)
  product = functools.partial(jnp.dot, precision=precision)
  if (height, width) == (1, 1) and not any(any(pair) for pair in padding):
    return product(x[:, ::down, ::across], w.reshape(fan_in, features))
  if rows * columns > SMALL_MAP_UNITS:
    return lax.conv_general_dilated(x, w, window_strides, padding, precision=precision,
                                    dimension_numbers=("NHWC", "HWIO", "NHWC"))
  # lax.pad, which crops where padding is negative, as the convolution does.
  zero = jnp.zeros((), x.dtype)
  padded = lax.pad(x, zero, ((0, 0, 0), *((low, high, 0) for low, high in padding), (0, 0, 0)))
  patches = jnp.concatenate(  # Features ordered (kernel row, kernel column, input map), as HWIO.
      [padded[:, i:i + (rows - 1) * down + 1:down, j:j + (columns - 1) * across + 1:across]
       for i in range(height) for j in range(width)], axis=-1)
  return product(patches, w.reshape(height * width * fan_in, features))


# Max pooling: NHWC maps, a window over height and width. The tangent and
# the gradient select, for each window, its first maximum in row-major order.

def max_pool(x, *, window, strides, padding):
  """The maximum of each window: of its strided slices of the padded maps."""
  padded, out_size = _padded(x, window, strides, padding)
  return functools.reduce(jnp.maximum, (part for _, part in _windows(padded, window, strides,
                                                                     out_size)))


def max_pool_tangent(t, x, *, window, strides, padding):
  """The tangent of max_pool at x along t: t at each window's first maximum."""
  padded, out_size = _padded(x, window, strides, padding)
  padded_t, _ = _padded(t, window, strides, padding, 0)
  pooled = max_pool(x, window=window, strides=strides, padding=padding)
  taken = jnp.zeros(pooled.shape, bool)
  result = jnp.zeros(pooled.shape, t.dtype)
  for (i, j), part in _windows(padded, window, strides, out_size):
    first = (part == pooled) & ~taken
    taken = taken | first
    result = jnp.where(first, _slice(padded_t, i, j, strides, out_size), result)
  return result


def max_pool_grad(g, x, *, window, strides, padding):
  """The gradient of <max_pool(x), g> with respect to x: each window's
  gradient to its first maximum, as select_and_scatter sends it."""
  padded, out_size = _padded(x, window, strides, padding)
  pooled = max_pool(x, window=window, strides=strides, padding=padding)
  taken = jnp.zeros(pooled.shape, bool)
  grad_padded = jnp.zeros(padded.shape, g.dtype)
  zero = jnp.zeros((), g.dtype)
  for (i, j), part in _windows(padded, window, strides, out_size):
    first = (part == pooled) & ~taken
    taken = taken | first
    # Back to the positions the slice read: interior padding undoes the stride.
    placement = [(0, 0, 0), (0, 0, 0)]
    for axis, offset in ((1, i), (2, j)):
      spanned = (out_size[axis - 1] - 1) * strides[axis - 1] + 1
      placement.insert(axis, (offset, padded.shape[axis] - offset - spanned,
                              strides[axis - 1] - 1))
    grad_padded = grad_padded + lax.pad(jnp.where(first, g, zero), zero, placement)
  (top, bottom), (left, right) = padding
  return lax.pad(grad_padded, zero, ((0, 0, 0), (-top, -bottom, 0), (-left, -right, 0), (0, 0, 0)))


def _padded(x, window, strides, padding, value=-jnp.inf):
  """`x` padded with `value` (cropped where padding is negative), and the output map's size."""
  padded = lax.pad(x, jnp.asarray(value, x.dtype),
                   ((0, 0, 0), *((top, bottom, 0) for top, bottom in padding), (0, 0, 0)))
  out_size = tuple((padded.shape[1 + axis] - window[axis]) // strides[axis] + 1
                   for axis in range(2))
  return padded, out_size


def _slice(padded, i, j, strides, out_size):
  (down, across), (rows, columns) = strides, out_size
  return padded[:, i:i + (rows - 1) * down + 1:down, j:j + (columns - 1) * across + 1:across]


def _windows(padded, window, strides, out_size):
  """(row, column) of each window position and the slice of `padded` it reads."""
  for i in range(window[0]):
    for j in range(window[1]):
      yield (i, j), _slice(padded, i, j, strides, out_size)
