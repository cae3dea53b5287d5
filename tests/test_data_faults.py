"""Data faults: a missing ImageNet, a damaged record (found mid-training), a
missing shard and damaged metadata each stop the run with one line naming the
file or directory and what to do; checkpoints already written stay."""

import pathlib
import shutil

import pytest
from helpers import LENET_DIGITS

from cnnjax import cli

TRAIN_FILE = "digits/1.0.0/digits-train.tfrecord-00000-of-00001"


@pytest.fixture
def data_dir(digits_dir, tmp_path):
  """A private copy of the prepared digits (the session's copy must stay intact)."""
  copy = tmp_path / "tfds"
  shutil.copytree(digits_dir, copy)
  return copy


def _train(workdir, data_dir, *overrides):
  return cli.main(["train", "--config", LENET_DIGITS, "--workdir", str(workdir),
                   f"--config.dataset.data_dir={data_dir}", "--config.batch_size=16", *overrides])


def _one_line(capsys):
  """The one error line (stderr also carries the progress bar, without newlines)."""
  stderr = capsys.readouterr().err
  assert stderr.count("cnnjax: error: ") == 1 and "Traceback" not in stderr
  return "cnnjax: error: " + stderr.split("cnnjax: error: ")[1].splitlines()[0]


def test_imagenet_without_its_manual_download(tmp_path, capsys):
  empty = tmp_path / "tfds"
  assert _train(tmp_path / "run", empty, "--config.dataset.name=imagenet2012",
                "--config.dataset.eval_split=validation") == 2
  error = _one_line(capsys)
  assert f"'imagenet2012' is not prepared in {empty}" in error
  assert "ILSVRC2012_img_train.tar" in error and "ILSVRC2012_img_val.tar" in error
  assert f"{empty}/downloads/manual" in error
  assert f"`tfds build imagenet2012 --data_dir {empty}`" in error
  assert not (tmp_path / "run").exists()


def test_a_damaged_record_mid_training_names_the_file_and_keeps_checkpoints(
    data_dir, digits_dir, tmp_path, capsys):
  shard = data_dir / TRAIN_FILE
  damaged = bytearray(shard.read_bytes())
  # Shard 2 of the 8 starts at 1/4 of the file and gives 2 examples a step: a
  # record at 0.28 is read (shuffle buffer of 16 ahead) near step 0.03 * 1497 / 2 = 22.
  at = int(len(damaged) * 0.28)
  damaged[at:at + 16] = bytes(byte ^ 0xFF for byte in damaged[at:at + 16])
  shard.write_bytes(bytes(damaged))
  workdir = tmp_path / "run"
  run = lambda: _train(workdir, data_dir, "--config.num_train_steps=40",
                       "--config.log_every_steps=5", "--config.dataset.shuffle_buffer=16",
                       "--config.checkpoint_every_steps=10", "--config.eval_every_steps=100")
  assert run() == 2
  error = _one_line(capsys)
  assert f"has a damaged record in {shard} (corrupted record at" in error
  assert f"delete {shard.parent} and prepare it again" in error
  saved = sorted(int(path.name) for path in (workdir / "checkpoints").iterdir())
  assert saved and saved[0] == 10 and max(saved) < 40

  shutil.copy(pathlib.Path(digits_dir, TRAIN_FILE), shard)  # The dataset prepared again.
  assert run() == 0
  assert f"resuming from the checkpoint at step {max(saved)} of 40" in capsys.readouterr().out


def test_a_truncated_eval_file(data_dir, tmp_path, capsys):
  shard = data_dir / "digits/1.0.0/digits-test.tfrecord-00000-of-00001"
  shard.write_bytes(shard.read_bytes()[:-100])
  assert _train(tmp_path / "run", data_dir, "--config.num_train_steps=1") == 2
  assert f"has a damaged record in {shard} (truncated record" in _one_line(capsys)


def test_a_missing_shard(data_dir, tmp_path, capsys):
  (data_dir / TRAIN_FILE).unlink()
  assert _train(tmp_path / "run", data_dir, "--config.num_train_steps=1") == 2
  assert f"is missing a file ({data_dir / TRAIN_FILE}" in _one_line(capsys)


def test_damaged_dataset_metadata(data_dir, tmp_path, capsys):
  (data_dir / "digits/1.0.0/dataset_info.json").write_text("{half")
  assert _train(tmp_path / "run", data_dir, "--config.num_train_steps=1") == 2
  error = _one_line(capsys)
  assert f"the metadata of dataset 'digits' in {data_dir / 'digits'} is damaged" in error
  assert f"delete {data_dir / 'digits'}" in error
