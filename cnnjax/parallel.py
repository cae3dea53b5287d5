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

import dataclasses
import os
import sys
from typing import Callable, Iterator

import jax
import numpy as np
from flax import jax_utils

from cnnjax.errors import UserError
from cnnjax.steps import AXIS

# A process that stops sending heartbeats for this long is declared dead and
# every other process is stopped (JAX's default is 100 s); a lost peer thus
# ends the whole run within about half a minute instead of leaving it hung.
HEARTBEAT_TIMEOUT_SECONDS = 30
# How long a finished process waits at exit for the others to finish too.
SHUTDOWN_TIMEOUT_SECONDS = 60
# Where `cnnjax train|eval` reads the three multi-process flags when they are not given.
ENVIRONMENT = {"coordinator_address": "CNNJAX_COORDINATOR_ADDRESS",
               "num_processes": "CNNJAX_NUM_PROCESSES", "process_id": "CNNJAX_PROCESS_ID"}
# Launchers whose jobs JAX's cluster detection understands. (Its Kubernetes
# detection is left out: it needs the `kubernetes` package and a Job spec.)
AUTO_DETECTED = ("ompi", "slurm", "gcetpu", "gketpu")


@dataclasses.dataclass(frozen=True)
class Cluster:
  """The processes of an explicitly launched multi-process run."""

  coordinator_address: str  # HOST:PORT where process 0 serves the coordination service.
  num_processes: int
  process_id: int


def explicit_cluster(coordinator_address: str | None = None, num_processes: int | None = None,
                     process_id: int | None = None, environ=os.environ) -> Cluster | None:
  """The cluster the flags (else the CNNJAX_* variables) name, or None when they name none.

  All three go together; anything partial or impossible is a UserError,
  raised before any process tries to connect.
  """
  given = {"coordinator_address": coordinator_address, "num_processes": num_processes,
           "process_id": process_id}
  for key, variable in ENVIRONMENT.items():
    if given[key] is None and environ.get(variable):
      value = environ[variable]
      if key != "coordinator_address":
        try:
          value = int(value)
        except ValueError:
          raise UserError(f"{variable}={value!r} is not an integer") from None
      given[key] = value
  missing = [f"--{key} ({ENVIRONMENT[key]})" for key, value in given.items() if value is None]
  if len(missing) == len(given):
    return None
  if missing:
    raise UserError("--coordinator_address, --num_processes and --process_id go together; "
                    f"missing: {', '.join(missing)}")
  cluster = Cluster(**given)
  host, _, port = cluster.coordinator_address.rpartition(":")
  if not host or not port.isdigit() or not 0 < int(port) < 65536:
    raise UserError(f"--coordinator_address={cluster.coordinator_address!r} is not HOST:PORT "
                    "(e.g. 10.0.0.1:1234, the address of process 0 and a free port)")
  if cluster.num_processes < 1:
    raise UserError(f"--num_processes={cluster.num_processes} must be at least 1")
  if not 0 <= cluster.process_id < cluster.num_processes:
    raise UserError(f"--process_id={cluster.process_id} must be in 0..{cluster.num_processes - 1} "
                    f"(--num_processes={cluster.num_processes})")
  return cluster


def _detected_process_count() -> int:
  """How many processes JAX's cluster detection sees in this job; 0 outside a cluster.

  Uses JAX's own detectors (private, as JAX exposes them only through
  `jax.distributed.initialize()`), so cnnjax and JAX agree on what a job is.
  """
  from jax._src import clusters

  for cluster in clusters.ClusterEnv._cluster_types:
    if cluster.name in AUTO_DETECTED and cluster.is_env_present():
      return cluster.get_process_count()
  return 0


def initialize(cluster: Cluster | None) -> None:
  """Joins the other processes of a multi-process run, if this is one.

  Explicitly with `cluster`; automatically when JAX's cluster detection
  finds a SLURM job, Open MPI job or Cloud TPU pod slice of several
  processes. Otherwise (one process) nothing happens. Must run before
  anything asks JAX about devices.
  """
  if (cluster.num_processes if cluster else _detected_process_count()) < 2:
    return
  # CPU devices of different processes talk through gloo (tests, CPU clusters);
  # GPUs and TPUs use their own collectives and ignore this.
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(**(dataclasses.asdict(cluster) if cluster else {}),
                             heartbeat_timeout_seconds=HEARTBEAT_TIMEOUT_SECONDS,
                             shutdown_timeout_seconds=SHUTDOWN_TIMEOUT_SECONDS)


def is_distributed() -> bool:
  return jax.distributed.is_initialized()


def is_primary() -> bool:
  """Whether this is process 0, the one that writes metrics and prints."""
  return jax.process_index() == 0


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

