"""Kills one process of a two-process `cnnjax train` over and over and checks
that the other always ends with the "resume me" status and that resuming loses nothing.

  python scripts/peer_kill_storm.py --kills 20 --data-dir /tmp/tfds

Trains the digits LeNet-5 for --steps steps as two processes (two CPU devices
each, collectives through gloo) once without interruption, then again in a
fresh workdir while SIGKILLing one of the two processes at a time and
relaunching both, until it finishes; repeats until --kills kills were made
(the run of the last kill is then relaunched without more, until it finishes).
Each kill lands in one of three places:
  - during a step: after the run has logged, at a random moment, from
    outside; either the whole process (its supervising `cnnjax train`, whose
    training child follows: a lost node) or only its training child (the
    out-of-memory killer), half each;
  - during a save: from inside, at a named stage of a checkpoint's save
    (tests/fault_driver.py: save called, amid the array writes, written but
    not in place, in place, about to remove an outdated step);
  - during evaluation: from inside, as the N-th evaluation begins.
After each kill it checks that the survivor exited with 75 within
--deadline seconds, its last line naming the lost process, and that no
complete-looking checkpoint lacks its commit file; after each finished run,
that the final parameters, optimizer state and BatchNorm statistics are
bitwise those of the uninterrupted run, and metrics.jsonl too (but for
images/s). Prints a summary (counts, survivor exit times, load, wall time);
exits 1 on any mismatch.
"""

import argparse
import collections
import json
import os
import pathlib
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import kill_resume_stress as single  # noqa: E402  (its checks of a workdir and a finished run)

ROOT = single.ROOT
EXPERIMENT = single.EXPERIMENT
# Kills from inside a process at a named stage of a save, the N-th time it
# reaches it (saves every 3 steps): (stage, highest N worth trying).
SAVE_STAGES = [("save", 4), ("writing", 4), ("finalized", 4), ("committed", 4), ("deleting", 2)]
EVALUATION = "cnnjax.training.train:evaluate"
RUN_TIMEOUT_S = 900


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--kills", type=int, default=20)
  parser.add_argument("--steps", type=int, default=60)
  parser.add_argument("--seed", type=int, default=0, help="of the kill schedule")
  parser.add_argument("--data-dir", default="", help="TFDS data dir (digits is built there)")
  parser.add_argument("--deadline", type=float, default=60,
                      help="seconds within which a survivor must have exited")
  parser.add_argument("--keep", action="store_true", help="keep the workdirs and logs")
  args = parser.parse_args(argv)
  root = pathlib.Path(tempfile.mkdtemp(prefix="peer_kill_storm_"))
  # No persistent compilation cache: JAX writes only process 0's programs to it,
  # so on a relaunch process 0 loads its step while process 1 compiles its own,
  # and on a loaded machine process 0 waits at the first collective for more
  # than gloo's 30 s.
  environment = {key: value for key, value in os.environ.items()
                 if key != "JAX_COMPILATION_CACHE_DIR"}
  environment.update(PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu",
                     XLA_FLAGS="--xla_force_host_platform_device_count=2")
  overrides = {"dataset.data_dir": args.data_dir or str(root / "tfds"), "dataset.num_shards": 4,
               "batch_size": 16, "num_train_steps": args.steps, "log_every_steps": 2,
               "eval_every_steps": 10, "checkpoint_every_steps": 3, "keep_checkpoints": 2,
               "log_example_ids": True}
  rng = random.Random(args.seed)
  started, load_before = time.time(), os.getloadavg()

  reference = root / "reference"
  statuses = _wait(_launch(reference, overrides, environment), reference)
  if statuses != [0, 0]:
    raise SystemExit(f"the uninterrupted run failed with statuses {statuses}; logs in {root}")
  counts, mismatches, exit_times, cycle = collections.Counter(), [], [], 0
  while counts["kills"] < args.kills:
    cycle += 1
    workdir = root / f"interrupted_{cycle}"
    for launch in range(1, 4 * args.kills):
      where, victim, statuses, seconds = _interrupted_run(
          workdir, overrides, environment, rng, kill=counts["kills"] < args.kills)
      if where == "finished" and statuses == [0, 0]:
        counts["finished"] += 1
        break
      if where == "finished":
        # Not killed, yet a process lost the other: one that came to a collective
        # more than gloo's 30 s after the other (an overloaded machine). Both
        # must say so with 75, and the relaunch resumes.
        counts["losses without a kill"] += 1
        if statuses != [75, 75]:
          mismatches.append(f"cycle {cycle}: a run not killed ended with {statuses}")
        _keep_logs(workdir, f"{cycle}.{launch}")
        continue
      counts["kills"] += 1
      counts[f"kills {where}"] += 1
      survivor = 1 - victim
      log = pathlib.Path(f"{workdir}.p{survivor}.log").read_text(errors="replace")
      last = log.rstrip().splitlines()[-1] if log.strip() else ""
      expected = f"cnnjax: preempted: lost process {victim} of this 2-process run"
      if statuses[survivor] == 0 and last.startswith("done: "):
        counts["kills after the survivor had finished the run"] += 1  # Nothing to lose.
      elif statuses[survivor] != 75 or not last.startswith(expected):
        mismatches.append(f"cycle {cycle} launch {launch}: {where} of process {victim}: the "
                          f"survivor exited with {statuses[survivor]}, last line {last!r}")
      if seconds is not None:
        exit_times.append(seconds)
        if seconds > args.deadline:
          mismatches.append(f"cycle {cycle}: the survivor took {seconds:.1f} s to exit")
      counts.update(single._inspect(workdir))
      _keep_logs(workdir, f"{cycle}.{launch}")
      print(f"kill {counts['kills']}: {where} of process {victim}; statuses {statuses}; "
            f"survivor gone {seconds if seconds is None else round(seconds, 1)} s after",
            flush=True)
    problem = single._compare(workdir, reference, overrides)
    counts["finished runs compared"] += 1
    if problem:
      mismatches.append(f"cycle {cycle}: {problem}")
    print(f"cycle {cycle}: {dict(counts)}; mismatches so far: {mismatches}", flush=True)
  summary = {**counts, "mismatches": mismatches,
             "survivor_exit_s": {"median": round(statistics.median(exit_times), 1),
                                 "max": round(max(exit_times), 1)} if exit_times else None,
             "seconds": round(time.time() - started),
             "load_average_1_5_15_before": [round(x, 2) for x in load_before],
             "load_average_1_5_15_after": [round(x, 2) for x in os.getloadavg()]}
  print(json.dumps(summary, indent=2))
  if not args.keep:
    shutil.rmtree(root, ignore_errors=True)
  return 1 if mismatches else 0


