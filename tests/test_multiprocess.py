"""Several processes on JAX's distributed runtime, for real: two `cnnjax train`
processes with two fake CPU devices each on 127.0.0.1 (collectives through
gloo) against one process with four devices on the same global batches;
resuming the two-process run from its checkpoint; killing one process."""

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from helpers import LENET_DIGITS, ROOT, tiny_config

from cnnjax import cli
from cnnjax.errors import UserError
from cnnjax.training import cluster as cluster_lib
from cnnjax.training import parallel, train
from cnnjax.workdir.checkpoint import Checkpointer

STEPS = 12
EVERY = 6
OVERRIDES = dict(batch_size=16, num_train_steps=STEPS, checkpoint_every_steps=EVERY,
                 eval_every_steps=EVERY, log_every_steps=3)
RUN_TIMEOUT_S = 240  # A whole two-process run, startup included, on 2 loaded cores.
KILL_DEADLINE_S = 60
# A run that logs every step and would not end (nor save) by itself.
ENDLESS = dict(num_train_steps=100_000, log_every_steps=1, eval_every_steps=100_000,
               checkpoint_every_steps=100_000)


def _free_port() -> int:
  with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    return probe.getsockname()[1]


def _launch(workdir: pathlib.Path, digits_dir: str, use_environment=False, faults=("", ""),
            **overrides):
  """Starts processes 0 and 1 of a run, two CPU devices each, output in workdir.p*.log;
  `faults[i]` is injected into process i (tests/fault_driver.py)."""
  port = _free_port()
  settings = {**OVERRIDES, **overrides}
  arguments = ["train", "--config", LENET_DIGITS, "--workdir",
               str(workdir), f"--config.dataset.data_dir={digits_dir}",
               "--config.dataset.num_shards=4",  # As tiny_config, for the run in this process.
               *(f"--config.{key}={value}" for key, value in settings.items())]
  # Without the tests' persistent compilation cache: JAX writes only process
  # 0's programs to it, so process 0 would load its train step while process 1
  # compiles its own, and on a loaded machine wait at the first collective for
  # longer than gloo's 30 s (scripts/peer_kill_storm.py says more).
  env = {key: value for key, value in os.environ.items() if key != "JAX_COMPILATION_CACHE_DIR"}
  env.update(PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu",
             XLA_FLAGS="--xla_force_host_platform_device_count=2")
  processes = []
  for index in range(2):
    cluster = {"coordinator_address": f"127.0.0.1:{port}", "num_processes": 2,
               "process_id": index}
    if use_environment:
      extra = []
      env = {**env, **{f"CNNJAX_{key.upper()}": str(value) for key, value in cluster.items()}}
    else:
      extra = [f"--{key}={value}" for key, value in cluster.items()]
    entry = ["tests/fault_driver.py"] if faults[index] else ["-m", "cnnjax"]
    log = open(f"{workdir}.p{index}.log", "w")
    processes.append(subprocess.Popen([sys.executable, *entry, *arguments, *extra],
                                      env={**env, "CNNJAX_FAULTS": faults[index]}, cwd=ROOT,
                                      stdout=log, stderr=subprocess.STDOUT))
    log.close()
  return processes


def _finish(processes, workdir: pathlib.Path) -> None:
  """Waits (bounded) for every process and asserts that each exited with 0."""
  deadline = time.monotonic() + RUN_TIMEOUT_S
  try:
    for index, process in enumerate(processes):
      code = process.wait(timeout=max(1, deadline - time.monotonic()))
      assert code == 0, pathlib.Path(f"{workdir}.p{index}.log").read_text()[-3000:]
  finally:
    _kill(processes)


def _kill(processes) -> None:
  for process in processes:
    if process.poll() is None:
      process.kill()
      process.wait(timeout=30)


def _wait_until_training(processes, workdir: pathlib.Path, lines: int = 3) -> None:
  """Waits (bounded) until process 0 has logged `lines` records, all processes still running."""
  deadline = time.monotonic() + RUN_TIMEOUT_S
  metrics = workdir / "metrics.jsonl"
  while not (metrics.exists() and len(metrics.read_text().splitlines()) >= lines):
    assert time.monotonic() < deadline, pathlib.Path(f"{workdir}.p0.log").read_text()[-3000:]
    assert all(p.poll() is None for p in processes), "a process ended before training"
    time.sleep(0.2)


