"""The layer table of a network: one row per layer and per block, in the
order the forward pass runs them, and a totals row.

Rows come from one abstract forward pass (cnnjax.analysis.trace): every
module the network calls, and the pooling and normalisation it applies as
plain functions. A module of a known layer class (`LAYERS`) is one row; a
pooling or response normalisation outside such a module is one row named by
its kind; any other module is a block whose rows are indented under it, or,
holding a single row, that row under the block's name (AlexNet's conv1 is a
conv-activation unit around a convolution: one row, "conv1"). Modules that
compute nothing at inference (dropout) have no row.

The columns, for a batch of one image (the batch axis is left out):
- `output_shape`, `units`: the layer's output and its number of activations.
- `weights`: multiplicative parameters (kernels, BatchNorm scales, LeNet's
  subsampling coefficients); `biases`: additive ones; `params`: both, all
  trainable parameters. Only parameters that exist are counted: a grouped
  convolution (AlexNet's towers) has kernels for its own group's maps, LeNet-5's
  partially connected C3 has its 60 kernels of Table I.
- `connections`: input-to-output edges, biases excluded. A convolution:
  weights x output positions (each kernel weight is used once per position,
  so units x fan-in, where the fan-in counts only the maps that are
  connected); a locally connected or dense layer: its weights; pooling and
  subsampling: units x window; response normalisation: units x window (across
  maps or within a map); BatchNorm: units; global pooling: units x the map's
  positions.
- `macs`: forward multiplications by a trainable weight, each accumulated:
  a convolution, locally connected or dense layer's connections; one per unit
  for BatchNorm's scale and LeNet's subsampling coefficient; none for pooling,
  response normalisation and activations (arithmetic without weights, which
  torchvision's and the papers' figures leave out too).
- `receptive_field`, `jump`: the side of the input region that one output
  unit can see, and the input distance between adjacent output units (the
  product of the strides), from the arithmetic of cnnjax.analysis.arithmetic
  followed through every path of the network; an int where height and width
  agree, else [height, width]. A layer after the maps are flattened or
  globally pooled sees the whole map.
- The totals row (`name` and `type` "total") sums the layer rows (blocks are
  not counted twice); its shape, field and jump are the network output's.

The network is traced as it runs at inference (`train=False`), so modules
that run only in training are not rows: GoogLeNet's auxiliary classifiers
(LayerTable.unused_params reports what they hold). An adaptive average pool that is
not the identity (VGG and AlexNet at other than their native sizes) has no
row, and counts as covering the whole map.
"""

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn

from cnnjax import kernels, models
from cnnjax.analysis import trace as trace_lib
from cnnjax.models import lenet

COLUMNS = ("name", "type", "output_shape", "units", "weights", "biases", "params", "connections",
           "macs", "receptive_field", "jump")
# Module classes that are one layer each, by type; the order matters (ConvLocal
# before its base class).
LAYERS: tuple[tuple[type, str], ...] = (
    (nn.ConvLocal, "local"), (nn.Conv, "conv"), (lenet.PartialConv, "conv"),
    (nn.Dense, "dense"), (nn.BatchNorm, "batch_norm"), (lenet.Subsampling, "subsampling"))
SQUARES = ("square", "integer_pow", "mul")  # How x² reaches a response normalisation's window sum.


@dataclasses.dataclass
class Row:
  name: str
  type: str
  output_shape: tuple[int, ...]
  units: int
  weights: int
  biases: int
  params: int
  connections: int
  macs: int
  receptive_field: int | list[int]
  jump: int | list[int]
  depth: int = 0  # Nesting under blocks, for the table's indentation.
  is_block: bool = False

  def as_dict(self) -> dict:
    values = dataclasses.asdict(self)
    values["output_shape"] = list(self.output_shape)
    return {column: values[column] for column in COLUMNS}


@dataclasses.dataclass
class Model:
  """A registered model and the input it is summarised at."""

  name: str
  image_size: int
  channels: int
  num_classes: int
  options: dict


def default_input(name: str) -> tuple[int, int, int]:
  """(image size, channels, classes) as the registry describes the model:
  its native input; 10 classes for the MNIST/CIFAR-sized nets, 1000 for
  ImageNet's (as cnnjax.models.describe counts parameters)."""
  size = models.NATIVE_INPUT_SIZE[name]
  return size, models.NATIVE_INPUT_CHANNELS[name], 10 if size <= 32 else 1000


def build(spec: Model) -> tuple[nn.Module, Any, jax.ShapeDtypeStruct]:
  """The module, its abstract variables and an abstract batch of one image."""
  module = models.create_model(spec.name, num_classes=spec.num_classes, **spec.options)
  images = jax.ShapeDtypeStruct((1, spec.image_size, spec.image_size, spec.channels), jnp.float32)
  variables = jax.eval_shape(lambda x: module.init(jax.random.key(0), x, train=False), images)
  return module, variables, images


