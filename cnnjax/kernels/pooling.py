"""Max pooling as three JAX primitives: the pooling, its tangent and its
gradient, lowered for the CPU as cnnjax's (cnnjax.kernels.rewrites: strided
slices and comparisons) and for every other platform as XLA's own
(reduce_window, select_and_gather_add, select_and_scatter_add), as
cnnjax.kernels.convolution does for convolutions.

The derivative of a max pool at x takes each window's tangent at its first
maximum: the tangent is linear in the tangent of x and, like XLA's
select_and_gather_add, constant in x itself (a max pool is piecewise
linear), and its transpose is the gradient, which sends each window's
gradient to the same unit. So jvp, grad, Hessian-vector products and grad
of grad stay among the three; vmap folds the mapped axis into the batch.
"""

import functools

import jax
import jax.numpy as jnp
from flax import linen as nn
from jax import lax
from jax.core import ShapedArray
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir

from cnnjax.kernels import rewrites
from cnnjax.kernels.convolution import eager

# Parameters of every equation: window (height, width), strides (2) and
# padding ((top, bottom), (left, right)). The tangent and the gradient take
# the tangent (or gradient) first, then the maps pooled.
max_pool_p = Primitive("cnnjax_max_pool")
max_pool_tangent_p = Primitive("cnnjax_max_pool_tangent")
max_pool_grad_p = Primitive("cnnjax_max_pool_grad")


def max_pool(x: jax.Array, window_shape, strides=None, padding="VALID") -> jax.Array:
  """nn.max_pool, as `cnnjax_max_pool` for NHWC float maps and a window over
  height and width, else flax's."""
  window_shape = tuple(window_shape)
  strides = tuple(strides or (1,) * len(window_shape))
  if x.ndim != 4 or len(window_shape) != 2 or not jnp.issubdtype(x.dtype, jnp.floating):
    return nn.max_pool(x, window_shape, strides, padding)
  if isinstance(padding, str):
    padding = lax.padtype_to_pads(x.shape[1:3], window_shape, strides, padding)
  return max_pool_p.bind(x, window=window_shape, strides=strides,
                         padding=tuple(tuple(pair) for pair in padding))


# XLA's own, for other platforms and cnnjax.kernels.with_xla_primitives.

def xla_max_pool(x, *, window, strides, padding):
  return nn.max_pool(x, window, strides, padding)


def xla_max_pool_tangent(t, x, **params):
  return jax.jvp(functools.partial(xla_max_pool, **params), (x,), (t,))[1]


def xla_max_pool_grad(g, x, **params):
  return jax.vjp(functools.partial(xla_max_pool, **params), x)[1](g)[0]


def _pool_abstract(x, *, window, strides, padding):
  rows, columns = ((n + low + high - k) // s + 1
                   for n, k, s, (low, high) in zip(x.shape[1:3], window, strides, padding))
  return ShapedArray((x.shape[0], rows, columns, x.shape[3]), x.dtype)


max_pool_p.def_abstract_eval(_pool_abstract)
max_pool_tangent_p.def_abstract_eval(lambda t, x, **params: _pool_abstract(x, **params))
max_pool_grad_p.def_abstract_eval(lambda g, x, **params: ShapedArray(x.shape, g.dtype))


# Derivatives.

ad.defjvp(max_pool_p, lambda t, x, **params: max_pool_tangent_p.bind(t, x, **params))
# Linear in their first operand; their derivative in the maps is zero.
ad.defjvp(max_pool_tangent_p, lambda dt, t, x, **params: max_pool_tangent_p.bind(dt, x, **params),
          None)
ad.defjvp(max_pool_grad_p, lambda dg, g, x, **params: max_pool_grad_p.bind(dg, x, **params), None)


def _transpose(other):
  def rule(ct, linear, x, **params):
    assert ad.is_undefined_primal(linear) and not ad.is_undefined_primal(x)
    if type(ct) is ad.Zero:
      return ad.Zero(linear.aval), None
    return other.bind(ct, x, **params), None
  return rule


ad.primitive_transposes[max_pool_tangent_p] = _transpose(max_pool_grad_p)
ad.primitive_transposes[max_pool_grad_p] = _transpose(max_pool_tangent_p)


def _batching(primitive):
  """Pooling is per image: the mapped axis joins the batch."""
  def rule(operands, axes, **params):
    size = next(x.shape[axis] for x, axis in zip(operands, axes) if axis is not None)
    folded = [jnp.broadcast_to(x, (size, *x.shape)) if axis is None else jnp.moveaxis(x, axis, 0)
              for x, axis in zip(operands, axes)]
    result = primitive.bind(*(x.reshape(-1, *x.shape[2:]) for x in folded), **params)
    return result.reshape(size, -1, *result.shape[1:]), 0
  batching.primitive_batchers[primitive] = rule


for _primitive, _xla, _cpu in [(max_pool_p, xla_max_pool, rewrites.max_pool),
                               (max_pool_tangent_p, xla_max_pool_tangent, rewrites.max_pool_tangent),
                               (max_pool_grad_p, xla_max_pool_grad, rewrites.max_pool_grad)]:
  _primitive.def_impl(functools.partial(eager, _primitive))
  _batching(_primitive)
  mlir.register_lowering(_primitive, mlir.lower_fun(_xla, multiple_results=False))
  mlir.register_lowering(_primitive, mlir.lower_fun(_cpu, multiple_results=False), platform="cpu")
