"""The SLURM launcher: a stage's runs (cnnjax.sweep.stages) submitted as one
job array, and `cnnjax sweep --status`, each run's state from its workdir and
the scheduler's queue.

- **sbatch, not submitit.** Each array task is an ordinary `cnnjax train` in
  its run directory (so resume, eval, report and plot work on it unchanged),
  started by a short bash script that `sbatch` submits. submitit would pickle
  a Python function into each task instead, and brings a dependency for what
  one `sbatch --parsable` call and two queries (`squeue`, `scontrol`) do.
- **Submit and return.** `launch` submits the runs that are not finished and
  returns; the sweep says so and exits 0. Running the same command again
  finds what the runs left on disk and goes on: it submits only the runs that
  are neither finished nor pending or running in the queue, so nothing is
  ever trained twice at once; when a stage's runs have all finished, the
  next stage (the seeds after the tuning, the next round of `--seeds auto`)
  is submitted, and when the last has, the summary, curves and verdicts are
  the local launcher's, from the same files.
- **Records.** Every submission is appended to DIR/slurm/jobs.jsonl (the
  array's job id, each run's task index and workdir) beside the batch script
  that was submitted (DIR/slurm/<job id>.sbatch); each task's SLURM output
  goes to DIR/slurm/<job id>_<task>.out, the training's own output to its
  run directory's train.log, framed by start and exit lines as the local
  launcher frames it.
- **Time limits and preemption.** With --slurm.time, each task gets SIGUSR1
  WARNING_SECONDS ahead of its limit: the training saves its step and exits
  75, and the task requeues itself (`scontrol requeue`), resuming where it
  stopped; preempted or requeued by the scheduler, it resumes the same way. A
  task cancelled (`scancel`) stays cancelled: its run is resubmitted, and
  resumes from its last checkpoint, by the next `cnnjax sweep`.
- **Runs that cannot start.** sbatch's refusal (a partition that does not
  exist, more GPUs than a node has) stops the sweep with sbatch's message
  before anything is recorded; a task that starts and fails (a dataset
  missing on the compute nodes) shows as failed in `--status` and the
  summary, with the last line it printed; a task held pending shows the
  scheduler's reason.
"""

import dataclasses
import datetime
import json
import os
import pathlib
import shlex
import shutil
import subprocess

from cnnjax.errors import UserError
from cnnjax.sweep import local
from cnnjax.sweep.results import FINISHED, read_run
from cnnjax.sweep.spec import Run
from cnnjax.workdir import run_log

RECORDS_DIR = "slurm"
JOBS_FILE = "jobs.jsonl"
# The warning ahead of a time limit; SLURM may send it up to 30 s earlier
# still (slurmctld checks every 30 s; docs/clusters.md). Two minutes save a small model's step many
# times over; a long ImageNet run sets its own limit with room to spare.
WARNING_SECONDS = 120
QUEUED = {"PENDING": "pending", "REQUEUED": "pending", "REQUEUE_HOLD": "pending",
          "REQUEUE_FED": "pending", "CONFIGURING": "running", "RUNNING": "running",
          "COMPLETING": "running", "SUSPENDED": "running", "STAGE_OUT": "running",
          "RESIZING": "running", "SIGNALING": "running"}


@dataclasses.dataclass(frozen=True)
class Options:
  """The --slurm.* flags: where and with what each run's task runs."""

  partition: str | None = None
  time: str | None = None  # sbatch --time: MINUTES, HH:MM:SS, D-HH:MM:SS, ...
  gpus_per_run: int = 0
  cpus_per_run: int | None = None
  max_running: int | None = None  # Tasks of the array running at once.

  def directives(self, tasks: int) -> list[str]:
    """The #SBATCH lines of an array of `tasks` runs."""
    array = f"0-{tasks - 1}" + (f"%{self.max_running}" if self.max_running else "")
    lines = ["--job-name=cnnjax-sweep", f"--array={array}", "--ntasks=1", "--requeue",
             "--open-mode=append"]
    if self.partition:
      lines.append(f"--partition={self.partition}")
    if self.time:
      lines += [f"--time={self.time}", f"--signal=USR1@{WARNING_SECONDS}"]
    if self.gpus_per_run:
      lines.append(f"--gpus={self.gpus_per_run}")
    if self.cpus_per_run:
      lines.append(f"--cpus-per-task={self.cpus_per_run}")
    return lines


def client(name: str) -> str:
  """The path of SLURM's client `name`, or a UserError saying where to run the sweep."""
  path = shutil.which(name)
  if path is None:
    raise UserError(f"--launcher slurm needs SLURM's `{name}` on PATH; run the sweep on a "
                    "machine that submits SLURM jobs (a login node), or use --launcher local")
  return path