def _final_state(plan, workdir: pathlib.Path):
  checkpointer = Checkpointer(workdir / "checkpoints", plan.config.keep_checkpoints)
  try:
    assert checkpointer.latest_step() == STEPS
    return train.initial_state(plan, checkpointer)
  finally:
    checkpointer.close()


def _max_difference(a, b) -> float:
  leaves = zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
  return max(float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64)),
                       initial=0.0)) for x, y in leaves)


def _identical(a, b) -> bool:
  return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b),
                                                   strict=True))


@pytest.fixture(scope="module")
def two_process_run(digits_dir, tmp_path_factory) -> pathlib.Path:
  """The workdir of an uninterrupted two-process run of STEPS steps: the
  reference that the tests training the same run another way compare with."""
  workdir = tmp_path_factory.mktemp("two_processes") / "run"
  _finish(_launch(workdir, digits_dir), workdir)
  return workdir


def test_two_processes_train_as_one(two_process_run, digits_dir, tmp_path):
  straight = two_process_run
  # The same run in this process, on its four devices: the same global batches.
  plan = train.plan(tiny_config(digits_dir, **OVERRIDES))
  train.train_and_evaluate(plan, tmp_path / "one")
  one, two = _final_state(plan, tmp_path / "one"), _final_state(plan, straight)
  difference = _max_difference(one, two)
  print(f"max |one process - two processes| over the state at step {STEPS}: {difference:.3g}")
  # Not bitwise: gloo sums the devices' gradients in another order than XLA's
  # in-process all-reduce (measured 6e-8); one different example would be ~1e-3.
  assert difference < 1e-6

  # Only process 0 writes metrics and prints; its eval matches the one process's.
  records = [json.loads(line) for line in (straight / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in records if "eval/loss" in r] == [EVERY, STEPS]
  reference = [json.loads(line) for line in (tmp_path / "one" / "metrics.jsonl").read_text()
               .splitlines()]
  assert records[-1]["eval/loss"] == pytest.approx(reference[-1]["eval/loss"], abs=1e-5)
  assert f"step {STEPS}: eval/loss=" in pathlib.Path(f"{straight}.p0.log").read_text()
  assert "eval/loss=" not in pathlib.Path(f"{straight}.p1.log").read_text()


@pytest.mark.parametrize("flags, message", [
    (["--num_processes=2", "--process_id=0"], "missing: --coordinator_address"),
    (["--coordinator_address=127.0.0.1:1234", "--num_processes=2", "--process_id=2"],
     "--process_id=2 must be in 0..1"),
    (["--coordinator_address=127.0.0.1", "--num_processes=2", "--process_id=0"],
     "is not HOST:PORT"),
    (["--coordinator_address=h:1", "--num_processes=0", "--process_id=0"],
     "--num_processes=0 must be at least 1"),
])
def test_bad_process_flags_are_user_errors(flags, message, tmp_path, capsys):
  code = cli.main(["train", "--config", LENET_DIGITS, "--workdir", str(tmp_path / "w"), *flags])
  assert code == 2
  assert message in capsys.readouterr().err
  assert not (tmp_path / "w").exists()


def test_process_variables_are_read_and_checked(monkeypatch, tmp_path, capsys):
  monkeypatch.setenv("CNNJAX_NUM_PROCESSES", "two")
  code = cli.main(["train", "--config", LENET_DIGITS, "--workdir", str(tmp_path / "w")])
  assert code == 2
  assert "CNNJAX_NUM_PROCESSES='two' is not an integer" in capsys.readouterr().err


SLURM_TASK = dict(SLURM_JOB_ID="7", SLURM_STEP_NODELIST="node[1-2]", SLURM_NTASKS="4",
                  SLURM_PROCID="1", SLURM_LOCALID="1")


@pytest.mark.parametrize("environ, expected", [
    ({}, None),
    (dict(SLURM_TASK), cluster_lib.Launch("SLURM", "SLURM_NTASKS", 4)),
    # A batch script's own shell: a job, but no step of tasks to join.
    ({"SLURM_JOB_ID": "7", "SLURM_NTASKS": "4"}, None),
    (dict(SLURM_TASK, SLURM_NTASKS="1"), cluster_lib.Launch("SLURM", "SLURM_NTASKS", 1)),
    # mpirun inside a SLURM allocation: Open MPI's processes, as JAX tries it first.
    (dict(SLURM_TASK, OMPI_COMM_WORLD_SIZE="2"),
     cluster_lib.Launch("Open MPI", "OMPI_COMM_WORLD_SIZE", 2)),
    ({"TPU_WORKER_HOSTNAMES": "t-0,t-1,t-2,t-3"},
     cluster_lib.Launch("Cloud TPU (GKE)", "TPU_WORKER_HOSTNAMES", 4)),
])
def test_launchers_are_read_from_their_documented_variables(environ, expected):
  assert cluster_lib.launched_processes(environ) == expected


def test_a_launcher_count_that_is_not_a_number_is_a_user_error():
  with pytest.raises(UserError, match="SLURM_NTASKS='four' .* is not an integer"):
    cluster_lib.launched_processes(dict(SLURM_TASK, SLURM_NTASKS="four"))


@pytest.mark.parametrize("environ, expected", [
    # One task per node, eight GPUs each: all of them (JAX alone: GPU SLURM_LOCALID only).
    ({"SLURM_STEP_TASKS_PER_NODE": "1(x2)", "CUDA_VISIBLE_DEVICES": "0,1,2,3,4,5,6,7"},
     list(range(8))),
    ({"SLURM_STEP_TASKS_PER_NODE": "1", "CUDA_VISIBLE_DEVICES": "4,5"}, [0, 1]),
    # One task per GPU: JAX's own choice.
    ({"SLURM_STEP_TASKS_PER_NODE": "8(x2)", "CUDA_VISIBLE_DEVICES": "0,1,2,3,4,5,6,7"}, None),
    ({"SLURM_STEP_TASKS_PER_NODE": "1,2", "CUDA_VISIBLE_DEVICES": "0,1"}, None),
    ({"SLURM_STEP_TASKS_PER_NODE": "1", "CUDA_VISIBLE_DEVICES": "3"}, None),
])
def test_a_slurm_task_alone_on_its_node_drives_all_its_gpus(environ, expected):
  assert cluster_lib.slurm_task_gpus(environ) == expected


def test_a_job_of_one_process_joins_nothing(monkeypatch):
  """Each task of a SLURM job array is a run of its own: no coordination service."""
  for variable, value in dict(SLURM_TASK, SLURM_NTASKS="1").items():
    monkeypatch.setenv(variable, value)
  parallel.initialize(None)
  assert not parallel.is_distributed()


def test_a_launch_jax_cannot_join_is_one_line(tmp_path):
  """Several processes by the launcher's word, no coordinator JAX can find (a TPU
  slice's hosts named on a machine without TPUs): one line, exit 2, no workdir."""
  env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu",
         "TPU_WORKER_HOSTNAMES": "t-0,t-1"}
  done = subprocess.run([sys.executable, "-m", "cnnjax", "train", "--config", LENET_DIGITS,
                         "--workdir", str(tmp_path / "w")], env=env, cwd=ROOT,
                        capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
  assert done.returncode == 2, done.stderr
  assert done.stderr.startswith("cnnjax: error: TPU_WORKER_HOSTNAMES says this is one of 2 "
                                "processes of a Cloud TPU (GKE) job"), done.stderr
  assert len(done.stderr.splitlines()) == 1, done.stderr
  assert not (tmp_path / "w").exists()


def test_preempted_together_owned_together_and_killed_together(digits_dir, tmp_path):
  """A preemption notice reaches one host: JAX's coordination service agrees a
  step with the other, both save it and exit with the preempted status. Run
  again, they resume; meanwhile the run as a whole owns the workdir, so
  another `cnnjax train` is refused naming process 0. Then one process is
  killed: the other stops too, instead of waiting forever."""
  workdir = tmp_path / "run"
  processes = _launch(workdir, digits_dir, **ENDLESS)
  try:
    _wait_until_training(processes, workdir)
    processes[1].send_signal(signal.SIGTERM)
    codes = [p.wait(timeout=KILL_DEADLINE_S) for p in processes]
    logs = [pathlib.Path(f"{workdir}.p{i}.log").read_text() for i in range(2)]
    assert codes == [75, 75], logs[0][-2000:] + logs[1][-2000:]
    steps = Checkpointer(workdir / "checkpoints", keep=3, read_only=True).all_steps()
    assert len(steps) == 1 and all(f"checkpoint of step {steps[0]} " in log for log in logs)
  finally:
    _kill(processes)

  (workdir / "metrics.jsonl").unlink()  # To see the resumed run's first records.
  processes = _launch(workdir, digits_dir, **ENDLESS)
  try:
    _wait_until_training(processes, workdir)
    assert f"resuming from the checkpoint at step {steps[0]}" in pathlib.Path(
        f"{workdir}.p0.log").read_text()
    intruder = subprocess.run(
        [sys.executable, "-m", "cnnjax", "train", "--config", LENET_DIGITS, "--workdir",
         str(workdir)], capture_output=True, text=True, cwd=ROOT, timeout=RUN_TIMEOUT_S)
    assert intruder.returncode == 2
    # The owner is process 0's training child (cnnjax.training.supervisor).
    assert f"is in use by `cnnjax train` (process {_child(processes[0].pid)} on " in intruder.stderr

    processes[1].send_signal(signal.SIGKILL)
    killed = time.monotonic()
    code = processes[0].wait(timeout=KILL_DEADLINE_S)
    print(f"process 0 exited with {code} {time.monotonic() - killed:.1f} s after process 1 "
          "was killed")
    assert code == 75
    assert _last_line(workdir, 0).startswith(LOST.format(1))
  finally:
    _kill(processes)


def _child(pid: int) -> int:
  """The training child of a supervising `cnnjax train` (Linux's /proc)."""
  return int(pathlib.Path(f"/proc/{pid}/task/{pid}/children").read_text().split()[0])


def _last_line(workdir: pathlib.Path, index: int) -> str:
  return pathlib.Path(f"{workdir}.p{index}.log").read_text().rstrip().splitlines()[-1]


LOST = "cnnjax: preempted: lost process {} of this 2-process run ("


def _lost_one(processes, workdir: pathlib.Path, victim: int) -> None:
  """Waits (bounded) for both processes after `victim` was killed: the other
  exits 75 within KILL_DEADLINE_S with one line naming it, and what is on disk
  is complete checkpoints (with their commit file) or temporary directories."""
  survivor = 1 - victim
  processes[victim].wait(timeout=RUN_TIMEOUT_S)  # Killed when it reaches its fault.
  codes = {survivor: processes[survivor].wait(timeout=KILL_DEADLINE_S)}
  assert codes[survivor] == 75, pathlib.Path(f"{workdir}.p{survivor}.log").read_text()[-3000:]
  assert _last_line(workdir, survivor).startswith(LOST.format(victim))
  # The runtime's fatal report and its C++ stack trace are withheld.
  assert "Check failure stack trace" not in pathlib.Path(f"{workdir}.p{survivor}.log").read_text()
  for path in (workdir / "checkpoints").iterdir():
    assert (".orbax-checkpoint-tmp" in path.name or path.name == "deleted"
            or (path / "commit_success.txt").exists()), path


def test_a_storm_of_lost_processes_resumes_bitwise(two_process_run, digits_dir, tmp_path):
  """One process of a two-process run killed three times, during a step (the
  whole process, its training child following), amid a save's array writes
  (its training child only) and as an evaluation begins, each followed by a
  relaunch of both; the last relaunch, told its cluster by environment
  variables, resumes from the step saved before that evaluation: the run ends
  as the uninterrupted one, bitwise, with the same metrics.
  scripts/peer_kill_storm.py does the same at random, 20 times."""
  straight, workdir = two_process_run, tmp_path / "stormed"

  processes = _launch(workdir, digits_dir)
  try:
    _wait_until_training(processes, workdir, lines=1)
    processes[1].kill()
    _lost_one(processes, workdir, victim=1)
  finally:
    _kill(processes)
  # From scratch, step EVERY saved, then killed amid the writes of step STEPS's save;
  # resumed from EVERY, killed as the evaluation of step STEPS begins (before its save).
  for victim, fault in ((0, f"kill@writing:{STEPS}"), (1, "kill@cnnjax.training.train:evaluate#1")):
    processes = _launch(workdir, digits_dir, faults=tuple(
        fault if index == victim else "" for index in range(2)))
    try:
      _lost_one(processes, workdir, victim)
      assert "fault: kill at " in pathlib.Path(f"{workdir}.p{victim}.log").read_text()
    finally:
      _kill(processes)
  _finish(_launch(workdir, digits_dir, use_environment=True), workdir)
  assert f"resuming from the checkpoint at step {EVERY}" in pathlib.Path(
      f"{workdir}.p0.log").read_text()

  plan = train.plan(tiny_config(digits_dir, **OVERRIDES))
  assert _identical(_final_state(plan, workdir), _final_state(plan, straight))
  untimed = lambda run: [{k: v for k, v in json.loads(line).items()
                          if k != "train/images_per_sec"}
                         for line in (run / "metrics.jsonl").read_text().splitlines()]
  assert untimed(workdir) == untimed(straight)
