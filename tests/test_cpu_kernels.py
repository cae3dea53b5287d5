"""cnnjax's convolution and max-pool primitives (cnnjax.kernels) compute XLA's
results and gradients: bitwise where the sums are the same, to rounding
where they are taken in another order. The CPU forms without oneDNN are
tested with CNNJAX_ONEDNN=0 (as where it cannot be built); oneDNN's in
test_onednn.py. Which kernel runs is decided when a program is lowered, for
the platform it is lowered for."""

import ast
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from cnnjax import kernels
from cnnjax.bench import timing as bench_timing
from cnnjax.training import steps

NUMBERS = ("NHWC", "HWIO", "NHWC")
ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture
def without_onednn(monkeypatch):
  """Programs traced in the test ask for XLA's convolutions where oneDNN's would run."""
  monkeypatch.setenv("CNNJAX_ONEDNN", "0")


def _cpu_program(function, *args) -> str:
  return jax.jit(function).lower(*args).as_text()


def _same_with_gradients(ours, xla, x, w):
  """ours(x, w) == xla(x, w) to rounding, and so are both gradients."""
  weights = jax.random.normal(jax.random.key(2), jax.eval_shape(xla, x, w).shape)
  results = lambda conv: jax.jit(lambda x, w: (conv(x, w), jax.grad(
      lambda x, w: jnp.sum(weights * conv(x, w)), (0, 1))(x, w)))(x, w)
  for a, b in zip(jax.tree.leaves(results(ours)), jax.tree.leaves(results(xla)), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4)


def _convolutions(shape, kernel, strides, padding, groups=1):
  numbers = jax.lax.conv_dimension_numbers(shape, kernel, NUMBERS)
  ours = lambda x, w: kernels.conv_general_dilated(
      x, w, strides, padding, dimension_numbers=numbers, feature_group_count=groups)
  xla = lambda x, w: jax.lax.conv_general_dilated(
      x, w, strides, padding, dimension_numbers=numbers, feature_group_count=groups)
  return ours, xla


def _operands(shape, kernel):
  return jax.random.normal(jax.random.key(0), shape), jax.random.normal(jax.random.key(1), kernel)


@pytest.mark.parametrize("shape, kernel, strides, padding, groups", [
    ((2, 9, 9, 6), (3, 3, 2, 6), (2, 2), "VALID", 3),  # Each group's 4x4 map as patches.
])
def test_grouped_convolutions_are_convolved_group_by_group(shape, kernel, strides, padding,
                                                           groups, without_onednn):
  x, w = _operands(shape, kernel)
  ours, xla = _convolutions(shape, kernel, strides, padding, groups)
  assert "feature_group_count" not in _cpu_program(ours, x, w)
  _same_with_gradients(ours, xla, x, w)


@pytest.mark.parametrize("shape, kernel, strides, padding", [
    ((2, 2, 2, 256), (3, 3, 256, 8), (1, 1), ((1, 1), (1, 1))),  # ResNet-18's conv4 at 32x32.
    ((2, 4, 4, 128), (3, 3, 128, 8), (2, 2), ((1, 1), (1, 1))),  # Its downsampling into it.
    ((2, 3, 4, 20), (3, 3, 20, 4), (2, 2), "VALID"),  # A 1x1 map from a 3x4 one.
    ((2, 4, 4, 8), (3, 3, 8, 4), (1, 1), "SAME"),  # 4x4, the largest map rewritten.
    ((2, 9, 9, 8), (1, 1, 8, 4), (1, 1), "VALID"),  # 1x1 kernels on maps of any size.
    ((2, 9, 7, 8), (1, 1, 8, 4), (2, 2), "SAME"),  # ResNet's projections: stride 2, odd sides.
    ((2, 5, 5, 4), (3, 3, 4, 4), (1, 1), ((-1, 0), (0, -1))),  # Cropped to a 2x2 map.
    ((2, 6, 6, 4), (3, 3, 4, 4), (1, 1), ((-1, 1), (1, -1))),  # Cropped, 4x4.
])
def test_rewritten_convolutions_match_xlas_with_their_gradients(shape, kernel, strides, padding,
                                                               without_onednn):
  x, w = _operands(shape, kernel)
  ours, xla = _convolutions(shape, kernel, strides, padding)
  gradients = jax.grad(lambda x, w: jnp.sum(ours(x, w)), (0, 1))
  assert "convolution" not in _cpu_program(gradients, x, w)
  _same_with_gradients(ours, xla, x, w)


