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
    ("gelu", [0.0, 10.0], [0.0, 10.0]),
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
