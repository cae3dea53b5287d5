"""The command line: bad input is one line on stderr, exit status 2, and the
workdir untouched; good input trains."""

import importlib.metadata
import json
import os
import signal
import subprocess
import sys
import time
import tomllib

import pytest
from helpers import CTRL_C_REACHES_IT, LENET_DIGITS, ROOT

from cnnjax import cli
from cnnjax import config as config_lib
from cnnjax.workdir import config_file as workdir_lib
from cnnjax.workdir import metrics as metrics_lib
from cnnjax.workdir import results

RUN_TIMEOUT_S = 300  # A whole short run, start-up included, on 2 loaded cores.


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
  assert cli.main(["eval", "--workdir", str(tmp_path)]) == 2
  assert f"{tmp_path} has no config.json: is it a cnnjax workdir?" in capsys.readouterr().err
  config = config_lib.from_command_line(LENET_DIGITS, [("dataset.data_dir", digits_dir)])
  (tmp_path / "config.json").write_text(workdir_lib.as_json(config))
  assert cli.main(["eval", "--workdir", str(tmp_path)]) == 2
  assert "no checkpoint in" in capsys.readouterr().err


def _cnnjax(*args, **popen):
  command = [sys.executable, "-m", "cnnjax", *map(str, args)]
  if popen:
    return subprocess.Popen(command, cwd=ROOT, text=True, **CTRL_C_REACHES_IT, **popen)
  return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=RUN_TIMEOUT_S)


def test_a_run_owns_its_workdir_ctrl_c_saves_and_eval_needs_no_overrides(tmp_path, digits_dir):
  """The real `python -m cnnjax` processes, as a user meets them."""
  workdir = tmp_path / "run"
  common = ["--config", f"{LENET_DIGITS}:", "--workdir", workdir,
            f"--config.dataset.data_dir={digits_dir}", "--config.batch_size=16",
            "--config.model.activation=relu"]
  first = _cnnjax("train", *common, "--config.num_train_steps=100000",
                  "--config.log_every_steps=1", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
  try:
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while not ((workdir / "metrics.jsonl").exists()
               and len((workdir / "metrics.jsonl").read_text().splitlines()) >= 3):
      if time.monotonic() > deadline or first.poll() is not None:
        first.kill()  # Its stderr ends with it: read to the end, not until it exits by itself.
        pytest.fail(f"no third step logged: {first.communicate(timeout=30)[1][-2000:]}")
      time.sleep(0.2)
    # The same command again: refused at once, naming the run that owns the workdir.
    second = _cnnjax("train", *common)
    assert second.returncode == 2
    assert second.stderr.strip().splitlines() == [
        f"cnnjax: error: {workdir} is in use by `cnnjax train` (process {first.pid} on "
        + second.stderr.split(f"(process {first.pid} on ")[1].strip()]
    # Ctrl-C: the current step is saved, one line, exit 130.
    first.send_signal(signal.SIGINT)
    _, stderr = first.communicate(timeout=RUN_TIMEOUT_S)
  finally:
    first.kill()
  assert first.returncode == 130, stderr[-2000:]
  last = stderr.strip().splitlines()[-1]
  assert last.startswith("cnnjax: interrupted: saved the checkpoint of step "), last
  saved = int(last.split("of step ")[1].split()[0])
  assert (workdir / "checkpoints" / str(saved)).is_dir()

  resumed = _cnnjax("train", *common, f"--config.num_train_steps={saved + 2}")
  assert resumed.returncode == 0, resumed.stderr[-2000:]
  assert f"resuming from the checkpoint at step {saved} of {saved + 2}" in resumed.stdout
  assert resumed.stdout.strip().splitlines()[-1].startswith("done: eval top-1 error ")
  steps_logged = [record["step"] for record in metrics_lib.read(workdir) if "train/loss" in record]
  assert steps_logged == sorted(set(steps_logged))  # No record twice.
  final = results.read(workdir)["final_eval"]

  # Evaluated as trained (ReLU), with no --config and no repeated overrides.
  evaluated = _cnnjax("eval", "--workdir", workdir)
  assert evaluated.returncode == 0, evaluated.stderr[-2000:]
  assert f"step {saved + 2}: eval/loss={final['eval/loss']:.4f}" in evaluated.stdout
  assert "WARNING" not in evaluated.stderr and "Traceback" not in evaluated.stderr
  [evaluation] = json.loads((workdir / "eval" / f"{saved + 2}.json").read_text())["evaluations"]
  assert evaluation["split"] == "test" and evaluation["checkpoint"] == "latest"
  assert evaluation["metrics"]["eval/top1_error"] == pytest.approx(final["eval/top1_error"])


@pytest.mark.parametrize("signum, after, status", [
    (signal.SIGTERM, "preparing ", 75),  # While TensorFlow is imported and the data planned.
    (signal.SIGTERM, "compiling ", 75),
    # SLURM's warning ahead of a time limit (sbatch --signal=USR1@SECONDS): as SIGTERM.
    (signal.SIGUSR1, "compiling ", 75),
    (signal.SIGINT, "preparing ", 130)])
def test_a_signal_while_starting_stops_the_run(tmp_path, digits_dir, signum, after, status):
  """Before training has a step to save, SIGTERM still exits 75 (retry), not
  -15, and Ctrl-C 130 with one line, not a traceback; neither is lost: the
  run stops instead of training to the end."""
  process = _cnnjax("train", "--config", LENET_DIGITS, "--workdir", tmp_path / "run",
                    f"--config.dataset.data_dir={digits_dir}", stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE)
  try:
    for line in process.stdout:  # What the run says it is doing.
      if line.startswith(after):
        break
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=RUN_TIMEOUT_S)
  finally:
    process.kill()
  assert process.returncode == status, stderr[-2000:]
  assert "Traceback" not in stderr
  assert ("preempted" if status == 75 else "interrupted") in stderr.strip().splitlines()[-1]
  checkpoints = tmp_path / "run" / "checkpoints"
  saved = sorted(path.name for path in checkpoints.iterdir()) if checkpoints.exists() else []
  # Before the first step nothing is saved; a signal while it compiles saves step 1.
  assert saved == [] if after == "preparing " else saved in ([], ["1"])


