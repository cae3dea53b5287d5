"""A program with XLA's primitives in place of cnnjax's kernel primitives.

`with_xla_primitives(fun)` traces `fun` and evaluates its jaxpr with each
`cnnjax_conv*` and `cnnjax_max_pool*` equation replaced by the lax
operations XLA's own kernels run (lax.conv_general_dilated and its
transposes, reduce_window and its select-and-gather/scatter), everything
else bound as it was, at the same place in the program's name stack. What
needs that: cnnjax.analysis reads windows and strides from lax's
primitives; XLA's cost analysis cannot count the FLOPs of custom calls
(`cnnjax bench`, `cnnjax summary`); tests compare cnnjax's kernels with
XLA's under every transformation. It is a transformation like any other,
so no trace cache can confuse the two programs.

Equations that hold jaxprs (jit, custom derivatives, remat, control flow)
are evaluated the same way inside: calls are inlined, and control flow gets
its jaxprs rewritten.
"""

import functools
from typing import Callable

import jax
from jax.extend import core, source_info_util

from cnnjax.kernels import convolution, pooling

XLA_FORMS = {
    convolution.conv_p: convolution.xla_conv,
    convolution.conv_input_grad_p: convolution.xla_conv_input_grad,
    convolution.conv_kernel_grad_p: convolution.xla_conv_kernel_grad,
    pooling.max_pool_p: pooling.xla_max_pool,
    pooling.max_pool_tangent_p: pooling.xla_max_pool_tangent,
    pooling.max_pool_grad_p: pooling.xla_max_pool_grad,
}
CALLS = ("pjit", "jit", "closed_call", "core_call", "custom_jvp_call", "custom_vjp_call",
         "checkpoint", "remat")


def with_xla_primitives(fun: Callable) -> Callable:
  """`fun`, with cnnjax's convolutions and max pools traced as XLA's own
  primitives: the same values (to rounding), on every platform."""

  @functools.wraps(fun)
  def xla_fun(*args, **kwargs):
    closed, shapes = jax.make_jaxpr(functools.partial(fun, **kwargs), return_shape=True)(*args)
    outputs = _evaluate(closed.jaxpr, closed.consts, jax.tree.leaves(args))
    return jax.tree.unflatten(jax.tree.structure(shapes), outputs)

  return xla_fun


def _evaluate(jaxpr: core.Jaxpr, consts, args) -> list:
  values = {}

  def read(var):
    return var.val if isinstance(var, core.Literal) else values[var]

  values.update(zip(jaxpr.constvars, consts))
  values.update(zip(jaxpr.invars, args))
  for eqn in jaxpr.eqns:
    operands = [read(var) for var in eqn.invars]
    name_stack = source_info_util.current_name_stack() + eqn.source_info.name_stack
    with (source_info_util.user_context(eqn.source_info.traceback, name_stack=name_stack),
          eqn.ctx.manager):
      outputs = _equation(eqn, operands)
    for var, value in zip(eqn.outvars, outputs):
      if not isinstance(var, core.DropVar):
        values[var] = value
  return [read(var) for var in jaxpr.outvars]


def _equation(eqn: core.JaxprEqn, operands: list) -> list:
  if eqn.primitive in XLA_FORMS:
    return [XLA_FORMS[eqn.primitive](*operands, **eqn.params)]
  params = eqn.params
  if any(_holds_ours(jaxpr) for jaxpr in core.jaxprs_in_params(params)):
    body = _call_body(eqn)
    if body is not None:
      return _evaluate(body.jaxpr, body.consts, operands)
    params = {key: _rewritten(value) for key, value in params.items()}
  outputs = eqn.primitive.bind(*operands, **eqn.primitive.get_bind_params(params))
  return outputs if eqn.primitive.multiple_results else [outputs]


def _holds_ours(jaxpr: core.Jaxpr) -> bool:
  return any(eqn.primitive in XLA_FORMS or any(
      _holds_ours(inner) for inner in core.jaxprs_in_params(eqn.params)) for eqn in jaxpr.eqns)


def _call_body(eqn: core.JaxprEqn) -> core.ClosedJaxpr | None:
  """The body of a call (jit, custom derivatives, remat) whose inputs are the equation's."""
  if eqn.primitive.name not in CALLS:
    return None
  for key in ("jaxpr", "call_jaxpr", "fun_jaxpr"):
    value = eqn.params.get(key)
    if isinstance(value, core.Jaxpr):
      value = core.ClosedJaxpr(value, ())
    if isinstance(value, core.ClosedJaxpr) and len(value.jaxpr.invars) == len(eqn.invars):
      return value
  return None


def _rewritten(value):
  """A control-flow parameter with its jaxprs rewritten (other values as they are)."""
  if isinstance(value, tuple):
    return tuple(_rewritten(item) for item in value)
  if isinstance(value, core.ClosedJaxpr) and _holds_ours(value.jaxpr):
    shapes = [jax.ShapeDtypeStruct(var.aval.shape, var.aval.dtype) for var in value.jaxpr.invars]
    return jax.make_jaxpr(lambda *args: _evaluate(value.jaxpr, value.consts, args))(*shapes)
  return value
