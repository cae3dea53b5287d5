"""A real one-node SLURM cluster for the tests: munged, slurmctld and slurmd
started from Debian's `slurm-wlm` and `munge` packages, everything (config,
munge key and socket, state, spool, logs) in one temporary folder.

Several such clusters (pytest-xdist workers, other checkouts on the same
machine, a system one) live side by side: each has its own free ports, its
own munge socket, and job ids starting at a random number, since JAX derives
a job's coordinator port from its id (jax.distributed under SLURM: 61440 +
id % 4096). Stopping ends only the daemons this object started (and the jobs
they ran), by their process ids.

Accounting (slurmdbd) is not run: `scontrol show job` knows a job until
MinJobAge after it ends, which the tests set long enough to read its state.

Tasks are bound to the CPUs SLURM allotted them (TaskPlugin=task/affinity),
as real clusters bind them (task/affinity or task/cgroup): a task of
`--cpus-per-task=C` may run on C cores, not on all of the node's. On a CPU
that decides a run's numbers, not only its speed: XLA sizes its thread pool
from the cores a process may use, and its matrix products and convolutions
sum in an order that depends on the pool's size (docs/clusters.md). Without
binding, a run launched by SLURM would not equal the same run launched here
on its share of the cores.

SLURM's clocks, shortened where the defaults would make tests wait idly:
- A requeued job may not start again until its launch credential has
  expired: `cred_expire` seconds (AuthInfo; default 120, minimum 5). 10
  here: a batch job's and a step's credentials are checked by slurmd within
  a second of their creation on this one host, so 10 s is still far from
  rejecting a launch on a loaded machine.
- A pending job that no event wakes (a requeued one whose wait is over) is
  started by the scheduler's full pass, every `sched_interval` seconds
  (SchedulerParameters; default 60). 5 here.
- Time limits and the warning signal (`--signal`) are checked every 30 s
  (slurmctld's PERIODIC_TIMEOUT, compiled in; no setting): the warning comes
  between SECONDS and SECONDS + 30 before the limit, and SIGTERM at the limit
  or up to 30 s after it (OverTimeLimit=0), then SIGKILL KillWait seconds later.
"""

import contextlib
import os
import pathlib
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time

BINARIES = ("munged", "slurmctld", "slurmd", "srun", "sbatch", "scontrol", "squeue", "scancel")
# Seconds between SIGTERM and SIGKILL at a time limit or scancel; short for the tests.
KILL_WAIT_SECONDS = 5
CREDENTIAL_SECONDS = 10  # How long a requeued job waits before it may start again.
SCHEDULER_INTERVAL_SECONDS = 5  # The full scheduling pass.

