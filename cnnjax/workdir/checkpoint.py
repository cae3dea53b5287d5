"""Checkpoints, with orbax only: async saves of the train state, the latest N
kept plus the best by eval top-1 error, and restore of the latest.

The best is the kept step with the lowest `eval/top1_error` saved beside it,
the earliest of equals: the first step to reach an error is the one that
results.json's `best_eval` names (cnnjax.workdir.results), and a later step
that only equals it trained longer for nothing measured. orbax's own `BestN`
keeps the latest of equals (a stable sort, the last N kept), which deleted
the step that results.json named once a later evaluation tied with it; so
the best is kept by `EarliestBest` below. The training loop saves a
checkpoint at every evaluation that beats the best so far, so the best
evaluation is always one that was saved.

Saving is asynchronous: `save` returns once the arrays are copied off the
devices and the files are written in the background; the step directory
appears under its final name only when complete (orbax writes to
`<step>.orbax-checkpoint-tmp`, then writes `commit_success.txt` and renames),
so an interrupted save never looks like a checkpoint. Old checkpoints are
deleted the same way round: renamed into `deleted/` first (atomic), then
removed, so a half-deleted step never looks complete either. What a killed
process leaves in either state is removed, with a log line, when the next one
opens the directory. A background save that fails raises
`CheckpointFailed` from the next `save` or `wait`, never silently.
Restoring reads arrays into a template of the state; nothing is unpickled.
The moments of a save are announced to `STAGE_OBSERVERS` (below), so a test can
stop a process at the moment it means.

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

import contextlib
import os
import pathlib
import shutil
from typing import Callable

import jax
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint.checkpoint_managers import preservation_policy

from cnnjax.errors import StopRun, UserError

BEST_METRIC = "eval/top1_error"
TEMPORARY_SUFFIX = ".orbax-checkpoint-tmp"  # What orbax appends to a step being written.
DELETED = "deleted"  # Where orbax moves the steps it no longer keeps, for us to remove.

# The moments of a checkpoint's life, in order, at which each function in
# STAGE_OBSERVERS is called with (stage, step, checkpoint directory). The crash-
# safety tests stop a process at one of them (tests/fault_driver.py), so each
# kill lands at the moment it means whatever orbax's internals do, and says so.
#   "save"       main thread, save(step) called: nothing of `step` is written yet
#                and every earlier step is in place.
#   "finalized"  orbax's writer thread (its AsyncOptions.post_finalization_callback):
#                every file of `step` written in its temporary directory, which
#                orbax then renames into place.
#   "committed"  main thread, at the next save() or wait(): `step` is in place and
#                the steps it outdated are moved to deleted/.
#   "deleting"   main thread: about to remove `step`, which orbax moved to deleted/.
STAGES = ("save", "finalized", "committed", "deleting")
STAGE_OBSERVERS: list[Callable[[str, int, pathlib.Path], None]] = []


def _reached(stage: str, step: int, directory: pathlib.Path) -> None:
  for observer in STAGE_OBSERVERS:
    observer(stage, step, directory)


class CheckpointFailed(StopRun):
  """A save did not reach the disk; the run must not go on as if it had."""

  exit_status = 1


def remove_incomplete(directory: pathlib.Path) -> None:
  """Removes, with a log line each, what interrupted saves and deletions left.

  Only process 0 removes anything (the directory is shared by all processes).
  """
  if jax.process_index() != 0 or not directory.is_dir():
    return
  for path in sorted(path for path in directory.iterdir() if TEMPORARY_SUFFIX in path.name):
    shutil.rmtree(path)
    print(f"removed incomplete checkpoint {path} (its save was interrupted)", flush=True)
  _remove_deleted(directory, announce=True)


def _remove_deleted(directory: pathlib.Path, announce: bool = False) -> None:
  """Removes the steps orbax has moved to `deleted/` (the rename made them invisible)."""
  if jax.process_index() != 0 or not (directory / DELETED).is_dir():
    return
  for path in sorted((directory / DELETED).iterdir()):
    if path.name.isdigit():
      _reached("deleting", int(path.name), directory)
    shutil.rmtree(path, ignore_errors=True)
    if announce:
      print(f"removed {path} (its deletion was interrupted)", flush=True)


class EarliestBest(preservation_policy.PreservationPolicy):
  """Preserves the one checkpoint with the lowest `BEST_METRIC`, the earliest
  of equals (see the module's docstring); those saved without it never count."""

  def should_preserve(self, checkpoints, *, context) -> list[bool]:
    del context
    best = best_of((info.step, info.metrics) for info in checkpoints)
    return [info.step == best for info in checkpoints]


def best_of(scored) -> int | None:
  """The step with the lowest `BEST_METRIC` of (step, metrics) pairs, the
  earliest of equals; None when none has it."""
  ranked = [(metrics[BEST_METRIC], step) for step, metrics in scored
            if metrics and BEST_METRIC in metrics]
  return min(ranked)[1] if ranked else None


class Checkpointer:
  """The checkpoints under `directory` (a workdir's `checkpoints/`).

  Unless `read_only`, opening it removes what killed runs left: the caller
  must own the workdir (cnnjax.workdir.ownership), so that is never a live run's save.
  """

  def __init__(self, directory: pathlib.Path, keep: int, read_only: bool = False):
    """`read_only` (evaluation) neither saves nor removes anything."""
    refuse_untrusted(directory)  # Before anything is removed from it.
    if not read_only:
      remove_incomplete(directory)
    policy = preservation_policy.AnyPreservationPolicy([
        preservation_policy.LatestN(n=keep), EarliestBest()])
    options = ocp.CheckpointManagerOptions(
        preservation_policy=policy, enable_async_checkpointing=True,
        async_options=None if read_only else ocp.AsyncOptions(
            post_finalization_callback=lambda: _reached("finalized", self._saving, directory)),
        # Only with a best_fn does orbax write the metrics beside each step;
        # without them a resumed run's BestN would no longer know the best.
        best_fn=lambda metrics: metrics[BEST_METRIC], best_mode="min",
        cleanup_tmp_directories=not read_only, todelete_subdir=None if read_only else DELETED,
        read_only=read_only, create=not read_only,
        save_interval_steps=0 if read_only else 1)  # Said, not left to orbax to warn about.
    self._directory, self._read_only = directory, read_only
    # The handler named, so that `shapes` can read a step's metadata alone.
    self._manager = ocp.CheckpointManager(directory.absolute(), options=options,
                                          item_handlers=ocp.StandardCheckpointHandler())
    self._saving = None  # The step of the last save started.
    self._committed = None  # The last step known to be in place.

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._manager.all_steps())

  def best_step(self) -> int | None:
    """The kept step with the lowest eval top-1 error saved beside it (the
    earliest of equals), or None when no kept step has one."""
    return best_of((step, self._manager.metrics(step)) for step in self.all_steps())

  def best_error(self) -> float | None:
    """The eval top-1 error of `best_step` (None without one): what a new
    evaluation must beat to be kept as the best."""
    best = self.best_step()
    return None if best is None else float(self._manager.metrics(best)[BEST_METRIC])

  def save(self, step: int, state, metrics: dict[str, float] | None = None,
           extra: dict | None = None) -> None:
    """Starts saving `state` (host or device arrays) in the background.

    `extra` (JSON) is kept beside it and returned by `extra(step)`. Raises
    CheckpointFailed if the previous background save failed.
    """
    metrics = metrics if metrics and BEST_METRIC in metrics else None
    self.wait()  # As orbax's save would first; here the previous step is then known in place.
    _reached("save", step, self._directory)
    self._saving = step  # Before orbax's writer thread may need it.
    with self._failures():
      self._manager.save(step, args=ocp.args.StandardSave(state), metrics=metrics, force=True,
                         custom_metadata=extra)

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

  @property
  def directory(self) -> pathlib.Path:
    return self._directory

  def restore_as_saved(self, step: int) -> dict:
    """The state saved at `step` as nested dicts of NumPy arrays, whatever
    model wrote it (fine-tuning reads another run's); a UserError if it
    cannot be read."""
    where = self._directory / str(step)
    try:
      restored = self._manager.restore(step, args=ocp.args.StandardRestore())
    except (ValueError, KeyError, TypeError, OSError) as error:
      reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
      raise UserError(f"cannot read the checkpoint {where}: {reason[:300]}") from None
    return jax.tree.map(np.asarray, restored)

  def shapes(self, step: int) -> dict:
    """The arrays saved at `step` as nested dicts of `jax.ShapeDtypeStruct`,
    read from the checkpoint's metadata without restoring any array (a
    fine-tuning source is checked before any data is prepared); a UserError
    if it cannot be read."""
    where = self._directory / str(step)
    try:
      metadata = dict(self._manager.item_metadata(step))
    except (ValueError, KeyError, TypeError, OSError) as error:
      reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
      raise UserError(f"cannot read the checkpoint {where}: {reason[:300]}") from None
    return jax.tree.map(lambda leaf: jax.ShapeDtypeStruct(tuple(leaf.shape), leaf.dtype),
                        metadata)

  def extra(self, step: int) -> dict:
    """What was saved as `extra` with the checkpoint at `step` ({} if nothing)."""
    return dict(self._manager.metadata(step).custom_metadata or {})

  def reached_preemption(self, step: int) -> bool:
    """Whether all processes have reached the step agreed on after a preemption
    notice (SIGTERM to any of them); needs jax.distributed's coordination service."""
    return self._manager.reached_preemption(step)

  def wait(self) -> None:
    """Blocks until background saves are on disk, then removes the steps they
    outdated; raises CheckpointFailed if one failed."""
    with self._failures():
      self._manager.wait_until_finished()
    if self._saving != self._committed:
      self._committed = self._saving
      _reached("committed", self._saving, self._directory)
    if not self._read_only:
      _remove_deleted(self._directory)

  def close(self) -> None:
    """Waits for pending saves (raising CheckpointFailed if one failed) and closes."""
    self.wait()
    self._manager.close()
    if not self._read_only:
      _remove_deleted(self._directory)

  @contextlib.contextmanager
  def _failures(self):
    """Reports an error of an earlier background save as CheckpointFailed."""
    try:
      yield
    except Exception as error:
      raise CheckpointFailed(
          f"saving a checkpoint failed (the last save started at step {self._saving}): "
          f"{type(error).__name__}: {error}") from error


