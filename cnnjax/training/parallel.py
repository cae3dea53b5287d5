"""Everything about devices: joining the other processes of a multi-process
run, how many devices, replication, batch sharding, prefetch, and mapping the
per-device steps over them with `jax.pmap`.

The only module that knows data parallelism is done with pmap: the steps are
written per device with collectives over `steps.AXIS`, so the same steps could
be wrapped with `jax.jit(jax.shard_map(...))` by changing this file alone.

Several processes (hosts of a TPU pod slice, tasks of a SLURM job, or several
processes of one machine) run through JAX's own runtime, `jax.distributed`:
each process feeds its local devices and `pmap`'s collectives span the devices
of all processes, so the train step is the same code on one process or many.
"""

import collections
import contextlib
import dataclasses
import os
import pathlib
import sys
from typing import Callable, Iterator, Sequence

import jax
import numpy as np
from jax.experimental import multihost_utils

from cnnjax.errors import UserError
from cnnjax.training import cluster as cluster_lib
from cnnjax.training import supervisor
from cnnjax.training.cluster import Cluster
from cnnjax.training.steps import AXIS
from cnnjax.workdir import ownership

# A process that stops sending heartbeats for this long is declared dead and
# every other process is stopped (JAX's default is 100 s); a lost peer thus
# ends the whole run within about half a minute instead of leaving it hung.
HEARTBEAT_TIMEOUT_SECONDS = 30
# How long a finished process waits at exit for the others to finish too.
SHUTDOWN_TIMEOUT_SECONDS = 60
# What a collective's error says when a peer process is gone: its connection
# reset or closed (gloo on CPUs, NCCL on GPUs), or a peer that did not come to
# a collective in time (gloo waits 30 s for the others to set one up; a peer
# that is merely that late, on an overloaded machine, ends the run too, and
# the relaunch resumes it).
PEER_GONE = ("Connection reset by peer", "Connection closed by peer", "Socket closed",
             "Broken pipe", "Timed out waiting", "remote process exited", "DEADLINE_EXCEEDED")
Devices = Sequence[jax.Device] | None  # None: every device of every process.


def initialize(cluster: Cluster | None) -> None:
  """Joins the other processes of a multi-process run, if this is one.

  Explicitly with `cluster`; otherwise when the job's launcher says it
  started several processes (`cluster.launched_processes`: a SLURM job step,
  an Open MPI job, a multi-host TPU slice on GKE), with the coordinator
  address, process count and id that jax.distributed.initialize() detects.
  A run of one process joins nothing. Must run before anything asks JAX
  about devices.
  """
  launch = None if cluster else cluster_lib.launched_processes()
  processes = cluster.num_processes if cluster else launch.num_processes if launch else 1
  if processes < 2:
    return
  # One SLURM task per node drives all its GPUs (JAX alone would give it one).
  gpus = cluster_lib.slurm_task_gpus() if launch and launch.launcher == "SLURM" else None
  try:
    jax.distributed.initialize(**(dataclasses.asdict(cluster) if cluster else {}),
                               **({"local_device_ids": gpus} if gpus else {}),
                               heartbeat_timeout_seconds=HEARTBEAT_TIMEOUT_SECONDS,
                               shutdown_timeout_seconds=SHUTDOWN_TIMEOUT_SECONDS)
  except ValueError as error:  # Raised before connecting: nothing to undo.
    if cluster:
      raise
    raise UserError(
        f"{launch.variable} says this is one of {launch.num_processes} processes of a "
        f"{launch.launcher} job, but jax.distributed.initialize() could not find their "
        f"coordinator ({error}); pass --coordinator_address, --num_processes and "
        "--process_id (or CNNJAX_COORDINATOR_ADDRESS, ...)") from None
  # CPU devices of different processes talk through gloo (tests, CPU clusters);
  # GPUs and TPUs use their own collectives and ignore this. Read when the
  # first device is asked for, which comes later.
  jax.config.update("jax_cpu_collectives_implementation", "gloo")


def is_distributed() -> bool:
  return jax.distributed.is_initialized()


def is_primary() -> bool:
  """Whether this is process 0, the one that writes metrics and prints."""
  return jax.process_index() == 0


def primary_decides(yes: bool) -> bool:
  """Process 0's `yes`, in every process (a collective: all must call it)."""
  if jax.process_count() == 1:
    return yes
  return bool(multihost_utils.broadcast_one_to_all(np.int32(yes)))