@pytest.mark.parametrize("shape, kernel, padding", [
    ((1, 5, 5, 2), (3, 3, 2, 8), "SAME"),
    ((1, 8, 8, 64), (3, 3, 64, 8), "SAME"),
    ((1, 8, 8, 64), (1, 1, 64, 8), ((1, 1), (1, 1))),  # A padded 1x1 (not in the zoo).
])
def test_larger_maps_keep_xlas_convolution(shape, kernel, padding, without_onednn):
  ours, _ = _convolutions(shape, kernel, (1, 1), padding)
  assert "stablehlo.convolution" in _cpu_program(ours, jnp.ones(shape), jnp.ones(kernel))


def test_with_xla_primitives_traces_lax_convolutions_and_pools():
  """What cnnjax.analysis reads: XLA's own primitives, where cnnjax's are otherwise."""
  x, w = jnp.ones((1, 2, 2, 256)), jnp.ones((3, 3, 256, 8))
  conv, _ = _convolutions(x.shape, w.shape, (1, 1), "SAME")
  program = lambda x, w: kernels.max_pool(conv(x, w), (2, 2), (2, 2))
  xla = str(jax.make_jaxpr(kernels.with_xla_primitives(program))(x, w))
  assert "conv_general_dilated" in xla and "reduce_window_max" in xla and "cnnjax" not in xla
  ours = str(jax.make_jaxpr(program)(x, w))
  assert "cnnjax_conv" in ours and "cnnjax_max_pool" in ours
  assert "conv_general_dilated" not in ours and "reduce_window_max" not in ours


@pytest.mark.parametrize("shape, window, strides, padding", [
    ((2, 9, 9, 3), (2, 2), (2, 2), "VALID"),  # LeNet-5's S2 and S4, and an odd side.
])
def test_max_pool_without_overlap_is_bitwise_xlas_with_ties(shape, window, strides, padding):
  # Quarter steps and ReLU's zeros tie often; each window's gradient goes to
  # its first maximum, as select_and_scatter sends it.
  x = nn.relu(jnp.round(4 * jax.random.normal(jax.random.key(0), shape)) / 4)
  ours = lambda x: kernels.max_pool(x, window, strides, padding)
  xla = lambda x: nn.max_pool(x, window, strides, padding)
  assert "reduce_window" not in _cpu_program(jax.grad(lambda x: jnp.sum(ours(x))), x)
  np.testing.assert_array_equal(jax.jit(ours)(x), jax.jit(xla)(x))
  weights = jax.random.normal(jax.random.key(1), xla(x).shape)
  gradient = lambda pool: jax.jit(jax.grad(lambda x: jnp.sum(weights * pool(x))))(x)
  np.testing.assert_array_equal(gradient(ours), gradient(xla))


@pytest.mark.parametrize("shape, window, strides, padding", [
    ((2, 16, 16, 4), (3, 3), (2, 2), ((1, 1), (1, 1))),  # ResNet's and DenseNet's stem.
    ((2, 9, 9, 4), (3, 3), (1, 1), "SAME"),  # GoogLeNet's pool branch.
    ((2, 7, 7, 4), (3, 3), (2, 2), ((0, 1), (0, 1))),  # Ceil mode's overhanging window.
])
def test_overlapping_max_pool_matches_xlas_to_rounding(shape, window, strides, padding):
  x = jnp.round(4 * jax.random.normal(jax.random.key(0), shape)) / 4
  ours = lambda x: kernels.max_pool(x, window, strides, padding)
  xla = lambda x: nn.max_pool(x, window, strides, padding)
  np.testing.assert_array_equal(jax.jit(ours)(x), jax.jit(xla)(x))
  weights = jax.random.normal(jax.random.key(1), xla(x).shape)
  gradient = lambda pool: jax.jit(jax.grad(lambda x: jnp.sum(weights * pool(x))))(x)
  np.testing.assert_allclose(gradient(ours), gradient(xla), rtol=1e-6, atol=1e-6)


