"""The CPU fast path: convolutions and max pools as JAX primitives whose
lowering for the CPU is cnnjax's, and XLA's own everywhere else.

- `convolution`, `pooling`: the primitives, with their derivatives, batching
  and lowerings; `Conv`, `conv_general_dilated` and `max_pool` (below) are
  what cnnjax.models.layers gives the models, which see nothing else.
- `rewrites`: what they are lowered to for the CPU (oneDNN, matrix products,
  strided slices), with the measurements that chose each.
- `onednn`: oneDNN's convolutions as XLA custom calls; `build`: compiling
  and caching C++ sources where they run (also used by the input
  pipeline's resizing op).
- `with_xla_primitives(fun)`: `fun` with XLA's primitives in their place,
  for tools that read programs (cnnjax.analysis, XLA's FLOP counts).

The choice is made when a program is lowered: for the CPU, cnnjax's kernels
(oneDNN's where it builds and CNNJAX_ONEDNN is not 0; never in a program
exported with jax.export); for any other platform, XLA's. Nothing is
compiled while a program is only traced (jax.eval_shape, a config check).
"""

import functools

from flax import linen as nn

from cnnjax.kernels import onednn
from cnnjax.kernels.convolution import conv_general_dilated
from cnnjax.kernels.onednn import available as onednn_available
from cnnjax.kernels.pooling import max_pool
from cnnjax.kernels.xla import with_xla_primitives

# Flax's convolution with cnnjax's primitive; parameters as nn.Conv's.
Conv = functools.partial(nn.Conv, conv_general_dilated=conv_general_dilated)


def convolution_kernels() -> str:
  """Which convolution kernels this process's programs used, for a run's record:
  "onednn" where oneDNN's custom calls were loaded (a program was lowered for
  the CPU with them; convolutions with output maps from 4x4 up ran through
  them), else "xla". Asks only: never builds or loads anything."""
  loaded = onednn._library.cache_info().currsize and onednn.available()
  return "onednn" if loaded else "xla"


__all__ = ["Conv", "conv_general_dilated", "convolution_kernels", "max_pool", "onednn_available",
           "with_xla_primitives"]
