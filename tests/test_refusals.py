"""Refusals that depend only on the workdir, the checkpoints' index, the config
or the shapes of the weights come before any dataset is prepared or any step
compiled: each is one line, and the data dir of the run is never made (the
digits dataset is built in it on first use)."""

import jax
import numpy as np
import pytest
from helpers import LENET_DIGITS, hold

from cnnjax import cli, models
from cnnjax import config as config_lib
from cnnjax.data import describe
from cnnjax.workdir import config_file as workdir_lib
from cnnjax.workdir.checkpoint import Checkpointer


@pytest.fixture
def trained(tmp_path):
  """A workdir whose config.json reads digits from a data dir that does not
  exist yet, and whose checkpoints hold steps 3 and 6 (their index is all
  that is read before a refusal)."""
  workdir, data_dir = tmp_path / "run", tmp_path / "tfds"
  workdir.mkdir()
  config = config_lib.from_command_line(LENET_DIGITS, [("dataset.data_dir", str(data_dir))])
  (workdir / "config.json").write_text(workdir_lib.as_json(config))
  return workdir, data_dir


def _save_steps(workdir, *steps):
  checkpointer = Checkpointer(workdir / "checkpoints", keep=3)
  for step in steps:
    checkpointer.save(step, {"params": {"kernel": np.zeros(2, np.float32)}})
  checkpointer.close()


def _refused(argv, capsys) -> str:
  assert cli.main(argv) == 2
  captured = capsys.readouterr()
  assert "preparing" not in captured.out and "compiling" not in captured.out, captured.out
  return captured.err


def test_eval_without_a_checkpoint_or_step_is_refused_before_the_data(trained, capsys):
  workdir, data_dir = trained
  assert "no checkpoint in" in _refused(["eval", "--workdir", str(workdir)], capsys)
  _save_steps(workdir, 3, 6)
  error = _refused(["eval", "--workdir", str(workdir), "--step", "7"], capsys)
  assert f"no checkpoint of step 7 in {workdir / 'checkpoints'}; kept: 3, 6" in error
  error = _refused(["eval", "--workdir", str(workdir), "--best"], capsys)
  assert "was saved with an evaluation; use --step N (kept: 3, 6)" in error
  assert not data_dir.exists()


def test_eval_of_a_workdir_a_training_owns_is_refused_before_the_data(trained, capsys):
  workdir, data_dir = trained
  _save_steps(workdir, 3)
  holder = hold(workdir)
  try:
    error = _refused(["eval", "--workdir", str(workdir)], capsys)
  finally:
    holder.kill()
    holder.wait()
  assert f"{workdir} is in use by `cnnjax train` (process {holder.pid} " in error
  assert not data_dir.exists()


def test_a_fine_tuning_source_that_does_not_fit_is_refused_before_the_data(tmp_path, capsys):
  """LeNet-5's weights for 1000 classes (an ImageNet-sized classifier) to
  fine-tune on the 10 digits, without leaving the classifier fresh: refused
  from the checkpoint's shapes, naming this model's own layer, before the
  dataset is prepared or anything compiled."""
  source, data_dir = tmp_path / "source", tmp_path / "tfds"
  config = config_lib.from_command_line(LENET_DIGITS, [])
  spec = describe(config.dataset)
  size = config_lib.input_size(config, spec)
  model = models.from_config(config, "batch", num_classes=1000)
  shapes = jax.eval_shape(lambda images: model.init(jax.random.key(0), images, train=False),
                          jax.ShapeDtypeStruct((1, size, size, spec.channels), np.float32))
  checkpointer = Checkpointer(source / "checkpoints", keep=1)
  checkpointer.save(0, jax.tree.map(lambda leaf: np.zeros(leaf.shape, leaf.dtype), shapes))
  checkpointer.close()
  error = _refused(["train", "--config", LENET_DIGITS, "--workdir", str(tmp_path / "tuned"),
                    f"--config.dataset.data_dir={data_dir}", f"--config.init_from={source}"],
                   capsys)
  assert "params output/bias is [1000] there and [10] here (and 1 more)" in error
  assert """--config.init_from_exclude='("^output/",)'""" in error
  assert not data_dir.exists()


def test_a_misspelt_model_is_refused_without_jax(tmp_path, capsys):
  import subprocess
  import sys

  code = ("import sys\nfrom cnnjax import cli\nstatus = cli.main(sys.argv[1:])\n"
          "print(sorted(m for m in ('jax', 'flax', 'tensorflow') if m in sys.modules))\n"
          "sys.exit(status)\n")
  done = subprocess.run([sys.executable, "-c", code, "train", "--config", LENET_DIGITS,
                         "--workdir", str(tmp_path / "run"), "--config.model.name=lenet6"],
                        capture_output=True, text=True)
  assert done.returncode == 2
  assert "unknown model 'lenet6' (config.model.name)" in done.stderr
  assert done.stdout.strip() == "[]"
  assert not (tmp_path / "run").exists()


def test_eval_refusals_import_no_jax(trained):
  """A missing checkpoint or step is seen in the checkpoints' directory before
  JAX (and TensorFlow, the slowest import by far) is imported."""
  import subprocess
  import sys

  workdir, data_dir = trained
  _save_steps(workdir, 3)
  code = ("import sys\nfrom cnnjax import cli\nstatus = cli.main(sys.argv[1:])\n"
          "print([m for m in ('jax', 'flax', 'tensorflow') if m in sys.modules])\n"
          "sys.exit(status)\n")
  done = subprocess.run([sys.executable, "-c", code, "eval", "--workdir", str(workdir),
                         "--step", "7"], capture_output=True, text=True)
  assert done.returncode == 2 and "no checkpoint of step 7" in done.stderr
  assert done.stdout.strip() == "[]"
  assert not data_dir.exists()
