"""The zoo's convolutions as three JAX primitives: the convolution and its two
gradients, whose lowering for the CPU is cnnjax's (cnnjax.kernels.rewrites:
oneDNN, matrix products, patches) and for every other platform XLA's own.

Which kernel runs is decided when a program is lowered, for the platform it
is lowered for: one traced program lowered for a GPU or TPU holds XLA's
convolutions only, and one exported with `jax.export` holds no custom call
(export refuses custom calls it cannot vouch for), whatever the machine that
traced it. Whether oneDNN may be used is a parameter of each equation
(`onednn`), read from CNNJAX_ONEDNN when the program is traced: a traced
program means the same wherever and whenever it is lowered, and the caches
of lowered and compiled programs, keyed on the program, cannot mix the two.
(Set the variable before the process starts: a function jit has already
traced keeps what it was traced with.)

Every transformation works through them. With T(x, w, g) = <conv(x, w), g>
the three are its partial derivatives (conv = dT/dg, the input's gradient
dT/dx, the kernel's dT/dw), each bilinear: the derivative of each is two of
them applied to the tangents, and its transpose with respect to either
operand is one of the others. So grad, jvp, jacfwd/jacrev, Hessian-vector
products and grad of grad stay among the three (oneDNN's kernels on the
CPU). vmap over the maps folds the mapped axis into the batch; vmap of a
kernel (per-example kernel gradients, ensembles) is given to XLA's own
convolution, mapped by JAX: slower, the same values.

Only NHWC maps and HWIO kernels without dilation are taken (everything the
zoo's nn.Conv layers do); `conv_general_dilated` leaves anything else to
lax's.
"""

import functools
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax
from jax.core import ShapedArray
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir

from cnnjax.kernels import onednn as onednn_kernels
from cnnjax.kernels import rewrites

NHWC_HWIO = ((0, 3, 1, 2), (3, 2, 0, 1), (0, 3, 1, 2))  # lax's specs of ("NHWC", "HWIO", "NHWC").

# Parameters of every equation: window_strides (2), padding ((top, bottom),
# (left, right)), feature_group_count, precision (as lax's), onednn (bool).
# The input's gradient adds input_size (height, width), the kernel's
# gradient window (height, width): what the other operand does not say.
conv_p = Primitive("cnnjax_conv")
conv_input_grad_p = Primitive("cnnjax_conv_input_grad")
conv_kernel_grad_p = Primitive("cnnjax_conv_kernel_grad")


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                         dimension_numbers=None, feature_group_count=1, batch_group_count=1,
                         precision=None, preferred_element_type=None) -> jax.Array:
  """lax.conv_general_dilated, as `cnnjax_conv` for NHWC inputs and HWIO
  kernels of one dtype without dilation (flax's nn.Conv: pass it as its
  `conv_general_dilated`), else lax's own."""
  nhwc = dimension_numbers is not None and (
      tuple(dimension_numbers.lhs_spec), tuple(dimension_numbers.rhs_spec),
      tuple(dimension_numbers.out_spec)) == NHWC_HWIO
  dilated = any(d != 1 for d in tuple(lhs_dilation or ()) + tuple(rhs_dilation or ()))
  if (not nhwc or dilated or batch_group_count != 1 or preferred_element_type is not None
      or lhs.dtype != rhs.dtype or not jnp.issubdtype(lhs.dtype, jnp.floating)):
    return lax.conv_general_dilated(
        lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation, dimension_numbers,
        feature_group_count, batch_group_count, precision, preferred_element_type)
  if isinstance(padding, str):
    padding = lax.padtype_to_pads(lhs.shape[1:3], rhs.shape[:2], window_strides, padding)
  return conv_p.bind(lhs, rhs, window_strides=tuple(window_strides),
                     padding=tuple(tuple(pair) for pair in padding),
                     feature_group_count=feature_group_count, precision=_hashable(precision),
                     onednn=onednn_kernels.requested())


def _hashable(precision):
  return tuple(precision) if isinstance(precision, list) else precision


# XLA's own, for other platforms, export, batching that cannot be folded and
# cnnjax.kernels.with_xla_primitives.

def xla_conv(x, w, *, window_strides, padding, feature_group_count, precision, onednn=False):
  del onednn
  return lax.conv_general_dilated(x, w, window_strides, padding,
                                  dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                  feature_group_count=feature_group_count, precision=precision)


def xla_conv_input_grad(g, w, *, input_size, **params):
  shape = (g.shape[0], *input_size, w.shape[2] * params["feature_group_count"])
  return jax.linear_transpose(lambda x: xla_conv(x, w, **params),
                              jax.ShapeDtypeStruct(shape, g.dtype))(g)[0]


