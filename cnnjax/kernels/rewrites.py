"""Convolution and max pooling written another way where XLA's CPU kernels
are slow for the zoo's layers: the same sums and maxima, by oneDNN or in an
order XLA's CPU backend compiles well. Other backends keep XLA's primitives.

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

cnnjax.analysis reads layers from XLA's primitives, so it traces inside
`xla_primitives()`, which turns both off.
"""

import contextlib
import functools

import jax
import jax.numpy as jnp
from flax import linen as nn
from jax import lax

from cnnjax.kernels import onednn

SMALL_MAP_UNITS = 16  # Output maps up to 4x4 are convolved as patches times a matrix.
ONEDNN_MAP_UNITS = 16  # With oneDNN: output maps from 4x4 up by oneDNN, smaller ones as patches.
NHWC_HWIO = ((0, 3, 1, 2), (3, 2, 0, 1), (0, 3, 1, 2))  # lax's specs of ("NHWC", "HWIO", "NHWC").

_rewrites_on = True


@contextlib.contextmanager
def xla_primitives():
  """Within it, convolutions and max pools trace to XLA's own primitives on
  every backend (what cnnjax.analysis reads windows and strides from)."""
  global _rewrites_on
  previous, _rewrites_on = _rewrites_on, False
  try:
    yield
  finally:
    _rewrites_on = previous


def _rewriting() -> bool:
  return _rewrites_on and jax.default_backend() == "cpu"


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                         dimension_numbers=None, feature_group_count=1, precision=None,
                         preferred_element_type=None):
  """lax.conv_general_dilated; on the CPU, for NHWC inputs and HWIO kernels
  without dilation, groups one by one, then float32 output maps of
  ONEDNN_MAP_UNITS or more by oneDNN, 1x1 kernels as a matrix product and
  output maps of at most SMALL_MAP_UNITS as patches times a matrix (see the
  module docstring). XLA cannot count oneDNN's FLOPs; `cnnjax bench` counts
  the program traced in `xla_primitives()`."""
  convolve = functools.partial(
      lax.conv_general_dilated, window_strides=window_strides, padding=padding,
      lhs_dilation=lhs_dilation, rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers,
      feature_group_count=feature_group_count, precision=precision,
      preferred_element_type=preferred_element_type)
  nhwc = dimension_numbers is not None and (
      tuple(dimension_numbers.lhs_spec), tuple(dimension_numbers.rhs_spec),
      tuple(dimension_numbers.out_spec)) == NHWC_HWIO
  dilated = any(d != 1 for d in tuple(lhs_dilation or ()) + tuple(rhs_dilation or ()))
  if not _rewriting() or not nhwc or dilated:
    return convolve(lhs, rhs)
  if feature_group_count > 1:  # Each group on its own (AlexNet's two towers).
    return jnp.concatenate([
        conv_general_dilated(group_lhs, group_rhs, window_strides, padding,
                             dimension_numbers=dimension_numbers, precision=precision,
                             preferred_element_type=preferred_element_type)
        for group_lhs, group_rhs in zip(jnp.split(lhs, feature_group_count, axis=-1),
                                        jnp.split(rhs, feature_group_count, axis=-1))], axis=-1)
  height, width, fan_in, features = rhs.shape
  if isinstance(padding, str):
    padding = lax.padtype_to_pads(lhs.shape[1:3], (height, width), window_strides, padding)
  down, across = window_strides
  _, rows, columns, _ = jax.eval_shape(convolve, lhs, rhs).shape
  float32 = lhs.dtype == rhs.dtype == jnp.float32 and preferred_element_type in (None, jnp.float32)
  cropped = any(side < 0 for pair in padding for side in pair)
  if (float32 and precision is None and not cropped and rows * columns >= ONEDNN_MAP_UNITS
      and onednn.available()):
    return _onednn_conv(lhs, rhs, tuple(window_strides), tuple(map(tuple, padding)))
  product = functools.partial(jnp.dot, precision=precision,
                              preferred_element_type=preferred_element_type)
  if (height, width) == (1, 1) and not any(any(pair) for pair in padding):
    return product(lhs[:, ::down, ::across], rhs.reshape(fan_in, features))
  if rows * columns > SMALL_MAP_UNITS:
    return convolve(lhs, rhs)
  padded = jnp.pad(lhs, ((0, 0), *padding, (0, 0)))
  patches = jnp.concatenate(  # Features ordered (kernel row, kernel column, input map), as HWIO.
      [padded[:, i:i + (rows - 1) * down + 1:down, j:j + (columns - 1) * across + 1:across]
       for i in range(height) for j in range(width)], axis=-1)
  return product(patches, rhs.reshape(height * width * fan_in, features))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _onednn_conv(lhs, rhs, strides, padding):
  """The convolution and both its gradients by oneDNN (cnnjax.kernels.onednn)."""
  return onednn.convolution(lhs, rhs, strides, padding)


