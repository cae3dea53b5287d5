"""A training that outlives its SLURM time limit: warned by SLURM's own clock,
it saves, is requeued and finishes exactly as an uninterrupted run.

  python scripts/slurm_time_limit.py [--time 3] [--warning 30] [--steps 600]

Needs root and Debian's `slurm-wlm` and `munge`: it starts the one-node
cluster of the tests (tests/slurm.py), with slurmctld logging at "debug" so
that its log names each warning signal it sends. On it, the digits LeNet-5
trains as one job of scripts/slurm_train.sbatch with --tasks tasks (two CPU
devices each) twice:
  - uninterrupted, under the script's own 24-hour limit, then
  - with `--time=TIME --signal=USR1@WARNING`, the training being longer than
    TIME: SLURM sends SIGUSR1 ahead of the limit, the tasks save the same
    step and exit 75, the batch script requeues the job (`scontrol
    requeue`), and the requeued job resumes from that step; as many times as
    it takes.
Checks that every attempt but the last was warned by slurmctld (its log) and
saved before its limit, that each attempt resumed from the step the one
before saved, that the job never timed out and completed, and that the final
parameters, optimizer state and BatchNorm statistics, metrics.jsonl (but for
images/s) and the examples of every step are bitwise the uninterrupted run's.
Prints what each attempt did and a summary; exits 1 on any failed check.

SLURM checks time limits and the warning once every 30 s, so the warning
comes between WARNING and WARNING + 30 s before the limit (tests/slurm.py):
with --time 3 and --warning 30, 120 to 150 s into each attempt, which must
leave the tasks time to start and train (otherwise an attempt saves little
or nothing new; after --attempts attempts the script gives up). --time 1
--warning 10 leaves 20 to 50 s: too little on a loaded 2-core machine.
"""

import argparse
import datetime
import json
import os
import pathlib
import re
import shutil
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "scripts"))
import kill_resume_stress as single  # noqa: E402  (its comparison of two finished runs)
import slurm  # noqa: E402  (the one-node cluster)

BATCH_SCRIPT = ROOT / "scripts" / "slurm_train.sbatch"
STARTED = re.compile(r"^slurm_train.sbatch: started (\S+) ")
EXITED = re.compile(r"^slurm_train.sbatch: srun exited (\d+) at (\S+)")
SAVED = re.compile(r"cnnjax: preempted: saved the checkpoint of step (\d+) of")
RESUMED = re.compile(r"resuming from the checkpoint at step (\d+) of")
ENDED = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY",
         "PREEMPTED", "BOOT_FAIL", "DEADLINE")


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--time", type=int, default=3, help="the job's limit, minutes (sbatch "
                      "--time; SLURM's smallest is 1)")
  parser.add_argument("--warning", type=int, default=30,
                      help="seconds before the limit to send SIGUSR1 (sbatch --signal=USR1@N)")
  parser.add_argument("--steps", type=int, default=600, help="of the training; it must "
                      "take longer than --time")
  parser.add_argument("--tasks", type=int, default=2, help="processes of the run")
  parser.add_argument("--attempts", type=int, default=8,
                      help="the most attempts (the first and its requeues) to allow")
  parser.add_argument("--data-dir", default="", help="TFDS data dir (digits is built there)")
  parser.add_argument("--keep", action="store_true", help="keep the workdirs, logs and cluster "
                      "folder")
  args = parser.parse_args(argv)
  reason = slurm.missing()
  if reason:
    raise SystemExit(f"no SLURM cluster can start here: {reason}")
  root = pathlib.Path(tempfile.mkdtemp(prefix="slurm_time_limit_"))
  data_dir = args.data_dir or str(root / "tfds")
  _prepare_digits(data_dir)
  overrides = {"dataset.data_dir": data_dir, "dataset.num_shards": 4, "batch_size": 16,
               "num_train_steps": args.steps, "log_every_steps": 10, "eval_every_steps": 100,
               "checkpoint_every_steps": 100, "log_example_ids": True}
  started = time.time()
  load_before = os.getloadavg()
  cluster = slurm.Cluster(controller_log_level="debug").start()
  problems = []
  try:
    reference, seconds = root / "reference", time.monotonic()
    fields = _run_job(cluster, reference, overrides, args, limit=None)
    seconds = time.monotonic() - seconds
    print(f"uninterrupted: job {fields['JobId']} {fields['JobState']} in {seconds:.0f} s "
          f"(submission to end)", flush=True)
    if fields["JobState"] != "COMPLETED":
      raise SystemExit(f"the uninterrupted job ended {fields['JobState']}; see "
                       f"{reference}.out:\n{_tail(reference)}")
    if seconds < 60 * args.time:
      problems.append(f"the uninterrupted job took {seconds:.0f} s, within --time "
                      f"{args.time} min: raise --steps")
    limited, limited_seconds = root / "limited", time.monotonic()
    fields = _run_job(cluster, limited, overrides, args, limit=args.time)
    limited_seconds = time.monotonic() - limited_seconds
    attempts = _attempts(cluster, fields["JobId"], limited)
    for number, attempt in enumerate(attempts, 1):
      print(f"attempt {number}: {_describe(attempt)}", flush=True)
    timed_out = f"Time limit exhausted for JobId={fields['JobId']}" in (
        cluster.root / "slurmctld.log").read_text(errors="replace")
    problems += _check(fields, attempts, args, timed_out)
    if fields["JobState"] == "COMPLETED":
      difference = single._compare(limited, reference, overrides)
      if difference:
        problems.append(f"the requeued run did not end as the uninterrupted one: {difference}")
    summary = {"job": fields["JobId"], "state": fields["JobState"],
               "restarts": int(fields["Restarts"]), "uninterrupted_s": round(seconds),
               "limited_s": round(limited_seconds), "problems": problems,
               "seconds": round(time.time() - started),
               "load_average_1_5_15_before": [round(x, 2) for x in load_before],
               "load_average_1_5_15_after": [round(x, 2) for x in os.getloadavg()]}
    print(json.dumps(summary, indent=2))
  finally:
    if args.keep:
      shutil.copytree(cluster.root, root / "cluster", dirs_exist_ok=True,
                      ignore=shutil.ignore_patterns("*.socket", "munge.key"))
      print(f"kept: {root}")
    cluster.stop()
    if not args.keep:
      shutil.rmtree(root, ignore_errors=True)
  return 1 if problems else 0


