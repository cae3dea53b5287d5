"""Optimizers and learning-rate schedules, built with optax from the config.

The update is a chain of small transformations:

  clip → [L2: g + λw] → direction (momentum, Adam, RMS) → [decoupled: u + λw]
       → × -learning_rate(step) → [biases × bias_learning_rate_scale] → [× plateau factor]

Weight decay touches kernels only, never biases or BatchNorm scales. Coupled
L2 (added to the gradient before momentum) is what the papers used (AlexNet
§5: "weight decay of 0.0005"); decoupled decay (Loshchilov & Hutter 2019)
is `adamw`, or `decoupled_weight_decay=True` with any optimizer. λ is
`weight_decay`, or per layer from `weight_decay_by_layer`: ((pattern, λ), ...)
whose regular expressions are searched in each kernel's path ("conv1/kernel"),
the first match deciding (cuda-convnet's per-layer `wc`). Biases may learn
faster than weights by `bias_learning_rate_scale` (cuda-convnet's
epsB = 2 epsW, Caffe's lr_mult 2), BatchNorm's shifts (also named "bias") too.
Schedules are functions of the step; their boundaries are given in epochs and
converted here with `steps_per_epoch`.
"""

import re

import jax
import jax.numpy as jnp
import ml_collections
import optax

from cnnjax.errors import UserError
from cnnjax.training import finetune


def kernel_mask(params):
  """True for convolution and dense kernels: the weights that are decayed."""
  return jax.tree_util.tree_map_with_path(
      lambda path, _: getattr(path[-1], "key", None) == "kernel", params)


def bias_mask(params):
  """True for the parameters named `bias`: dense, convolution, BatchNorm shifts."""
  return jax.tree_util.tree_map_with_path(
      lambda path, _: getattr(path[-1], "key", None) == "bias", params)


def _path_name(path) -> str:
  return "/".join(str(getattr(key, "key", key)) for key in path)


def layer_weight_decays(optimizer: ml_collections.ConfigDict, params):
  """λ for every parameter: 0 but on kernels, where it is the decay of the
  first `weight_decay_by_layer` pattern found in the kernel's path, or else
  `weight_decay`. A pattern that matches no kernel is a UserError: a typo
  there would silently leave a layer with the default."""
  rules = [(re.compile(pattern), float(decay))
           for pattern, decay in optimizer.weight_decay_by_layer]
  kernels = [_path_name(path) for path, is_kernel
             in jax.tree_util.tree_leaves_with_path(kernel_mask(params)) if is_kernel]
  for pattern, _ in rules:
    if not any(pattern.search(kernel) for kernel in kernels):
      raise UserError(f"config.optimizer.weight_decay_by_layer: pattern {pattern.pattern!r} "
                      f"matches no kernel of this model; its kernels are {', '.join(kernels)}")

  def decay(path, _):
    if getattr(path[-1], "key", None) != "kernel":
      return 0.0
    name = _path_name(path)
    return next((decay for pattern, decay in rules if pattern.search(name)),
                float(optimizer.weight_decay))

  return jax.tree_util.tree_map_with_path(decay, params)