def _onednn_conv_forward(lhs, rhs, strides, padding):
  return onednn.convolution(lhs, rhs, strides, padding), (lhs, rhs)


def _onednn_conv_backward(strides, padding, residuals, grad):
  lhs, rhs = residuals
  # XLA drops the input gradient where nothing uses it (the first layer's).
  return (onednn.input_gradient(grad, rhs, lhs.shape, strides, padding),
          onednn.kernel_gradient(lhs, grad, rhs.shape, strides, padding))


_onednn_conv.defvjp(_onednn_conv_forward, _onednn_conv_backward)


# Flax's convolution with the dispatch above; parameters as nn.Conv's.
Conv = functools.partial(nn.Conv, conv_general_dilated=conv_general_dilated)


def max_pool(x: jax.Array, window_shape, strides=None, padding="VALID") -> jax.Array:
  """nn.max_pool for NHWC `x`; on the CPU, the rewrite of the module docstring."""
  window_shape = tuple(window_shape)
  strides = tuple(strides or (1,) * len(window_shape))
  if not _rewriting() or x.ndim != 4 or len(window_shape) != 2:
    return nn.max_pool(x, window_shape, strides, padding)
  if isinstance(padding, str):
    padding = lax.padtype_to_pads(x.shape[1:3], window_shape, strides, padding)
  return _max_pool(x, window_shape, strides, tuple(tuple(pair) for pair in padding))


def _windows(padded, window_shape, strides, out_shape):
  """(row, column) of each window position and the slice of `padded` it reads."""
  (height, width), (down, across), (rows, columns) = window_shape, strides, out_shape
  for i in range(height):
    for j in range(width):
      yield (i, j), padded[:, i:i + (rows - 1) * down + 1:down,
                           j:j + (columns - 1) * across + 1:across]


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3))
def _max_pool(x, window_shape, strides, padding):
  return _max_pool_forward(x, window_shape, strides, padding)[0]


def _max_pool_forward(x, window_shape, strides, padding):
  padded = jnp.pad(x, ((0, 0), *padding, (0, 0)), constant_values=-jnp.inf)
  out_shape = tuple((padded.shape[1 + axis] - window_shape[axis]) // strides[axis] + 1
                    for axis in range(2))
  slices = (window for _, window in _windows(padded, window_shape, strides, out_shape))
  pooled = functools.reduce(jnp.maximum, slices)
  return pooled, (padded, pooled)


def _max_pool_backward(window_shape, strides, padding, residuals, grad):
  """Each window's gradient to its first maximum (row-major), as select_and_scatter."""
  padded, pooled = residuals
  taken = jnp.zeros(pooled.shape, bool)
  grad_padded = jnp.zeros(padded.shape, grad.dtype)
  zero = jnp.zeros((), grad.dtype)
  for (i, j), window in _windows(padded, window_shape, strides, pooled.shape[1:3]):
    first = (window == pooled) & ~taken
    taken = taken | first
    # Back to the positions the slice read: interior padding undoes the stride.
    placement = [(0, 0, 0), (0, 0, 0)]
    for axis, offset in ((1, i), (2, j)):
      spanned = (pooled.shape[axis] - 1) * strides[axis - 1] + 1
      placement.insert(axis, (offset, padded.shape[axis] - offset - spanned,
                              strides[axis - 1] - 1))
    grad_padded = grad_padded + lax.pad(jnp.where(first, grad, zero), zero, placement)
  (top, bottom), (left, right) = padding
  return (grad_padded[:, top:padded.shape[1] - bottom, left:padded.shape[2] - right],)


_max_pool.defvjp(_max_pool_forward, _max_pool_backward)
