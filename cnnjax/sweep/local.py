"""The local launcher: a stage's runs (cnnjax.sweep.stages) trained on this
machine as `cnnjax train` subprocesses sharing the CPU cores, with resuming,
signals and exit statuses.

- **Resumable.** The stages hand it only runs that are not finished (see
  cnnjax.sweep.results); each is handed to `cnnjax train` on its workdir,
  which resumes from its latest checkpoint, or starts.
- **One sweep per DIR.** `cnnjax sweep` owns DIR while it runs, as a
  training owns its workdir (cnnjax.workdir.ownership: an flock released by
  the kernel when the sweep's process ends, however it ends); a second sweep
  is refused with the owner's pid, host and start. `--summarize` takes no
  lock: it trains nothing and replaces the summary files atomically, so it
  can show a running sweep's progress.
- **CPU cores.** K jobs split the cores this process may use into K groups
  (one core each, shared, when K exceeds them), and each training is pinned
  to its group with sched_setaffinity as soon as it starts, before its
  runtimes start their threads. XLA's CPU client sizes its thread pools
  from the affinity mask (tsl::port::MaxParallelism, unless PJRT_NPROC or
  NPROC is set), and so does TensorFlow for tf.data and its op pools; the
  XLA flag intra_op_parallelism_threads belongs to the old TF-XLA runtime
  and is ignored by the PjRt CPU client. The default K: one per core (see
  docs/ablations.md for the measurement) and per 2 GiB of available memory, one on
  a machine with GPUs or TPUs, where each training uses every local
  accelerator.
- **Devices per run.** `--devices-per-run K` runs G/K trainings at once on a
  machine of G devices, each seeing only its own K: GPUs through
  CUDA_VISIBLE_DEVICES (the visible ones, in order, when it is already set),
  TPU chips through libtpu's TPU_VISIBLE_CHIPS with one chip per process
  (TPU_CHIPS_PER_PROCESS_BOUNDS=1,1,1; several chips per process need a
  slice shape that depends on the host, which cnnjax does not guess), and on
  a machine without either, K cores per training with K CPU devices
  (XLA_FLAGS' host device count). Each training's CPU cores are its share
  as for --jobs. Without the flag, today's behaviour: one training at a time
  using every accelerator.
- **Compiling once.** The runs share a persistent JAX compilation cache,
  `DIR/.jax_cache` (unless JAX_COMPILATION_CACHE_DIR is set): the seeds of
  a variant compile the same programs.
- **Signals.** Trainings run in their own sessions, so a terminal's Ctrl-C
  reaches them only through the sweep, once. SIGTERM or SIGINT stops the
  sweep: no new run starts, the signal is forwarded to the running trainings
  (which save their step and exit 75 or 130), the sweep waits for them,
  writes the summary of what exists and exits 75 (SIGTERM) or 130 (SIGINT).
  Run the same command again to resume. If the sweep itself dies without
  a say (SIGKILL, the OOM killer), the kernel kills its trainings with it
  (Linux's parent-death signal), so none is left running, owning its
  workdir; the next sweep resumes each from its last checkpoint.
- **Exit status** (of `cnnjax sweep`): 0 every run finished; 1 some run
  failed (each failure is reported with its exit status and the last line it
  printed, and the others still run; a tuning trial that diverged is an
  outcome, not a failure); 75 or 130 stopped by a signal; 75 too when a training was
  preempted by someone else (nothing failed; run again); 2 usage error.
"""

import contextlib
import dataclasses
import datetime
import glob
import os
import pathlib
import shlex
import signal
import subprocess
import sys
import time

from cnnjax.errors import INTERRUPTED_STATUS, PREEMPTED_STATUS, UserError
from cnnjax.sweep import results as sweep_results
from cnnjax.sweep.spec import Run
from cnnjax.training import stopping
from cnnjax.training.cluster import visible_gpus
from cnnjax.workdir import metrics as metrics_lib
from cnnjax.workdir import run_log

COMPILATION_CACHE = ".jax_cache"
# What the default --jobs leaves each training: a small one peaks at 1.0 GB
# (LeNet-5) to 1.4 GB (ResNet-20) resident on digits, TensorFlow and JAX
# included (measured with /usr/bin/time -f %M).
MEMORY_PER_JOB = 2 * 2**30
_POLL_SECONDS = 0.2
_EXIT_ON_SIGNAL = {signal.SIGTERM: PREEMPTED_STATUS, signal.SIGINT: INTERRUPTED_STATUS}


