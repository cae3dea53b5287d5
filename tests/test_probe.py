"""The invariance probe (cnnjax.analysis.probe): convolution is shift
equivariant exactly where the theory says, striding breaks it in between,
and the image transforms do what they are named."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from cnnjax.analysis import probe

SIZE = 16


def _blob(sigma: float) -> np.ndarray:
  """A Gaussian of width `sigma` pixels at the image's centre."""
  centre = (SIZE - 1) / 2
  rows, columns = np.meshgrid(np.arange(SIZE), np.arange(SIZE), indexing="ij")
  return np.exp(-((rows - centre) ** 2 + (columns - centre) ** 2) / (2 * sigma**2))


def _images():
  return jax.random.normal(jax.random.key(0), (3, SIZE, SIZE, 2))


@pytest.mark.parametrize("padding", ["VALID", "SAME"])
@pytest.mark.parametrize("mode", ["wrap", "pad"])
def test_convolutions_are_equivariant_and_striding_only_at_multiples_of_the_stride(padding,
                                                                                   mode):
  first = nn.Conv(4, (3, 3), padding=padding)
  second = nn.Conv(4, (3, 3), strides=2, padding=padding)
  x = _images()
  p1 = first.init(jax.random.key(1), x)
  p2 = second.init(jax.random.key(2), first.apply(p1, x))
  layers = lambda images: (first.apply(p1, images),
                           second.apply(p2, jax.nn.relu(first.apply(p1, images))))
  before = [np.asarray(m) for m in layers(x)]
  for k in range(1, 5):
    after = [np.asarray(m) for m in layers(probe.shift(x, k, mode))]
    # Fields and jumps: 3 and 1, then 3 + 2 x 1 = 5 and 2.
    assert probe.equivariance_error(before[0], after[0], k, 3, 1, SIZE) < 1e-6
    error = probe.equivariance_error(before[1], after[1], k, 5, 2, SIZE)
    if k % 2 == 0:
      assert error < 1e-6, (k, error)
    else:
      assert error > 0.05, (k, error)


def test_no_unit_far_enough_from_the_border_is_nan():
  maps = np.ones((1, 2, 2, 1))
  assert np.isnan(probe.equivariance_error(maps, maps, 3, 15, 1, SIZE))


def test_shifts_wrap_or_bring_in_zeros():
  x = _images()
  np.testing.assert_array_equal(probe.shift(x, 2, "wrap"), jnp.roll(x, (2, 2), axis=(1, 2)))
  padded = probe.shift(x, 2, "pad")
  assert (padded[:, :2] == 0).all() and (padded[:, :, :2] == 0).all()
  np.testing.assert_array_equal(padded[:, 2:, 2:], x[:, :-2, :-2])


def test_geometric_transforms():
  x = _images()
  np.testing.assert_allclose(probe.scale(x, 1.0), x)
  np.testing.assert_allclose(probe.rotate(x, 360), x)
  # A quarter turn of a square image moves every pixel onto the grid: exact.
  np.testing.assert_allclose(probe.rotate(x, 90), np.rot90(x, -1, axes=(1, 2)), atol=1e-5)
  blob = lambda sigma: _blob(sigma)[None, ..., None]
  np.testing.assert_allclose(probe.rotate(blob(2.0), 30), blob(2.0), atol=0.05)  # Round: kept.
  np.testing.assert_allclose(probe.scale(blob(2.0), 2.0), blob(4.0), atol=0.05)  # Twice as wide.
  occluded = probe.occlude(x, 0.5)
  assert (occluded[:, 4:12, 4:12] == 0).all()
  assert float(jnp.abs(occluded - x).sum()) == pytest.approx(float(jnp.abs(x[:, 4:12, 4:12]).sum()),
                                                             rel=1e-5)


def test_hue_rotation_keeps_grey_and_permutes_the_primaries_at_120_degrees():
  matrix = probe.hue_rotation(120)
  np.testing.assert_allclose(matrix @ matrix.T, np.eye(3), atol=1e-12)
  np.testing.assert_allclose(matrix @ np.ones(3), np.ones(3), atol=1e-12)
  np.testing.assert_allclose(matrix @ [1, 0, 0], [0, 1, 0], atol=1e-12)  # Red to green.
  np.testing.assert_allclose(probe.hue_rotation(0), np.eye(3), atol=1e-12)
