"""Checkpoints, with orbax only: async saves of the train state, the latest N
kept plus the best by eval top-1 error, and restore of the latest.

Saving is asynchronous: `save` returns once the arrays are copied off the
devices and the files are written in the background; the step directory
appears under its final name only when complete (orbax writes to a temporary
directory and renames), so an interrupted save never looks like a checkpoint.
Restoring reads arrays into a template of the state; nothing is unpickled.

With several processes, every process saves, waits and restores at the same
steps (orbax keeps them in step with barriers over `jax.distributed`). The
state saved is the host copy that every process holds identically (the
devices' replicas after `lax.pmean`): orbax's NumPy handler treats such arrays
as replicated, process 0 alone writes them, and every process reads them back
whole, with no gathering across hosts.

A checkpoint directory is data from disk, so it is checked before orbax
opens it (see `refuse_untrusted`) and a checkpoint that cannot be restored
into the template is a UserError naming it, never a traceback. What orbax
reads on restore, checked in orbax-checkpoint 0.12: JSON metadata, a
handler name looked up in a registry (never imported), msgpack (whose
arrays are rebuilt with `np.frombuffer`, which refuses object dtypes) and
tensorstore's OCDBT/zarr array files; no pickle anywhere.
"""

import os
import pathlib

import jax
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint.checkpoint_managers import preservation_policy

from cnnjax.errors import UserError

BEST_METRIC = "eval/top1_error"


class Checkpointer:
  """The checkpoints under `directory` (a workdir's `checkpoints/`)."""

  def __init__(self, directory: pathlib.Path, keep: int):
    refuse_untrusted(directory)
    self._directory = directory
    policy = preservation_policy.AnyPreservationPolicy([
        preservation_policy.LatestN(n=keep),
        preservation_policy.BestN(get_metric_fn=lambda metrics: metrics[BEST_METRIC],
                                  reverse=True, n=1, keep_checkpoints_without_metrics=False),
    ])
    options = ocp.CheckpointManagerOptions(
        preservation_policy=policy, enable_async_checkpointing=True,
        cleanup_tmp_directories=True)
    self._manager = ocp.CheckpointManager(directory.absolute(), options=options)

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._manager.all_steps())

  def save(self, step: int, state, metrics: dict[str, float] | None = None) -> None:
    """Starts saving `state` (host or device arrays) in the background."""
    metrics = metrics if metrics and BEST_METRIC in metrics else None
    self._manager.save(step, args=ocp.args.StandardSave(state), metrics=metrics, force=True)

  def restore(self, step: int, template):
    """The state saved at `step`, with the structure and dtypes of `template`.

    A damaged checkpoint, or one of another model or optimizer, is a
    UserError naming its directory.
    """
    where = self._directory / str(step)
    advice = (f"if it is damaged, move {where} out of {self._directory} to resume from the "
              "checkpoint before it")
    try:
      restored = self._manager.restore(step, args=ocp.args.StandardRestore(template))
    except (ValueError, KeyError, TypeError, OSError) as error:
      reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
      raise UserError(f"cannot restore the checkpoint {where}: {reason[:300]}; {advice}") from None
    mismatch = _first_mismatch(restored, template)
    if mismatch:
      raise UserError(f"the checkpoint {where} does not fit this config's state: {mismatch}; it "
                      "was written for another model or optimizer: use the config in the "
                      "workdir's config.json, or a new --workdir")
    return restored

  def wait(self) -> None:
    """Blocks until background saves are on disk."""
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.close()


def refuse_untrusted(directory: pathlib.Path) -> None:
  """Refuses a checkpoint directory that reaches outside itself, before orbax opens it.

  A symlink (the directory itself or anything in it) would let restore read,
  and orbax's cleanup of old checkpoints delete, files outside the workdir;
  a FIFO or device file could hang the read. The workdir itself may be a
  symlink: that is where the user chose to put it. Names from a directory
  listing cannot be `..`, and orbax's metadata names no paths.
  """
  if directory.is_symlink():
    raise UserError(f"{directory} is a symlink; checkpoints must be a real directory inside the "
                    "workdir (to keep them on another disk, make the --workdir a symlink instead)")
  if not directory.exists():
    return
  if not directory.is_dir():
    raise UserError(f"{directory} is not a directory; move it out of the workdir")
  for root, dirs, files in os.walk(directory):  # Never follows symlinks.
    for name in dirs + files:
      path = pathlib.Path(root, name)
      if path.is_symlink():
        raise UserError(f"{path} is a symlink (to {os.readlink(path)}); a checkpoint directory "
                        "holds only real files, so it is refused; remove the link")
      if not (path.is_dir() or path.is_file()):
        raise UserError(f"{path} is not a regular file or directory; remove it")


def _first_mismatch(restored, template) -> str | None:
  """Where `restored` differs from `template` in structure, shape or dtype, if anywhere."""
  restored_leaves, restored_tree = jax.tree_util.tree_flatten_with_path(restored)
  template_leaves, template_tree = jax.tree_util.tree_flatten_with_path(template)
  if restored_tree != template_tree:
    return "its tree of arrays differs"
  for (path, saved), (_, wanted) in zip(restored_leaves, template_leaves):
    saved_type = (np.shape(saved), np.asarray(saved).dtype)
    wanted_type = (np.shape(wanted), np.asarray(wanted).dtype)
    if saved_type != wanted_type:
      return (f"{jax.tree_util.keystr(path)} is {saved_type[1]}{list(saved_type[0])}, "
              f"expected {wanted_type[1]}{list(wanted_type[0])}")
  return None
