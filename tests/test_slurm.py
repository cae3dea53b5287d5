"""Training under a real SLURM (the one-node cluster of tests/slurm.py): `srun
-n 2 cnnjax train` is one two-process run, with nothing but JAX's own
detection, and equals the single-process run; the example batch script
(scripts/slurm_train.sbatch), warned ahead of its time limit, saves, requeues
itself and finishes in the requeued job exactly as the straight run did."""

import json
import os
import pathlib
import sys
import time

import pytest
from helpers import LENET_DIGITS, ROOT, tiny_config

from cnnjax.training import train

pytestmark = pytest.mark.slurm

STEPS = 24
OVERRIDES = dict(batch_size=16, num_train_steps=STEPS, checkpoint_every_steps=12,
                 eval_every_steps=12, log_every_steps=3)
RUN_TIMEOUT_S = 400  # A two-process run under srun, startup included, on 2 loaded cores.
SCRIPT = ROOT / "scripts" / "slurm_train.sbatch"
METRICS = ("train/loss", "train/top1_error", "eval/loss", "eval/top1_error")


def _environment(cluster) -> dict[str, str]:
  """The tasks' environment: this venv's `cnnjax` first on PATH, two CPU devices each."""
  flags = os.environ.get("XLA_FLAGS", "").replace("device_count=4", "device_count=2")
  return {**cluster.environment, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": flags,
          "PATH": f"{pathlib.Path(sys.executable).parent}:{os.environ['PATH']}"}


def _arguments(workdir: pathlib.Path, digits_dir: str) -> list[str]:
  return ["--config", LENET_DIGITS, "--workdir", str(workdir),
          f"--config.dataset.data_dir={digits_dir}", "--config.dataset.num_shards=4",
          *(f"--config.{key}={value}" for key, value in OVERRIDES.items())]


def _metrics(workdir: pathlib.Path) -> dict[int, dict[str, float]]:
  """Per step, the losses and errors logged (a resumed step's last record)."""
  records = {}
  for line in (workdir / "metrics.jsonl").read_text().splitlines():
    record = json.loads(line)
    records.setdefault(record["step"], {}).update(
        {key: value for key, value in record.items() if key in METRICS})
  return records


@pytest.fixture(scope="module")
def srun_run(slurm_cluster, digits_dir, tmp_path_factory):
  """The workdir of `srun -n 2 cnnjax train`, and srun's result."""
  workdir = tmp_path_factory.mktemp("srun") / "run"
  done = slurm_cluster.run("srun", "--ntasks=2", "--cpus-per-task=1", "cnnjax", "train",
                           *_arguments(workdir, digits_dir), check=False, cwd=ROOT,
                           env=_environment(slurm_cluster), timeout=RUN_TIMEOUT_S)
  assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
  return workdir, done


def test_srun_two_tasks_train_as_the_single_process_run(srun_run, digits_dir, tmp_path):
  workdir, done = srun_run
  one = tmp_path / "one"
  train.train_and_evaluate(train.plan(tiny_config(digits_dir, **OVERRIDES)), one)
  two, reference = _metrics(workdir), _metrics(one)
  assert sorted(two) == sorted(reference) == list(range(3, STEPS + 1, 3))
  for step, record in reference.items():
    assert two[step].keys() == record.keys()
    # Not bitwise: gloo sums the two processes' gradients in another order than
    # XLA's in-process all-reduce (tests/test_multiprocess.py); one example
    # of a batch fed twice or missed would move the loss by ~1e-2.
    assert two[step] == pytest.approx(record, abs=1e-5), step
  # One run: process 0 alone writes the metrics and prints the results.
  assert done.stdout.count("done: eval top-1 error") + done.stderr.count(
      "done: eval top-1 error") == 1


def test_a_warned_job_saves_requeues_and_finishes_as_the_straight_run(
    slurm_cluster, srun_run, digits_dir, tmp_path):
  """SIGUSR1 (the script's --signal, sent here at once with scancel) reaches
  both tasks: they save the same step and exit 75, the script requeues the
  job, and the requeued job resumes and finishes with the straight run's
  metrics, bit for bit."""
  workdir, log = tmp_path / "run", tmp_path / "job.out"
  job = slurm_cluster.sbatch(
      "--nodes=1", "--ntasks-per-node=2", "--gpus-per-node=0", "--cpus-per-task=1",
      "--time=30", f"--output={log}", str(SCRIPT), *_arguments(workdir, digits_dir),
      cwd=ROOT, env=_environment(slurm_cluster))
  metrics = workdir / "metrics.jsonl"
  deadline = time.monotonic() + RUN_TIMEOUT_S
  while not (metrics.exists() and metrics.read_text().count("train/loss") >= 1):
    assert slurm_cluster.job(job).get("JobState") in ("PENDING", "RUNNING"), log.read_text()
    assert time.monotonic() < deadline, log.read_text()[-3000:]
    time.sleep(0.2)
  slurm_cluster.run("scancel", "--signal=USR1", str(job))
  fields = slurm_cluster.wait_job(job, timeout=2 * RUN_TIMEOUT_S)
  output = log.read_text()
  assert (fields["JobState"], fields["Restarts"]) == ("COMPLETED", "1"), output[-3000:]
  assert output.count("cnnjax: preempted: saved the checkpoint of step") == 2, output[-3000:]
  assert "resuming from the checkpoint at step" in output
  assert _metrics(workdir) == _metrics(srun_run[0])