def test_a_cropping_max_pool_is_xlas_on_the_cropped_maps():
  # XLA pools with negative padding, but JAX cannot differentiate it.
  x = jax.random.normal(jax.random.key(0), (2, 7, 6, 4))
  ours = lambda x: kernels.max_pool(x, (3, 3), (2, 2), ((-1, -1), (0, -1)))
  xla = lambda x: nn.max_pool(x[:, 1:-1, :-1], (3, 3), (2, 2))
  np.testing.assert_array_equal(jax.jit(ours)(x), jax.jit(xla)(x))
  weights = jax.random.normal(jax.random.key(1), xla(x).shape)
  gradient = lambda pool: jax.jit(jax.grad(lambda x: jnp.sum(weights * pool(x))))(x)
  np.testing.assert_allclose(gradient(ours), gradient(xla), rtol=1e-6, atol=1e-6)


def _assert_close(ours, xla):
  for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(xla), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * float(np.max(np.abs(b)) + 1))


def _network(conv, pool):
  """A small network with a layer of each way they are lowered: oneDNN where
  built (8x8 maps), two groups, an overlapping max pool, patches (a 2x2 map),
  a matrix product (a 1x1 kernel). Its function of (x, w1, w2, w3), x and ws."""
  keys = jax.random.split(jax.random.key(0), 4)
  ws = (jax.random.normal(keys[0], (3, 3, 2, 6)), jax.random.normal(keys[1], (3, 3, 6, 5)),
        jax.random.normal(keys[2], (1, 1, 5, 3)))

  def logits(x, w1, w2, w3):
    y = jnp.tanh(conv(x, w1, (1, 1), "SAME", 2))
    y = pool(y, (3, 3), (2, 2), ((1, 1), (1, 1)))  # 4x4.
    y = jnp.tanh(conv(y, w2, (2, 2), "SAME", 1))  # 2x2.
    return conv(y, w3, (1, 1), "VALID", 1).mean(axis=(1, 2))

  return logits, jax.random.normal(keys[3], (2, 8, 8, 4)), ws


def _ours(x, w, strides, padding, groups):
  numbers = jax.lax.conv_dimension_numbers(x.shape, w.shape, NUMBERS)
  return kernels.conv_general_dilated(x, w, strides, padding, dimension_numbers=numbers,
                                      feature_group_count=groups)


def _xla(x, w, strides, padding, groups):
  return jax.lax.conv_general_dilated(x, w, strides, padding, dimension_numbers=NUMBERS,
                                      feature_group_count=groups)


def _directions(x):
  return jax.random.normal(jax.random.key(5), (3, *x.shape))


TRANSFORMATIONS = {
    "grad": lambda f, x, ws: jax.grad(lambda ws: jnp.sum(f(x, *ws) ** 2))(ws),
    "jvp": lambda f, x, ws: jax.jvp(lambda x, ws: f(x, *ws), (x, ws), (x, ws))[1],
    "hessian_vector": lambda f, x, ws: jax.jvp(
        jax.grad(lambda x, ws: jnp.sum(jnp.sin(f(x, *ws))), (0, 1)), (x, ws), (x, ws))[1],
    "grad_of_grad": lambda f, x, ws: jax.grad(lambda ws: jnp.sum(jax.grad(
        lambda x: jnp.sum(f(x, *ws) ** 2))(x) ** 2))(ws),
    "vmap_of_grad": lambda f, x, ws: jax.vmap(jax.grad(
        lambda ws, x: jnp.sum(f(x[None], *ws) ** 2)), (None, 0))(ws, x),
    "vmap_over_kernels": lambda f, x, ws: jax.vmap(lambda w1: f(x, w1, *ws[1:]))(
        jnp.stack([ws[0], -ws[0]])),
    "jacfwd": lambda f, x, ws: jax.jacfwd(
        lambda u: f(x + jnp.tensordot(u, _directions(x), 1), *ws))(jnp.zeros(3)),
    "jacrev": lambda f, x, ws: jax.jacrev(lambda x: f(x, *ws))(x),
}