def usable_cpus() -> list[int]:
  return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(
      range(os.cpu_count() or 1))


def cpu_groups(cpus: list[int], jobs: int) -> list[list[int]]:
  """`jobs` groups of near-equal size in order; one CPU each, reused, when
  there are more jobs than CPUs."""
  if jobs >= len(cpus):
    return [[cpus[index % len(cpus)]] for index in range(jobs)]
  size, extra = divmod(len(cpus), jobs)
  groups, start = [], 0
  for index in range(jobs):
    end = start + size + (index < extra)
    groups.append(cpus[start:end])
    start = end
  return groups


def has_accelerators() -> bool:
  """NVIDIA GPUs or TPU chips on this machine, from their device files (no JAX)."""
  return bool(glob.glob("/dev/nvidia[0-9]*") or glob.glob("/dev/accel[0-9]*"))


def available_memory() -> int | None:
  """Bytes the kernel could give new processes (MemAvailable), or None if unknown."""
  try:
    with open("/proc/meminfo") as file:
      for line in file:
        if line.startswith("MemAvailable:"):
          return int(line.split()[1]) * 1024
  except (OSError, ValueError, IndexError):
    return None
  return None


def default_jobs(runs: int) -> int:
  """One training per CPU core, no more than there is memory for; one where
  there are accelerators (each training takes them all)."""
  if has_accelerators():
    return 1
  memory = available_memory()
  by_memory = len(usable_cpus()) if memory is None else memory // MEMORY_PER_JOB
  return max(1, min(len(usable_cpus()), runs, by_memory))


@dataclasses.dataclass(frozen=True)
class Slot:
  """Where one training of several at once runs: its CPU cores, and the
  variables that show it its own devices only (empty: everything)."""

  cpus: list[int]
  environment: dict[str, str] = dataclasses.field(default_factory=dict)

  def describe(self) -> str:
    shown = " ".join(f"{key}={value}" for key, value in self.environment.items()
                     if key != "XLA_FLAGS" and key.endswith(("DEVICES", "CHIPS")))
    devices = f" with {shown}" if shown else ""
    return f"cpus {','.join(map(str, self.cpus))}{devices}"


def tpu_chips() -> list[str]:
  numbers = [path[len("/dev/accel"):] for path in glob.glob("/dev/accel[0-9]*")]
  return sorted((number for number in numbers if number.isdigit()), key=int)


def device_slots(per_run: int, cpus: list[int], gpus: list[str], chips: list[str],
                 environ=os.environ) -> list[Slot]:
  """G // per_run slots of `per_run` devices each: GPUs if there are any, else
  TPU chips, else CPU cores (one CPU device per core). UserError if fewer
  than `per_run` devices."""
  if gpus:
    kind, devices = "GPUs", gpus
  elif chips:
    kind, devices = "TPU chips", chips
    if per_run != 1:
      raise UserError(f"--devices-per-run {per_run} on TPU chips: only 1 chip per training "
                      "is supported (several need the slice's shape); use 1, or leave the "
                      "flag out to give each training every chip")
  else:
    kind, devices = "CPU cores", [str(cpu) for cpu in cpus]
  if per_run > len(devices):
    raise UserError(f"--devices-per-run {per_run}: this machine has {len(devices)} {kind}")
  count = len(devices) // per_run
  groups = [devices[index * per_run:(index + 1) * per_run] for index in range(count)]
  if kind == "CPU cores":
    flags = " ".join(flag for flag in environ.get("XLA_FLAGS", "").split()
                     if not flag.startswith("--xla_force_host_platform_device_count"))
    flags = f"{flags} --xla_force_host_platform_device_count={per_run}".strip()
    return [Slot([int(cpu) for cpu in group], {"XLA_FLAGS": flags}) for group in groups]
  cores = cpu_groups(cpus, count)
  if kind == "GPUs":
    return [Slot(core, {"CUDA_VISIBLE_DEVICES": ",".join(group)})
            for core, group in zip(cores, groups)]
  return [Slot(core, {"TPU_VISIBLE_CHIPS": group[0], "TPU_CHIPS_PER_PROCESS_BOUNDS": "1,1,1",
                      "TPU_PROCESS_BOUNDS": "1,1,1", "TPU_PROCESS_PORT": str(8476 + index)})
          for index, (core, group) in enumerate(zip(cores, groups))]


