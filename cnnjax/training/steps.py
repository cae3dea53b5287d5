"""The train state and the per-device train and eval steps.

Both steps are pure functions written for one device; cross-device reductions
are named-axis collectives over `AXIS`, so `cnnjax.training.parallel` can map them over
devices (today with pmap) without the steps knowing how.
"""

import functools
from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax
from flax import linen as nn
from jax import lax

from cnnjax import models
from cnnjax.training import finetune, optim

AXIS = "batch"  # The device axis the steps reduce over.


@flax.struct.dataclass
class TrainState:
  """`ema`: None, or the moving averages {"params", "batch_stats"} (see `train_step`)."""

  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any
  ema: Any = None


def create_train_state(rng: jax.Array, model: nn.Module, tx: optax.GradientTransformation,
                       image_shape: tuple[int, ...], ema: bool = False) -> TrainState:
  """A fresh state for images of `image_shape` (H, W, C), on the default device;
  with `ema`, moving averages that start at the initial variables."""

  @jax.jit
  def init(rng):
    variables = model.init({"params": rng}, jnp.zeros((1, *image_shape)), train=False)
    params, batch_stats = variables["params"], variables.get("batch_stats", {})
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats,
                      opt_state=tx.init(params),
                      ema={"params": params, "batch_stats": batch_stats} if ema else None)

  return init(rng)


def averaged(state: TrainState) -> TrainState:
  """`state` with its moving averages in place of its parameters and BatchNorm statistics."""
  return state.replace(params=state.ema["params"], batch_stats=state.ema["batch_stats"])


def cross_entropy(logits: jax.Array, labels: jax.Array, num_classes: int,
                  label_smoothing: float = 0.0) -> jax.Array:
  """Per-example softmax cross-entropy, optionally against smoothed labels."""
  targets = jax.nn.one_hot(labels, num_classes)
  if label_smoothing:
    targets = optax.smooth_labels(targets, label_smoothing)
  return optax.softmax_cross_entropy(logits.astype(jnp.float32), targets)


