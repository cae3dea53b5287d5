"""A workdir holds one experiment: a resumed run may change how long it runs
and where its data is, not what it trains; `--allow_config_change` records
the change."""

import hashlib
import json

import pytest
from helpers import LENET_DIGITS, tiny_config

from cnnjax import cli
from cnnjax.errors import UserError
from cnnjax.workdir import config_file as workdir_lib


def _stored(tmp_path, config):
  (tmp_path / "config.json").write_text(workdir_lib.as_json(config))


def test_the_same_config_and_a_longer_run_are_accepted(digits_dir, tmp_path):
  _stored(tmp_path, tiny_config(digits_dir))
  assert workdir_lib.check_config(tiny_config(digits_dir), tmp_path) == {}
  longer = tiny_config(digits_dir, num_train_steps=600, num_epochs=3.0, keep_checkpoints=9,
                       eval_every_steps=7, dataset__data_dir="/elsewhere")
  assert set(workdir_lib.check_config(longer, tmp_path)) == {
      "num_train_steps", "num_epochs", "keep_checkpoints", "eval_every_steps", "dataset.data_dir"}


@pytest.mark.parametrize("override, named", [
    (dict(model__activation="relu"), "model.activation 'scaled_tanh' -> 'relu'"),
    (dict(batch_size=32), "batch_size 16 -> 32"),
    (dict(seed=1), "seed 0 -> 1"),
    (dict(optimizer__learning_rate=0.5), "optimizer.learning_rate 0.02 -> 0.5"),
    (dict(schedule__name="constant"), "schedule.name 'cosine' -> 'constant'"),
    (dict(dataset__image_size=36), "dataset.image_size 32 -> 36"),
    (dict(dataset__train_preprocess="pad"), "dataset.train_preprocess 'resize' -> 'pad'"),
    (dict(half_precision=True), "half_precision False -> True"),
    (dict(label_smoothing=0.1), "label_smoothing 0.0 -> 0.1"),
    (dict(model__name="resnet20"), "model.name 'lenet5' -> 'resnet20'"),
])
def test_a_different_experiment_is_refused_naming_the_keys(override, named, digits_dir, tmp_path):
  _stored(tmp_path, tiny_config(digits_dir))
  with pytest.raises(UserError) as refused:
    workdir_lib.check_config(tiny_config(digits_dir, **override), tmp_path)
  message = str(refused.value)
  assert named in message and "--allow_config_change" in message and "\n" not in message
  assert workdir_lib.check_config(tiny_config(digits_dir, **override), tmp_path,
                                  allow_change=True)


def test_eval_may_change_the_split_train_may_not(digits_dir, tmp_path):
  _stored(tmp_path, tiny_config(digits_dir))
  other_split = tiny_config(digits_dir, dataset__eval_split="train")
  workdir_lib.check_eval_config(other_split, tmp_path)
  with pytest.raises(UserError, match="dataset.eval_split 'test' -> 'train'"):
    workdir_lib.check_config(other_split, tmp_path)
  with pytest.raises(UserError, match="trained with another network or recipe: "
                                      "model.activation 'scaled_tanh' -> 'relu'"):
    workdir_lib.check_eval_config(tiny_config(digits_dir, model__activation="relu"), tmp_path)


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", "\x80\x81"])
def test_an_unreadable_config_json_is_a_clear_error(content, digits_dir, tmp_path):
  (tmp_path / "config.json").write_bytes(content.encode("latin-1"))
  with pytest.raises(UserError, match=f"{tmp_path / 'config.json'} is"):
    workdir_lib.check_config(tiny_config(digits_dir), tmp_path)
  assert workdir_lib.check_config(tiny_config(digits_dir), tmp_path, allow_change=True) is None


def test_a_workdir_that_is_a_file(digits_dir, tmp_path):
  (tmp_path / "run").write_text("")
  with pytest.raises(UserError, match="is a file, not a directory"):
    workdir_lib.check_config(tiny_config(digits_dir), tmp_path / "run")


def test_an_accepted_change_keeps_the_old_config(digits_dir, tmp_path, capsys):
  old, new = tiny_config(digits_dir), tiny_config(digits_dir, model__activation="relu")
  _stored(tmp_path, old)
  changes = workdir_lib.check_config(new, tmp_path, allow_change=True)
  workdir_lib.write_config(new, tmp_path, 3, changes)
  assert (tmp_path / "config.3.json").read_text() == workdir_lib.as_json(old)
  assert json.loads((tmp_path / "config.json").read_text())["model"]["activation"] == "relu"
  assert "previous config is kept as" in capsys.readouterr().err
  # A resumable change (a longer run) just updates config.json, with a note on the schedule.
  longer = tiny_config(digits_dir, model__activation="relu", num_train_steps=12)
  workdir_lib.write_config(longer, tmp_path, 6, workdir_lib.check_config(longer, tmp_path),
                           schedule_over_total=True)
  assert sorted(path.name for path in tmp_path.iterdir()) == ["config.3.json", "config.json"]
  assert "changes the length of the cosine schedule" in capsys.readouterr().err


def _snapshot(directory):
  return {str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest()
          for path in sorted(directory.rglob("*")) if path.is_file()}


def test_cli_refuses_another_experiment_and_allows_it_when_asked(digits_dir, tmp_path, capsys):
  workdir = tmp_path / "run"
  common = ["--config", LENET_DIGITS, "--workdir", str(workdir),
            f"--config.dataset.data_dir={digits_dir}", "--config.batch_size=16",
            "--config.log_every_steps=1", "--config.eval_every_steps=2",
            "--config.checkpoint_every_steps=2"]
  assert cli.main(["train", *common, "--config.num_train_steps=2"]) == 0
  before = _snapshot(workdir)
  capsys.readouterr()

  assert cli.main(["train", *common, "--config.num_train_steps=4",
                   "--config.model.activation=relu"]) == 2
  error = capsys.readouterr().err.strip()
  assert error == (f"cnnjax: error: {workdir / 'config.json'} holds another experiment: "
                   "model.activation 'scaled_tanh' -> 'relu'; use a new --workdir, or pass "
                   "--allow_config_change to train this one with the new values")
  assert _snapshot(workdir) == before

  # A new input size changes the parameters' shapes: even when allowed, the
  # checkpoint cannot be resumed, which is said, and config.json stays.
  assert cli.main(["train", *common, "--config.num_train_steps=4",
                   "--config.dataset.image_size=36", "--allow_config_change"]) == 2
  error = capsys.readouterr().err.strip()
  assert "does not fit this config's state" in error and "float32[" in error
  assert len(error.splitlines()) == 1 and _snapshot(workdir) == before

  assert cli.main(["train", *common, "--config.num_train_steps=4",
                   "--config.model.activation=relu", "--allow_config_change"]) == 0
  assert "config.2.json" in capsys.readouterr().err
  assert _snapshot(workdir)["config.2.json"] == before["config.json"]
  assert json.loads((workdir / "config.json").read_text())["model"]["activation"] == "relu"