def _prepare_digits(data_dir: str) -> None:
  """Builds digits once, here, rather than in several tasks at once."""
  from cnnjax.config import base_config
  from cnnjax.data import open_builder

  dataset = base_config().dataset
  dataset.name, dataset.data_dir = "digits", data_dir
  open_builder(dataset)


def _environment(cluster: slurm.Cluster) -> dict[str, str]:
  """The tasks': this interpreter's `cnnjax` first on PATH, two CPU devices each,
  no persistent compilation cache (JAX fills it with process 0's programs only,
  so on a resume process 0 would load its step while the others compile)."""
  environment = {key: value for key, value in cluster.environment.items()
                 if key != "JAX_COMPILATION_CACHE_DIR"}
  return {**environment, "JAX_PLATFORMS": "cpu",
          "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
          "PATH": f"{pathlib.Path(sys.executable).parent}:{os.environ['PATH']}"}


def _run_job(cluster, workdir, overrides, args, limit) -> dict[str, str]:
  """Submits scripts/slurm_train.sbatch on one node; its fields once it ended."""
  options = ["--nodes=1", f"--ntasks-per-node={args.tasks}", "--gpus-per-node=0",
             "--cpus-per-task=1", f"--output={workdir}.out"]
  if limit is not None:
    options += [f"--time={limit}", f"--signal=USR1@{args.warning}"]
  job = cluster.sbatch(*options, str(BATCH_SCRIPT), "--config", single.EXPERIMENT,
                       "--workdir", str(workdir),
                       *(f"--config.{key}={value}" for key, value in overrides.items()),
                       cwd=ROOT, env=_environment(cluster))
  # Each attempt: requeue wait, start-up and at most the limit (+30 s of
  # SLURM's check, + KillWait); generous for a loaded machine.
  attempt_s = 60 * (limit or 60) + 30 + slurm.KILL_WAIT_SECONDS + 120
  restarts, deadline = -1, time.monotonic() + attempt_s
  while True:
    fields = cluster.job(job)
    if fields.get("JobState") in ENDED:
      return fields
    if int(fields.get("Restarts", 0)) != restarts:  # A new attempt: a new deadline.
      restarts, deadline = int(fields.get("Restarts", 0)), time.monotonic() + attempt_s
      if restarts >= args.attempts:
        cluster.run("scancel", str(job), check=False)
        return cluster.wait_job(job, ENDED, timeout=60)
    if time.monotonic() > deadline:
      raise SystemExit(f"job {job} ({workdir}) still {fields.get('JobState')} after "
                       f"{attempt_s} s in one attempt:\n{_tail(workdir)}")
    time.sleep(1)