@contextlib.contextmanager
def own_workdir(workdir: pathlib.Path, command: str = "train", shared: bool = False):
  """`ownership.own` for the whole run: process 0 holds the workdir (the
  processes share it) and the others follow its answer, so a refused run
  leaves together, every process with one line."""
  with contextlib.ExitStack() as stack:
    refusal = None
    if is_primary():
      try:
        stack.enter_context(ownership.own(workdir, command, shared))
      except UserError as error:
        refusal = error
    if not primary_decides(refusal is None):
      raise refusal or ownership.refused_by_primary(workdir)
    yield


def lost_peer(error: BaseException) -> str | None:
  """The line (after `cnnjax: `) that ends a process whose collective failed
  because a peer process is gone, or None for any other error.

  A killed peer's connections reset, so the collective fails at once, in
  Python; a peer that hangs instead is declared dead by JAX's runtime after
  HEARTBEAT_TIMEOUT_SECONDS (see cnnjax.training.supervisor).
  """
  text = str(error)
  if not (is_distributed() and isinstance(error, jax.errors.JaxRuntimeError)
          and any(sign in text for sign in PEER_GONE)):
    return None
  who = supervisor.lost_process(text, jax.process_index(), jax.process_count())
  return supervisor.lost_message(who, jax.process_count(), text.splitlines()[0])


def exit_now(code: int) -> None:
  """Ends a failed process of a multi-process run at once, with `code`.

  A normal exit would wait at JAX's shutdown barrier for peers that are
  themselves blocked in a collective waiting for this process; exiting at
  once closes its connections and stops its heartbeats, so the peers fail
  within HEARTBEAT_TIMEOUT_SECONDS instead of hanging.
  """
  sys.stdout.flush()
  sys.stderr.flush()
  os._exit(code)


@dataclasses.dataclass(frozen=True)
class BatchSplit:
  """How a global batch divides: over processes, then over each one's devices."""

  global_batch: int
  process_batch: int
  device_batch: int


def device_count(devices: Devices = None) -> int:
  return len(devices) if devices else jax.device_count()


def local_devices(devices: Devices = None) -> list[jax.Device]:
  """This process's share of `devices`, in the order of pmap's axis."""
  return [device for device in devices or jax.devices()
          if device.process_index == jax.process_index()]


def split_batch(global_batch: int, key: str = "batch_size", devices: Devices = None) -> BatchSplit:
  """Splits `global_batch` over `devices`, or a UserError naming both numbers."""
  count = device_count(devices)
  if global_batch % count:
    raise UserError(
        f"config.{key}={global_batch} does not divide evenly over {count} devices "
        f"({jax.process_count()} processes x {count // jax.process_count()} local devices); "
        f"use a multiple of {count}")
  return BatchSplit(global_batch, global_batch // jax.process_count(), global_batch // count)


def replicate(tree, devices: Devices = None):
  """One copy of `tree` on each local device of `devices` (default: all).

  Placed by a pmapped identity, so the copies are laid out exactly as the
  mapped steps lay out their outputs: the train step compiles once, not again
  at its second call.
  """
  count = len(local_devices(devices))
  stacked = jax.tree.map(lambda x: np.broadcast_to(x, (count, *np.shape(x))), tree)
  return jax.pmap(lambda x: x, axis_name=AXIS, devices=devices)(stacked)


def unreplicate(tree):
  """The first local device's copy, fetched to host memory as NumPy arrays.

  Reads the first addressable shard ([1, ...]) rather than indexing the global
  array, which would gather every device's copy (and, on several hosts, fail).
  """
  return jax.tree.map(lambda x: np.asarray(x.addressable_shards[0].data)[0], tree)


def map_train_step(step: Callable, devices: Devices = None) -> Callable:
  """`step(state, batch, rng)` over `devices` (default: all); the state is donated."""
  return jax.pmap(step, axis_name=AXIS, donate_argnums=(0,), devices=devices)


def map_eval_step(step: Callable, devices: Devices = None) -> Callable:
  return jax.pmap(step, axis_name=AXIS, devices=devices)


def to_devices(batches: Iterator[dict[str, np.ndarray]], devices: Devices = None,
               size: int = 2) -> Iterator:
  """Puts host batches shaped [local devices, ...] on this process's `devices`, `size` ahead.

  Each array is split along its first axis over a one-axis mesh of the local
  devices, the layout of pmap's mapped inputs (pmap is built on shard_map
  since JAX 0.8), so the steps take them as they are. Copies are
  asynchronous: while the step uses one batch, the next `size - 1` are on
  their way.
  """
  mesh = jax.sharding.Mesh(np.array(local_devices(devices)), (AXIS,))
  sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(AXIS))
  queue = collections.deque()
  for batch in batches:
    queue.append(jax.device_put(batch, sharding))
    if len(queue) >= size:
      yield queue.popleft()
  while queue:
    yield queue.popleft()