@pytest.mark.parametrize("transformation", sorted(TRANSFORMATIONS))
def test_every_transformation_of_every_layer_kind_matches_xla(transformation):
  ours, x, ws = _network(_ours, kernels.max_pool)
  xla, _, _ = _network(_xla, nn.max_pool)
  transform = TRANSFORMATIONS[transformation]
  _assert_close(jax.jit(lambda x, ws: transform(ours, x, ws))(x, ws),
                jax.jit(lambda x, ws: transform(xla, x, ws))(x, ws))


def test_eager_calls_and_export_match_xla():
  ours, x, ws = _network(_ours, kernels.max_pool)
  xla, _, _ = _network(_xla, nn.max_pool)
  _assert_close(ours(x, *ws), xla(x, *ws))  # Op by op, outside jit.
  loss = lambda f: jax.jit(jax.value_and_grad(lambda x, *ws: jnp.sum(f(x, *ws) ** 2), (0, 1)))
  exported = jax.export.export(loss(ours))(x, *ws)
  assert "stablehlo.custom_call" not in exported.mlir_module()  # Export refuses unknown ones.
  restored = jax.export.deserialize(exported.serialize())
  _assert_close(restored.call(x, *ws), loss(xla)(x, *ws))


def _train_step_program(model: str):
  """The real training step (as `cnnjax bench` builds it) on one device, as jit
  of shard_map, the way pmap runs it: its traced program, lowered on demand."""
  case = bench_timing.Case(model, 32, 1, 10, 4, "float32", steps=None, repeats=1)
  step = bench_timing._build_step(case, 1, lambda text: None)
  one = lambda tree: jax.tree.map(lambda leaf: np.asarray(leaf)[0], tree)  # On the host.
  mesh = Mesh(jax.devices()[:1], (steps.AXIS,))
  mapped = jax.jit(jax.shard_map(step.train_step, mesh=mesh, in_specs=(P(), P(steps.AXIS), P()),
                                 out_specs=P(), check_vma=False))
  return mapped.trace(one(step.state), one(step.batch), one(step.rng))


def test_the_kernel_is_chosen_for_the_platform_a_program_is_lowered_for():
  traced = _train_step_program("lenet5_modern")
  for platform in ("cuda", "rocm", "tpu"):
    program = traced.lower(lowering_platforms=(platform,)).as_text()
    assert "cnnjax" not in program, platform
    assert "stablehlo.convolution" in program and "select_and_scatter" in program, platform
  program = traced.lower(lowering_platforms=("cpu",)).as_text()
  assert "select_and_scatter" not in program  # The max pools' gradients as comparisons.
  if kernels.onednn_available():
    assert "cnnjax_onednn_conv" in program


def test_models_reach_the_kernels_through_layers_only():
  for path in sorted((ROOT / "cnnjax" / "models").glob("*.py")):
    if path.name == "layers.py":
      continue
    imported = set()
    for node in ast.walk(ast.parse(path.read_text())):
      if isinstance(node, ast.Import):
        imported |= {alias.name for alias in node.names}
      elif isinstance(node, ast.ImportFrom) and node.module:
        imported |= {f"{node.module}.{alias.name}" for alias in node.names}
    assert not any(name.startswith("cnnjax.kernels") for name in imported), path.name