def add_layer_weight_decays(optimizer: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """u + λ w with each parameter's λ from `layer_weight_decays` (u where λ = 0)."""

  def init(params):
    layer_weight_decays(optimizer, params)  # A pattern matching nothing fails here, at once.
    return optax.EmptyState()

  def update(updates, state, params):
    decays = layer_weight_decays(optimizer, params)
    return jax.tree.map(lambda u, w, decay: u + decay * w if decay else u,
                        updates, params, decays), state

  return optax.GradientTransformation(init, update)


def _direction(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """The optimizer's update direction, before the learning rate."""
  momentum = config.momentum or None
  directions = {
      "sgd": lambda: (optax.trace(decay=config.momentum, nesterov=config.nesterov)
                      if momentum else optax.identity()),
      "adam": lambda: optax.scale_by_adam(b1=config.b1, b2=config.b2, eps=config.eps),
      "adamw": lambda: optax.scale_by_adam(b1=config.b1, b2=config.b2, eps=config.eps),
      "rmsprop": lambda: optax.chain(
          optax.scale_by_rms(decay=config.rms_decay, eps=config.eps),
          optax.trace(decay=config.momentum, nesterov=config.nesterov)
          if momentum else optax.identity()),
  }
  if config.name not in directions:
    raise UserError(f"unknown config.optimizer.name {config.name!r}; "
                    f"choose one of: {', '.join(sorted(directions))}")
  return directions[config.name]()


def scaled_learning_rate(optimizer: ml_collections.ConfigDict, batch_size: int) -> float:
  """The rate the run uses: `learning_rate`, scaled linearly with the global
  batch when `base_batch_size` is set (Goyal et al. 2017, §2.1: "when the
  minibatch size is multiplied by k, multiply the learning rate by k")."""
  if not optimizer.base_batch_size:
    return float(optimizer.learning_rate)
  return float(optimizer.learning_rate) * batch_size / optimizer.base_batch_size


# Schedules laid over the run's total steps: a longer run stretches them.
SCHEDULES_OVER_TOTAL_STEPS = frozenset({"cosine"})


def create_schedule(config: ml_collections.ConfigDict, learning_rate: float,
                    steps_per_epoch: int, total_steps: int) -> optax.Schedule:
  """The learning rate at each step: the warmup (linear from 0, or constant at
  `warmup_factor` of the rate), then the named schedule.

  "plateau" is constant here; its reductions are applied by `plateau_scaling`.
  """
  warmup = round(config.warmup_epochs * steps_per_epoch)
  decay_steps = max(total_steps - warmup, 1)
  schedules = {
      "constant": lambda: optax.constant_schedule(learning_rate),
      "plateau": lambda: optax.constant_schedule(learning_rate),
      "multistep": lambda: optax.piecewise_constant_schedule(
          learning_rate,
          {round(epoch * steps_per_epoch) - warmup: config.decay_factor
           for epoch in config.boundaries_epochs}),
      "exponential": lambda: optax.exponential_decay(
          learning_rate, transition_steps=max(round(config.decay_every_epochs * steps_per_epoch), 1),
          decay_rate=config.decay_factor, staircase=True),
      "cosine": lambda: optax.cosine_decay_schedule(learning_rate, decay_steps),
  }
  if config.name not in schedules:
    raise UserError(f"unknown config.schedule.name {config.name!r}; "
                    f"choose one of: {', '.join(sorted(schedules))}")
  if config.name == "multistep" and any(b <= 0 for b in config.boundaries_epochs):
    raise UserError(f"config.schedule.boundaries_epochs={tuple(config.boundaries_epochs)} "
                    "must be positive epochs")
  schedule = schedules[config.name]()
  if not warmup:
    return schedule
  if config.warmup_kind == "constant":
    warming = optax.constant_schedule(learning_rate * config.warmup_factor)
  else:
    warming = optax.linear_schedule(0.0, learning_rate, warmup)
  return optax.join_schedules([warming, schedule], [warmup])


def plateau_follows_evaluations(schedule: ml_collections.ConfigDict) -> bool:
  """Whether the plateau schedule watches an evaluation metric, not the training loss."""
  return schedule.name == "plateau" and schedule.plateau_metric != "train/loss"


def _reduce_on_plateau(schedule: ml_collections.ConfigDict, steps_per_epoch: int,
                       eval_every: int) -> optax.GradientTransformationExtraArgs:
  """optax's reduce_on_plateau, its patience in epochs counted in what it sees:
  steps (averaged over each epoch) for the training loss, evaluations
  (one every `eval_every` steps) for an evaluation metric."""
  if plateau_follows_evaluations(schedule):
    patience = schedule.plateau_patience_epochs * steps_per_epoch / eval_every
    return optax.contrib.reduce_on_plateau(factor=schedule.decay_factor,
                                           patience=max(round(patience), 1), accumulation_size=1)
  return optax.contrib.reduce_on_plateau(
      factor=schedule.decay_factor, patience=max(round(schedule.plateau_patience_epochs), 1),
      accumulation_size=steps_per_epoch)


def plateau_scaling(schedule: ml_collections.ConfigDict, steps_per_epoch: int,
                    eval_every: int = 1) -> optax.GradientTransformationExtraArgs:
  """Divides the rate by 1/decay_factor when `plateau_metric` has not improved
  (by optax's relative 1e-4) for `plateau_patience_epochs`.

  "train/loss": the training loss averaged over each epoch, which the train
  step feeds it (`value=loss`) at every step. An evaluation metric (AlexNet
  §5: "divide the learning rate by 10 when the validation error rate stopped
  improving"; VGG §3.1): the step cannot see it, so here the factor is only
  applied, and the trainer feeds each evaluation's value to
  `observe_evaluation`; the patience, still given in epochs, becomes
  evaluations (at least one). Either way the state lives in the optimizer
  state, so a checkpoint carries it and a resumed run continues the same
  schedule.
  """
  reduce = _reduce_on_plateau(schedule, steps_per_epoch, eval_every)
  if not plateau_follows_evaluations(schedule):
    return reduce

  def update(updates, state, params=None, **extra_args):
    del params, extra_args
    return jax.tree.map(lambda update: state.scale * update, updates), state

  return optax.GradientTransformationExtraArgs(reduce.init, update)


def observe_evaluation(schedule: ml_collections.ConfigDict, steps_per_epoch: int,
                       eval_every: int, state: optax.contrib.ReduceLROnPlateauState,
                       value: float) -> optax.contrib.ReduceLROnPlateauState:
  """The plateau state of an evaluation-following schedule once it has seen
  `value`, the evaluation's `plateau_metric` (host arrays in, host arrays out)."""
  reduce = _reduce_on_plateau(schedule, steps_per_epoch, eval_every)
  _, state = reduce.update((), state, value=value)
  return jax.device_get(state)


def _is_plateau(node) -> bool:
  return isinstance(node, optax.contrib.ReduceLROnPlateauState)


def plateau_state(opt_state) -> optax.contrib.ReduceLROnPlateauState:
  """The plateau schedule's state inside the optimizer's (there must be one)."""
  return next(node for node in jax.tree.leaves(opt_state, is_leaf=_is_plateau)
              if _is_plateau(node))


def with_plateau_state(opt_state, state: optax.contrib.ReduceLROnPlateauState):
  """`opt_state` with its plateau schedule's state replaced by `state`."""
  return jax.tree.map(lambda node: state if _is_plateau(node) else node, opt_state,
                      is_leaf=_is_plateau)


def create_optimizer(config: ml_collections.ConfigDict, schedule: optax.Schedule,
                     steps_per_epoch: int,
                     eval_every: int = 1) -> optax.GradientTransformationExtraArgs:
  """The whole update from `config.optimizer` and `config.schedule`.

  Call its `update(grads, opt_state, params, value=loss)`; `value` feeds the
  plateau schedule that follows the training loss and is ignored otherwise.
  `eval_every` (steps) counts a schedule following the evaluations in them.
  """
  optimizer = config.optimizer
  decay = optimizer.weight_decay or optimizer.weight_decay_by_layer
  decoupled = optimizer.decoupled_weight_decay or optimizer.name == "adamw"
  parts = []
  if optimizer.grad_clip_norm:
    parts.append(optax.clip_by_global_norm(optimizer.grad_clip_norm))
  if decay and not decoupled:
    parts.append(add_layer_weight_decays(optimizer))
  parts.append(_direction(optimizer))
  if decay and decoupled:
    parts.append(add_layer_weight_decays(optimizer))
  parts.append(optax.scale_by_learning_rate(schedule))
  if optimizer.bias_learning_rate_scale != 1:
    parts.append(optax.masked(optax.scale(optimizer.bias_learning_rate_scale), bias_mask))
  if config.schedule.name == "plateau":
    parts.append(plateau_scaling(config.schedule, steps_per_epoch, eval_every))
  # Fine-tuning (cnnjax.training.finetune): the loaded part's own rate, and no update
  # at all (weight decay included) for frozen parameters.
  if config.init_from and config.pretrained_learning_rate_scale != 1:
    parts.append(optax.masked(optax.scale(config.pretrained_learning_rate_scale),
                              finetune.pretrained_mask(config)))
  if config.frozen:
    parts.append(optax.masked(optax.set_to_zero(), finetune.frozen_mask(config)))
  return optax.chain(*parts)


def plateau_scale(opt_state) -> jax.Array:
  """The current plateau factor (1 when no plateau schedule is in the chain)."""
  scales = [state.scale for state in jax.tree.leaves(opt_state, is_leaf=_is_plateau)
            if _is_plateau(state)]
  return scales[0] if scales else jnp.ones(())