def choose_step(workdir: pathlib.Path, keep: int, step: int | None, best: bool) -> int:
  """The step a tool reads of `workdir`: `step`, the best (`best`) or the
  latest, from the checkpoints' index alone (no array read, no data needed,
  no TensorFlow imported); a UserError naming the steps kept when there is no
  such checkpoint."""
  checkpointer = Checkpointer(workdir / "checkpoints", keep, read_only=True)
  try:
    return choose(checkpointer, workdir, step, best)
  finally:
    checkpointer.close()


def choose(checkpointer: Checkpointer, workdir: pathlib.Path, step: int | None,
           best: bool) -> int:
  """`choose_step` with the checkpoints already open."""
  where = workdir / "checkpoints"
  kept = checkpointer.all_steps()
  if not kept:
    raise UserError(f"no checkpoint in {where}; run `cnnjax train` with this --workdir first")
  if best:
    chosen = checkpointer.best_step()
    if chosen is None:
      raise UserError(f"no checkpoint in {where} was saved with an evaluation; use --step N "
                      f"(kept: {', '.join(map(str, kept))})")
    return chosen
  if step is not None and step not in kept:
    raise UserError(f"no checkpoint of step {step} in {where}; kept: "
                    f"{', '.join(map(str, kept))}")
  return kept[-1] if step is None else step


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
