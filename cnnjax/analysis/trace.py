"""One abstract forward pass of a model, as module calls and equations that
carry receptive fields.

`trace(model, variables, images)` runs `model.apply(..., train=False)` under
`jax.make_jaxpr` (nothing is computed) with a Flax method interceptor that
records every module's `__call__` (its path, class, parent and output shape)
and opens a `jax.named_scope` for it, so each equation of the jaxpr names the
module call it ran in. Then every equation is visited in execution order,
inside nested calls (jit, custom_jvp, ...) too, and each value that depends on
the images gets its receptive field and jump along the image's height and
width (cnnjax.analysis.arithmetic):

- convolutions and windowed reductions (pooling, response normalisation)
  grow them by the recurrence r += (k - 1) d j, j *= s;
- a reduction, contraction or reshape that merges an image axis away (global
  pooling, flattening before a dense layer) covers the whole map: r += (n - 1) j;
- a strided slice multiplies the jump (ResNet's option-A shortcut);
- element-wise operations and concatenations take the largest field of their
  inputs (a residual sum, an Inception module's branches);
- values that do not depend on the images (parameters, constants) and
  statistics over the batch carry none.

An image-dependent value through a primitive not listed here is a
UserError naming it (exit status 2), rather than a silently wrong field.
"""

import dataclasses
import math
import re
from typing import Any

import jax
from flax import linen as nn
from jax.extend import core

from cnnjax import kernels
from cnnjax.errors import UserError

SCOPE_PREFIX = "cnnjax_summary_call"
_SCOPE = re.compile(SCOPE_PREFIX + r"(\d+)")


@dataclasses.dataclass(frozen=True)
class Extent:
  """Where the image's height (or width) lies in a value, and its field.
  `axis` is None once the axis has been merged away (pooled, flattened)."""

  axis: int | None
  field: int
  jump: int

  def grown(self, kernel: int, stride: int, dilation: int, axis: int | None) -> "Extent":
    return Extent(axis, self.field + (kernel - 1) * dilation * self.jump, self.jump * stride)

  def merged(self, size: int) -> "Extent":
    """Every position of an axis of `size` read at once."""
    return Extent(None, self.field + (size - 1) * self.jump, self.jump)


@dataclasses.dataclass(frozen=True)
class State:
  """What an image-dependent value knows of the image: where its batch axis is
  (None once merged) and the height and width extents."""

  batch: int | None
  height: Extent
  width: Extent

  @property
  def extents(self) -> tuple[Extent, Extent]:
    return self.height, self.width

  def mapped(self, place) -> "State":
    """Each axis a moved to place(a) (None: merged away, see Extent.merged)."""
    def move(extent):
      return extent if extent.axis is None else dataclasses.replace(extent, axis=place(extent.axis))

    batch = None if self.batch is None else place(self.batch)
    return State(batch, move(self.height), move(self.width))


@dataclasses.dataclass
class ModuleCall:
  index: int
  path: tuple[str, ...]
  module: nn.Module
  parent: int | None
  output_shape: tuple[int, ...] = ()


@dataclasses.dataclass
class Equation:
  """One primitive the forward pass ran, in order: `call` is the index of
  the innermost module call it ran in; `inputs` are the states of its
  operands (None: not image-dependent), `output` that of its first result."""

  position: int
  call: int
  eqn: core.JaxprEqn
  inputs: list[State | None]
  output: State | None
  operand_producer: str | None  # The primitive that made operand 0 (None: an input).


@dataclasses.dataclass
class Trace:
  calls: list[ModuleCall]
  equations: list[Equation]
  output: State
  output_shape: tuple[int, ...]


def trace(model: nn.Module, variables: Any, images: jax.ShapeDtypeStruct) -> Trace:
  calls: list[ModuleCall] = []
  stack: list[int] = []

  def interceptor(next_fun, args, kwargs, context):
    if context.method_name != "__call__":
      return next_fun(*args, **kwargs)
    call = ModuleCall(len(calls), tuple(context.module.path), context.module,
                      stack[-1] if stack else None)
    calls.append(call)
    stack.append(call.index)
    try:
      with jax.named_scope(f"{SCOPE_PREFIX}{call.index}"):
        output = next_fun(*args, **kwargs)
    finally:
      stack.pop()
    leaves = [leaf for leaf in jax.tree.leaves(output) if hasattr(leaf, "shape")]
    call.output_shape = tuple(leaves[0].shape) if leaves else ()
    return output

  def forward(variables, images):
    with nn.intercept_methods(interceptor):
      return model.apply(variables, images, train=False)

  # Windows and strides are read from XLA's primitives.
  closed = jax.make_jaxpr(kernels.with_xla_primitives(forward))(variables, images)
  batch, height, width, _ = range(4)
  image = State(batch, Extent(height, 1, 1), Extent(width, 1, 1))
  walker = _Walker()
  states, _ = walker.walk(closed.jaxpr, [None] * len(jax.tree.leaves(variables)) + [image], ())
  return Trace(calls, walker.equations, states[0], tuple(closed.jaxpr.outvars[0].aval.shape))


