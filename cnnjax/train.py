"""Training and evaluation: the loop that ties model, data, step, checkpoints
and metrics together. Resumes from the workdir's latest checkpoint.

Everything a user can get wrong is checked by `plan` before any compilation.
"""

import collections
import dataclasses
import functools
import math
import pathlib
import sys
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import linen as nn

from cnnjax import metrics as metrics_lib
from cnnjax import guards, optim, parallel, steps, stopping
from cnnjax import workdir as workdir_lib
from cnnjax.checkpoint import CheckpointFailed, Checkpointer
from cnnjax.data import InputPipeline, dataset_spec, open_builder
from cnnjax.errors import UserError
from cnnjax.models import create_model, model_options


@dataclasses.dataclass(frozen=True)
class Plan:
  """A run, fully derived from its config and the devices, before any compiling."""

  config: ml_collections.ConfigDict
  model: nn.Module
  pipeline: InputPipeline
  train_batch: parallel.BatchSplit
  eval_batch: parallel.BatchSplit
  steps_per_epoch: int
  total_steps: int
  eval_every: int
  checkpoint_every: int
  schedule: optax.Schedule
  optimizer: optax.GradientTransformationExtraArgs

  @property
  def image_shape(self) -> tuple[int, int, int]:
    size = self.pipeline.image_size
    return (size, size, self.pipeline.spec.channels)


def build_model(config: ml_collections.ConfigDict) -> nn.Module:
  spec = dataset_spec(config.dataset.name)
  overrides = {key: value for key, value in config.model.items() if key != "name"}
  model = create_model(config.model.name, num_classes=spec.num_classes,
                       dtype=jnp.bfloat16 if config.half_precision else jnp.float32, **overrides)
  if config.sync_batch_norm and "axis_name" in model_options(config.model.name):
    model = model.clone(axis_name=steps.AXIS)
  return model


def plan(config: ml_collections.ConfigDict) -> Plan:
  """Checks the config against the model, data and devices; compiles nothing."""
  model = build_model(config)
  train_batch = parallel.split_batch(config.batch_size)
  eval_batch = parallel.split_batch(config.eval_batch_size or config.batch_size,
                                    "eval_batch_size" if config.eval_batch_size else "batch_size")
  pipeline = InputPipeline(
      open_builder(config.dataset), config.dataset, seed=config.seed,
      process_index=jax.process_index(), process_count=jax.process_count(),
      local_devices=jax.local_device_count())
  size = pipeline.image_size
  # Traces the model abstractly: too small an input or a bad switch fails here.
  variables = jax.eval_shape(functools.partial(model.init, train=False), jax.random.key(0),
                             jnp.zeros((1, size, size, pipeline.spec.channels)))
  pipeline.eval_steps(eval_batch.process_batch)  # A missing eval split fails here.
  steps_per_epoch = pipeline.steps_per_epoch(train_batch.process_batch)
  total_steps = (config.num_train_steps if config.num_train_steps > 0
                 else math.ceil(config.num_epochs * steps_per_epoch))
  per_epoch = lambda every: steps_per_epoch if every == -1 else every
  schedule = optim.create_schedule(config.schedule, config.optimizer.learning_rate,
                                   steps_per_epoch, total_steps)
  optimizer = optim.create_optimizer(config, schedule, steps_per_epoch)
  # The optimizer meets the parameters: a weight-decay pattern matching no layer fails here.
  jax.eval_shape(optimizer.init, variables["params"])
  return Plan(config, model, pipeline, train_batch, eval_batch, steps_per_epoch, total_steps,
              per_epoch(config.eval_every_steps), per_epoch(config.checkpoint_every_steps),
              schedule, optimizer)


def initial_state(plan: Plan, checkpointer: Checkpointer) -> steps.TrainState:
  """The latest checkpoint's state if there is one, else a fresh one (on the host)."""
  state = steps.create_train_state(jax.random.key(plan.config.seed), plan.model, plan.optimizer,
                                   plan.image_shape)
  state = jax.device_get(state)
  latest = checkpointer.latest_step()
  return state if latest is None else checkpointer.restore(latest, state)


