"""Every result says what produced it: results.json, provenance.json, each
evaluation and `cnnjax report` record the code, libraries, devices, flags and
host; a run resumed elsewhere says what changed and goes on."""

import csv
import importlib.metadata
import io
import json
import os
import platform
import shutil
import socket
import subprocess

import jax
import pytest
from helpers import ROOT, tiny_config

import cnnjax
from cnnjax import cli
from cnnjax.kernels import onednn
from cnnjax.training import train
from cnnjax.workdir import config_file, provenance, results


@pytest.fixture(scope="module")
def finished(digits_dir, tmp_path_factory):
  """A tiny run, 6 steps with checkpoints at 3 and 6."""
  workdir = tmp_path_factory.mktemp("provenance") / "run"
  config = tiny_config(digits_dir)
  train.train_and_evaluate(train.plan(config), workdir)
  return workdir, config


def _git(*arguments) -> str:
  return subprocess.run(["git", "-C", str(ROOT), *arguments], capture_output=True, text=True,
                        check=True, timeout=60).stdout


def test_a_fresh_run_records_what_produced_it(finished):
  workdir, config = finished
  recorded = results.read(workdir)["provenance"]
  tensorflow = importlib.metadata.version("tensorflow-cpu" if platform.machine() == "x86_64"
                                          else "tensorflow")
  assert recorded == {
      "cnnjax": {"version": cnnjax.__version__, "commit": _git("rev-parse", "HEAD").strip(),
                 "dirty": bool(_git("status", "--porcelain").strip())},
      "python": platform.python_version(),
      "packages": {"jax": jax.__version__, "jaxlib": importlib.metadata.version("jaxlib"),
                   "flax": importlib.metadata.version("flax"),
                   "optax": importlib.metadata.version("optax"),
                   "orbax-checkpoint": importlib.metadata.version("orbax-checkpoint"),
                   "tensorflow": tensorflow,
                   "tensorflow-datasets": importlib.metadata.version("tensorflow-datasets"),
                   "numpy": importlib.metadata.version("numpy")},
      "devices": {"backend": "cpu", "kind": "cpu", "count": 4, "processes": 1},
      "xla_flags": os.environ["XLA_FLAGS"],
      "convolution_kernels": "onednn" if onednn.available() else "xla",
      "host": socket.gethostname(),
  }
  assert results.read(workdir)["environment_changes"] == []
  [segment] = provenance.segments(workdir)
  assert segment["from_step"] == 0 and segment["environment"] == recorded
  # config.json stays the experiment alone: what resumes compare and tools read back.
  assert (workdir / "config.json").read_text() == config_file.as_json(config)


def test_report_json_and_csv_carry_the_provenance(finished, capsys):
  workdir, _ = finished
  recorded = provenance.flatten(results.read(workdir)["provenance"])
  assert cli.main(["report", str(workdir), "--format", "json"]) == 0
  [row] = json.loads(capsys.readouterr().out)
  assert {column: row[column] for column in provenance.COLUMNS} == recorded
  assert row["packages.jax"] == jax.__version__ and row["devices.count"] == 4
  assert cli.main(["report", str(workdir), "--format", "csv"]) == 0
  [row] = csv.DictReader(io.StringIO(capsys.readouterr().out))
  assert row["packages.orbax-checkpoint"] == recorded["packages.orbax-checkpoint"]
  assert row["xla_flags"] == os.environ["XLA_FLAGS"] and row["environment_changes"] == ""


def _resume_from_step_3(finished, workdir, capsys) -> str:
  """Resumes a copy of the finished run from its checkpoint of step 3; returns stderr."""
  source, config = finished
  shutil.copytree(source, workdir, ignore=shutil.ignore_patterns("6", "results.json"))
  capsys.readouterr()
  train.train_and_evaluate(train.plan(config), workdir)
  out, err = capsys.readouterr()
  assert "resuming from the checkpoint at step 3 of 6" in out
  return err


def test_a_run_resumed_elsewhere_says_what_changed_and_goes_on(finished, tmp_path, monkeypatch,
                                                               capsys):
  assert "another environment" not in _resume_from_step_3(finished, tmp_path / "same", capsys)
  assert results.read(tmp_path / "same")["environment_changes"] == []

  flags = os.environ["XLA_FLAGS"]
  monkeypatch.setenv("XLA_FLAGS", flags + " --xla_cpu_enable_fast_math=false")
  err = _resume_from_step_3(finished, tmp_path / "elsewhere", capsys)
  change = f"xla_flags {flags!r} -> {flags + ' --xla_cpu_enable_fast_math=false'!r}"
  assert [line for line in err.splitlines() if "another environment" in line] == [
      f"cnnjax: note: resumed at step 3 in another environment: {change}"]
  finished_again = results.read(tmp_path / "elsewhere")
  assert finished_again["step"] == 6
  assert finished_again["environment_changes"] == [f"at step 3: {change}"]
  assert [segment["from_step"] for segment in provenance.segments(tmp_path / "elsewhere")] == [
      0, 3]


def test_an_evaluation_records_what_ran_it(finished, tmp_path, capsys):
  workdir = tmp_path / "run"
  shutil.copytree(finished[0], workdir)
  assert cli.main(["eval", "--workdir", str(workdir)]) == 0
  [evaluation] = json.loads((workdir / "eval" / "6.json").read_text())["evaluations"]
  assert evaluation["provenance"] == {**results.read(workdir)["provenance"],
                                      "cnnjax": evaluation["provenance"]["cnnjax"]}
  capsys.readouterr()
  assert cli.main(["report", str(workdir), "--format", "json"]) == 0
  rows = json.loads(capsys.readouterr().out)
  assert [row["measured"] for row in rows] == ["final", "cnnjax eval (latest checkpoint)"]
  assert rows[1]["host"] == socket.gethostname()