def top_k_errors(logits: jax.Array, labels: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Per-example top-1 and top-5 errors (1.0 = wrong); top-5 is top-k for k < 5 classes."""
  k = min(5, logits.shape[-1])
  _, top = lax.top_k(logits.astype(jnp.float32), k)
  hits = top == labels[:, None]
  return 1.0 - hits[:, 0].astype(jnp.float32), 1.0 - hits.any(-1).astype(jnp.float32)


def train_step(state: TrainState, batch: dict[str, jax.Array], rng: jax.Array, *,
               model: nn.Module, tx: optax.GradientTransformationExtraArgs,
               schedule: optax.Schedule, label_smoothing: float = 0.0,
               aux_loss_weight: float = 0.0, skip_nonfinite: bool = False,
               ema_decay: float = 0.0,
               frozen_statistics=None) -> tuple[TrainState, dict[str, jax.Array]]:
  """One SGD step on this device's share of the global batch.

  Gradients, BatchNorm statistics and metrics are averaged over all devices,
  so the result depends on the global batch only, not on how it is split.
  Auxiliary classifiers (GoogLeNet §5) sow `aux_logits`; their losses are
  added with `aux_loss_weight`.

  The metric `nonfinite` has bit i set when `guards.NONFINITE_QUANTITIES[i]`
  (loss, gradients, updated parameters) holds a NaN or Inf; it is computed
  after the cross-device means, so every device agrees. With
  `skip_nonfinite`, such a step keeps the old parameters, BatchNorm
  statistics, optimizer state and moving averages; the step count still
  advances, since the batch was consumed (the input pipeline's position is
  the step).

  With `ema_decay` d (and `state.ema`), the moving averages follow the new
  variables: ema ← d·ema + (1 - d)·new, for the parameters (GoogLeNet §6's
  Polyak averaging, as an exponential average: Polyak & Juditsky 1992 average
  uniformly) and the BatchNorm statistics. The statistics are averaged too
  because the averaged network should be normalised with statistics of
  roughly the same stretch of training as its weights, as TF-slim's
  Inception training (`moving_average_decay` over the trainable and the
  moving-average variables) and timm's ModelEmaV2 (every state_dict entry) do.
  """
  rng = jax.random.fold_in(rng, state.step)
  if getattr(model, "axis_name", None) is None:
    # Dropout draws per-device masks then (see layers.Dropout): each device
    # needs a key of its own. With the axis, all share one key and the masks
    # of the global batch, whatever the device count.
    rng = jax.random.fold_in(rng, lax.axis_index(AXIS))
  num_classes = model.num_classes

  def loss_fn(params):
    variables = {"params": params, "batch_stats": state.batch_stats}
    logits, updates = model.apply(variables, batch["image"], train=True, rngs={"dropout": rng},
                                  mutable=["batch_stats", "intermediates"])
    loss = cross_entropy(logits, batch["label"], num_classes, label_smoothing).mean()
    aux_logits = updates.get("intermediates", {})
    for aux in jax.tree.leaves(aux_logits):
      loss += aux_loss_weight * cross_entropy(aux, batch["label"], num_classes,
                                              label_smoothing).mean()
    return loss, (logits, updates.get("batch_stats", {}))

  (loss, (logits, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  grads = _device_mean(grads)
  # Identical already when BatchNorm syncs over AXIS; otherwise the running
  # statistics of the per-device batches are averaged.
  batch_stats = _device_mean(batch_stats)
  loss = _device_mean(loss)
  updates, opt_state = tx.update(grads, state.opt_state, state.params, value=loss)
  params = optax.apply_updates(state.params, updates)

  top1, top5 = top_k_errors(logits, batch["label"])
  grad_norm, param_norm = global_norm(grads), global_norm(params)
  metrics = {
      "loss": loss,
      "top1_error": top1.mean(),
      "top5_error": top5.mean(),
      "learning_rate": schedule(state.step) * optim.plateau_scale(opt_state),
      "grad_norm": grad_norm,
      "param_norm": param_norm,
  }
  metrics = _device_mean(metrics)
  nonfinite = [~jnp.isfinite(loss), ~_all_finite(grads, grad_norm),
               ~_all_finite(params, param_norm)]
  metrics["nonfinite"] = sum(flag.astype(jnp.int32) << bit for bit, flag in enumerate(nonfinite))
  if frozen_statistics is not None:  # Fine-tuning: a frozen BatchNorm keeps its statistics.
    batch_stats = jax.tree_util.tree_map_with_path(
        lambda path, old, new: old if frozen_statistics(finetune.path_name(path)) else new,
        state.batch_stats, batch_stats)
  ema = state.ema
  if ema is not None:
    ema = jax.tree.map(lambda average, new: ema_decay * average + (1 - ema_decay) * new,
                       ema, {"params": params, "batch_stats": batch_stats})
  if skip_nonfinite:
    keep_old = metrics["nonfinite"] != 0
    params, batch_stats, opt_state, ema = jax.tree.map(
        lambda old, new: jnp.where(keep_old, old, new),
        (state.params, state.batch_stats, state.opt_state, state.ema),
        (params, batch_stats, opt_state, ema))
  new_state = state.replace(step=state.step + 1, params=params, batch_stats=batch_stats,
                            opt_state=opt_state, ema=ema)
  return new_state, metrics


def _device_mean(tree):
  """`tree` averaged over the devices of AXIS. With one device the tree
  itself, bit for bit as the mean: XLA would still copy it through an
  all-reduce (the gradients' all-reduce: 2.7 ms of ResNet-18's 195 ms step
  in XLA's profile, CPU, 32x32, batch 128)."""
  return tree if lax.psum(1, AXIS) == 1 else lax.pmean(tree, AXIS)


def global_norm(tree) -> jax.Array:
  """The L2 norm of all of `tree`'s elements: optax.tree.norm's, to rounding
  (another order of summation), as one dot product of each leaf with itself.

  optax's norm squares and sums each leaf in a reduction of its own: one
  kernel per leaf that XLA's CPU backend compiles through LLVM, 2 x 364
  of them for DenseNet-121's gradients and parameters, about a third of its
  step's compile time with the check below. A dot product is a library call
  (Eigen's on the CPU) that needs no code generated, and reads each leaf
  once as the reduction did. HIGHEST precision: a TPU or an Ampere GPU would
  otherwise multiply float32 in fewer bits.
  """
  squares = [jnp.vdot(leaf, leaf, precision=lax.Precision.HIGHEST)
             for leaf in jax.tree.leaves(tree)]
  return jnp.sqrt(jnp.sum(jnp.stack(squares))) if squares else jnp.zeros((), jnp.float32)


def _all_finite(tree, norm: jax.Array) -> jax.Array:
  """Whether every element of every leaf of `tree` is finite, given the
  tree's global norm. A finite norm says so at once: a NaN or Inf anywhere
  makes the norm one. Only a non-finite norm, which the squares can also
  reach by overflowing, has every leaf checked. Checking every leaf every
  step was 13 ms of ResNet-18's 195 ms step in XLA's profile (CPU, 32x32,
  batch 128), about 2% timed without the profiler. The check runs on the
  leaves joined into one vector: a copy, but only on the rare step whose
  norm is not finite, and one kernel to compile where a check per leaf was
  one each (the branch is compiled whether or not it runs).
  """
  def every_leaf():
    return jnp.isfinite(jnp.concatenate([jnp.ravel(leaf) for leaf in jax.tree.leaves(tree)])).all()
  return lax.cond(jnp.isfinite(norm), lambda: jnp.array(True), every_leaf)


def view_groups(batch: dict[str, jax.Array]) -> list[jax.Array]:
  """The batch's images: `image`, then `image_1`, `image_2`, ... (other view shapes)."""
  groups, index = [batch["image"]], 1
  while f"image_{index}" in batch:
    groups.append(batch[f"image_{index}"])
    index += 1
  return groups


def dense_options(model: nn.Module, image_size: tuple[int, int],
                  train_size: int | None) -> dict[str, bool]:
  """`{"dense": True}` for a model with the switch (models.evaluates_densely)
  given images of `image_size` (height, width) larger than the training
  input's side `train_size`; else nothing."""
  if train_size is None or not models.evaluates_densely(model):
    return {}
  return {"dense": True} if max(image_size) > train_size else {}


def eval_logits(variables, batch: dict[str, jax.Array], *, model: nn.Module,
                train_size: int | None = None) -> jax.Array:
  """[batch, classes] logits of the batch's images as `eval_step` scores them:
  of every view group, the softmax averaged over the views (as logits)."""
  view_logits = []  # [batch, views, classes] of each group.
  for images in view_groups(batch):
    if images.ndim == 4:
      images = images[:, None]
    logits = model.apply(variables, images.reshape((-1, *images.shape[2:])), train=False,
                         **dense_options(model, images.shape[-3:-1], train_size))
    view_logits.append(logits.reshape((*images.shape[:2], -1)))
  logits = jnp.concatenate(view_logits, axis=1)
  return logits[:, 0] if logits.shape[1] == 1 else _log_mean_softmax(logits)


def eval_step(state: TrainState, batch: dict[str, jax.Array], *, model: nn.Module,
              train_size: int | None = None) -> dict[str, jax.Array]:
  """Sums of loss and errors over the real (`mask`ed) examples of all devices.

  Images with a view axis ([batch, views, height, width, channels], from a
  multi-view recipe such as "ten_crop") are scored by their softmax averaged
  over the views, as AlexNet §4.1 ("averaging the predictions made by the
  network's softmax layer on the ten patches") and cuda-convnet's
  --multiview-test (src/worker.cu, MultiviewTestWorker) do: the loss is -log
  of the averaged probability of the label, the errors rank the averaged
  probabilities. Views of other shapes come as further groups `image_1`,
  `image_2`, ... (a multi-scale recipe: one group per scale); the softmax is
  averaged over every view of every group alike.

  A group larger than `train_size` (the training input's side) is evaluated
  fully convolutionally by the models that need a switch for it
  (`models.evaluates_densely`: VGG §3.2); the others are by construction.
  """
  variables = {"params": state.params, "batch_stats": state.batch_stats}
  logits = eval_logits(variables, batch, model=model, train_size=train_size)
  mask = batch["mask"]
  top1, top5 = top_k_errors(logits, batch["label"])
  sums = {
      "loss": (cross_entropy(logits, batch["label"], model.num_classes) * mask).sum(),
      "top1_error": (top1 * mask).sum(),
      "top5_error": (top5 * mask).sum(),
      "count": mask.sum(),
  }
  return lax.psum(sums, AXIS)


def _log_mean_softmax(logits: jax.Array) -> jax.Array:
  """log(mean over axis 1 of softmax(logits)), [batch, views, classes] → [batch, classes].

  In log space (logsumexp of the views' log-softmax, less log views), so a
  probability that underflows in one view cannot make the log -inf. As logits
  these give back the averaged probabilities: softmax(log p) = p.
  """
  log_probabilities = jax.nn.log_softmax(logits.astype(jnp.float32))
  return jax.nn.logsumexp(log_probabilities, axis=1) - jnp.log(logits.shape[1])


def bind_train_step(config, model, tx, schedule):
  """The train step with its dependencies bound, as `parallel` maps it."""
  return functools.partial(train_step, model=model, tx=tx, schedule=schedule,
                           label_smoothing=config.label_smoothing,
                           aux_loss_weight=config.aux_loss_weight,
                           skip_nonfinite=config.nonfinite.policy == "skip",
                           ema_decay=config.ema_decay,
                           frozen_statistics=(finetune.frozen_statistics(config)
                                              if config.frozen else None))