def evaluate(plan: Plan, eval_fn, state) -> dict[str, float]:
  """Loss and top-1/top-5 error over the whole eval split."""
  totals = None
  batches = parallel.to_devices(plan.pipeline.eval_batches(plan.eval_batch.process_batch))
  for batch in batches:
    sums = eval_fn(state, batch)
    totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
  totals = parallel.unreplicate(totals)
  count = totals.pop("count")
  return {f"eval/{key}": float(value / count) for key, value in totals.items()}


def train_and_evaluate(plan: Plan, workdir: pathlib.Path, *,
                       allow_config_change: bool = False) -> dict[str, float]:
  """Trains to `plan.total_steps`, resuming from the workdir; returns the last eval.

  A workdir whose config.json is another experiment is refused (see
  cnnjax.workdir) unless `allow_config_change`. Raises `stopping.Preempted`
  after saving the current step on SIGTERM, `stopping.Diverged` on a NaN or
  Inf (nothing of the bad state saved) and `CheckpointFailed` when a
  background save fails. Pending saves are waited for on every way out.
  """
  config = plan.config
  changes = workdir_lib.check_config(config, workdir, allow_change=allow_config_change)
  workdir.mkdir(parents=True, exist_ok=True)
  checkpointer = Checkpointer(workdir / "checkpoints", config.keep_checkpoints)
  preemption = guards.PreemptionWatch(checkpointer)  # From here on SIGTERM saves a step.
  try:
    final_eval = _train(plan, workdir, checkpointer, preemption, changes)
  except BaseException:
    try:  # Saves already started still complete; their failure is secondary here.
      checkpointer.close()
    except CheckpointFailed as error:
      print(f"cnnjax: also: {error}", file=sys.stderr)
    raise
  else:
    checkpointer.close()
  finally:
    preemption.close()
  return final_eval


def _train(plan: Plan, workdir: pathlib.Path, checkpointer: Checkpointer,
           preemption: guards.PreemptionWatch, changes: dict | None) -> dict[str, float]:
  config = plan.config
  is_writer = jax.process_index() == 0
  state = initial_state(plan, checkpointer)
  start_step = int(state.step)
  if is_writer:
    workdir_lib.write_config(config, workdir, start_step, changes)
  if start_step >= plan.total_steps:
    print(f"training is complete: step {start_step} of {plan.total_steps} in {workdir}")
    return {}
  if preemption.reached(start_step):  # SIGTERM while starting: nothing new to save.
    raise stopping.Preempted(f"preempted while starting, at step {start_step} of "
                             f"{plan.total_steps}; run the same command to resume")
  writer = metrics_lib.MetricWriter(workdir, enabled=is_writer)
  if start_step:
    print(f"resuming from the checkpoint at step {start_step} of {plan.total_steps}", flush=True)
  writer.forget_after(start_step)
  example_ids = (metrics_lib.ExampleIdLog(workdir, jax.process_index(), start_step)
                 if config.log_example_ids else None)
  # Per-step train metrics of the log interval the checkpoint cut, so the
  # first record after a resume averages the same steps as an uninterrupted run's.
  pending = _pending_from_json(checkpointer.extra(start_step)) if start_step else []

  train_fn = parallel.map_train_step(steps.bind_train_step(config, plan.model, plan.optimizer, plan.schedule))
  eval_fn = parallel.map_eval_step(functools.partial(steps.eval_step, model=plan.model))
  state = parallel.replicate(state)
  rng = parallel.replicate(jax.random.PRNGKey(config.seed))
  batch_ids = collections.deque()  # Ids of the batches prefetched, in order.
  batches = parallel.to_devices(_without_ids(
      plan.pipeline.train_batches(plan.train_batch.process_batch, start_step), batch_ids))
  progress = metrics_lib.Progress(plan.total_steps, start_step, enabled=is_writer)
  guard = guards.NonfiniteGuard(config.nonfinite.policy, config.nonfinite.max_consecutive_skips)
  eval_metrics = {}
  timer = time.perf_counter()
  timed_steps = skipped = 0
  try:
    for step in range(start_step + 1, plan.total_steps + 1):
      state, step_metrics = train_fn(state, next(batches), rng)
      guard.add(step, step_metrics.pop("nonfinite"))
      pending.append(step_metrics)
      ids = batch_ids.popleft()
      if example_ids:
        example_ids.write(step, ids)
      if step == start_step + 1:  # Compilation is not throughput: start the clock after it.
        jax.block_until_ready(state)
        timer, timed_steps = time.perf_counter(), 0
      else:
        timed_steps += 1
      last = step == plan.total_steps
      log = step % config.log_every_steps == 0 or last
      fresh_eval = step % plan.eval_every == 0 or last
      save = step % plan.checkpoint_every == 0 or last
      preempted = preemption.reached(step)
      if not (log or fresh_eval or save or preempted):
        continue
      skipped += guard.check()  # Before anything of this state is logged or saved.
      if log:
        train_metrics = _average(pending)
        if config.nonfinite.policy == "skip":
          train_metrics["train/skipped_updates"] = float(skipped)
        elapsed = time.perf_counter() - timer
        train_metrics["train/images_per_sec"] = (
            timed_steps * plan.train_batch.global_batch / elapsed if timed_steps else 0.0)
        writer.write(step, train_metrics)
        progress.update(step, train_metrics)
        pending, timer, timed_steps, skipped = [], time.perf_counter(), 0, 0
      if fresh_eval:
        eval_metrics = evaluate(plan, eval_fn, state)
        writer.write(step, eval_metrics)
        progress.write(f"step {step}: " + ", ".join(
            f"{key}={value:.4f}" for key, value in eval_metrics.items()))
      if save or preempted:
        checkpointer.save(step, parallel.unreplicate(state), eval_metrics if fresh_eval else None,
                          extra=_pending_to_json(pending))
      if preempted and not last:
        checkpointer.wait()
        raise stopping.Preempted(
            f"preempted: saved the checkpoint of step {step} of {plan.total_steps} in "
            f"{workdir / 'checkpoints'}; run the same command to resume")
    checkpointer.wait()
  finally:
    progress.close()
    writer.close()
  return eval_metrics


