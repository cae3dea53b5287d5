"""Optimizers and learning-rate schedules, built with optax from the config.

The update is a chain of small transformations:

  clip → [L2: g + λw] → direction (momentum, Adam, RMS) → [decoupled: u + λw]
       → × -learning_rate(step) → [× plateau factor]

Weight decay touches kernels only, never biases or BatchNorm scales. Coupled
L2 (added to the gradient before momentum) is what the papers used (AlexNet
§5: "weight decay of 0.0005"); decoupled decay (Loshchilov & Hutter 2019)
is `adamw`, or `decoupled_weight_decay=True` with any optimizer.
Schedules are functions of the step; their boundaries are given in epochs and
converted here with `steps_per_epoch`.
"""

import jax
import jax.numpy as jnp
import ml_collections
import optax

from cnnjax.errors import UserError


def kernel_mask(params):
  """True for convolution and dense kernels: the weights that are decayed."""
  return jax.tree_util.tree_map_with_path(
      lambda path, _: getattr(path[-1], "key", None) == "kernel", params)


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


# Schedules laid over the run's total steps: a longer run stretches them.
SCHEDULES_OVER_TOTAL_STEPS = frozenset({"cosine"})


def create_schedule(config: ml_collections.ConfigDict, learning_rate: float,
                    steps_per_epoch: int, total_steps: int) -> optax.Schedule:
  """The learning rate at each step: linear warmup, then the named schedule.

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
  return optax.join_schedules(
      [optax.linear_schedule(0.0, learning_rate, warmup), schedule], [warmup])


def plateau_scaling(config: ml_collections.ConfigDict, steps_per_epoch: int):
  """Divides the rate by 1/decay_factor when the training loss, averaged over
  each epoch, has not improved for `plateau_patience_epochs` (AlexNet §5 and
  VGG §3.1 watch the validation error, which the step cannot see; the training
  loss is the signal available at every step)."""
  return optax.contrib.reduce_on_plateau(
      factor=config.decay_factor,
      patience=max(round(config.plateau_patience_epochs), 1),
      accumulation_size=steps_per_epoch)


def create_optimizer(config: ml_collections.ConfigDict, schedule: optax.Schedule,
                     steps_per_epoch: int) -> optax.GradientTransformationExtraArgs:
  """The whole update from `config.optimizer` and `config.schedule`.

  Call its `update(grads, opt_state, params, value=loss)`; `value` feeds the
  plateau schedule and is ignored otherwise.
  """
  optimizer = config.optimizer
  decay = optimizer.weight_decay
  decoupled = optimizer.decoupled_weight_decay or optimizer.name == "adamw"
  parts = []
  if optimizer.grad_clip_norm:
    parts.append(optax.clip_by_global_norm(optimizer.grad_clip_norm))
  if decay and not decoupled:
    parts.append(optax.add_decayed_weights(decay, mask=kernel_mask))
  parts.append(_direction(optimizer))
  if decay and decoupled:
    parts.append(optax.add_decayed_weights(decay, mask=kernel_mask))
  parts.append(optax.scale_by_learning_rate(schedule))
  if config.schedule.name == "plateau":
    parts.append(plateau_scaling(config.schedule, steps_per_epoch))
  return optax.chain(*parts)


def plateau_scale(opt_state) -> jax.Array:
  """The current plateau factor (1 when no plateau schedule is in the chain)."""
  scales = [state.scale for state in jax.tree.leaves(
      opt_state, is_leaf=lambda x: isinstance(x, optax.contrib.ReduceLROnPlateauState))
            if isinstance(state, optax.contrib.ReduceLROnPlateauState)]
  return scales[0] if scales else jnp.ones(())