class _Walker:
  """Visits equations in order, recursing into nested jaxprs."""

  def __init__(self):
    self.equations: list[Equation] = []

  def walk(self, jaxpr: core.Jaxpr, inputs: list[State | None], scopes: tuple[int, ...]
           ) -> tuple[list[State | None], list[str | None]]:
    """The states of `jaxpr`'s outputs, and the primitive that made each."""
    states: dict[core.Var, State] = {}
    producers: dict[core.Var, str] = {}
    for var, state in zip(jaxpr.invars, inputs):
      if state is not None:
        states[var] = state
    for eqn in jaxpr.eqns:
      inner_scopes = scopes + tuple(int(i) for i in _SCOPE.findall(str(eqn.source_info.name_stack)))
      operands = [states.get(var) if isinstance(var, core.Var) else None for var in eqn.invars]
      nested = _nested_jaxpr(eqn)
      if nested is not None:
        outputs, made_by = self.walk(nested, operands, inner_scopes)
      else:
        output = _propagate(eqn, operands) if any(operands) else None
        outputs, made_by = [output] * len(eqn.outvars), [eqn.primitive.name] * len(eqn.outvars)
        first = eqn.invars[0] if eqn.invars else None
        self.equations.append(Equation(
            len(self.equations), inner_scopes[-1] if inner_scopes else 0, eqn, operands, output,
            producers.get(first) if isinstance(first, core.Var) else None))
      for var, state, producer in zip(eqn.outvars, outputs, made_by):
        producers[var] = producer
        if state is not None:
          states[var] = state
    outputs = [var if isinstance(var, core.Var) else None for var in jaxpr.outvars]
    return [states.get(var) for var in outputs], [producers.get(var) for var in outputs]


def _nested_jaxpr(eqn: core.JaxprEqn) -> core.Jaxpr | None:
  """The body of a call-like equation (jit, custom_jvp, custom_vjp, remat),
  whose inputs are the equation's; None for any other equation (a generic
  reduce_window's reducer is a jaxpr too, but not a call)."""
  if eqn.primitive.name.startswith(("reduce", "scan", "while", "cond")):
    return None
  for key in ("jaxpr", "call_jaxpr", "fun_jaxpr"):
    value = eqn.params.get(key)
    body = value.jaxpr if isinstance(value, core.ClosedJaxpr) else value
    if isinstance(body, core.Jaxpr) and len(body.invars) == len(eqn.invars):
      return body
  return None


def _merge(states: list[State | None]) -> State:
  """Element-wise and concatenating operations: the widest field of the inputs."""
  present = [state for state in states if state is not None]
  first = present[0]
  def widest(extents):
    return Extent(extents[0].axis, max(e.field for e in extents), max(e.jump for e in extents))
  return State(first.batch, widest([s.height for s in present]), widest([s.width for s in present]))


def _windowed(state: State, kernels, strides, dilations, place=lambda axis: axis) -> State:
  def grow(extent):
    if extent.axis is None:
      return extent
    a = extent.axis
    return extent.grown(kernels[a], strides[a], dilations[a], place(a))
  batch = None if state.batch is None else place(state.batch)
  return State(batch, grow(state.height), grow(state.width))


def _merge_axes(state: State, axes, shape) -> State | None:
  """`axes` of a value of `shape` read at once and removed (a reduction)."""
  if state.batch in axes:
    return None  # A statistic over the batch (BatchNorm's), not a feature of one image.
  def place(axis):
    return axis - sum(1 for removed in axes if removed < axis)
  def reduce(extent):
    if extent.axis in axes:
      return extent.merged(shape[extent.axis])
    return extent if extent.axis is None else dataclasses.replace(extent, axis=place(extent.axis))
  return State(place(state.batch) if state.batch is not None else None,
               reduce(state.height), reduce(state.width))


