"""Which processes make up a run, as the command line or the environment
says: the three multi-process flags and their CNNJAX_* variables, or the
variables a launcher (SLURM's srun, Open MPI's mpirun, GKE's TPU jobs) sets in
each process it starts.

JAX-free, so the CLI checks them before importing JAX; cnnjax.training.parallel
joins the processes with `jax.distributed.initialize()`.
"""

import dataclasses
import glob
import os

from cnnjax.errors import UserError

# Where the commands read the three multi-process flags when they are not given.
ENVIRONMENT = {"coordinator_address": "CNNJAX_COORDINATOR_ADDRESS",
               "num_processes": "CNNJAX_NUM_PROCESSES", "process_id": "CNNJAX_PROCESS_ID"}


# What each launcher documents in the environment of every process it starts,
# in the order jax.distributed.initialize() tries them (Open MPI first).
# Open MPI: mpirun(1), "Environment variables". SLURM: srun(1), "Output
# environment variables": the five that every task of a job step has, so a
# batch script's or salloc's own shell (no step yet) is no job of several
# processes. GKE: the hosts of a multi-host TPU slice, one per process.
OPEN_MPI_SIZE = "OMPI_COMM_WORLD_SIZE"
SLURM_STEP = ("SLURM_JOB_ID", "SLURM_STEP_NODELIST", "SLURM_NTASKS", "SLURM_PROCID",
              "SLURM_LOCALID")
TPU_HOSTS = "TPU_WORKER_HOSTNAMES"


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


@dataclasses.dataclass(frozen=True)
class Launch:
  """A job that a launcher started, as its documented variables describe it."""

  launcher: str  # "Open MPI", "SLURM" or "Cloud TPU (GKE)", for messages.
  variable: str  # The variable that gave the number, for messages.
  num_processes: int


def launched_processes(environ=os.environ) -> Launch | None:
  """The job this process belongs to, by its launcher's own variables; None outside one.

  Asked before joining, because joining starts JAX's coordination service:
  a job of one process (each task of a SLURM job array, a plain run) must not
  start one, or two such jobs on a node could claim the same port.
  jax.distributed.initialize() then finds the coordinator itself.
  """
  if OPEN_MPI_SIZE in environ:
    return Launch("Open MPI", OPEN_MPI_SIZE, _count(environ, OPEN_MPI_SIZE))
  if all(variable in environ for variable in SLURM_STEP):
    return Launch("SLURM", "SLURM_NTASKS", _count(environ, "SLURM_NTASKS"))
  if environ.get(TPU_HOSTS):
    return Launch("Cloud TPU (GKE)", TPU_HOSTS, len(environ[TPU_HOSTS].split(",")))
  return None


def _count(environ, variable: str) -> int:
  try:
    return int(environ[variable])
  except ValueError:
    raise UserError(f"{variable}={environ[variable]!r} (set by the job's launcher) is not an "
                    "integer") from None


def visible_gpus(environ=os.environ) -> list[str]:
  """The GPUs this process may use: CUDA_VISIBLE_DEVICES's list, else every /dev/nvidiaN."""
  if environ.get("CUDA_VISIBLE_DEVICES", "").strip():
    return [gpu.strip() for gpu in environ["CUDA_VISIBLE_DEVICES"].split(",") if gpu.strip()]
  numbers = [path[len("/dev/nvidia"):] for path in glob.glob("/dev/nvidia[0-9]*")]
  return sorted((number for number in numbers if number.isdigit()), key=int)


def slurm_task_gpus(environ=os.environ) -> list[int] | None:
  """Every GPU the task sees, when a SLURM job step runs one task per node; else None.

  jax.distributed.initialize() gives each SLURM task the one GPU numbered by
  its SLURM_LOCALID, right for one task per GPU; a task alone on its node
  would drive its first GPU only. For it, cnnjax passes these as
  `local_device_ids`. SLURM_STEP_TASKS_PER_NODE: srun(1), e.g. `1(x2)` or `8,1`.
  """
  tasks = environ.get("SLURM_STEP_TASKS_PER_NODE", "")
  if not tasks or any(part.split("(")[0] != "1" for part in tasks.split(",")):
    return None
  gpus = visible_gpus(environ)
  return list(range(len(gpus))) if len(gpus) > 1 else None
