"""The shared layers against straightforward NumPy references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnjax.errors import UserError
from cnnjax.models import layers


def reference_lrn(a, size, k, alpha, beta, alpha_over_size):
  """AlexNet §3.3 written out: one channel at a time, the window clipped at
  both ends (j from max(0, i - n/2) to min(N - 1, i + n/2))."""
  channels = a.shape[-1]
  b = np.empty_like(a)
  for i in range(channels):
    low, high = max(0, i - size // 2), min(channels - 1, i + (size - 1) // 2)
    total = np.sum(a[..., low:high + 1] ** 2, axis=-1)
    scale = alpha / size if alpha_over_size else alpha
    b[..., i] = a[..., i] / (k + scale * total) ** beta
  return b


@pytest.mark.parametrize("alpha_over_size", [False, True])
@pytest.mark.parametrize("size,k,alpha,beta", [
    (5, 2.0, 1e-4, 0.75),  # AlexNet §3.3.
    (5, 1.0, 0.5, 0.75),   # A strong α, so a wrong window shows.
    (3, 2.0, 0.1, 0.5),
    (4, 1.0, 0.3, 0.75),   # Even: one more map below than above, as PyTorch.
])
def test_local_response_norm_matches_reference(size, k, alpha, beta, alpha_over_size):
  a = np.random.default_rng(0).normal(0, 30, (2, 3, 4, 11)).astype(np.float32)
  got = layers.local_response_norm(jnp.asarray(a), size=size, k=k, alpha=alpha, beta=beta,
                                   alpha_over_size=alpha_over_size)
  want = reference_lrn(a, size, k, alpha, beta, alpha_over_size)
  np.testing.assert_allclose(got, want, rtol=1e-5)


def test_lrn_conventions_differ_by_dividing_alpha_by_n():
  a = jnp.asarray(np.random.default_rng(1).normal(0, 30, (1, 2, 2, 8)), jnp.float32)
  paper, caffe = layers.lrn("paper")(a), layers.lrn("caffe")(a)
  assert not np.allclose(paper, caffe)
  np.testing.assert_allclose(
      caffe, layers.local_response_norm(a, alpha=1e-4 / 5), rtol=1e-6)
  np.testing.assert_allclose(paper, reference_lrn(np.asarray(a), 5, 2.0, 1e-4, 0.75, False),
                             rtol=1e-5)
  with pytest.raises(UserError, match="caffe, paper"):
    layers.lrn("torch")


def test_local_response_norm_keeps_bfloat16_and_has_gradients():
  a = jax.random.normal(jax.random.key(0), (2, 3, 3, 7)) * 20
  out = layers.local_response_norm(a.astype(jnp.bfloat16))
  assert out.dtype == jnp.bfloat16
  np.testing.assert_allclose(out.astype(jnp.float32), layers.local_response_norm(a), rtol=2e-2)
  grad = jax.grad(lambda x: layers.local_response_norm(x, alpha=0.1).sum())(a)
  assert np.all(np.isfinite(grad)) and np.any(grad != 1.0)


@pytest.mark.parametrize("name,inputs,outputs", [
    ("relu", [-2.0, 0.0, 3.0], [0.0, 0.0, 3.0]),
    ("tanh", [0.0, 1.0], [0.0, np.tanh(1.0)]),
    ("scaled_tanh", [1.0, -1.0, 0.0], [1.0, -1.0, 0.0]),  # LeCun 1998: f(±1) = ±1.
    ("sigmoid", [0.0], [0.5]),
    ("leaky_relu", [-1.0, 2.0], [-0.01, 2.0]),
    ("elu", [-1.0, 2.0], [np.expm1(-1.0), 2.0]),
    # Where GELU is neither ReLU (0 at -1, 1 at 1) nor ELU (-0.632 at -1): its
    # tanh form (Hendrycks and Gimpel 2016, §2; flax's nn.gelu), 4e-4 from the
    # erf form at -3 and 1.5e-4 at 1.
    ("gelu", [-3.0, -1.0, 0.0, 0.5, 1.0], [-0.0036374, -0.1588080, 0.0, 0.3457140, 0.8411920]),
])
def test_activations(name, inputs, outputs):
  np.testing.assert_allclose(layers.activation(name)(jnp.asarray(inputs)), outputs, atol=1e-4)


def test_every_activation_is_tested_and_unknown_ones_are_user_errors():
  assert set(layers.ACTIVATIONS) == {"relu", "tanh", "scaled_tanh", "sigmoid", "leaky_relu", "elu",
                                     "gelu"}
  with pytest.raises(UserError, match="unknown activation 'swish'; choose one of: elu, gelu"):
    layers.activation("swish")


def reference_adaptive_avg_pool(x, size):
  """PyTorch's AdaptiveAvgPool2d, one output cell at a time."""
  height, width = x.shape[1:3]
  out = np.empty((x.shape[0], size, size, x.shape[3]), x.dtype)
  for i in range(size):
    for j in range(size):
      rows = slice(i * height // size, -(-(i + 1) * height // size))
      columns = slice(j * width // size, -(-(j + 1) * width // size))
      out[:, i, j] = x[:, rows, columns].mean(axis=(1, 2))
  return out


@pytest.mark.parametrize("height,width,size", [(6, 6, 6), (13, 13, 6), (1, 1, 7), (14, 9, 4)])
def test_adaptive_avg_pool_matches_pytorch_semantics(height, width, size):
  x = np.random.default_rng(2).normal(size=(2, height, width, 3)).astype(np.float32)
  np.testing.assert_allclose(layers.adaptive_avg_pool(jnp.asarray(x), size),
                             reference_adaptive_avg_pool(x, size), rtol=1e-5, atol=1e-6)


def reference_ceil_pool_size(size, window, stride, padding):
  out = -(-(size + 2 * padding - window) // stride) + 1
  return out - 1 if (out - 1) * stride >= size + padding else out


@pytest.mark.parametrize("size,window,stride,padding", [
    (112, 3, 2, 0), (56, 3, 2, 0), (14, 2, 2, 0), (7, 3, 2, 0), (10, 3, 3, 0), (5, 3, 1, 1)])
def test_max_pool_ceil_sizes_and_values(size, window, stride, padding):
  x = np.random.default_rng(3).normal(size=(1, size, size, 2)).astype(np.float32)
  got = np.asarray(layers.max_pool_ceil(jnp.asarray(x), window, stride, padding))
  out = reference_ceil_pool_size(size, window, stride, padding)
  assert got.shape == (1, out, out, 2)
  for i in range(out):  # Every window, clipped to the image.
    for j in range(out):
      rows = slice(max(i * stride - padding, 0), i * stride - padding + window)
      columns = slice(max(j * stride - padding, 0), j * stride - padding + window)
      np.testing.assert_array_equal(got[0, i, j], x[0, rows, columns].max(axis=(0, 1)))


def forward_size(size, path):
  for window, stride, padding, *ceil_mode in path:
    if ceil_mode and ceil_mode[0]:
      size = reference_ceil_pool_size(size, window, stride, padding)
    else:
      size = (size + 2 * padding - window) // stride + 1
    if size < 1:
      return 0
  return size


@pytest.mark.parametrize("path", [
    [(11, 4, 0), (3, 2, 0), (5, 1, 2), (3, 2, 0), (3, 1, 1), (3, 2, 0)],  # AlexNet.
    [(2, 2, 0)] * 5,  # VGG.
    [(7, 2, 3), (3, 2, 0, True), (3, 2, 0, True), (3, 2, 0, True), (5, 3, 0)],  # GoogLeNet aux.
    [(7, 2, 3), (3, 2, 1), (2, 2, 0), (2, 2, 0), (2, 2, 0)],  # DenseNet.
])
def test_min_input_size_is_the_smallest_that_works(path):
  minimum = layers.min_input_size(path)
  assert forward_size(minimum, path) >= 1
  assert minimum == 1 or forward_size(minimum - 1, path) == 0


def test_pool_kinds():
  x = jax.random.normal(jax.random.key(0), (1, 6, 6, 4))
  outputs = {}
  for kind in layers.POOLINGS:
    pool = layers.Pool(kind, 3, 2)
    variables = pool.init(jax.random.key(1), x)
    assert bool(variables) == (kind == "conv")  # Only the strided convolution learns.
    outputs[kind] = pool.apply(variables, x)
    assert outputs[kind].shape == (1, 2, 2, 4)
  np.testing.assert_allclose(outputs["max"][0, 0, 0], x[0, :3, :3].max(axis=(0, 1)), rtol=1e-6)
  np.testing.assert_allclose(outputs["avg"][0, 0, 0], x[0, :3, :3].mean(axis=(0, 1)), rtol=1e-5)
  with pytest.raises(UserError, match="unknown pooling 'min'"):
    layers.Pool("min", 3, 2).init(jax.random.key(1), x)


def test_conv_norm_act_pads_like_pytorch_and_adds_batchnorm():
  x = jax.random.normal(jax.random.key(0), (2, 8, 8, 3))
  plain = layers.ConvNormAct(4, 3, strides=2)
  variables = plain.init(jax.random.key(1), x, train=False)
  assert set(variables) == {"params"} and "bias" in variables["params"]["conv"]
  # Padding 1 on both sides: output pixel (0, 0) is centred on input (0, 0).
  kernel = variables["params"]["conv"]["kernel"]
  centre = jnp.einsum("hwi,hwio->o", jnp.pad(x[0], ((1, 0), (1, 0), (0, 0)))[:3, :3], kernel)
  np.testing.assert_allclose(plain.apply(variables, x, train=False)[0, 0, 0],
                             jax.nn.relu(centre), rtol=1e-5, atol=1e-6)
  normed = layers.ConvNormAct(4, 3, batch_norm=True, use_bias=False)
  variables = normed.init(jax.random.key(1), x, train=False)
  assert "batch_stats" in variables and "bias" not in variables["params"]["conv"]
  out, updates = normed.apply(variables, x, train=True, mutable=["batch_stats"])
  assert out.shape == (2, 8, 8, 4) and float(out.min()) >= 0
  assert not np.allclose(updates["batch_stats"]["bn"]["mean"], 0)


def test_pytorch_default_initializers_are_bounded_by_one_over_sqrt_fan_in():
  kernel = layers.pytorch_default_kernel()(jax.random.key(0), (5, 5, 48, 256))
  bias = layers.pytorch_default_bias(5 * 5 * 48)(jax.random.key(1), (256,))
  bound = (5 * 5 * 48) ** -0.5
  for values in (kernel, bias):
    assert float(jnp.abs(values).max()) <= bound
    assert float(jnp.abs(values).max()) > 0.9 * bound


def test_check_input_size_names_the_minimum():
  layers.check_input_size(jnp.zeros((1, 32, 40, 3)), 32, "vgg")
  with pytest.raises(UserError, match="vgg needs inputs of at least 32x32, got 31x40"):
    layers.check_input_size(jnp.zeros((1, 31, 40, 3)), 32, "vgg")


# --- cuda-convnet's pooling and response normalisation ------------------------


def test_ceil_mode_pools_by_hand():
  """cuda-convnet (layer.py PoolLayerParser) rounds the output side up:
  ceil((4 - 3) / 2) + 1 = 2 on a 4x4 map, where VALID pooling gives 1. The
  second window overhangs; its average divides by the 4 or 6 pixels inside
  (conv_util.cuh kLocalPool's regionSize), not by 9."""
  x = jnp.arange(16.0).reshape(1, 4, 4, 1)
  np.testing.assert_array_equal(layers.max_pool_ceil(x, 3, 2)[0, :, :, 0], [[10, 11], [14, 15]])
  # (0, 0): 0+1+2+4+5+6+8+9+10 = 45 over 9; (0, 1): 2+3+6+7+10+11 = 39 over 6;
  # (1, 0): 8+9+10+12+13+14 = 66 over 6; (1, 1): 10+11+14+15 = 50 over 4.
  np.testing.assert_allclose(layers.avg_pool_ceil(x, 3, 2)[0, :, :, 0],
                             [[5.0, 6.5], [11.0, 12.5]], rtol=1e-6)


def reference_avg_pool_ceil(x, window, stride):
  """Every window of cuda-convnet's ceil-mode pooling, averaged over its pixels inside the map."""
  size = x.shape[1]
  out = -(-(size - window) // stride) + 1
  y = np.empty((x.shape[0], out, out, x.shape[3]), np.float32)
  for i in range(out):
    for j in range(out):
      y[:, i, j] = x[:, i * stride:i * stride + window, j * stride:j * stride + window].mean((1, 2))
  return y


@pytest.mark.parametrize("size,window,expected", [(32, 3, 16), (16, 3, 8), (8, 3, 4), (24, 3, 12),
                                                  (12, 3, 6), (7, 2, 4), (5, 3, 2)])
def test_avg_pool_ceil_sizes_and_values(size, window, expected):
  x = np.random.default_rng(4).normal(size=(2, size, size, 3)).astype(np.float32)
  got = np.asarray(layers.avg_pool_ceil(jnp.asarray(x), window, 2))
  assert got.shape == (2, expected, expected, 3)
  np.testing.assert_allclose(got, reference_avg_pool_ceil(x, window, 2), rtol=1e-5, atol=1e-6)
  assert layers.avg_pool_ceil(jnp.asarray(x, jnp.bfloat16), window, 2).dtype == jnp.bfloat16


def test_pool_ceil_mode_uses_the_ceil_pools():
  x = jax.random.normal(jax.random.key(0), (1, 8, 8, 2))
  for kind, pool in (("max", layers.max_pool_ceil), ("avg", layers.avg_pool_ceil)):
    module = layers.Pool(kind, 3, 2, ceil_mode=True)
    out = module.apply({}, x)
    assert out.shape == (1, 4, 4, 2)  # Floor mode: 3x3.
    np.testing.assert_array_equal(out, pool(x, 3, 2))
  conv = layers.Pool("conv", 3, 2, ceil_mode=True)
  assert conv.apply(conv.init(jax.random.key(1), x), x).shape == (1, 4, 4, 2)


def test_cuda_convnet_normalisations_by_hand():
  """k = 1: b = a (1 + α' Σ a²)^-β. With α' = 1 (scale 3 over size 3 maps for
  cmrnorm, scale 9 over 3x3 pixels for rnorm) and β = 1, a = (1, 2, 3) along
  the window axis: 1/(1+1+4), 2/(1+1+4+9), 3/(1+4+9), the windows clipped."""
  a = jnp.array([1.0, 2.0, 3.0])
  expected = [1 / 6, 2 / 15, 3 / 14]
  cross_map = layers.local_response_norm(a.reshape(1, 1, 1, 3), size=3, k=1.0, alpha=3.0,
                                         beta=1.0, alpha_over_size=True)
  np.testing.assert_allclose(cross_map.ravel(), expected, rtol=1e-6)
  within_map = layers.within_map_response_norm(a.reshape(1, 1, 3, 1), size=3, scale=9.0,
                                               power=1.0)
  np.testing.assert_allclose(within_map.ravel(), expected, rtol=1e-6)


def reference_cmrnorm(a, size, scale, power):
  """cuda-convnet's kFCNorm (conv_util.cu), one map at a time: the window of
  map f starts at f - size/2 (integer division) and is clipped to the maps."""
  channels = a.shape[-1]
  b = np.empty_like(a)
  for f in range(channels):
    start = f - size // 2
    total = np.sum(a[..., max(start, 0):min(start + size, channels)] ** 2, axis=-1)
    b[..., f] = a[..., f] * (1 + scale / size * total) ** -power
  return b


def reference_rnorm(a, size, scale, power):
  """cuda-convnet's kCNorm_manyfilter: the window of pixel (y, x) starts at
  (y - size/2, x - size/2) and is clipped to the map; scale is divided by size²."""
  height, width = a.shape[1:3]
  b = np.empty_like(a)
  for y in range(height):
    for x in range(width):
      top, left = y - size // 2, x - size // 2
      window = a[:, max(top, 0):min(top + size, height), max(left, 0):min(left + size, width)]
      total = np.sum(window ** 2, axis=(1, 2))
      b[:, y, x] = a[:, y, x] * (1 + scale / size**2 * total) ** -power
  return b


@pytest.mark.parametrize("size,scale", [(9, 0.001), (5, 0.001), (4, 0.5), (3, 2.0)])
def test_cross_map_norm_matches_cuda_convnet(size, scale):
  a = np.random.default_rng(5).normal(0, 20, (2, 3, 3, 16)).astype(np.float32)
  got = layers.local_response_norm(jnp.asarray(a), size=size, k=1.0, alpha=scale, beta=0.75,
                                   alpha_over_size=True)
  np.testing.assert_allclose(got, reference_cmrnorm(a, size, scale, 0.75), rtol=1e-5)


@pytest.mark.parametrize("size,scale", [(3, 5e-5), (3, 1.0), (4, 0.5), (5, 2.0)])
def test_within_map_norm_matches_cuda_convnet(size, scale):
  a = np.random.default_rng(6).normal(0, 20, (2, 6, 5, 3)).astype(np.float32)
  got = layers.within_map_response_norm(jnp.asarray(a), size=size, scale=scale, power=0.75)
  np.testing.assert_allclose(got, reference_rnorm(a, size, scale, 0.75), rtol=1e-5)
  half = layers.within_map_response_norm(jnp.asarray(a, jnp.bfloat16), size=size, scale=scale,
                                         power=0.75)
  assert half.dtype == jnp.bfloat16


def _dropout_masks(devices: int, rows: int = 8, features: int = 64):
  """The masks dropout draws for a global batch of `rows`, split over `devices`."""
  layer = layers.Dropout(0.5, deterministic=False, axis_name="devices")
  ones = np.ones((devices, rows // devices, features), np.float32)
  apply = lambda x: layer.apply({}, x, rngs={"dropout": jax.random.key(3)})
  out = jax.pmap(apply, axis_name="devices", devices=jax.devices()[:devices])(ones)
  return np.asarray(out).reshape(rows, features)


def test_dropout_masks_do_not_depend_on_the_device_count():
  one = _dropout_masks(1)
  assert set(np.unique(one)) == {0.0, 2.0}  # Kept units scaled by 1 / (1 - rate).
  assert 0.3 < (one > 0).mean() < 0.7
  np.testing.assert_array_equal(_dropout_masks(2), one)
  np.testing.assert_array_equal(_dropout_masks(4), one)
  # Rows differ from each other: no device repeats another's mask.
  assert len({row.tobytes() for row in one}) == len(one)
