"""The command line: bad input is one line on stderr, exit status 2, and the
workdir untouched; good input trains."""

import signal
import subprocess
import sys
import time

import pytest
from helpers import LENET_DIGITS, ROOT

from cnnjax import cli


@pytest.fixture
def workdir(tmp_path):
  """A workdir with results already in it, which a rejected command must not touch."""
  (tmp_path / "metrics.jsonl").write_text('{"step": 1, "train/loss": 2.0}\n')
  (tmp_path / "config.json").write_text("{}\n")
  return tmp_path


def _train(workdir, *overrides, data_dir):
  return cli.main(["train", "--config", LENET_DIGITS, "--workdir", str(workdir),
                   f"--config.dataset.data_dir={data_dir}", *overrides])


@pytest.mark.parametrize("override, names", [
    ("--config.no_such_key=1", "config.no_such_key"),
    ("--config.optimizer.no_such_key=1", "config.optimizer.no_such_key"),
    ("--config.batch_size=lots", "config.batch_size must be int, got 'lots'"),
    ("--config.half_precision=maybe", "config.half_precision"),
    ("--config.optimizer.learning_rate=-0.1", "config.optimizer.learning_rate=-0.1 is impossible"),
    ("--config.optimizer.learning_rate=nan", "config.optimizer.learning_rate"),
    ("--config.batch_size=30", "config.batch_size=30 does not divide evenly over 4 devices"),
    ("--config.eval_batch_size=6", "config.eval_batch_size=6 does not divide evenly"),
    ("--config.num_train_steps=-5", "config.num_train_steps=-5 is impossible"),
    ("--config.dataset.shuffle_buffer=0", "config.dataset.shuffle_buffer=0 is impossible"),
    ("--config.optimizer.b2=1.5", "config.optimizer.b2=1.5 is impossible"),
    ("--config.schedule.decay_every_epochs=0", "config.schedule.decay_every_epochs=0.0"),
    ("--config.dataset.name=no_such_dataset", "unknown dataset 'no_such_dataset' "
                                              "(config.dataset.name)"),
    ("--config.model.name=no_such_model", "unknown model 'no_such_model' (config.model.name)"),
    ("--config.model.activation=swish", "(config.model.activation)"),
    ("--config.dataset.image_size=16", "lenet5 needs inputs of at least 32x32, got 16x16; "
                                       "set config.dataset.image_size"),
    ("--config.dataset.eval_split=validation", "has no split 'validation' "
                                               "(config.dataset.eval_split)"),
    ("--config.dataset.train_preprocess=warp", "unknown train_preprocess 'warp'; choose one of"),
    ("--config.optimizer.name=sgdx", "config.optimizer.name"),
    ("--config.schedule.name=linear", "config.schedule.name"),
    ("--config.dataset.normalization=none", "(config.dataset.normalization)"),
])
def test_bad_input_is_one_line_and_exit_2(override, names, workdir, digits_dir, capsys):
  """Each message names the config key to fix."""
  before = {path.name: path.read_text() for path in workdir.iterdir()}

  assert _train(workdir, override, data_dir=digits_dir) == 2

  error = capsys.readouterr().err.strip()
  assert len(error.splitlines()) == 1
  assert error.startswith("cnnjax: error: ") and names in error and "config." in error
  assert {path.name: path.read_text() for path in workdir.iterdir()} == before


def test_missing_dataset_says_where_tfds_looked(workdir, tmp_path, capsys):
  empty = tmp_path / "empty_tfds"
  code = _train(workdir, "--config.dataset.name=mnist", "--config.dataset.image_size=32",
                data_dir=empty)
  error = capsys.readouterr().err
  assert code == 2
  assert "'mnist' is not prepared in" in error and str(empty) in error and "tfds build" in error


def test_missing_config_file(workdir, capsys):
  assert cli.main(["train", "--config", "no/such/file.py", "--workdir", str(workdir)]) == 2
  assert "config file 'no/such/file.py' does not exist" in capsys.readouterr().err


def test_eval_without_checkpoint(tmp_path, digits_dir, capsys):
  code = cli.main(["eval", "--config", LENET_DIGITS, "--workdir", str(tmp_path),
                   f"--config.dataset.data_dir={digits_dir}"])
  assert code == 2
  assert "no checkpoint in" in capsys.readouterr().err


def test_console_entry_point_trains_and_evaluates(tmp_path, digits_dir):
  """The real `python -m cnnjax` process: exit codes and what it prints."""
  common = ["--config", f"{LENET_DIGITS}:", "--workdir", str(tmp_path / "run"),
            f"--config.dataset.data_dir={digits_dir}", "--config.num_train_steps", "4",
            "--config.batch_size=16"]
  run = lambda command: subprocess.run([sys.executable, "-m", "cnnjax", command, *common],
                                       capture_output=True, text=True, cwd=ROOT, timeout=300)
  trained = run("train")
  assert trained.returncode == 0, trained.stderr
  assert "step 4: eval/loss=" in trained.stdout
  evaluated = run("eval")
  assert evaluated.returncode == 0, evaluated.stderr
  assert evaluated.stdout.strip().splitlines()[-1].startswith("step 4: eval/loss=")
  rejected = subprocess.run([sys.executable, "-m", "cnnjax", "train", *common, "--config.nope=1"],
                            capture_output=True, text=True, cwd=ROOT, timeout=300)
  assert rejected.returncode == 2
  assert rejected.stderr.strip() == "cnnjax: error: unknown config key 'config.nope'; keys here: " \
      + rejected.stderr.strip().split("keys here: ")[1]
  assert "Traceback" not in rejected.stderr


@pytest.mark.parametrize("delay_s", [1.0, 4.0])  # Mid-import of JAX/TF; planning or compiling.
def test_sigterm_while_starting_is_a_preemption_too(tmp_path, digits_dir, delay_s):
  """Before training has a step to save, SIGTERM still exits 75 (retry), not
  -15, and is not lost: the run stops instead of training to the end."""
  process = subprocess.Popen(
      [sys.executable, "-m", "cnnjax", "train", "--config", LENET_DIGITS, "--workdir",
       str(tmp_path / "run"), f"--config.dataset.data_dir={digits_dir}"],
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
  try:
    time.sleep(delay_s)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
  finally:
    process.kill()
  assert process.returncode == 75, stderr[-2000:]
  assert "preempted" in stderr.strip().splitlines()[-1]