@dataclasses.dataclass
class LayerTable:
  """The rows, totals last, and the parameters no row holds: those of modules
  the inference pass never calls (GoogLeNet's auxiliary classifiers), summed
  by top-level module. The registry's count is the total's params plus these."""

  rows: list[Row]
  unused_params: dict[str, int]


def summarize(spec: Model) -> LayerTable:
  module, variables, images = build(spec)
  # Batch 2 in the trace, so the batch axis is never mistaken for a 1x1 map.
  traced = trace_lib.trace(module, variables,
                           jax.ShapeDtypeStruct((2, *images.shape[1:]), images.dtype))
  params = variables.get("params", {})
  called = {call.path for call in traced.calls}
  unused: dict[str, int] = {}
  for path, leaf in _leaves(params):
    if tuple(path[:-1]) not in called:
      unused[path[0]] = unused.get(path[0], 0) + leaf.size
  return LayerTable(_Table(traced, params).rows(), unused)


def xla_macs(spec: Model) -> float:
  """Half the flops of XLA's cost analysis of the lowered inference pass
  (batch 1; nothing is compiled or run), for comparison with the table's
  `macs`. XLA counts 2 flops per multiply-accumulate but skips the kernel taps
  that fall on zero padding, which the table (like torchvision and the
  papers) counts; it adds the element-wise work (activations, pooling,
  normalisation) that the table leaves out. Its count of LeNet-5's C3 is the
  dense 6->16 convolution that computes it, zero kernels included."""
  module, variables, images = build(spec)
  # The convolutions as XLA counts them, on any backend.
  forward = jax.jit(kernels.with_xla_primitives(
      lambda variables, images: module.apply(variables, images, train=False)))
  return forward.lower(variables, images).cost_analysis()["flops"] / 2


def _leaves(tree, path=()):
  if isinstance(tree, dict) or hasattr(tree, "items"):
    for key, value in tree.items():
      yield from _leaves(value, path + (key,))
  else:
    yield path, tree


def _plain(values: list[int]) -> int | list[int]:
  return values[0] if values[0] == values[1] else values


def _layer_kind(module: nn.Module) -> str | None:
  for cls, kind in LAYERS:
    if isinstance(module, cls):
      return kind
  return None