def _attempts(cluster, job, workdir) -> list[dict[str, object]]:
  """Per attempt of the job, from its output (appended across attempts) and
  slurmctld's log: when it started, when SLURM warned it, the step it resumed
  from, the steps its tasks saved, and how srun ended (and when)."""
  output = pathlib.Path(f"{workdir}.out").read_text(errors="replace")
  attempts, current = [], None
  for line in output.splitlines():
    if match := STARTED.search(line):
      current = {"started": _time(match.group(1)), "warned": None, "resumed from": 0,
                 "saved": [], "exit": None, "exited": None}
      attempts.append(current)
    elif current is None:
      continue
    elif match := RESUMED.search(line):
      current["resumed from"] = int(match.group(1))
    elif match := SAVED.search(line):
      current["saved"].append(int(match.group(1)))
    elif match := EXITED.search(line):
      current["exit"], current["exited"] = int(match.group(1)), _time(match.group(2))
  log = (cluster.root / "slurmctld.log").read_text(errors="replace")
  for match in re.finditer(rf"^\[(\S+)\].*warning signal \d+ to JobId={job}\b", log,
                           re.MULTILINE):
    warned = _time(match.group(1).split(".")[0])
    earlier = [attempt for attempt in attempts if attempt["started"] <= warned]
    if earlier:  # The last attempt that had started.
      earlier[-1]["warned"] = warned
  return attempts


def _time(text: str) -> float:
  return datetime.datetime.fromisoformat(text).timestamp()


def _check(fields, attempts, args, timed_out: bool) -> list[str]:
  problems = []
  restarts = int(fields["Restarts"])
  if fields["JobState"] != "COMPLETED":
    problems.append(f"the job ended {fields['JobState']} after {restarts} restarts")
  if timed_out:
    problems.append("slurmctld logged the time limit exhausted: the warning was not heeded")
  if restarts < 1:
    problems.append("the job was never requeued: the training ended within its limit")
  if len(attempts) != restarts + 1:
    problems.append(f"{len(attempts)} attempts in the job's output for {restarts} restarts")
  for number, (attempt, following) in enumerate(zip(attempts, attempts[1:]), 1):
    if attempt["warned"] is None:
      problems.append(f"attempt {number}: requeued, but slurmctld sent it no warning")
    elif attempt["exited"] is None or attempt["exited"] < attempt["warned"]:
      problems.append(f"attempt {number}: {_describe(attempt)}: requeued, yet not after the "
                      "warning")
    if attempt["exit"] != 75:
      problems.append(f"attempt {number}: srun exited {attempt['exit']}, not 75")
    saved = set(attempt["saved"])
    if len(saved) != 1 or len(attempt["saved"]) != args.tasks:
      problems.append(f"attempt {number}: the tasks saved steps {attempt['saved']}, not one "
                      f"step each")
    elif following["resumed from"] != saved.pop():
      problems.append(f"attempt {number + 1} resumed from step {following['resumed from']}, "
                      f"not the step saved")
  if attempts and attempts[-1]["exit"] != 0:
    problems.append(f"the last attempt: srun exited {attempts[-1]['exit']}")
  return problems


def _describe(attempt) -> str:
  """One line of an attempt, its times in seconds from its start."""
  since = lambda moment: "-" if moment is None else f"{moment - attempt['started']:.0f} s"
  return (f"warned at {since(attempt['warned'])}, resumed from step {attempt['resumed from']}, "
          f"saved {attempt['saved'] or '-'}, srun exited {attempt['exit']} at "
          f"{since(attempt['exited'])}")


def _tail(workdir) -> str:
  path = pathlib.Path(f"{workdir}.out")
  return path.read_text(errors="replace")[-3000:] if path.exists() else "(no output)"


if __name__ == "__main__":
  sys.exit(main())