@dataclasses.dataclass
class _Attempt:
  run: Run
  process: subprocess.Popen
  log: object  # The open train.log, the child's stdout and stderr.
  started: float
  signals: list = dataclasses.field(default_factory=list)  # Forwarded to it, in order.


def child_environment(workdir: pathlib.Path) -> dict[str, str]:
  """The environment of every training of the sweep in `workdir`: unbuffered
  output, so the last line of a log is the last thing printed; and one
  persistent JAX compilation cache for all its runs (unless the user chose
  one), since the seeds of a variant compile the same programs. A tiny
  LeNet-5 run: 20 CPU-seconds cold, 12 with the cache warm. Progress is
  plain lines, whatever the user forced for a terminal: a train.log holds no
  carriage returns."""
  environment = {**os.environ, "PYTHONUNBUFFERED": "1", metrics_lib.PROGRESS_VARIABLE: "lines"}
  environment.setdefault("JAX_COMPILATION_CACHE_DIR", str(workdir.resolve() / COMPILATION_CACHE))
  return environment


# Run in front of each training: asks the kernel to SIGKILL it when the sweep
# dies, however the sweep dies (PR_SET_PDEATHSIG, Linux; elsewhere nothing),
# then becomes the training. argv: the sweep's pid, then the training's command.
DIE_WITH_THE_SWEEP = """
import ctypes, os, signal, sys
try:
  ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
except (OSError, AttributeError):
  pass
if os.getppid() != int(sys.argv[1]):  # The sweep died before the request was made.
  sys.exit(1)
os.execv(sys.argv[2], sys.argv[2:])
"""


def guarded(command: list[str]) -> list[str]:
  """`command`, to be killed if this process dies before it ends."""
  return [sys.executable, "-c", DIE_WITH_THE_SWEEP, str(os.getpid()), *command]


def _start(run: Run, slot: Slot, environment: dict[str, str]) -> _Attempt:
  run.workdir.mkdir(parents=True, exist_ok=True)
  log = (run.workdir / run_log.LOG_FILE).open("a")
  log.write(f"{run_log.LOG_START} {datetime.datetime.now().isoformat(timespec='seconds')}"
            f" on {slot.describe()}: {shlex.join(run.command)}\n")
  log.flush()
  process = subprocess.Popen(guarded(run.command), stdin=subprocess.DEVNULL, stdout=log,
                             stderr=subprocess.STDOUT, env={**environment, **slot.environment},
                             start_new_session=True)
  if hasattr(os, "sched_setaffinity"):
    with contextlib.suppress(ProcessLookupError):  # It may already have exited.
      os.sched_setaffinity(process.pid, slot.cpus)
  return _Attempt(run, process, log, time.monotonic())


def _finish(attempt: _Attempt) -> float:
  seconds = time.monotonic() - attempt.started
  stopped = (f", {run_log.STOPPED_BY_SWEEP} on {signal.Signals(attempt.signals[0]).name}"
             if attempt.signals else "")
  attempt.log.write(f"{run_log.LOG_EXIT} {attempt.process.returncode} after "
                    f"{seconds:.1f} s{stopped}\n")
  attempt.log.close()
  return seconds


class _Progress:
  """One line per run on stdout, and a bar over runs on stderr on a terminal
  (cnnjax.workdir.metrics.progress_mode; where there is none, the lines alone)."""

  def __init__(self, total: int, done: int):
    import tqdm

    self._tqdm = tqdm
    self._bar = tqdm.tqdm(total=total, initial=done, unit="run", desc="sweep", dynamic_ncols=True,
                          disable=metrics_lib.progress_mode() == "lines")

  def line(self, text: str) -> None:
    self._tqdm.tqdm.write(text, file=sys.stdout)
    sys.stdout.flush()

  def advance(self) -> None:
    self._bar.update(1)

  def close(self) -> None:
    self._bar.close()