class _Table:
  """Turns a trace into rows: layer modules, function layers, blocks."""

  def __init__(self, traced: trace_lib.Trace, params: Any):
    self.traced, self.params = traced, params
    self.children: dict[int, list[int]] = {}
    for call in traced.calls:
      if call.parent is not None:
        self.children.setdefault(call.parent, []).append(call.index)
    self.by_call: dict[int, list[trace_lib.Equation]] = {}
    for equation in traced.equations:
      self.by_call.setdefault(equation.call, []).append(equation)

  def rows(self) -> list[Row]:
    rows = self._inner_rows(0, 0)  # Call 0 is the network's own __call__.
    leaves = [row for row in rows if not row.is_block]
    output = self.traced.output
    rows.append(Row("total", "total", self.traced.output_shape[1:],
                    *(sum(getattr(row, column) for row in leaves)
                      for column in ("units", "weights", "biases", "params", "connections",
                                     "macs")),
                    _plain([e.field for e in output.extents]),
                    _plain([e.jump for e in output.extents])))
    return rows

  # --- one module call and what it ran -------------------------------------

  def _subtree_equations(self, index: int) -> list[trace_lib.Equation]:
    found = list(self.by_call.get(index, []))
    for child in self.children.get(index, []):
      found += self._subtree_equations(child)
    return sorted(found, key=lambda equation: equation.position)

  def _rows(self, index: int, depth: int) -> list[Row]:
    """The rows of module call `index`: one layer, one block and its rows, or none."""
    call = self.traced.calls[index]
    name = "/".join(call.path)
    equations = self._subtree_equations(index)
    if not equations:
      return []  # Nothing computed: dropout at inference.
    kind = _layer_kind(call.module)
    if kind:
      return [self._layer_row(name, kind, call, equations, depth)]
    inner = self._inner_rows(index, depth + 1)
    if len(inner) == 1:
      return [dataclasses.replace(inner[0], name=name, depth=depth)]
    leaves = [row for row in inner if not row.is_block]
    field, jump = self._field(equations)
    block = Row(name, type(call.module).__name__, call.output_shape[1:],
                math.prod(call.output_shape[1:]),
                *(sum(getattr(row, column) for row in leaves)
                  for column in ("weights", "biases", "params", "connections", "macs")),
                field, jump, depth, is_block=True)
    return [block] + inner

  def _inner_rows(self, index: int, depth: int) -> list[Row]:
    """The rows inside call `index` (its own pooling and normalisation, its
    child modules), in the order the pass runs them."""
    parts = [(equation.position, [row]) for equation, row in self._function_rows(index, depth)]
    for child in self.children.get(index, []):
      child_rows = self._rows(child, depth)
      if child_rows:
        parts.append((self._subtree_equations(child)[0].position, child_rows))
    return [row for _, rows in sorted(parts, key=lambda part: part[0]) for row in rows]

  def _layer_row(self, name: str, kind: str, call: trace_lib.ModuleCall,
                 equations: list[trace_lib.Equation], depth: int) -> Row:
    weights = biases = 0
    params = self.params
    for part in call.path:
      params = params[part]
    for path, leaf in _leaves(params):
      if path[-1] == "bias":
        biases += leaf.size
      else:
        weights += leaf.size
    shape = call.output_shape[1:]
    units = math.prod(shape)
    if kind in ("conv", "dense"):  # Each weight once per output position.
      connections = weights * (units // shape[-1])
    elif kind == "local":  # A kernel per position: each weight once.
      connections = weights
    elif kind == "batch_norm":
      connections = units
    else:  # Subsampling: a window sum times a coefficient.
      window = next(e for e in equations if e.eqn.primitive.name.startswith("reduce_window"))
      connections = units * math.prod(window.eqn.params["window_dimensions"])
    macs = connections if kind in ("conv", "local", "dense") else units
    field, jump = self._field(equations)
    return Row(name, kind, shape, units, weights, biases, weights + biases, connections, macs,
               field, jump, depth)

  def _function_rows(self, index: int, depth: int):
    """(equation, row) for each pooling or normalisation that call `index`
    applies itself, outside any child module."""
    found = []
    for equation in self.by_call.get(index, []):
      kind = _function_kind(equation)
      if kind:
        found.append((equation, kind))
    counts = {}
    for _, kind in found:
      counts[kind] = counts.get(kind, 0) + 1
    seen, rows = {}, []
    prefix = "/".join(self.traced.calls[index].path)
    for equation, kind in found:
      seen[kind] = seen.get(kind, 0) + 1
      label = kind if counts[kind] == 1 else f"{kind}_{seen[kind]}"
      name = f"{prefix}/{label}" if prefix else label
      rows.append((equation, self._function_row(name, kind, equation, depth)))
    return rows

  def _function_row(self, name: str, kind: str, equation: trace_lib.Equation,
                    depth: int) -> Row:
    state = equation.output
    shape = [size for axis, size in enumerate(equation.eqn.outvars[0].aval.shape)
             if axis != state.batch]
    units = math.prod(shape)
    params = equation.eqn.params
    if kind.startswith("global"):
      operand = equation.eqn.invars[0].aval.shape
      window = math.prod(operand[axis] for axis in params["axes"])
    else:
      window = math.prod(params["window_dimensions"])
    return Row(name, kind, tuple(shape), units, 0, 0, 0, units * window, 0,
               _plain([e.field for e in state.extents]), _plain([e.jump for e in state.extents]),
               depth)

  @staticmethod
  def _field(equations: list[trace_lib.Equation]):
    """Field and jump of the last image-dependent value a module computed:
    its output."""
    last = next(e.output for e in reversed(equations) if e.output is not None)
    return _plain([e.field for e in last.extents]), _plain([e.jump for e in last.extents])


def _function_kind(equation: trace_lib.Equation) -> str | None:
  """The layer a primitive applied outside layer modules is, if any."""
  state = equation.inputs[0] if equation.inputs else None
  if state is None or equation.output is None:
    return None
  name, params = equation.eqn.primitive.name, equation.eqn.params
  spatial = {extent.axis for extent in state.extents if extent.axis is not None}
  if name.startswith("reduce_window"):
    windowed = {axis for axis, size in enumerate(params["window_dimensions"]) if size > 1}
    if not windowed:
      return None
    if name == "reduce_window_sum" and equation.operand_producer in SQUARES:
      # A window sum of squares: response normalisation (AlexNet §3.3;
      # cuda-convnet's rnorm when the window lies within a map).
      return "within_map_norm" if windowed <= spatial else "local_response_norm"
    return {"reduce_window_max": "max_pool", "reduce_window_sum": "avg_pool"}.get(name, "pool")
  if name in ("reduce_sum", "reduce_max") and spatial & set(params["axes"]):
    return "global_avg_pool" if name == "reduce_sum" else "global_max_pool"
  return None