CONFIG = """\
ClusterName=cnnjaxtest
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={controller_port}
SlurmdPort={node_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={root}/munge.socket,cred_expire={credential_seconds}
CredType=cred/munge
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmctldDebug={controller_log_level}
SlurmdLogFile={root}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/builtin
ReturnToService=2
FirstJobId={first_job_id}
MinJobAge=600
KillWait={kill_wait}
OverTimeLimit=0
InactiveLimit=0
JobRequeue=0
SchedulerParameters=defer_batch,sched_interval={scheduler_interval}
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory} State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


def missing() -> str | None:
  """Why no cluster can start here, or None."""
  absent = [name for name in BINARIES if shutil.which(name) is None]
  if absent:
    return (f"SLURM is not installed ({', '.join(absent)} not found): apt-get install -y "
            "--no-install-recommends slurm-wlm munge")
  if os.geteuid() != 0:
    return "the one-node SLURM cluster runs its daemons as root, and this is not root"
  return None


def _free_port() -> int:
  with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    return probe.getsockname()[1]


class Cluster:
  """A one-node SLURM cluster; `environment` is what its clients need (SLURM_CONF)."""

  def __init__(self, cpus: int | None = None, controller_log_level: str = "info"):
    """`controller_log_level`: slurmctld's (SlurmctldDebug); at "debug" its log
    names each warning signal it sends (scripts/slurm_time_limit.py reads it)."""
    self.controller_log_level = controller_log_level
    self.root = pathlib.Path(tempfile.mkdtemp(prefix="cnnjax-slurm-"))
    self.host = socket.gethostname()
    self.cpus = cpus or len(os.sched_getaffinity(0))
    self.environment = {**os.environ, "SLURM_CONF": str(self.root / "slurm.conf")}
    # Variables of an enclosing job would make our clients act inside it.
    for name in list(self.environment):
      if name.startswith(("SLURM_", "SBATCH_", "SRUN_", "SALLOC_")) and name != "SLURM_CONF":
        del self.environment[name]
    self._daemons: list[subprocess.Popen] = []

  def start(self, timeout: float = 30.0) -> "Cluster":
    for folder in ("state", "spool"):
      (self.root / folder).mkdir(mode=0o700)
    key = self.root / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    (self.root / "slurm.conf").write_text(CONFIG.format(
        host=self.host, root=self.root, controller_port=_free_port(), node_port=_free_port(),
        first_job_id=random.randrange(1000, 1_000_000), kill_wait=KILL_WAIT_SECONDS,
        credential_seconds=CREDENTIAL_SECONDS, scheduler_interval=SCHEDULER_INTERVAL_SECONDS,
        controller_log_level=self.controller_log_level, cpus=self.cpus, memory=1000))
    self._spawn("munged", "--foreground", "--force", f"--key-file={key}",
                f"--socket={self.root / 'munge.socket'}", f"--pid-file={self.root / 'munged.pid'}",
                f"--log-file={self.root / 'munged.log'}", f"--seed-file={self.root / 'munge.seed'}")
    self._wait(lambda: (self.root / "munge.socket").exists(), timeout, "munged")
    config = str(self.root / "slurm.conf")
    self._spawn("slurmctld", "-D", "-i", "-f", config)
    self._spawn("slurmd", "-D", "-f", config, "-N", self.host)
    self._wait(self._node_idle, timeout, "the node to be idle")
    return self

  def _spawn(self, *command: str) -> None:
    log = (self.root / f"{command[0]}.out").open("ab")
    self._daemons.append(subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log,
                                          stderr=subprocess.STDOUT, env=self.environment,
                                          start_new_session=True))

  def _wait(self, ready, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
      for daemon in self._daemons:
        if daemon.poll() is not None:
          raise RuntimeError(f"{daemon.args[0]} exited with {daemon.returncode}: "
                             f"{self.logs()}")
      if time.monotonic() > deadline:
        raise RuntimeError(f"timed out after {timeout} s waiting for {what}: {self.logs()}")
      time.sleep(0.2)

  def _node_idle(self) -> bool:
    done = self.run("sinfo", "--noheader", "--format=%t", check=False)
    return done.returncode == 0 and done.stdout.strip() == "idle"

  def logs(self) -> str:
    return "\n".join(f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}"
                     for path in sorted(self.root.glob("*.log")) + sorted(self.root.glob("*.out")))

  def run(self, *command: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    """A SLURM client command (sbatch, srun, scontrol, ...) against this cluster."""
    kwargs.setdefault("env", self.environment)
    return subprocess.run(command, capture_output=True, text=True, check=check, **kwargs)

  def sbatch(self, *arguments: str, **kwargs) -> int:
    """Submits a batch job; its id. `kwargs` go to subprocess.run (cwd, env)."""
    done = self.run("sbatch", "--parsable", *arguments, **kwargs)
    return int(done.stdout.strip().split(";")[0])

  def job(self, job_id: int) -> dict[str, str]:
    """`scontrol show job`'s fields (JobState, Restarts, ExitCode, ...), or {} if unknown."""
    done = self.run("scontrol", "--oneliner", "show", "job", str(job_id), check=False)
    fields = {}
    for word in done.stdout.split():
      key, _, value = word.partition("=")
      fields.setdefault(key, value)
    return fields if done.returncode == 0 else {}

  def wait_job(self, job_id: int, states=("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT",
                                          "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED"),
               timeout: float = 300.0) -> dict[str, str]:
    """Waits until the job is in one of `states`; its fields then."""
    deadline = time.monotonic() + timeout
    while True:
      fields = self.job(job_id)
      if fields.get("JobState") in states:
        return fields
      if time.monotonic() > deadline:
        raise TimeoutError(f"job {job_id} still {fields.get('JobState')} after {timeout} s")
      time.sleep(0.5)

  def stop(self) -> None:
    """Cancels every job, then ends the daemons this object started."""
    if not self._daemons:
      return
    with contextlib.suppress(OSError, subprocess.SubprocessError):
      self.run("scancel", "--full", "--user=root", check=False, timeout=10)
      deadline = time.monotonic() + 2 * KILL_WAIT_SECONDS + 5
      while time.monotonic() < deadline and self.run(
          "squeue", "--noheader", check=False, timeout=10).stdout.strip():
        time.sleep(0.5)
    for daemon in reversed(self._daemons):  # slurmd, slurmctld, then munged.
      with contextlib.suppress(ProcessLookupError):
        daemon.send_signal(signal.SIGTERM)
      try:
        daemon.wait(timeout=10)
      except subprocess.TimeoutExpired:
        daemon.kill()
        daemon.wait()
    self._daemons = []
    shutil.rmtree(self.root, ignore_errors=True)