def _free_port() -> int:
  with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    return probe.getsockname()[1]


def _launch(workdir, overrides, environment, faults=("", "")):
  """Starts processes 0 and 1, `faults[i]` injected into process i (tests/fault_driver.py)."""
  port = _free_port()
  processes = []
  for index, fault in enumerate(faults):
    command = ([sys.executable, str(ROOT / "tests" / "fault_driver.py")] if fault
               else [sys.executable, "-m", "cnnjax"])
    command += ["train", "--config", EXPERIMENT, "--workdir", str(workdir),
                *(f"--config.{key}={value}" for key, value in overrides.items()),
                f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2",
                f"--process_id={index}"]
    with open(f"{workdir}.p{index}.log", "w") as log:
      processes.append(subprocess.Popen(command, env={**environment, "CNNJAX_FAULTS": fault},
                                        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT))
  return processes


def _wait(processes, workdir, until=None) -> list[int]:
  """Every status, waiting at most RUN_TIMEOUT_S (then kills both)."""
  deadline = time.monotonic() + RUN_TIMEOUT_S
  try:
    return [process.wait(timeout=max(1, deadline - time.monotonic())) for process in processes]
  except subprocess.TimeoutExpired:
    raise SystemExit(f"a run of {workdir} did not end in {RUN_TIMEOUT_S} s") from None
  finally:
    for process in processes:
      if process.poll() is None:
        process.kill()
        process.wait()


def _interrupted_run(workdir, overrides, environment, rng, kill=True):
  """One launch with one kill planned (none if not `kill`); (where, victim,
  statuses, survivor's exit delay in seconds) or ("finished", ...) when the
  run ended before the kill."""
  victim, roll = rng.randrange(2), rng.random()
  if not kill:
    processes = _launch(workdir, overrides, environment)
    _exit_times(processes)
    return "finished", victim, [process.returncode for process in processes], None
  if roll < 0.5:
    return _kill_from_outside(workdir, overrides, environment, rng, victim)
  if roll < 0.85:
    stage, highest = rng.choice(SAVE_STAGES)
    where, fault = f"during a save ({stage})", f"kill@{stage}#{rng.randint(1, highest)}"
  else:
    where, fault = "during evaluation", f"kill@{EVALUATION}#{rng.randint(1, 2)}"
  faults = tuple(fault if index == victim else "" for index in range(2))
  processes = _launch(workdir, overrides, environment, faults)
  ended = _exit_times(processes)
  statuses = [process.returncode for process in processes]
  log = pathlib.Path(f"{workdir}.p{victim}.log").read_text(errors="replace")
  if "fault: kill at" not in log:
    return "finished", victim, statuses, None
  return where, victim, statuses, ended[1 - victim] - ended[victim]


def _kill_from_outside(workdir, overrides, environment, rng, victim):
  processes = _launch(workdir, overrides, environment)
  metrics = workdir / "metrics.jsonl"
  before = single._lines(metrics)
  deadline = time.monotonic() + RUN_TIMEOUT_S
  while (all(p.poll() is None for p in processes) and single._lines(metrics) <= before
         and time.monotonic() < deadline):
    time.sleep(0.05)  # Until it has trained: kills during start-up teach nothing.
  time.sleep(rng.uniform(0, 2.0))
  whole = rng.random() < 0.5
  target = processes[victim].pid if whole else _child(processes[victim].pid)
  if target is None or any(p.poll() is not None for p in processes):
    _exit_times(processes)
    return "finished", victim, [p.returncode for p in processes], None
  os.kill(target, signal.SIGKILL)
  killed = time.monotonic()
  ended = _exit_times(processes)
  statuses = [process.returncode for process in processes]
  where = "during a step (whole process)" if whole else "during a step (training child)"
  return where, victim, statuses, ended[1 - victim] - killed


def _child(pid: int) -> int | None:
  """The training child of a supervising `cnnjax train` (Linux's /proc)."""
  try:
    children = pathlib.Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
  except OSError:
    return None
  return int(children[0]) if children else None


def _exit_times(processes) -> list[float]:
  """Polls until both processes have ended; when each did (time.monotonic)."""
  ended = [None, None]
  deadline = time.monotonic() + RUN_TIMEOUT_S
  while None in ended:
    for index, process in enumerate(processes):
      if ended[index] is None and process.poll() is not None:
        ended[index] = time.monotonic()
    if time.monotonic() > deadline:
      for process in processes:
        if process.poll() is None:
          process.kill()
      raise SystemExit("a killed run did not end")
    time.sleep(0.05)
  return ended


def _keep_logs(workdir, name: str) -> None:
  for index in range(2):
    log = pathlib.Path(f"{workdir}.p{index}.log")
    if log.exists():
      log.rename(log.with_name(f"{workdir.name}.launch{name}.p{index}.log"))


if __name__ == "__main__":
  sys.exit(main())
