"""The input pipeline's resizing (cnnjax.data.resample): built wherever a
compiler is, TensorFlow's antialiased bilinear resize bit for bit, safe in
tf.data's parallel calls, and TensorFlow's own kernel where it cannot be built."""

import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from cnnjax.data import resample

needs_compiler = pytest.mark.skipif(
    not (os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")),
    reason="no C++ compiler here (cnnjax then uses TensorFlow's kernel, as documented)")


@pytest.fixture
def fresh_library(monkeypatch):
  """resample._library tried anew, and again after the test."""
  resample._library.cache_clear()
  yield monkeypatch
  monkeypatch.undo()
  resample._library.cache_clear()


@needs_compiler
def test_the_op_is_built_where_a_compiler_is(fresh_library):
  # Not skipped for any other reason: a failed build is a failure.
  fresh_library.delenv("CNNJAX_RESAMPLE", raising=False)
  assert hasattr(tf.load_op_library(str(resample._build())), "cnnjax_resample")
  assert resample._library() is not None


def _cases(count, seed=0):
  """Images of 1-200 pixels a side, 1, 3 or 4 channels, uint8 or float32 (some
  negative), to sizes that shrink, enlarge or keep each axis."""
  rng = np.random.default_rng(seed)
  for index in range(count):
    height, width = rng.integers(1, 200, 2)
    channels = int(rng.choice([1, 3, 4]))
    image = rng.integers(0, 256, (height, width, channels)).astype(np.uint8)
    if index % 2:
      image = image.astype(np.float32) / 255 - 0.25
    yield image, rng.integers(1, 160, 2).astype(np.int32), rng


@needs_compiler
def test_resize_gives_tensorflows_bits():
  assert resample._library() is not None
  for image, size, _ in _cases(40):
    np.testing.assert_array_equal(resample.resize(image, size),
                                  tf.image.resize(image, size, antialias=True))


@needs_compiler
def test_scale_and_translate_gives_tensorflows_bits_even_sampling_outside_the_image():
  assert resample._library() is not None
  for image, size, rng in _cases(40, seed=1):
    # Up to 3x either way, shifted by up to 60 pixels: some outputs fall outside (zeros).
    scale = rng.uniform(0.3, 3, 2).astype(np.float32)
    translation = rng.uniform(-60, 60, 2).astype(np.float32)
    expected = tf.raw_ops.ScaleAndTranslate(
        images=image[None], size=size, scale=scale, translation=translation,
        kernel_type="triangle", antialias=True)[0]
    np.testing.assert_array_equal(
        resample.scale_and_translate(image, size, scale, translation), expected)


def test_parallel_calls_in_tf_data_give_the_same_pixels_as_one_at_a_time():
  """Each tf.data thread keeps its own scratch memory."""
  rng = np.random.default_rng(2)
  images = rng.integers(0, 256, (24, 90, 70, 3)).astype(np.uint8)
  sizes = rng.integers(20, 120, (24, 2)).astype(np.int32)

  def resized(parallel):
    dataset = tf.data.Dataset.from_tensor_slices((images, sizes)).map(
        lambda image, size: tf.reduce_sum(resample.resize(image, size)),
        num_parallel_calls=parallel, deterministic=True)
    return [float(total) for total in dataset]

  assert resized(4) == resized(1)


def test_a_shape_that_is_not_one_image_is_refused():
  with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match="rank|height, width"):
    resample.scale_and_translate(tf.zeros((1, 4, 4, 3)), [2, 2], [0.5, 0.5], [0.0, 0.0])


def test_without_the_op_tensorflows_kernel_is_used_and_why_is_one_line(fresh_library, capsys,
                                                                        tmp_path):
  image = np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3)
  expected = tf.image.resize(image, (3, 4), antialias=True)
  fresh_library.setenv("CNNJAX_RESAMPLE", "0")
  np.testing.assert_array_equal(resample.resize(image, (3, 4)), expected)
  assert resample._library() is None and capsys.readouterr().err == ""  # Asked for: no note.

  resample._library.cache_clear()
  fresh_library.setenv("CNNJAX_RESAMPLE", "1")
  fresh_library.setenv("CXX", "g++-typo")
  fresh_library.setenv("CNNJAX_CACHE_DIR", str(tmp_path))
  np.testing.assert_array_equal(resample.resize(image, (3, 4)), expected)
  note = capsys.readouterr().err
  assert note.startswith("cnnjax: note: images are resized by TensorFlow's kernel")
  assert "g++-typo" in note
  assert note.count("\n") == 1


def test_a_cache_that_cannot_be_written_is_tensorflows_kernel_and_one_line(fresh_library, capsys,
                                                                           tmp_path):
  image = np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3)
  expected = tf.image.resize(image, (3, 4), antialias=True)
  (tmp_path / "file").write_text("")
  fresh_library.delenv("CNNJAX_RESAMPLE", raising=False)
  fresh_library.setenv("CNNJAX_CACHE_DIR", str(tmp_path / "file" / "cache"))
  np.testing.assert_array_equal(resample.resize(image, (3, 4)), expected)
  note = capsys.readouterr().err
  assert note.startswith("cnnjax: note: images are resized by TensorFlow's kernel")
  assert "cannot write to the cache" in note and note.count("\n") == 1