def test_eval_uses_the_workdirs_network_and_refuses_another(tmp_path, digits_dir, capsys):
  """A run trained with an override is evaluated as trained; an eval override
  or an experiment file that changes the network is refused, whatever the flags."""
  workdir = tmp_path / "relu"
  assert _train(workdir, "--config.model.activation=relu", "--config.num_train_steps=4",
                "--config.batch_size=16", "--config.eval_every_steps=2",
                "--config.checkpoint_every_steps=2", data_dir=digits_dir) == 0
  final = results.read(workdir)["final_eval"]
  capsys.readouterr()
  assert cli.main(["eval", "--workdir", str(workdir), "--best"]) == 0
  out = capsys.readouterr().out
  best = results.read(workdir)["best_eval"]
  assert f"step {best['step']}: eval/loss={best['eval/loss']:.4f}" in out
  assert cli.main(["eval", "--workdir", str(workdir), "--step", "2",
                   "--config.dataset.eval_split=train"]) == 0
  assert "step 2: eval/loss=" in capsys.readouterr().out
  evaluations = json.loads((workdir / "eval" / "2.json").read_text())["evaluations"]
  assert evaluations[-1]["split"] == "train" and evaluations[-1]["checkpoint"] == "step"

  for refused, named in (
      (["--config.model.activation=tanh"], "config.model.activation cannot change in `cnnjax eval`"),
      (["--config", LENET_DIGITS], "model.activation 'relu' -> 'scaled_tanh'; leave out --config"),
      (["--allow_config_change"], "unrecognized arguments: --allow_config_change"),
      (["--step", "3"], "no checkpoint of step 3"),
  ):
    assert cli.main(["eval", "--workdir", str(workdir), *refused]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and named in error, error
  assert (workdir / "metrics.jsonl").exists() and results.read(workdir)["final_eval"] == final


@pytest.mark.parametrize("argv, message", [
    (["train", "--config", "README.md", "--workdir", "w"], "config file 'README.md' is not a "
                                                           "Python file"),
    (["train", "--config", "experiments", "--workdir", "w"], "config file 'experiments' is a "
                                                             "directory"),
    (["train", "--config", "no/such.py:arg", "--workdir", "w"], "config file 'no/such.py' does "
                                                                "not exist"),
    (["train", "--workdir", "w"], "the following arguments are required: --config"),
    (["tarin"], "invalid choice: 'tarin'"),
    (["eval", "--workdir", "w", "--step", "1", "--best"], "not allowed with argument"),
])
def test_argument_mistakes_are_one_line_before_jax_is_imported(argv, message):
  """A fresh process, so it shows what it imported: neither JAX nor TensorFlow."""
  code = ("import sys\nfrom cnnjax import cli\ncode = cli.main(sys.argv[1:])\n"
          "print(sorted(m for m in ('jax', 'tensorflow', 'flax') if m in sys.modules))\n"
          "sys.exit(code)")
  run = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                       cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
  assert run.returncode == 2
  assert run.stdout.strip() == "[]"
  error = run.stderr.strip()
  assert len(error.splitlines()) == 1 and error.startswith("cnnjax: error: ") and message in error


def test_config_and_models_commands_describe_without_running(capsys):
  assert cli.main(["config", "--config", LENET_DIGITS, "--config.model.activation=relu"]) == 0
  printed = json.loads(capsys.readouterr().out)
  assert printed["model"] == {"name": "lenet5", "activation": "relu", "pooling": "trainable",
                              "c3_connections": "paper", "initialization": "paper"}
  assert printed["dataset"]["num_shards"] == 8
  assert cli.main(["config", "--config", LENET_DIGITS, "--config.dataset.image_size=16"]) == 2
  assert "needs inputs of at least 32x32" in capsys.readouterr().err

  assert cli.main(["models", "lenet5", "resnet20", "--format", "json"]) == 0
  rows = json.loads(capsys.readouterr().out)
  assert [(row["name"], row["input"], row["parameters"]) for row in rows] == [
      ("lenet5", "32x32x1", 60_850), ("resnet20", "32x32x3", 269_722)]
  assert rows[1]["options"]["shortcut"] == "A"
  assert cli.main(["models", "resnet21"]) == 2
  assert "unknown model 'resnet21'" in capsys.readouterr().err


def test_version_is_the_package_version(capsys):
  with pytest.raises(SystemExit) as done:
    cli.main(["--version"])
  assert done.value.code == 0
  assert capsys.readouterr().out.strip() == f"cnnjax {importlib.metadata.version('cnnjax')}"


def test_the_checkout_version_is_pyprojects():
  """`cnnjax --version` falls back to cnnjax.__version__ where cnnjax is not installed."""
  import cnnjax

  pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
  assert cnnjax.__version__ == pyproject["project"]["version"]


@pytest.mark.parametrize("name", sorted(cli.COMMANDS))
def test_help_says_which_overrides_the_command_takes(name, capsys):
  with pytest.raises(SystemExit):
    cli.main([name, "--help"])
  text = " ".join(capsys.readouterr().out.split())
  takes = cli.COMMANDS[name].overrides
  assert ("Any config key can be overridden" in text) == (takes == "any")
  assert ("--config.model.KEY=VALUE" in text) == (takes == "model") or takes == "none"
  assert ("--config.dataset.KEY=VALUE" in text) == (takes == "dataset") or takes == "none"
  if takes == "none":
    assert "--config." not in text


@pytest.mark.parametrize("argv", [["models", "lenet5"], ["plot", "runs/a", "--out", "plots"],
                                  ["bench-input", "--recipe", "flip"]])
def test_commands_without_overrides_refuse_them(argv, capsys):
  assert cli.main([*argv, "--config.model.activation=relu"]) == 2
  assert f"cnnjax {argv[0]} takes no --config.KEY=VALUE overrides" in capsys.readouterr().err
