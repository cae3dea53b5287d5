"""Resizing for the input pipeline: tf.image.resize's antialiased bilinear
filter, bit for bit, about four times faster.

tf.image.resize(..., antialias=True) runs TensorFlow's ScaleAndTranslate
with the triangle kernel: the filter PIL's bilinear resize uses, which
cnnjax's recipes follow (cnnjax.data.preprocess). TensorFlow's kernel is
generic over its kernels and compiled for the oldest x86-64 it supports; for
ResNet's 224x224 crop it took 1.8-2.7 ms of the 4 ms of CPU an augmented
image cost. `resample.cc` (beside this file) computes the same weights and
sums them in the same order, vectorised, in about 0.6 ms. It is compiled on
first use against the installed TensorFlow (cnnjax.kernels.build); where it
cannot be built or loaded (no compiler, a cache that cannot be written, ...),
one note on stderr says why and TensorFlow's kernel is used: the same pixels,
slower. CNNJAX_RESAMPLE=0 asks for TensorFlow's kernel.
"""

import functools
import os
import pathlib

import tensorflow as tf

from cnnjax.kernels import build

SOURCE = pathlib.Path(__file__).with_name("resample.cc")


def scale_and_translate(image: tf.Tensor, size, scale, translation) -> tf.Tensor:
  """tf.raw_ops.ScaleAndTranslate(kernel_type="triangle", antialias=True) of
  one [height, width, channels] image (uint8 or float32): output pixel x of
  an axis samples the image at (x + 0.5 - translation) / scale."""
  library = _library()
  if library is None:
    return tf.raw_ops.ScaleAndTranslate(images=image[None], size=size, scale=scale,
                                        translation=translation, kernel_type="triangle",
                                        antialias=True)[0]
  return library.cnnjax_resample(image, size, scale, translation)


def resize(image: tf.Tensor, size) -> tf.Tensor:
  """tf.image.resize(image, size, antialias=True) of one image: to `size`
  (height, width), the same float32 pixels."""
  size = tf.convert_to_tensor(size, tf.int32)
  scale = tf.cast(size, tf.float32) / tf.cast(tf.shape(image)[:2], tf.float32)
  return scale_and_translate(image, size, scale, tf.zeros([2]))


@functools.cache
def _library():
  if os.environ.get("CNNJAX_RESAMPLE", "1") == "0":  # Asked for: no note.
    return None
  try:
    return tf.load_op_library(str(_build()))
  except (build.Unavailable, tf.errors.OpError, OSError) as error:
    build.note(f"images are resized by TensorFlow's kernel, slower than cnnjax's: {error}")
    return None


def _build() -> pathlib.Path:
  # No fused multiply-adds: TensorFlow's kernel rounds each product and sum.
  arguments = ["-O3", "-ffp-contract=off", "-w", "-shared", "-fPIC", str(SOURCE),
               *tf.sysconfig.get_compile_flags(), *tf.sysconfig.get_link_flags()]
  return build.build(SOURCE, arguments, {"tensorflow": tf.__version__})