def _without_ids(batches, ids: collections.deque):
  """The batches without their `id`s, which go to `ids` (strings stay on the host)."""
  for batch in batches:
    ids.append(batch.pop("id"))
    yield batch


def _pending_to_json(pending: list[dict]) -> dict:
  fetched = jax.device_get([jax.tree.map(lambda x: x[0], m) for m in pending])
  return {"pending_train_metrics": [{key: float(value) for key, value in m.items()}
                                    for m in fetched]}


def _pending_from_json(extra: dict) -> list[dict]:
  """Per-step metrics as the train step returns them: float32, one copy per local device."""
  return [{key: np.full((jax.local_device_count(),), value, np.float32)
           for key, value in m.items()} for m in extra.get("pending_train_metrics", [])]


def _average(step_metrics: list[dict]) -> dict[str, float]:
  """The mean over steps of each metric (first device's copy; all are equal)."""
  fetched = jax.device_get([jax.tree.map(lambda x: x[0], m) for m in step_metrics])
  return {f"train/{key}": float(np.mean([m[key] for m in fetched])) for key in fetched[0]}


def evaluate_latest(plan: Plan, workdir: pathlib.Path, *,
                    allow_config_change: bool = False) -> tuple[int, dict[str, float]]:
  """Evaluates the workdir's latest checkpoint; returns its step and the metrics."""
  workdir_lib.check_config(plan.config, workdir, command="eval", allow_change=allow_config_change)
  checkpointer = Checkpointer(workdir / "checkpoints", plan.config.keep_checkpoints,
                              read_only=True)
  latest = checkpointer.latest_step()
  if latest is None:
    checkpointer.close()
    raise UserError(f"no checkpoint in {workdir / 'checkpoints'}; run `cnnjax train` with "
                    "this --workdir first")
  state = initial_state(plan, checkpointer)
  checkpointer.close()
  eval_fn = parallel.map_eval_step(functools.partial(steps.eval_step, model=plan.model))
  return latest, evaluate(plan, eval_fn, parallel.replicate(state))
