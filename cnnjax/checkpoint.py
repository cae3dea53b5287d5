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
"""

import pathlib

import orbax.checkpoint as ocp
from orbax.checkpoint.checkpoint_managers import preservation_policy

BEST_METRIC = "eval/top1_error"


class Checkpointer:
  """The checkpoints under `directory` (a workdir's `checkpoints/`)."""

  def __init__(self, directory: pathlib.Path, keep: int):
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
    """The state saved at `step`, with the structure and dtypes of `template`."""
    return self._manager.restore(step, args=ocp.args.StandardRestore(template))

  def wait(self) -> None:
    """Blocks until background saves are on disk."""
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.close()