def _outcome_line(result: sweep_results.RunResult, seconds: float) -> str:
  name = f"{result.variant} {result.trial + ' ' if result.trial else ''}seed {result.seed}"
  if result.trial and result.diverged:
    return (f"diverged {name} after {seconds:.0f} s: a tuning outcome (ranked last), not a "
            "failure")
  if result.status == "finished":
    error = result.final_eval_top1_error
    return (f"finished {name} in {seconds:.0f} s: final eval top-1 error "
            f"{'—' if error is None else f'{100 * error:.2f}%'}")
  if result.status == "stopped":
    return f"stopped {name} after {seconds:.0f} s (exit {result.exit_status}); rerun to resume"
  return (f"failed {name} after {seconds:.0f} s: exit {result.exit_status}: "
          f"{result.reason or 'no output'}")


class LocalLauncher:
  """Trains a stage's runs on this machine, K at a time (see the module
  docstring), and returns when they have ended: cnnjax.sweep.stages's
  launcher for one machine. `signals` is the list noting_signals keeps."""

  waits = True
  name = "local"

  def __init__(self, workdir: pathlib.Path, jobs: int | None, signals: list[int],
               devices_per_run: int | None = None):
    self.workdir, self.jobs, self.signals = workdir, jobs, signals
    self.devices_per_run = devices_per_run

  def slots(self, runs: int) -> list[Slot]:
    """Where the trainings run, one slot per training at once."""
    if self.devices_per_run:
      return device_slots(self.devices_per_run, usable_cpus(), visible_gpus(), tpu_chips())
    return [Slot(cpus) for cpus in cpu_groups(usable_cpus(), self.jobs or default_jobs(runs))]

  def launch(self, runs: list[Run], refresh) -> int | None:
    """Trains `runs`; None once every one has ended, or the exit status of
    the signal that stopped them (the trainings saved their steps)."""
    slots = self.slots(len(runs))
    progress = _Progress(len(runs), 0)
    progress.line(f"training {len(runs)} run{'s' * (len(runs) > 1)}, {len(slots)} at a time")
    try:
      _train(list(runs), slots, child_environment(self.workdir),
             self.signals, progress, refresh, None)
    finally:
      progress.close()
    return _EXIT_ON_SIGNAL[self.signals[0]] if self.signals else None


@contextlib.contextmanager
def noting_signals():
  """Yields the list of the SIGTERMs and SIGINTs received until the block
  ends, in order; a SIGTERM the CLI noted while the sweep was starting counts."""
  signals = [stopping.stop_requested()] if stopping.stop_requested() else []
  previous = {signum: signal.signal(signum, lambda signum, frame: signals.append(signum))
              for signum in _EXIT_ON_SIGNAL}
  try:
    yield signals
  finally:
    for signum, handler in previous.items():
      signal.signal(signum, handler)


def _train(queue: list[Run], slots: list[Slot], environment: dict[str, str],
           signals: list[int], progress: _Progress, summarize,
           target: float | None) -> tuple[int, int]:
  """The launch loop, until every run has ended or a signal in `signals`
  stopped it; returns the numbers of runs failed and stopped."""
  running: dict[int, _Attempt] = {}  # By slot.
  failed = stopped = 0
  try:
    while (queue and not signals) or running:
      while queue and not signals and len(running) < len(slots):
        group = min(set(range(len(slots))) - running.keys())
        run = queue.pop(0)
        running[group] = _start(run, slots[group], environment)
        progress.line(f"started {run.name} on {slots[group].describe()}: "
                      f"{run.workdir / run_log.LOG_FILE}")
      for group, attempt in list(running.items()):
        # Forwarded here rather than in the handler, so that no training
        # started around a signal misses it.
        for signum in signals[len(attempt.signals):]:
          with contextlib.suppress(ProcessLookupError):
            attempt.process.send_signal(signum)
          attempt.signals.append(signum)
        if attempt.process.poll() is None:
          continue
        del running[group]
        seconds = _finish(attempt)
        result = sweep_results.read_run(attempt.run, target)
        failed += result.status not in ("finished", "stopped")
        stopped += result.status == "stopped"
        progress.line(_outcome_line(result, seconds))
        progress.advance()
        summarize(frozenset(other.run.name for other in running.values()))
      time.sleep(_POLL_SECONDS)
  finally:
    for attempt in running.values():  # Only after an error here: stop them as for SIGTERM.
      with contextlib.suppress(ProcessLookupError):
        attempt.process.send_signal(signal.SIGTERM)
      attempt.signals.append(signal.SIGTERM)
      attempt.process.wait()
      _finish(attempt)
  return failed, stopped
