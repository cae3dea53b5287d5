"""Everything about devices: how many, replication, batch sharding, prefetch,
and mapping the per-device steps over them with `jax.pmap`.

The only module that knows data parallelism is done with pmap: the steps are
written per device with collectives over `steps.AXIS`, so the same steps could
be wrapped with `jax.jit(jax.shard_map(...))` by changing this file alone.
"""

import dataclasses
from typing import Callable, Iterator

import jax
import numpy as np
from flax import jax_utils

from cnnjax.errors import UserError
from cnnjax.steps import AXIS


@dataclasses.dataclass(frozen=True)
class BatchSplit:
  """How a global batch divides: over processes, then over each one's devices."""

  global_batch: int
  process_batch: int
  device_batch: int


def split_batch(global_batch: int, key: str = "batch_size") -> BatchSplit:
  """Splits `global_batch` over all devices, or a UserError naming both numbers."""
  devices = jax.device_count()
  if global_batch % devices:
    raise UserError(
        f"config.{key}={global_batch} does not divide evenly over {devices} devices "
        f"({jax.process_count()} processes x {jax.local_device_count()} local devices); "
        f"use a multiple of {devices}")
  return BatchSplit(global_batch, global_batch // jax.process_count(), global_batch // devices)


def replicate(tree, devices=None):
  """One copy of `tree` on each of `devices` (default: the local devices).

  Placed by a pmapped identity, so the copies are laid out exactly as the
  mapped steps lay out their outputs: the train step compiles once, not again
  at its second call.
  """
  count = len(devices) if devices else jax.local_device_count()
  stacked = jax.tree.map(lambda x: np.broadcast_to(x, (count, *np.shape(x))), tree)
  return jax.pmap(lambda x: x, axis_name=AXIS, devices=devices)(stacked)


def unreplicate(tree):
  """The first local device's copy, fetched to host memory as NumPy arrays.

  Reads the first addressable shard ([1, ...]) rather than indexing the global
  array, which would gather every device's copy (and, on several hosts, fail).
  """
  return jax.tree.map(lambda x: np.asarray(x.addressable_shards[0].data)[0], tree)


def map_train_step(step: Callable, devices=None) -> Callable:
  """`step(state, batch, rng)` over `devices` (default: all); the state is donated."""
  return jax.pmap(step, axis_name=AXIS, donate_argnums=(0,), devices=devices)


def map_eval_step(step: Callable, devices=None) -> Callable:
  return jax.pmap(step, axis_name=AXIS, devices=devices)


def to_devices(batches: Iterator[dict[str, np.ndarray]], size: int = 2) -> Iterator:
  """Puts host batches shaped [local_devices, ...] on the devices, `size` ahead."""
  return jax_utils.prefetch_to_device(batches, size)