# The array task: runs the training of its index, framed in the run's
# train.log as the local launcher frames it, and requeues itself when the
# training saved its step on the time limit's warning (exit 75). SIGTERM (a
# cancellation, the limit itself) is noted rather than ending the script, so
# that the exit line is written once the training has saved and exited; a
# cancelled task is not requeued (the next `cnnjax sweep` resubmits it).
TASK = """\
i=$SLURM_ARRAY_TASK_ID
task="${{SLURM_ARRAY_JOB_ID}}_$i"
mkdir -p "${{workdirs[$i]}}"
log="${{workdirs[$i]}}/{log}"
echo "{start} $(date +%Y-%m-%dT%H:%M:%S) in SLURM job $task on $(hostname): ${{commands[$i]}}" \\
  >> "$log"
trap 'signalled=", stopped by SLURM"' TERM
signalled=""
SECONDS=0
eval "srun --ntasks=1 ${{commands[$i]}}" >> "$log" 2>&1 &
pid=$!
wait "$pid"; status=$?
while kill -0 "$pid" 2>/dev/null; do wait "$pid"; status=$?; done  # A trap cut `wait` short.
echo "{exit} $status after $SECONDS.0 s$signalled" >> "$log"
if [ "$status" -eq {preempted} ] && [ -z "$signalled" ]; then
  scontrol requeue "$task" && exit 0
fi
exit "$status"
"""


def batch_script(runs: list[Run], options: Options, records: pathlib.Path) -> str:
  lines = ["#!/bin/bash", *(f"#SBATCH {line}" for line in options.directives(len(runs))),
           f"#SBATCH --output={records}/%A_%a.out",
           "# By SLURM_ARRAY_TASK_ID: each run's directory and its `cnnjax train`.",
           "workdirs=(", *(f"  {shlex.quote(str(run.workdir.resolve()))}" for run in runs), ")",
           "commands=(", *(f"  {shlex.quote(shlex.join(run.command))}" for run in runs), ")"]
  return "\n".join(lines) + "\n" + TASK.format(
      log=run_log.LOG_FILE, start=run_log.LOG_START, exit=run_log.LOG_EXIT,
      preempted=run_log.STOPPED_STATUSES[0])


def read_jobs(workdir: pathlib.Path) -> dict[str, dict]:
  """Per run directory, its latest submission: {"job", "task", "name", "submitted"}."""
  runs = {}
  try:
    lines = (workdir / RECORDS_DIR / JOBS_FILE).read_text().splitlines()
  except OSError:
    return runs
  for line in lines:
    try:
      entry = json.loads(line)
    except ValueError:
      continue
    for task, run in enumerate(entry.get("runs", [])):
      runs[run["workdir"]] = {"job": f"{entry['job']}_{task}", "task": task, "name": run["name"],
                              "submitted": entry.get("submitted", "")}
  return runs


def check_configuration(environ=os.environ) -> None:
  """A SLURM_CONF naming no file is a UserError at once: SLURM's clients, told
  to read a file that is not there, take about a minute to fail (squeue and
  sbatch: 59 s each, measured with Debian's slurm-wlm 22.05)."""
  path = environ.get("SLURM_CONF")
  if path and not os.path.isfile(path):
    raise UserError(f"SLURM_CONF={path} is not a file: point it at the cluster's slurm.conf, "
                    "or unset it to use the system's")


def queue() -> dict[str, tuple[str, str]]:
  """This user's queued and running array tasks: job id (`123_4`) -> (state, reason)."""
  check_configuration()
  done = subprocess.run([client("squeue"), "--noheader", "--array", "--me",
                         "--format=%i|%T|%r"], capture_output=True, text=True)
  if done.returncode != 0:
    message = " ".join((done.stderr.strip() or done.stdout.strip()).split())
    raise UserError(f"SLURM's squeue failed (is this a machine that submits SLURM jobs?): "
                    f"{message}")
  tasks = {}
  for line in done.stdout.splitlines():
    job, _, rest = line.strip().partition("|")
    state, _, reason = rest.partition("|")
    tasks[job] = (state, reason)
  return tasks


def active(workdir: pathlib.Path) -> dict[str, tuple[str, str, str]]:
  """The runs whose latest task is pending or running: workdir -> (job, state, reason)."""
  tasks = queue()
  found = {}
  for run_dir, record in read_jobs(workdir).items():
    state, reason = tasks.get(record["job"], ("", ""))
    if state in QUEUED:
      found[run_dir] = (record["job"], QUEUED[state], reason)
  return found


