"""The CPU fast path: oneDNN's convolutions through XLA's FFI (`onednn`), the
rewrites that route the models' convolutions and pooling to them
(`rewrites`), and compiling and caching C++ sources where they run
(`build`, also used by the input pipeline's resizing op). The models see
only `cnnjax.models.layers`."""

import sys


def convolution_kernels() -> str:
  """Which convolution kernels this process's programs used, for a run's record:
  "onednn" where oneDNN's custom calls were loaded (on the CPU, convolutions
  with output maps from 4x4 up ran through them), else "xla". Asks only:
  never builds or loads anything."""
  onednn = sys.modules.get("cnnjax.kernels.onednn")
  loaded = onednn is not None and onednn._library.cache_info().currsize and onednn.available()
  return "onednn" if loaded else "xla"
