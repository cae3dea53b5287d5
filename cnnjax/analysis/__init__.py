"""Seeing inside the networks: tools that read models from the registry and
runs from their workdirs, and never touch the training loop.

- `cnnjax summary` (summary.py, zoo.py): the layer table of a network, with
  units, parameters, connections, multiply-accumulates and receptive fields.
- `cnnjax plot` (curves.py, plot.py): training and evaluation curves of runs.
- Convolution arithmetic (arithmetic.py), re-exported here:
  `conv_output_size`, `receptive_fields`, `Field`.

Importing this package imports neither JAX nor matplotlib.
"""

from cnnjax.analysis.arithmetic import Field, conv_output_size, receptive_fields

__all__ = ["Field", "conv_output_size", "receptive_fields"]