class SlurmLauncher:
  """Submits a stage's runs as one job array and returns (see the module docstring)."""

  waits = False
  name = "slurm"

  def __init__(self, workdir: pathlib.Path, options: Options, say=print):
    self.workdir, self.options, self.say = workdir, options, say

  def launch(self, runs: list[Run], refresh) -> None:
    queued = active(self.workdir)
    fresh, ended = [], set()
    for run in runs:
      if str(run.workdir.resolve()) in queued:
        job, state, _ = queued[str(run.workdir.resolve())]
        self.say(f"{run.name}: already {state} as SLURM job {job}; not submitted again")
      elif _ended(run):
        ended.add(run.name)
        self.say(f"{run.name}: ended while the sweep read the queue; not submitted again")
      else:
        fresh.append(run)
    if fresh:
      job = self._submit(fresh)
      self.say(f"submitted {len(fresh)} run{'s' * (len(fresh) > 1)} as SLURM job array {job} "
               f"(DIR/{RECORDS_DIR}/{job}_<task>.out); `cnnjax sweep --status "
               f"{self.workdir}` shows them")
    refresh(frozenset(run.name for run in runs if run.name not in ended))

  def _submit(self, runs: list[Run]) -> str:
    records = (self.workdir / RECORDS_DIR).resolve()
    records.mkdir(parents=True, exist_ok=True)
    script = batch_script(runs, self.options, records)
    pending = records / f".submitting.{os.getpid()}.sbatch"
    pending.write_text(script)
    done = subprocess.run([client("sbatch"), "--parsable", str(pending)], capture_output=True,
                          text=True, env=local.child_environment(self.workdir),
                          cwd=self.workdir.resolve())
    if done.returncode != 0:
      pending.unlink()
      message = " ".join((done.stderr.strip() or done.stdout.strip()).split())
      raise UserError(f"sbatch refused the sweep's {len(runs)} runs: {message}; nothing "
                      "was submitted")
    job = done.stdout.strip().split(";")[0]
    pending.rename(records / f"{job}.sbatch")
    entry = {"job": job, "submitted": datetime.datetime.now().isoformat(timespec="seconds"),
             "options": dataclasses.asdict(self.options),
             "runs": [{"name": run.name, "workdir": str(run.workdir.resolve())} for run in runs]}
    with (records / JOBS_FILE).open("a") as file:
      file.write(json.dumps(entry) + "\n")
    return job


def _ended(run: Run) -> bool:
  """Whether `run` has finished (or, a tuning trial, diverged), read after the
  queue: one that ended between the sweep's reading of the workdirs and
  squeue's answer is in neither, and was submitted again (seen in the SLURM
  sweep test, a tiny run ending in that second)."""
  result = read_run(run, target=None)
  return result.status == FINISHED or result.diverged


# --- cnnjax sweep --status --------------------------------------------------------

def _file_state(run_dir: pathlib.Path) -> tuple[str, str]:
  """(state, last line) of a run that is not in the queue, from its files."""
  status, printed, signalled = run_log.last_attempt(run_dir / run_log.LOG_FILE)
  try:
    results = json.loads((run_dir / "results.json").read_text())
  except (OSError, ValueError):
    results = None
  if (isinstance(results, dict) and results.get("status") == "complete"
      and results.get("step") == results.get("total_steps")):
    return "finished", printed
  if not (run_dir / run_log.LOG_FILE).exists():
    return "not started", ""
  if status is None or status in run_log.STOPPED_STATUSES or signalled:
    # No exit line: the task was killed (cancelled past its grace period, a
    # node lost) before the script could write one.
    return "interrupted", printed
  return f"failed (exit {status})", printed


def status_rows(workdir: pathlib.Path, tasks: dict[str, tuple[str, str]] | None = None
                ) -> list[dict[str, str]]:
  """Per run of the sweep in `workdir` (its summary's runs and every run ever
  submitted): name, state, SLURM job, last line. `tasks`: squeue's answer,
  asked when not given."""
  runs = {}
  try:
    summary = json.loads((workdir / "sweep.json").read_text())
  except (OSError, ValueError):
    summary = {}
  for run in summary.get("runs", []):
    name = f"{run['variant']} seed {run['seed']}"
    runs[str(pathlib.Path(run["workdir"]).resolve())] = name
  jobs = read_jobs(workdir)
  for run_dir, record in jobs.items():
    runs.setdefault(run_dir, record["name"])
  if jobs and tasks is None:
    tasks = queue()
  rows = []
  for run_dir, name in runs.items():
    job = jobs.get(run_dir, {}).get("job", "")
    state, reason = (tasks or {}).get(job, ("", ""))
    _, printed = _file_state(pathlib.Path(run_dir))
    if state in QUEUED:
      shown = QUEUED[state] + (f" ({reason})" if QUEUED[state] == "pending" and reason
                               and reason != "None" else "")
    else:
      shown, printed = _file_state(pathlib.Path(run_dir))
    rows.append({"run": name, "state": shown, "job": job, "last line": printed})
  return rows


def print_status(workdir: pathlib.Path) -> int:
  if not workdir.is_dir():
    raise UserError(f"--status {workdir}: no such directory")
  rows = status_rows(workdir)
  if not rows:
    raise UserError(f"--status {workdir}: no sweep there (neither sweep.json nor "
                    f"{RECORDS_DIR}/{JOBS_FILE})")
  from cnnjax import tables

  print(tables.text(rows, list(rows[0])).rstrip("\n"))
  counts = {}
  for row in rows:
    counts[row["state"].split(" ")[0]] = counts.get(row["state"].split(" ")[0], 0) + 1
  print(", ".join(f"{count} {state}" for state, count in counts.items()))
  return 0
