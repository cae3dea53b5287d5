"""The CPU rewrites of convolution and max pooling (cnnjax.kernels.rewrites)
compute XLA's results and gradients: bitwise where the sums are the same,
to rounding where they are taken in another order. The XLA-only rewrites are
tested with oneDNN off (as where it cannot be built); oneDNN's convolutions
on their own."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from cnnjax.kernels import rewrites as cpu_kernels

NUMBERS = ("NHWC", "HWIO", "NHWC")


@pytest.fixture
def without_onednn(monkeypatch):
  monkeypatch.setattr(cpu_kernels.onednn, "available", lambda: False)


def _same_with_gradients(ours, xla, x, w):
  """ours(x, w) == xla(x, w) to rounding, and so are both gradients (compiled:
  run op by op, the many slices of the rewrites take seconds)."""
  weights = jax.random.normal(jax.random.key(2), jax.eval_shape(xla, x, w).shape)
  results = lambda conv: jax.jit(lambda x, w: (conv(x, w), jax.grad(
      lambda x, w: jnp.sum(weights * conv(x, w)), (0, 1))(x, w)))(x, w)
  for a, b in zip(jax.tree.leaves(results(ours)), jax.tree.leaves(results(xla)), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4)


def _convolutions(shape, kernel, strides, padding, groups=1):
  numbers = jax.lax.conv_dimension_numbers(shape, kernel, NUMBERS)
  ours = lambda x, w: cpu_kernels.conv_general_dilated(
      x, w, strides, padding, dimension_numbers=numbers, feature_group_count=groups)
  xla = lambda x, w: jax.lax.conv_general_dilated(
      x, w, strides, padding, dimension_numbers=numbers, feature_group_count=groups)
  return ours, xla


@pytest.mark.parametrize("shape, kernel, strides, padding, groups", [
    ((2, 9, 9, 6), (3, 3, 2, 6), (2, 2), "VALID", 3),  # Each group's 4x4 map as patches.
])
def test_grouped_convolutions_are_convolved_group_by_group(shape, kernel, strides, padding,
                                                           groups, without_onednn):
  x = jax.random.normal(jax.random.key(0), shape)
  w = jax.random.normal(jax.random.key(1), kernel)
  ours, xla = _convolutions(shape, kernel, strides, padding, groups)
  assert f"feature_group_count={groups}" not in str(jax.make_jaxpr(ours)(x, w))
  _same_with_gradients(ours, xla, x, w)


@pytest.mark.parametrize("shape, kernel, strides, padding", [
    ((2, 2, 2, 256), (3, 3, 256, 8), (1, 1), ((1, 1), (1, 1))),  # ResNet-18's conv4 at 32x32.
    ((2, 4, 4, 128), (3, 3, 128, 8), (2, 2), ((1, 1), (1, 1))),  # Its downsampling into it.
    ((2, 3, 4, 20), (3, 3, 20, 4), (2, 2), "VALID"),  # A 1x1 map from a 3x4 one.
    ((2, 4, 4, 8), (3, 3, 8, 4), (1, 1), "SAME"),  # 4x4, the largest map rewritten.
    ((2, 9, 9, 8), (1, 1, 8, 4), (1, 1), "VALID"),  # 1x1 kernels on maps of any size.
    ((2, 9, 7, 8), (1, 1, 8, 4), (2, 2), "SAME"),  # ResNet's projections: stride 2, odd sides.
])
def test_rewritten_convolutions_match_xlas_with_their_gradients(shape, kernel, strides, padding,
                                                               without_onednn):
  x = jax.random.normal(jax.random.key(0), shape)
  w = jax.random.normal(jax.random.key(1), kernel)
  ours, xla = _convolutions(shape, kernel, strides, padding)
  assert "conv_general_dilated" not in str(jax.make_jaxpr(ours)(x, w))
  _same_with_gradients(ours, xla, x, w)


@pytest.mark.parametrize("shape, kernel, padding", [
    ((1, 5, 5, 2), (3, 3, 2, 8), "SAME"),
    ((1, 8, 8, 64), (3, 3, 64, 8), "SAME"),
    ((1, 8, 8, 64), (1, 1, 64, 8), ((1, 1), (1, 1))),  # A padded 1x1 (not in the zoo).
])
def test_larger_maps_keep_xlas_convolution(shape, kernel, padding, without_onednn):
  ours, _ = _convolutions(shape, kernel, (1, 1), padding)
  assert "conv_general_dilated" in str(jax.make_jaxpr(ours)(jnp.ones(shape), jnp.ones(kernel)))


def test_inside_xla_primitives_nothing_is_rewritten():
  x, w = jnp.ones((1, 2, 2, 256)), jnp.ones((3, 3, 256, 8))

  def program():  # Traced afresh each time: jax caches traces by function.
    conv, _ = _convolutions(x.shape, w.shape, (1, 1), "SAME")
    return str(jax.make_jaxpr(lambda x, w: cpu_kernels.max_pool(conv(x, w), (2, 2), (2, 2)))(x, w))

  with cpu_kernels.xla_primitives():
    assert "conv_general_dilated" in program() and "reduce_window_max" in program()
  assert "conv_general_dilated" not in program() and "reduce_window_max" not in program()


@pytest.mark.parametrize("shape, window, strides, padding", [
    ((2, 9, 9, 3), (2, 2), (2, 2), "VALID"),  # LeNet-5's S2 and S4, and an odd side.
])
def test_max_pool_without_overlap_is_bitwise_xlas_with_ties(shape, window, strides, padding):
  # Quarter steps and ReLU's zeros tie often; each window's gradient goes to
  # its first maximum, as select_and_scatter sends it.
  x = nn.relu(jnp.round(4 * jax.random.normal(jax.random.key(0), shape)) / 4)
  ours = lambda x: cpu_kernels.max_pool(x, window, strides, padding)
  xla = lambda x: nn.max_pool(x, window, strides, padding)
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
  ours = lambda x: cpu_kernels.max_pool(x, window, strides, padding)
  xla = lambda x: nn.max_pool(x, window, strides, padding)
  np.testing.assert_array_equal(jax.jit(ours)(x), jax.jit(xla)(x))
  weights = jax.random.normal(jax.random.key(1), xla(x).shape)
  gradient = lambda pool: jax.jit(jax.grad(lambda x: jnp.sum(weights * pool(x))))(x)
  np.testing.assert_allclose(gradient(ours), gradient(xla), rtol=1e-6, atol=1e-6)
