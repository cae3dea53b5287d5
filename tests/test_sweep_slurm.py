"""A sweep through SLURM, for real (the one-node cluster of tests/slurm.py): the
tiny digits ablation submitted as one job array; `--status` while it runs;
the same command again submits nothing while its runs are queued; one task
cancelled mid-run, resubmitted by the next command, resumes from its
checkpoint; the finished sweep's summary is the local launcher's, and so are
its runs' metrics, bit for bit, each run having as many cores under either."""

import csv
import json
import os
import re
import subprocess
import sys
import time

import pytest
from helpers import ROOT

from cnnjax.workdir import metrics as metrics_lib

pytestmark = pytest.mark.slurm

ABLATION = str(ROOT / "tests" / "sweep_lenet_digits.py")
TIMEOUT_S = 600
# Longer than the ablation's eight steps, so that a cancellation lands mid-run.
STEPS = "--config.num_train_steps=40"


def _sweep(cluster, *arguments):
  return subprocess.run([sys.executable, "-m", "cnnjax", "sweep", *arguments],
                        capture_output=True, text=True, cwd=ROOT, env=cluster.environment,
                        timeout=TIMEOUT_S)


def _submit(cluster, workdir, digits_dir):
  done = _sweep(cluster, "--config", ABLATION, "--workdir", str(workdir), "--seeds", "2",
                "--launcher", "slurm", "--slurm.max-running", "1", "--slurm.cpus-per-run", "1",
                f"--config.dataset.data_dir={digits_dir}", STEPS)
  assert done.returncode == 0, done.stdout + done.stderr[-3000:]
  return done.stdout


def _status(cluster, workdir) -> dict[str, dict[str, str]]:
  done = _sweep(cluster, "--status", str(workdir))
  assert done.returncode == 0, done.stderr
  rows = {}
  for line in done.stdout.splitlines()[2:-1]:  # Headings, rule, ..., counts.
    name = " ".join(line.split()[:3])
    rows[name] = line[len(name):].strip()
  return rows


def _wait(predicate, what: str, timeout: float = TIMEOUT_S) -> None:
  deadline = time.monotonic() + timeout
  while not predicate():
    assert time.monotonic() < deadline, f"timed out waiting for {what}"
    time.sleep(0.3)


def _queued(cluster) -> str:
  return cluster.run("squeue", "--noheader", "--array").stdout


def _summary(workdir) -> list[dict]:
  with (workdir / "summary.csv").open() as file:
    return [{key: value for key, value in row.items() if not key.startswith("train_time_s")}
            for row in csv.DictReader(file)]


def _untimed_metrics(run) -> list[dict]:
  return [{key: value for key, value in record.items() if key != "train/images_per_sec"}
          for record in metrics_lib.read(run)]


def test_a_sweep_on_slurm_submits_lists_resumes_and_ends_as_the_local_one(
    slurm_cluster, digits_dir, tmp_path):
  workdir = tmp_path / "sweep"
  first = _submit(slurm_cluster, workdir, digits_dir)
  assert "seeds 0 to 1: 0 of 4 runs already finished; training 4" in first
  assert "submitted 4 runs as SLURM job array" in first
  job = first.split("submitted 4 runs as SLURM job array ")[1].split()[0]
  records = [json.loads(line) for line in (workdir / "slurm" / "jobs.jsonl").read_text()
             .splitlines()]
  assert [record["job"] for record in records] == [job]

  status = _status(slurm_cluster, workdir)
  assert sorted(status) == ["relu seed 0", "relu seed 1", "tanh seed 0", "tanh seed 1"]
  # One run at a time (--slurm.max-running 1): the last task waits for the three others.
  assert status["tanh seed 1"].startswith("pending"), status
  assert all(row.split()[0] in ("pending", "running", "finished") for row in status.values())
  assert all(f"{job}_" in row for row in status.values()), status

  again = _submit(slurm_cluster, workdir, digits_dir)
  finished = int(re.search(r"(\d) of 4 runs already finished", again)[1])
  assert "as SLURM job array" not in again and finished < 4, again
  assert again.count("not submitted again") == 4 - finished, again
  assert len((workdir / "slurm" / "jobs.jsonl").read_text().splitlines()) == 1

  # Cancel tanh seed 1 (the last task) once it has logged a step; the others have finished.
  run = workdir / "tanh" / "seed1"
  _wait(lambda: (run / "metrics.jsonl").exists() and
        "train/loss" in (run / "metrics.jsonl").read_text(), "tanh seed 1 to train")
  slurm_cluster.run("scancel", f"{job}_3")
  _wait(lambda: job not in _queued(slurm_cluster), "the array to end")
  status = _status(slurm_cluster, workdir)
  assert status["tanh seed 1"].startswith("interrupted"), status
  assert all(status[name].startswith("finished") for name in status if name != "tanh seed 1")

  resubmitted = _submit(slurm_cluster, workdir, digits_dir)
  assert "seeds 0 to 1: 3 of 4 runs already finished; training 1" in resubmitted
  assert "submitted 1 run as SLURM job array" in resubmitted
  second = resubmitted.split("submitted 1 run as SLURM job array ")[1].split()[0]
  _wait(lambda: second not in _queued(slurm_cluster), "the resubmitted run")
  log = (run / "train.log").read_text()
  assert "resuming from the checkpoint at step" in log, log[-3000:]
  assert log.count("[cnnjax sweep] start") == 2

  done = _submit(slurm_cluster, workdir, digits_dir)
  assert "4 of 4 runs already finished: nothing to train" in done
  assert all(row.startswith("finished") for row in _status(slurm_cluster, workdir).values())

  # The same sweep trained here by the local launcher: the same summary (times
  # aside). One core per run, as each SLURM task is bound to its one CPU: on a
  # CPU the thread pool's size decides the order of XLA's sums (docs/clusters.md).
  here = tmp_path / "local"
  local = subprocess.run(
      [sys.executable, "-m", "cnnjax", "sweep", "--config", ABLATION, "--workdir", str(here),
       "--seeds", "2", "--jobs", str(len(os.sched_getaffinity(0))),
       f"--config.dataset.data_dir={digits_dir}", STEPS],
      capture_output=True, text=True, cwd=ROOT, timeout=TIMEOUT_S)
  assert local.returncode == 0, local.stderr[-3000:]
  assert _summary(workdir) == _summary(here)
  assert (workdir / "claims.csv").read_text() == (here / "claims.csv").read_text()
  for run in ("relu/seed0", "relu/seed1", "tanh/seed0", "tanh/seed1"):
    assert _untimed_metrics(workdir / run) == _untimed_metrics(here / run), run


def test_a_partition_that_does_not_exist_is_one_line_and_submits_nothing(
    slurm_cluster, digits_dir, tmp_path):
  done = _sweep(slurm_cluster, "--config", ABLATION, "--workdir", str(tmp_path / "sweep"),
                "--seeds", "2", "--launcher", "slurm", "--slurm.partition", "nowhere",
                f"--config.dataset.data_dir={digits_dir}")
  assert done.returncode == 2, done.stderr
  assert done.stderr.startswith("cnnjax: error: sbatch refused the sweep's 4 runs: "), done.stderr
  assert "nothing was submitted" in done.stderr and len(done.stderr.splitlines()) == 1
  assert not (tmp_path / "sweep" / "slurm" / "jobs.jsonl").exists()