def xla_conv_kernel_grad(x, g, *, window, **params):
  shape = (*window, x.shape[3] // params["feature_group_count"], g.shape[3])
  return jax.linear_transpose(lambda w: xla_conv(x, w, **params),
                              jax.ShapeDtypeStruct(shape, x.dtype))(g)[0]


# Shapes.

def _output_size(size, window, window_strides, padding):
  return tuple((n + low + high - k) // s + 1
               for n, k, s, (low, high) in zip(size, window, window_strides, padding))


def _conv_abstract(x, w, *, window_strides, padding, **params):
  rows, columns = _output_size(x.shape[1:3], w.shape[:2], window_strides, padding)
  return ShapedArray((x.shape[0], rows, columns, w.shape[3]), x.dtype)


def _input_grad_abstract(g, w, *, input_size, feature_group_count, **params):
  return ShapedArray((g.shape[0], *input_size, w.shape[2] * feature_group_count), g.dtype)


def _kernel_grad_abstract(x, g, *, window, feature_group_count, **params):
  return ShapedArray((*window, x.shape[3] // feature_group_count, g.shape[3]), x.dtype)


conv_p.def_abstract_eval(_conv_abstract)
conv_input_grad_p.def_abstract_eval(_input_grad_abstract)
conv_kernel_grad_p.def_abstract_eval(_kernel_grad_abstract)


# Derivatives: each primitive is bilinear (ad.defbilinear: the jvp is the
# primitive of each tangent with the other primal); the transpose with
# respect to either operand is another of the three.

def _common(params: dict[str, Any]) -> dict[str, Any]:
  return {key: value for key, value in params.items() if key not in ("input_size", "window")}


def _input_grad(g, w, x_aval, params):
  return conv_input_grad_p.bind(g, w, input_size=tuple(x_aval.shape[1:3]), **_common(params))


def _kernel_grad(x, g, w_aval, params):
  return conv_kernel_grad_p.bind(x, g, window=tuple(w_aval.shape[:2]), **_common(params))


def _conv(x, w, params):
  return conv_p.bind(x, w, **_common(params))


ad.defbilinear(conv_p,
               lambda ct, x, w, **params: _input_grad(ct, w, x.aval, params),
               lambda ct, x, w, **params: _kernel_grad(x, ct, w.aval, params))
ad.defbilinear(conv_input_grad_p,  # y = input_grad(g, w) = dT/dx: <y, ct> = T(ct, w, g).
               lambda ct, g, w, **params: _conv(ct, w, params),
               lambda ct, g, w, **params: _kernel_grad(ct, g, w.aval, params))
ad.defbilinear(conv_kernel_grad_p,  # y = kernel_grad(x, g) = dT/dw: <y, ct> = T(x, ct, g).
               lambda ct, x, g, **params: _input_grad(g, ct, x.aval, params),
               lambda ct, x, g, **params: _conv(x, ct, params))


# Batching: where only the maps are mapped, the mapped axis joins the batch
# (the same kernels); otherwise XLA's convolution, mapped by JAX.

def _batching(primitive, fallback, maps_operand):
  def rule(operands, axes, **params):
    others = [axis for index, axis in enumerate(axes) if index != maps_operand]
    if maps_operand is not None and axes[maps_operand] is not None and others == [None]:
      maps = jnp.moveaxis(operands[maps_operand], axes[maps_operand], 0)
      folded = list(operands)
      folded[maps_operand] = maps.reshape(-1, *maps.shape[2:])
      result = primitive.bind(*folded, **params)
      return result.reshape(maps.shape[0], -1, *result.shape[1:]), 0
    return jax.vmap(functools.partial(fallback, **params), in_axes=tuple(axes))(*operands), 0
  batching.primitive_batchers[primitive] = rule


_batching(conv_p, xla_conv, 0)
_batching(conv_input_grad_p, xla_conv_input_grad, 0)
# The kernel's gradient sums over the batch: nothing can be folded into it.
_batching(conv_kernel_grad_p, xla_conv_kernel_grad, None)


def eager(primitive: Primitive, *operands, **params):
  """An equation run outside jit, compiled on its own as lax's are (the
  implementation of cnnjax's primitives)."""
  return _compiled(primitive, tuple(sorted(params.items())), *operands)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _compiled(primitive, params, *operands):
  return primitive.bind(*operands, **dict(params))


# Lowerings: XLA's everywhere but on the CPU.

def _lowering(implementation):
  def rule(ctx: mlir.LoweringRuleContext, *operands, onednn, **params):
    # A program exported with jax.export must hold no custom call of ours.
    onednn = onednn and not ctx.module_context.lowering_parameters.for_export
    return mlir.lower_fun(functools.partial(implementation, onednn=onednn),
                          multiple_results=False)(ctx, *operands, **params)
  return rule


for _primitive, _xla, _cpu in [(conv_p, xla_conv, rewrites.conv),
                               (conv_input_grad_p, xla_conv_input_grad, rewrites.conv_input_grad),
                               (conv_kernel_grad_p, xla_conv_kernel_grad,
                                rewrites.conv_kernel_grad)]:
  _primitive.def_impl(functools.partial(eager, _primitive))
  mlir.register_lowering(_primitive, _lowering(_xla))
  mlir.register_lowering(_primitive, _lowering(_cpu), platform="cpu")
