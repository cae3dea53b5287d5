"""Checkpoints are data: restoring never unpickles, and a checkpoint directory
that reaches outside itself (a symlink) or holds odd files is refused before
orbax opens it; a damaged checkpoint is a UserError naming it."""

import os
import pathlib
import pickle
import shutil

import numpy as np
import pytest
from helpers import LENET_DIGITS

from cnnjax import cli
from cnnjax import config as config_lib
from cnnjax.errors import UserError
from cnnjax.workdir import config_file as workdir_lib
from cnnjax.workdir.checkpoint import Checkpointer


class _Payload:
  """Unpickling this creates `marker`: what a crafted pickle would do, harmlessly."""

  def __init__(self, marker):
    self.marker = str(marker)

  def __reduce__(self):
    return (open, (self.marker, "w"))


def _state(value: float):
  return {"params": {"kernel": np.full((2, 3), value, np.float32)},
          "step": np.array(int(value), np.int32)}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
  """A workdir's checkpoints/ with one step, 3, saved by orbax."""
  directory = tmp_path_factory.mktemp("workdir") / "checkpoints"
  checkpointer = Checkpointer(directory, keep=2)
  checkpointer.save(3, _state(3))
  checkpointer.close()
  return directory


def _copy(saved, tmp_path):
  workdir = tmp_path / "workdir"
  shutil.copytree(saved.parent, workdir, symlinks=True)
  return workdir / "checkpoints"


def _restore(directory):
  checkpointer = Checkpointer(directory, keep=2)
  try:
    return checkpointer.restore(checkpointer.latest_step(), _state(0))
  finally:
    checkpointer.close()


def _files(saved):
  return sorted(str(path.relative_to(saved)) for path in saved.rglob("*") if path.is_file())


def test_the_payload_would_run_if_unpickled(tmp_path):
  pickle.loads(pickle.dumps(_Payload(tmp_path / "ran")))
  assert (tmp_path / "ran").exists()


@pytest.mark.parametrize("planted", ["replace each file", "checkpoint", "x.pkl", "_sharding",
                                     "array_metadatas", "default.pkl"])
def test_a_crafted_pickle_is_never_unpickled(planted, saved, tmp_path):
  marker = tmp_path / "unpickled"
  payload = pickle.dumps(_Payload(marker))
  targets = (_files(saved) if planted == "replace each file"
             else [f"3/default/{planted}", f"3/{planted}"])
  for target in targets:
    directory = _copy(saved, tmp_path / target.replace("/", "_"))
    (directory / target).write_bytes(payload)
    try:
      restored = _restore(directory)
    except UserError as error:  # Refused, naming the checkpoint: fine.
      assert str(directory / "3") in str(error)
    else:  # Or orbax never read the file: the arrays are the saved ones.
      np.testing.assert_array_equal(restored["params"]["kernel"], np.full((2, 3), 3.0))
    assert not marker.exists(), target


def test_a_damaged_checkpoint_names_its_directory(saved, tmp_path):
  directory = _copy(saved, tmp_path)
  (directory / "3" / "default" / "_METADATA").write_text("{half")
  with pytest.raises(UserError, match=f"cannot restore the checkpoint {directory / '3'}: .*move"):
    _restore(directory)


def test_a_checkpoint_of_other_shapes_is_refused(saved, tmp_path):
  checkpointer = Checkpointer(_copy(saved, tmp_path), keep=2)
  other = {"params": {"kernel": np.zeros((4, 3), np.float32)}, "step": np.array(0, np.int32)}
  with pytest.raises(UserError, match=r"\['params'\]\['kernel'\] is float32\[2, 3\], "
                                      r"expected float32\[4, 3\]"):
    checkpointer.restore(3, other)
  checkpointer.close()


def _outside(tmp_path):
  """A directory outside the workdir, with a file that must survive."""
  outside = tmp_path / "outside"
  outside.mkdir()
  (outside / "precious").write_text("keep me")
  return outside


def test_a_symlinked_checkpoints_directory_is_refused(saved, tmp_path):
  outside = _outside(tmp_path)
  shutil.copytree(saved, outside / "checkpoints")
  workdir = tmp_path / "workdir"
  workdir.mkdir()
  (workdir / "checkpoints").symlink_to(outside / "checkpoints")
  with pytest.raises(UserError, match=f"{workdir / 'checkpoints'} is a symlink"):
    Checkpointer(workdir / "checkpoints", keep=2)


@pytest.mark.parametrize("link, target", [
    ("7", "outside"),  # A step that is somewhere else: cleanup would delete there.
    ("3/default/_METADATA", "outside/precious"),
    ("3/default/d", ".."),
    ("3/escape", "../../../outside"),
])
def test_a_symlink_inside_is_refused(link, target, saved, tmp_path):
  outside = _outside(tmp_path)
  directory = _copy(saved, tmp_path)
  path = directory / link
  if path.is_dir():
    shutil.rmtree(path)
  elif path.exists():
    path.unlink()
  path.symlink_to(tmp_path / target if target == "outside" or target.startswith("outside/")
                  else target)
  with pytest.raises(UserError, match=f"{path} is a symlink"):
    Checkpointer(directory, keep=1)
  assert (outside / "precious").read_text() == "keep me"


def test_a_fifo_is_refused(saved, tmp_path):
  directory = _copy(saved, tmp_path)
  os.mkfifo(directory / "3" / "default" / "pipe")
  with pytest.raises(UserError, match="is not a regular file or directory"):
    Checkpointer(directory, keep=2)


def test_a_symlinked_workdir_is_the_users_choice(saved, tmp_path):
  directory = _copy(saved, tmp_path)
  link = tmp_path / "link_to_workdir"
  link.symlink_to(directory.parent)
  restored = _restore(pathlib.Path(link, "checkpoints"))
  np.testing.assert_array_equal(restored["params"]["kernel"], np.full((2, 3), 3.0))


def test_cli_eval_refuses_a_symlinked_step(saved, tmp_path, digits_dir, capsys):
  outside = _outside(tmp_path)
  directory = _copy(saved, tmp_path)
  (directory / "9").symlink_to(outside)
  config = config_lib.from_command_line(LENET_DIGITS, [("dataset.data_dir", digits_dir)])
  (directory.parent / "config.json").write_text(workdir_lib.as_json(config))
  code = cli.main(["eval", "--workdir", str(directory.parent)])
  error = capsys.readouterr().err.strip()
  assert code == 2 and error == (f"cnnjax: error: {directory / '9'} is a symlink (to {outside}); "
                                 "a checkpoint directory holds only real files, so it is "
                                 "refused; remove the link")
  assert (outside / "precious").read_text() == "keep me"