def _reshaped(state: State, old: tuple[int, ...], new: tuple[int, ...]) -> State:
  """An axis survives a reshape when the new shape has an axis of the same
  size starting at the same flat offset; otherwise it is merged away."""
  def place(axis):
    before = math.prod(old[:axis])
    for candidate in range(len(new)):
      if new[candidate] == old[axis] > 1 and math.prod(new[:candidate]) == before:
        return candidate
    return None
  def reshape(extent):
    if extent.axis is None:
      return extent
    target = place(extent.axis)
    return extent.merged(old[extent.axis]) if target is None else dataclasses.replace(
        extent, axis=target)
  batch = None if state.batch is None else place(state.batch)
  return State(batch, reshape(state.height), reshape(state.width))


def _dot(eqn: core.JaxprEqn, operands: list[State | None]) -> State | None:
  (contract_lhs, contract_rhs), (batch_lhs, batch_rhs) = eqn.params["dimension_numbers"]
  shapes = [var.aval.shape for var in eqn.invars]
  results = []
  for side, state in enumerate(operands):
    if state is None:
      continue
    contracted, batched = (contract_lhs, batch_lhs) if side == 0 else (contract_rhs, batch_rhs)
    rank = len(shapes[side])
    free = [axis for axis in range(rank) if axis not in contracted and axis not in batched]
    offset = len(batched) + (0 if side == 0 else
                             len(shapes[0]) - len(contract_lhs) - len(batch_lhs))
    if state.batch in contracted:
      return None
    merged = State(state.batch, *(extent.merged(shapes[side][extent.axis])
                                  if extent.axis in contracted else extent
                                  for extent in state.extents))
    results.append(merged.mapped(
        lambda axis: list(batched).index(axis) if axis in batched else offset + free.index(axis)))
  return _merge(results)


def _propagate(eqn: core.JaxprEqn, operands: list[State | None]) -> State | None:
  """The state of the result of one primitive applied to image-dependent operands."""
  name, params = eqn.primitive.name, eqn.params
  shape_in = eqn.invars[0].aval.shape
  shape_out = eqn.outvars[0].aval.shape
  first = next(state for state in operands if state is not None)
  if name == "conv_general_dilated":
    if any(d != 1 for d in params["lhs_dilation"]) or operands[0] is None:
      raise UserError("cnnjax summary cannot follow receptive fields of transposed convolutions")
    lhs, rhs, out = params["dimension_numbers"]
    kernel_shape = eqn.invars[1].aval.shape
    rank = len(shape_in)
    kernels, strides, dilations = [1] * rank, [1] * rank, [1] * rank
    for i, axis in enumerate(lhs[2:]):
      kernels[axis] = kernel_shape[rhs[2 + i]]
      strides[axis] = params["window_strides"][i]
      dilations[axis] = params["rhs_dilation"][i]
    return _windowed(operands[0], kernels, strides, dilations,
                     lambda axis: out[list(lhs).index(axis)])
  if name.startswith("reduce_window"):
    if any(d != 1 for d in params["base_dilation"]):
      raise UserError(f"cnnjax summary cannot follow receptive fields through a dilated-base "
                      f"{name}")
    return _windowed(first, params["window_dimensions"], params["window_strides"],
                     params["window_dilation"])
  if name in ("reduce_sum", "reduce_max", "reduce_min", "reduce_prod", "argmax", "argmin"):
    return _merge_axes(first, tuple(params["axes"]), shape_in)
  if name == "dot_general":
    return _dot(eqn, operands)
  if name == "transpose":
    permutation = list(params["permutation"])
    return first.mapped(permutation.index)
  if name == "reshape":
    if params.get("dimensions") is not None:
      raise UserError("cnnjax summary cannot follow receptive fields through a transposing reshape")
    return first if shape_in == shape_out else _reshaped(first, shape_in, shape_out)
  if name == "squeeze":
    return _merge_axes(first, tuple(params["dimensions"]), shape_in)
  if name == "broadcast_in_dim":
    dimensions = params["broadcast_dimensions"]
    return first.mapped(lambda axis: dimensions[axis])
  if name == "slice":
    strides = params["strides"] or (1,) * len(shape_in)
    return _windowed(first, (1,) * len(shape_in), strides, (1,) * len(shape_in))
  if name == "pad":
    if any(interior for _, _, interior in params["padding_config"]):
      raise UserError("cnnjax summary cannot follow receptive fields through interior padding")
    return first  # Border padding moves no unit's field (ResNet's option-A new maps).
  if name == "concatenate" or shape_out == shape_in or all(
      var.aval.shape in (shape_out, ()) for var in eqn.invars):
    return _merge(operands)  # Element-wise, padding, concatenation along channels.
  raise UserError(f"cnnjax summary cannot follow receptive fields through the primitive {name!r}")
