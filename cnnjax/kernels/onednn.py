"""oneDNN's convolutions as XLA custom calls on the CPU.

XLA's CPU convolutions (JAX 0.10) are slower than oneDNN's, the library
PyTorch's CPU convolutions run on, at the zoo's shapes: forward 1.2 to 10
times, the kernel's gradient up to 21 times, for it spends most of its time
transposing the maps. They were most of the gap between cnnjax's CPU training
step and PyTorch's. XLA's own oneDNN option (`--xla_cpu_use_onednn`) left
convolutions alone when measured. cnnjax.kernels.rewrites says where these
are used; they are emitted only while a program is lowered for the CPU.

`onednn_conv.cc` (beside this file) is compiled the first time a program
that uses it is lowered (cnnjax.kernels.build), against the oneDNN of the
`onednn-cpu-gomp` and `onednn-devel-cpu-gomp` wheels (dependencies on x86-64
Linux) and JAX's FFI headers, and registered with XLA's CPU backend. Where
any of that is missing, `available()` is False and one note on stderr says
why; convolutions then keep XLA's kernels: the same values to rounding,
slower. CNNJAX_ONEDNN=0 asks for XLA's kernels: nothing is built, no note.

oneDNN sums in a fixed order for a given shape and thread count, so a run
and its resumption agree bit for bit, as with XLA's kernels.
"""

import ctypes
import functools
import importlib.metadata
import os
import pathlib
import platform

import jax
import numpy as np

from cnnjax.kernels import build
from cnnjax.kernels.build import Unavailable

TARGETS = {"cnnjax_onednn_conv": "CnnjaxConvForward",
           "cnnjax_onednn_conv_input_grad": "CnnjaxConvInputGrad",
           "cnnjax_onednn_conv_kernel_grad": "CnnjaxConvKernelGrad"}
SOURCE = pathlib.Path(__file__).with_name("onednn_conv.cc")
RUNTIME, HEADERS = "onednn-cpu-gomp", "onednn-devel-cpu-gomp"


def available() -> bool:
  """Whether the custom calls are built and registered: built now if need be
  (tried once per process; where they cannot be, a note on stderr says why).
  Called while a program is lowered for the CPU, never while it is traced."""
  return _library() is not None


def requested() -> bool:
  """Whether oneDNN's convolutions are wanted (CNNJAX_ONEDNN is not 0): read
  when a program is traced and kept in it (cnnjax.kernels.convolution)."""
  return os.environ.get("CNNJAX_ONEDNN", "1") != "0"


def convolution(x: jax.Array, kernel: jax.Array, strides, padding) -> jax.Array:
  """conv(x, kernel) for NHWC `x`, an HWIO `kernel`, `strides` (2) and
  `padding` ((top, bottom), (left, right)), as a custom call: for lowering
  for the CPU only, where `available()`."""
  rows, columns = (
      (size + sum(pads) - taps) // stride + 1
      for size, pads, taps, stride in zip(x.shape[1:3], padding, kernel.shape[:2], strides))
  shape = (x.shape[0], rows, columns, kernel.shape[3])
  return _call("cnnjax_onednn_conv", shape, x, kernel, strides, padding)


def input_gradient(grad: jax.Array, kernel: jax.Array, input_shape, strides, padding):
  """d(sum(grad * conv(x, kernel)))/dx for x of `input_shape` (as `convolution`)."""
  return _call("cnnjax_onednn_conv_input_grad", input_shape, grad, kernel, strides, padding)


def kernel_gradient(x: jax.Array, grad: jax.Array, kernel_shape, strides, padding):
  """d(sum(grad * conv(x, w)))/dw for w of `kernel_shape` (as `convolution`)."""
  return _call("cnnjax_onednn_conv_kernel_grad", kernel_shape, x, grad, strides, padding)


def _call(target, shape, first, second, strides, padding):
  if not available():  # Registers the targets on first use.
    raise RuntimeError(f"{target} called where oneDNN is not available")
  call = jax.ffi.ffi_call(target, jax.ShapeDtypeStruct(tuple(shape), first.dtype))
  pads = [side for pair in padding for side in pair]
  return call(first, second, strides=np.asarray(strides, np.int64),
              pads=np.asarray(pads, np.int64))


@functools.cache
def _library() -> ctypes.CDLL | None:
  try:
    library = ctypes.CDLL(str(_build()))
  except (Unavailable, OSError) as error:
    build.note(f"convolutions use XLA's CPU kernels, slower than oneDNN's: {error}")
    return None
  for target, symbol in TARGETS.items():
    jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(getattr(library, symbol)),
                                platform="cpu")
  return library


def _build() -> pathlib.Path:
  """The compiled custom call, from the cache or compiled now."""
  if platform.system() != "Linux" or platform.machine() != "x86_64":
    raise Unavailable(f"the oneDNN wheels are for x86-64 Linux, not {platform.platform()}")
  library_dir = _wheel_dir(RUNTIME, "libdnnl.so.3")
  include_dir = _wheel_dir(HEADERS, "oneapi/dnnl/dnnl.hpp")
  arguments = ["-O2", "-std=c++17", "-shared", "-fPIC", str(SOURCE), f"-I{include_dir}",
               f"-I{jax.ffi.include_dir()}", f"-L{library_dir}", "-l:libdnnl.so.3",
               f"-Wl,-rpath,{library_dir}"]
  versions = {name: importlib.metadata.version(name) for name in ("jaxlib", RUNTIME, HEADERS)}
  return build.build(SOURCE, arguments, versions)


def _wheel_dir(distribution: str, relative: str) -> pathlib.Path:
  """The directory of the file of `distribution` whose path ends in `relative`."""
  try:
    files = importlib.metadata.files(distribution) or []
  except importlib.metadata.PackageNotFoundError:
    raise Unavailable(f"{distribution} is not installed (pip install {distribution})") from None
  for file in files:
    if str(file).endswith(relative):
      path = pathlib.Path(file.locate()).resolve()
      return path.parents[len(pathlib.PurePath(relative).parts) - 1]
  raise Unavailable(f"{distribution} has no {relative}")
