"""oneDNN's convolutions on the CPU (cnnjax.kernels.onednn, the CPU lowering
of cnnjax's convolution primitives): built where the project is supported,
XLA's values and gradients to rounding, the same bits on every call, asked
for or not by the traced program itself, and XLA's kernels wherever oneDNN
cannot be had."""

import ctypes
import os
import platform
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnjax import kernels
from cnnjax.kernels import onednn

SUPPORTED = platform.system() == "Linux" and platform.machine() == "x86_64"
needs_onednn = pytest.mark.skipif(not onednn.available(), reason="oneDNN is not built here")


@pytest.mark.skipif(not SUPPORTED, reason="the oneDNN wheels are for x86-64 Linux")
@pytest.mark.skipif(not (os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")),
                    reason="no C++ compiler here (cnnjax then uses XLA's kernels, as documented)")
def test_onednn_is_built_where_its_wheels_install(monkeypatch):
  # Not skipped for any other reason: a failed build is a failure.
  monkeypatch.delenv("CNNJAX_ONEDNN", raising=False)
  library = ctypes.CDLL(str(onednn._build()))
  assert all(hasattr(library, symbol) for symbol in onednn.TARGETS.values())


def _convolutions(shape, kernel, strides, padding):
  numbers = jax.lax.conv_dimension_numbers(shape, kernel, ("NHWC", "HWIO", "NHWC"))
  ours = lambda x, w: kernels.conv_general_dilated(
      x, w, strides, padding, dimension_numbers=numbers)
  xla = lambda x, w: jax.lax.conv_general_dilated(
      x, w, strides, padding, dimension_numbers=numbers)
  return ours, xla


def _with_gradients(conv, x, w):
  weights = jax.random.normal(jax.random.key(2), jax.eval_shape(conv, x, w).shape)
  return jax.jit(lambda x, w: (conv(x, w), *jax.grad(
      lambda x, w: jnp.sum(weights * conv(x, w)), (0, 1))(x, w)))(x, w)


def _cpu_program(function, *args) -> str:
  return jax.jit(function).lower(*args).as_text()


@needs_onednn
@pytest.mark.parametrize("shape, kernel, strides, padding", [
    ((2, 15, 15, 3), (7, 7, 3, 8), (2, 2), ((3, 3), (3, 3))),  # ResNet's stem, an odd side.
    ((2, 8, 8, 16), (3, 3, 16, 8), (1, 1), "SAME"),
    ((2, 12, 12, 3), (5, 5, 3, 6), (1, 1), "VALID"),  # LeNet-5's C1.
    ((2, 9, 9, 8), (3, 3, 8, 4), (2, 2), ((0, 1), (1, 0))),  # Uneven padding.
    ((2, 9, 7, 8), (1, 1, 8, 4), (2, 2), "VALID"),  # ResNet's projections.
    ((2, 4, 4, 8), (3, 3, 8, 4), (1, 1), "SAME"),  # 4x4, the smallest map oneDNN takes.
])
def test_onednn_convolutions_match_xlas_with_their_gradients(shape, kernel, strides, padding):
  x = jax.random.normal(jax.random.key(0), shape)
  w = jax.random.normal(jax.random.key(1), kernel)
  ours, xla = _convolutions(shape, kernel, strides, padding)
  program = _cpu_program(jax.grad(lambda x, w: jnp.sum(ours(x, w)), (0, 1)), x, w)
  assert "stablehlo.convolution" not in program
  assert all(target in program for target in onednn.TARGETS)
  for a, b in zip(_with_gradients(ours, x, w), _with_gradients(xla, x, w), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("shape, padding", [
    ((2, 6, 6, 4), ((-1, 1), (1, -1))),  # Cropped on two sides to a 4x4 map.
    ((2, 4, 4, 4), ((-1, 0), (0, -1))),  # To 1x1.
])
def test_negative_padding_on_small_maps_is_xlas_with_onednn_asked_for(monkeypatch, shape,
                                                                        padding):
  # XLA crops where padding is negative; oneDNN cannot, so these are
  # patches (lax.pad crops too; jnp.pad refused negative widths).
  monkeypatch.delenv("CNNJAX_ONEDNN", raising=False)
  kernel = (3, 3, 4, 8)
  x = jax.random.normal(jax.random.key(0), shape)
  w = jax.random.normal(jax.random.key(1), kernel)
  ours, xla = _convolutions(shape, kernel, (1, 1), padding)
  assert "custom_call" not in _cpu_program(jax.grad(lambda x, w: jnp.sum(ours(x, w)), (0, 1)),
                                           x, w)
  for a, b in zip(_with_gradients(ours, x, w), _with_gradients(xla, x, w), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4)


@needs_onednn
def test_onednn_gives_the_same_bits_every_call():
  # What a resumed run relies on: the same inputs, the same sums in the same order.
  shape, kernel = (8, 10, 10, 16), (3, 3, 16, 32)
  x = jax.random.normal(jax.random.key(0), shape)
  w = jax.random.normal(jax.random.key(1), kernel)
  ours, _ = _convolutions(shape, kernel, (1, 1), "SAME")
  first = _with_gradients(ours, x, w)
  for _ in range(3):
    for a, b in zip(first, _with_gradients(ours, x, w), strict=True):
      np.testing.assert_array_equal(a, b)


@needs_onednn
def test_a_vmapped_batch_is_one_onednn_call_over_it():
  ours, xla = _convolutions((2, 6, 6, 3), (3, 3, 3, 4), (1, 1), "SAME")
  x = jax.random.normal(jax.random.key(0), (3, 2, 6, 6, 3))
  w = jax.random.normal(jax.random.key(1), (3, 3, 3, 4))
  mapped = jax.vmap(ours, (0, None))
  assert "tensor<6x6x6x4xf32>" in _cpu_program(mapped, x, w).split("cnnjax_onednn_conv")[1]
  np.testing.assert_allclose(mapped(x, w), jax.vmap(xla, (0, None))(x, w), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [jnp.bfloat16])
def test_other_dtypes_keep_xlas_convolution(dtype):
  ours, _ = _convolutions((1, 8, 8, 4), (3, 3, 4, 4), (1, 1), "SAME")
  x, w = jnp.ones((1, 8, 8, 4), dtype), jnp.ones((3, 3, 4, 4), dtype)
  program = _cpu_program(ours, x, w)
  assert "stablehlo.convolution" in program and "custom_call" not in program


def test_cnnjax_onednn_is_read_when_a_program_is_traced_and_kept_in_it(monkeypatch):
  ours, _ = _convolutions((1, 8, 8, 4), (3, 3, 4, 4), (1, 1), "SAME")
  x, w = jnp.ones((1, 8, 8, 4)), jnp.ones((3, 3, 4, 4))
  monkeypatch.setenv("CNNJAX_ONEDNN", "0")
  without = jax.jit(lambda x, w: ours(x, w)).trace(x, w)
  monkeypatch.setenv("CNNJAX_ONEDNN", "1")
  with_onednn = jax.jit(lambda x, w: ours(x, w)).trace(x, w)
  assert "onednn=False" in str(without.jaxpr) and "onednn=True" in str(with_onednn.jaxpr)
  # Lowered after the variable changed back: the program decides, not the variable.
  assert "custom_call" not in without.lower().as_text()
  if onednn.available():
    assert "cnnjax_onednn_conv" in with_onednn.lower().as_text()


def test_without_onednn_the_reason_is_one_line(monkeypatch, capsys, tmp_path):
  ours, xla = _convolutions((1, 8, 8, 4), (3, 3, 4, 4), (1, 1), "SAME")
  x, w = jnp.ones((1, 8, 8, 4)), jnp.ones((3, 3, 4, 4))
  onednn._library.cache_clear()
  try:
    monkeypatch.setenv("CXX", "g++-typo")
    monkeypatch.setenv("CNNJAX_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("CNNJAX_ONEDNN", "0")  # Asked for: nothing built, no note.
    np.testing.assert_allclose(jax.jit(lambda x, w: ours(x, w))(x, w), xla(x, w), rtol=1e-6)
    assert onednn._library.cache_info().misses == 0 and not capsys.readouterr().err
    monkeypatch.delenv("CNNJAX_ONEDNN")
    if SUPPORTED:  # A mistyped compiler: one line naming it, XLA's kernels.
      np.testing.assert_allclose(jax.jit(lambda x, w: ours(x, w))(x, w), xla(x, w), rtol=1e-6)
      assert not onednn.available()
      note = capsys.readouterr().err.strip().splitlines()
      assert len(note) == 1 and note[0].endswith("'g++-typo'")
      assert note[0].startswith("cnnjax: note: convolutions use XLA's CPU kernels")
    monkeypatch.delenv("CXX")
    monkeypatch.setattr(onednn.importlib.metadata, "files", _not_installed)
    if SUPPORTED and shutil.which("g++"):
      with pytest.raises(onednn.Unavailable, match=r"^onednn-cpu-gomp is not installed \(pip "):
        onednn._build()
  finally:
    onednn._library.cache_clear()


def _not_installed(distribution):
  raise onednn.importlib.metadata.PackageNotFoundError(distribution)
