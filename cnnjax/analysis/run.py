"""A trained run as the analysis tools see it: the network its workdir was
trained as, its variables at one checkpoint, and test images as that network
takes them.

`load(workdir)` reads `config.json` and the latest checkpoint (or `step`, or
the best by evaluation) while holding the workdir shared, as `cnnjax eval`
does, so it never reads a checkpoint a training is writing or deleting. It
writes nothing into the workdir. Everything runs on one device, in inference
mode (BatchNorm's running statistics, no dropout).
"""

import dataclasses
import pathlib

import jax
import ml_collections
import numpy as np
from flax import linen as nn

from cnnjax import config as config_lib
from cnnjax.errors import UserError
from cnnjax.training import parallel
from cnnjax.training import train as train_lib
from cnnjax.workdir import checkpoint as checkpoint_lib
from cnnjax.workdir.checkpoint import Checkpointer


@dataclasses.dataclass(frozen=True)
class Run:
  """A workdir's network and its variables at `step`."""

  workdir: pathlib.Path
  config: ml_collections.ConfigDict
  model: nn.Module
  variables: dict  # {"params": ..., "batch_stats": ...} on the host.
  step: int
  plan: train_lib.Plan

  @property
  def image_shape(self) -> tuple[int, int, int]:
    return self.plan.image_shape

  def apply(self, images: jax.Array, **kwargs):
    """The network's logits for `images` [N, H, W, C] in inference mode;
    `kwargs` go to `model.apply` (e.g. capture_intermediates=True)."""
    return self.model.apply(self.variables, images, train=False, **kwargs)


def load(workdir: pathlib.Path, step: int | None = None, best: bool = False) -> Run:
  """The run in `workdir` at `step` (default: the latest checkpoint; `best`:
  the best by eval top-1 error); a UserError if the workdir or checkpoint is
  missing."""
  if not workdir.is_dir():
    raise UserError(f"--workdir {workdir} is not a directory; pass the workdir of a "
                    "`cnnjax train` run")
  config = config_lib.from_workdir(workdir)
  with parallel.own_workdir(workdir, "analysis", shared=True):
    # The checkpoint is chosen from its index before any data is prepared.
    chosen = checkpoint_lib.choose_step(workdir, config.keep_checkpoints, step, best)
    plan = train_lib.plan(config, devices=jax.local_devices()[:1])
    checkpointer = Checkpointer(workdir / "checkpoints", config.keep_checkpoints, read_only=True)
    try:
      state = train_lib.restore(checkpointer, chosen, train_lib.fresh_state(plan))
    finally:
      checkpointer.close()
  variables = {"params": state.params}
  if state.batch_stats:
    variables["batch_stats"] = state.batch_stats
  return Run(workdir, config, plan.model, jax.device_get(variables), chosen, plan)


@dataclasses.dataclass(frozen=True)
class Examples:
  """Test images as the network takes them (normalised), and as people see them."""

  images: np.ndarray  # [N, H, W, C] float32, normalised as in training.
  labels: np.ndarray  # [N] int32.

  @property
  def display(self) -> np.ndarray:
    """The images scaled to [0, 1] each on its own (the normalisation undone
    up to an affine map per image, which is all a picture needs)."""
    low = self.images.min(axis=(1, 2, 3), keepdims=True)
    high = self.images.max(axis=(1, 2, 3), keepdims=True)
    return (self.images - low) / np.maximum(high - low, 1e-12)


def examples(run: Run, count: int, first: int = 0) -> Examples:
  """`count` images of the run's eval split from position `first`, through
  its eval preprocessing (a multi-view recipe gives its first view)."""
  if count < 1 or first < 0:
    raise UserError(f"the number of images must be at least 1 and the first at least 0, got "
                    f"{count} from {first}")
  batch = run.plan.pipeline.eval_examples(count, first)
  found = 0 if batch is None else len(batch["label"])
  if found < count:
    raise UserError(f"the eval split {run.config.dataset.eval_split!r} has {first + found} "
                    f"images; ask for at most {found} from {first}" if found else
                    f"the eval split {run.config.dataset.eval_split!r} has no image at "
                    f"position {first}")
  images = batch["image"]
  if images.ndim == 5:  # [N, views, H, W, C]: the first view (the centre crop).
    images = images[:, 0]
  return Examples(images.astype(np.float32), batch["label"].astype(np.int32))
