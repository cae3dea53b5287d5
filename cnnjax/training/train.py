"""Training and evaluation: the loop that ties model, data, step, checkpoints
and metrics together. Resumes from the workdir's latest checkpoint, on any
number of devices (the data order does not depend on it; see
cnnjax.data.pipeline).

Everything a user can get wrong is checked by `plan` before any compilation.
A run owns its workdir while it trains (cnnjax.workdir.ownership), evaluation shares
it with other evaluations.
"""

import collections
import dataclasses
import functools
import math
import pathlib
import sys
import time
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import linen as nn

from cnnjax import config as config_lib
from cnnjax import models
from cnnjax.data import DatasetSpec, describe
from cnnjax.errors import UserError
from cnnjax.training import finetune, guards, optim, parallel, steps, stopping
from cnnjax.workdir import checkpoint as checkpoint_lib
from cnnjax.workdir import config_file as workdir_lib
from cnnjax.workdir import metrics as metrics_lib
from cnnjax.workdir import provenance, results
from cnnjax.workdir.checkpoint import Checkpointer, CheckpointFailed

if TYPE_CHECKING:
  from cnnjax.data import pipeline as pipeline_lib


@dataclasses.dataclass(frozen=True)
class Checked:
  """What `check` derives from a config without any data: the network, the
  batches split over the devices, and its variables' shapes."""

  spec: DatasetSpec
  model: nn.Module
  train_batch: parallel.BatchSplit
  eval_batch: parallel.BatchSplit
  input_size: int
  variables: dict  # params and batch_stats as jax.ShapeDtypeStructs.


@dataclasses.dataclass(frozen=True)
class Plan:
  """A run, fully derived from its config and the devices, before any compiling."""

  config: ml_collections.ConfigDict
  model: nn.Module
  pipeline: "pipeline_lib.InputPipeline"  # TensorFlow's, imported once `plan` needs data.
  train_batch: parallel.BatchSplit
  eval_batch: parallel.BatchSplit
  steps_per_epoch: int
  total_steps: int
  eval_every: int
  checkpoint_every: int
  schedule: optax.Schedule
  optimizer: optax.GradientTransformationExtraArgs
  devices: parallel.Devices = None  # None: every device of every process.

  @property
  def image_shape(self) -> tuple[int, int, int]:
    size = self.pipeline.image_size
    return (size, size, self.pipeline.spec.channels)


def check(config: ml_collections.ConfigDict, devices: parallel.Devices = None,
          workdir: pathlib.Path | None = None) -> Checked:
  """Every check of `config` that needs no data, so that its refusals come
  before any dataset is prepared: the model and its input size, the batch
  sizes against `devices` (default: all of every process).

  With `workdir`, a run about to train there: unless the workdir resumes
  from a checkpoint of its own, the fine-tuning source of config.init_from,
  from its checkpoints' index and the shapes of its weights (no array read).
  """
  spec = describe(config.dataset)
  model = models.from_config(config, steps.AXIS, num_classes=spec.num_classes)
  train_batch = parallel.split_batch(config.batch_size, devices=devices)
  eval_batch = parallel.split_batch(config.eval_batch_size or config.batch_size,
                                    "eval_batch_size" if config.eval_batch_size else "batch_size",
                                    devices=devices)
  size = config_lib.input_size(config, spec)
  # Traces the model abstractly (too small an input or a bad switch fails
  # here). The key is made inside the trace and the input is a shape: made
  # outside, each would be a computation compiled and run first.
  variables = jax.eval_shape(
      lambda images: model.init(jax.random.key(0), images, train=False),
      jax.ShapeDtypeStruct((1, size, size, spec.channels), jnp.float32))
  if workdir is not None and config.init_from and not _resumes(workdir):
    finetune.check_source(config, variables)
  return Checked(spec, model, train_batch, eval_batch, size, variables)


def _resumes(workdir: pathlib.Path) -> bool:
  """Whether a run in `workdir` starts from a checkpoint of its own (as
  `initial_state` will), rather than from config.init_from."""
  checkpointer = Checkpointer(workdir / "checkpoints", keep=1, read_only=True)
  try:
    return checkpointer.latest_step() is not None
  finally:
    checkpointer.close()


def plan(config: ml_collections.ConfigDict, devices: parallel.Devices = None,
         checked: Checked | None = None) -> Plan:
  """Prepares the data and checks the config against it; compiles nothing.

  `devices` (default: all of every process) are the devices to train on;
  `checked` is `check(config, devices)`'s result, made here if not given.
  The fine-tuning source is `check`'s with a workdir, not this: it is read
  only by a run that starts from it (cnnjax eval of a fine-tuned workdir
  never needs it).
  """
  checked = checked or check(config, devices)
  model, variables, size = checked.model, checked.variables, checked.input_size
  from cnnjax.data import pipeline as pipeline_lib  # TensorFlow: after every check without data.

  pipeline = pipeline_lib.InputPipeline(
      pipeline_lib.open_builder(config.dataset), config.dataset, seed=config.seed,
      process_index=jax.process_index(), process_count=jax.process_count(),
      local_devices=len(parallel.local_devices(devices)),
      extra_evals=tuple(tuple(pair) for pair in config.extra_evals), input_size=size)
  pipeline.check_sharding(config.batch_size)
  pipeline.eval_steps(checked.eval_batch.process_batch)  # A missing eval split fails here.
  for prefix, recipe in eval_modes(config):  # An eval image the model cannot take fails here.
    _check_eval_input(model, variables, pipeline, prefix, recipe)
  steps_per_epoch = pipeline.steps_per_epoch(config.batch_size)
  total_steps = (config.num_train_steps if config.num_train_steps > 0
                 else math.ceil(config.num_epochs * steps_per_epoch))
  per_epoch = lambda every: steps_per_epoch if every == -1 else every
  schedule = optim.create_schedule(
      config.schedule, optim.scaled_learning_rate(config.optimizer, config.batch_size),
      steps_per_epoch, total_steps)
  optimizer = optim.create_optimizer(config, schedule, steps_per_epoch,
                                     per_epoch(config.eval_every_steps))
  # The optimizer meets the parameters: a weight-decay pattern matching no layer fails here.
  jax.eval_shape(optimizer.init, variables["params"])
  return Plan(config, model, pipeline, checked.train_batch, checked.eval_batch, steps_per_epoch,
              total_steps, per_epoch(config.eval_every_steps),
              per_epoch(config.checkpoint_every_steps), schedule, optimizer, devices)


def fresh_state(plan: Plan) -> steps.TrainState:
  """The state a run starts from (on the host), with moving averages if config.ema_decay."""
  return jax.device_get(steps.create_train_state(
      jax.random.key(plan.config.seed), plan.model, plan.optimizer, plan.image_shape,
      ema=bool(plan.config.ema_decay)))


def restore(checkpointer: Checkpointer, step: int, template: steps.TrainState) -> steps.TrainState:
  """The checkpoint of `step` in the form of `template`. One saved with moving
  averages that `template` lacks loses them; one saved without them that
  `template` has (config.ema_decay set on resuming, which config.json
  accepts only with --allow_config_change) starts them at its variables; both
  say so."""
  try:
    return checkpointer.restore(step, template)
  except UserError:
    other = template.replace(ema=None if template.ema is not None else {
        "params": template.params, "batch_stats": template.batch_stats})
    try:
      restored = checkpointer.restore(step, other)
    except UserError:
      pass
    else:
      if template.ema is None:
        _note(f"the moving averages of the checkpoint of step {step} are not used "
              "(config.ema_decay is 0)")
        return restored.replace(ema=None)
      _note(f"the checkpoint of step {step} has no moving averages (it was written with "
            "config.ema_decay 0); they start from its parameters")
      return restored.replace(ema={"params": restored.params,
                                   "batch_stats": restored.batch_stats})
    raise


def _check_eval_input(model: nn.Module, variables, pipeline: "pipeline_lib.InputPipeline",
                      prefix: str, recipe: str | None) -> None:
  """A UserError naming the config key if an eval mode's images (of every
  view group) do not go through the model; traces abstractly."""
  for group, shape in pipeline.eval_image_shapes(recipe).items():
    if None in shape:  # Sizes that vary per image: batching them would fail.
      continue
    height, width, channels = shape[-3:]
    apply = functools.partial(model.apply, train=False,
                              **steps.dense_options(model, (height, width), pipeline.image_size))
    try:
      jax.eval_shape(apply, variables, jax.ShapeDtypeStruct((1, height, width, channels),
                                                             jnp.float32))
    except Exception as error:  # A fixed-size layer (a flattening dense layer), or too small.
      where = ("config.dataset.eval_preprocess" if recipe is None
               else f"config.extra_evals {prefix[len('eval_'):]!r} ({recipe!r})")
      reason = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
      raise UserError(f"{where} gives {height}x{width} images ({group}), which model "
                      f"{type(model).__name__} cannot take at training size "
                      f"{pipeline.image_size}: {type(error).__name__}: {reason}") from None


def initial_state(plan: Plan, checkpointer: Checkpointer) -> steps.TrainState:
  """The latest checkpoint's state if there is one, else a fresh one (on the host)."""
  state = fresh_state(plan)
  latest = checkpointer.latest_step()
  if latest is not None:
    return restore(checkpointer, latest, state)
  return finetune.load(plan.config, state) if plan.config.init_from else state


def eval_modes(config: ml_collections.ConfigDict) -> list[tuple[str, str | None]]:
  """(metric prefix, recipe) of each evaluation: "eval" with dataset.eval_preprocess
  (None), then "eval_NAME" for each of config.extra_evals."""
  return [("eval", None)] + [(f"eval_{name}", recipe) for name, recipe in config.extra_evals]


def bind_eval_step(plan: Plan):
  """The eval step mapped over the devices; a larger eval image is evaluated
  densely (see steps.eval_step) relative to the training input."""
  return parallel.map_eval_step(functools.partial(
      steps.eval_step, model=plan.model, train_size=plan.pipeline.image_size), plan.devices)


def evaluate(plan: Plan, eval_fn, state) -> dict[str, float]:
  """Loss and top-1/top-5 error over the whole eval split in every evaluation
  mode (`eval_modes`), each of the parameters and, if the state has them, of
  their moving averages (prefix + "_ema"): eval/loss, eval_ema/loss,
  eval_10crop/loss, eval_10crop_ema/loss, ..."""
  variants = [("", state)]
  if state.ema is not None:
    variants.append(("_ema", steps.averaged(state)))
  metrics = {}
  for prefix, recipe in eval_modes(plan.config):
    totals = [None] * len(variants)
    batches = parallel.to_devices(
        plan.pipeline.eval_batches(plan.eval_batch.process_batch, recipe), plan.devices)
    for batch in batches:
      for index, (_, variables) in enumerate(variants):
        sums = eval_fn(variables, batch)
        totals[index] = sums if totals[index] is None else jax.tree.map(
            jnp.add, totals[index], sums)
    for (suffix, _), sums in zip(variants, parallel.unreplicate(totals)):
      count = sums.pop("count")
      metrics.update({f"{prefix}{suffix}/{key}": float(value / count)
                      for key, value in sums.items()})
  return metrics


def train_and_evaluate(plan: Plan, workdir: pathlib.Path, *,
                       allow_config_change: bool = False) -> dict[str, float]:
  """Trains to `plan.total_steps`, resuming from the workdir; returns the last eval.

  Owns the workdir meanwhile (a UserError naming the owner if another run
  does). A workdir whose config.json is another experiment is refused (see
  cnnjax.workdir) unless `allow_config_change`. Raises `stopping.Preempted`
  (SIGTERM) or `stopping.Interrupted` (Ctrl-C) after saving the current step,
  `stopping.Diverged` on a NaN or Inf (nothing of the bad state saved) and
  `CheckpointFailed` when a background save fails. Pending saves are waited
  for on every way out. A finished run writes `results.json` (cnnjax.workdir.results).
  """
  config = plan.config
  with parallel.own_workdir(workdir):
    changes = workdir_lib.check_config(config, workdir, allow_change=allow_config_change)
    checkpointer = Checkpointer(workdir / "checkpoints", config.keep_checkpoints)
    # From here on SIGTERM and Ctrl-C save a step; a second Ctrl-C aborts.
    watch = guards.StopWatch(checkpointer)
    try:
      final_eval = _train(plan, workdir, checkpointer, watch, changes)
    except BaseException:
      try:  # Saves already started still complete; their failure is secondary here.
        checkpointer.close()
      except CheckpointFailed as error:
        print(f"cnnjax: also: {error}", file=sys.stderr)
      raise
    else:
      checkpointer.close()
    finally:
      watch.close()
  return final_eval


def _say(text: str) -> None:
  """A status line from process 0 (what the run is doing while nothing else shows)."""
  if parallel.is_primary():
    print(text, flush=True)


def _note(text: str) -> None:
  if parallel.is_primary():
    print(f"cnnjax: note: {text}", file=sys.stderr, flush=True)


def _train(plan: Plan, workdir: pathlib.Path, checkpointer: Checkpointer,
           watch: guards.StopWatch, changes: dict | None) -> dict[str, float]:
  config = plan.config
  is_writer = jax.process_index() == 0
  state = initial_state(plan, checkpointer)
  start_step = int(state.step)
  if start_step > plan.total_steps:
    raise UserError(
        f"{workdir} is already at step {start_step}, past the {plan.total_steps} steps this "
        "config asks for; nothing was changed. Train a shorter run in a new --workdir, or "
        f"evaluate an earlier checkpoint with `cnnjax eval --workdir {workdir} --step N`")
  if start_step == plan.total_steps:
    return _already_complete(plan, workdir, checkpointer, state)
  if is_writer:
    workdir_lib.write_config(config, workdir, start_step, changes, schedule_over_total=(
        config.schedule.name in optim.SCHEDULES_OVER_TOTAL_STEPS))
    results.forget(workdir)  # The run is no longer complete (a longer one, say).
  signum = watch.reached(start_step)
  if signum:  # Stopped while starting: nothing new to save.
    raise stopping.stopped(signum, f"stopped while starting, at step {start_step} of "
                                   f"{plan.total_steps}; run the same command to resume")
  writer = metrics_lib.MetricWriter(workdir, enabled=is_writer,
                                    steps_per_epoch=plan.steps_per_epoch)
  if start_step:
    _say(f"resuming from the checkpoint at step {start_step} of {plan.total_steps}")
  writer.forget_after(start_step)
  example_ids = (metrics_lib.ExampleIdLog(workdir, jax.process_index(), start_step)
                 if config.log_example_ids else None)
  extra = checkpointer.extra(start_step) if start_step else {}
  # Per-step train metrics of the log interval the checkpoint cut, so the
  # first record after a resume averages the same steps as an uninterrupted run's.
  pending = _pending_from_json(extra, len(parallel.local_devices(plan.devices)))
  previous_train_time = extra.get("train_time_s", 0.0)

  train_fn = parallel.map_train_step(
      steps.bind_train_step(config, plan.model, plan.optimizer, plan.schedule), plan.devices)
  eval_fn = bind_eval_step(plan)
  state = parallel.replicate(state, plan.devices)
  rng = parallel.replicate(jax.random.PRNGKey(config.seed), plan.devices)
  batch_ids = collections.deque()  # Ids of the batches prefetched, in order.
  batches = parallel.to_devices(_without_ids(
      plan.pipeline.train_batches(plan.train_batch.global_batch, start_step), batch_ids),
      plan.devices)
  if config.optimizer.base_batch_size and config.batch_size != config.optimizer.base_batch_size:
    _say(f"learning rate {optim.scaled_learning_rate(config.optimizer, config.batch_size):g}: "
         f"{config.optimizer.learning_rate:g} for batch {config.optimizer.base_batch_size}, "
         f"scaled linearly to batch {config.batch_size}")
  _say(f"compiling the train step of {config.model.name} ({plan.total_steps - start_step} "
       f"steps to go, {plan.train_batch.global_batch} images each)")
  progress = metrics_lib.Progress(plan.total_steps, start_step, enabled=is_writer)
  guard = guards.NonfiniteGuard(config.nonfinite.policy, config.nonfinite.max_consecutive_skips)
  eval_metrics = {}
  # What an evaluation must beat to be saved as the new best, so that the
  # best evaluation is one that was saved (see cnnjax.workdir.checkpoint).
  best_error = checkpointer.best_error()
  started = time.perf_counter()
  throughput = metrics_lib.Throughput(plan.train_batch.global_batch)
  skipped = 0
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
        # What `cnnjax bench` reports as compile_s, plus this one step.
        _say(f"the first step took {time.perf_counter() - started:.1f} s, compiling it included")
        if is_writer:  # Once the step has run: its kernels are known.
          _record_start(plan, workdir, start_step, progress)
        throughput.restart()
        progress.start_clock(step)
      else:
        throughput.count_step()
      last = step == plan.total_steps
      log = step % config.log_every_steps == 0 or last
      fresh_eval = step % plan.eval_every == 0 or last
      save = step % plan.checkpoint_every == 0 or last
      signum = watch.reached(step)
      if not (log or fresh_eval or save or signum):
        continue
      skipped += guard.check()  # Before anything of this state is logged or saved.
      if log:
        train_metrics = _average(pending)
        if config.nonfinite.policy == "skip":
          train_metrics["train/skipped_updates"] = float(skipped)
        train_metrics["train/images_per_sec"] = throughput.images_per_sec()
        writer.write(step, train_metrics)
        progress.update(step, train_metrics)
        pending, skipped = [], 0
        throughput.restart()
      if not (fresh_eval or save or signum):
        continue
      jax.block_until_ready(state)  # So that training's time is not counted as paused.
      with throughput.paused():
        if fresh_eval:
          eval_metrics = evaluate(plan, eval_fn, state)
          state = _observe_plateau(plan, state, eval_metrics)
          writer.write(step, eval_metrics)
          progress.write(f"step {step}: " + ", ".join(
              f"{key}={value:.4f}" for key, value in eval_metrics.items()))
          error = eval_metrics[checkpoint_lib.BEST_METRIC]
          if best_error is None or error < best_error:  # Equal is not better: the earliest wins.
            best_error, save = error, True
        if save or signum:
          train_time = previous_train_time + time.perf_counter() - started
          checkpointer.save(step, parallel.unreplicate(state),
                            eval_metrics if fresh_eval else None,
                            extra={**_pending_to_json(pending), "train_time_s": train_time})
      if signum and not last:
        checkpointer.wait()
        raise stopping.stopped(
            signum, f"saved the checkpoint of step {step} of {plan.total_steps} in "
                    f"{workdir / 'checkpoints'}; run the same command to resume")
    checkpointer.wait()
  finally:
    progress.close()
    writer.close()
  run_results = _results(plan, workdir, previous_train_time + time.perf_counter() - started,
                         parallel.unreplicate(state.params))
  _say(results.summary_line(run_results, workdir))
  return eval_metrics


def _record_start(plan: Plan, workdir: pathlib.Path, start_step: int,
                  progress: metrics_lib.Progress) -> None:
  """Records the environment this segment of the run trains in (cnnjax.workdir.provenance);
  a resumed run in another one says what changed, and goes on."""
  changed = provenance.record_start(workdir, start_step, provenance.collect(plan.devices))
  if changed and start_step:
    progress.write(f"cnnjax: note: resumed at step {start_step} in another environment: "
                   f"{'; '.join(changed)}", file=sys.stderr)


def _observe_plateau(plan: Plan, state, eval_metrics: dict[str, float]):
  """`state` (replicated) after a plateau schedule following the evaluations
  has seen this one (see optim.plateau_scaling); unchanged otherwise."""
  schedule = plan.config.schedule
  if not optim.plateau_follows_evaluations(schedule):
    return state
  plateau = optim.observe_evaluation(
      schedule, plan.steps_per_epoch, plan.eval_every,
      parallel.unreplicate(optim.plateau_state(state.opt_state)),
      eval_metrics[schedule.plateau_metric])
  return state.replace(opt_state=optim.with_plateau_state(
      state.opt_state, parallel.replicate(plateau, plan.devices)))


def _results(plan: Plan, workdir: pathlib.Path, train_time_s: float, params) -> dict:
  """Writes (process 0) and returns the finished run's results.json."""
  records = metrics_lib.read(workdir) if (workdir / "metrics.jsonl").exists() else []
  throughputs = [r["train/images_per_sec"] for r in records if r.get("train/images_per_sec")]
  run_results = results.summarize(
      records, step=plan.total_steps, total_steps=plan.total_steps,
      steps_per_epoch=plan.steps_per_epoch, global_batch=plan.train_batch.global_batch,
      train_time_s=train_time_s,
      # The median over log intervals: each is steady state already (see `_train`).
      images_per_sec=float(np.median(throughputs)) if throughputs else 0.0,
      parameters=int(sum(np.size(leaf) for leaf in jax.tree.leaves(params))))
  if parallel.is_primary():
    recorded = provenance.segments(workdir)
    run_results["provenance"] = (recorded[-1]["environment"] if recorded
                                 else provenance.collect(plan.devices))
    run_results["environment_changes"] = provenance.changes_during_run(workdir)
    results.write(workdir, run_results)
  return run_results


def _already_complete(plan: Plan, workdir: pathlib.Path, checkpointer: Checkpointer,
                      state) -> dict[str, float]:
  """A run already at its last step: says so, and writes results.json if a
  kill left it missing; changes nothing else."""
  run_results = results.read(workdir)
  if run_results is None or run_results.get("step") != plan.total_steps:
    train_time = checkpointer.extra(plan.total_steps).get("train_time_s", 0.0)
    run_results = _results(plan, workdir, train_time, state.params)
  _say(f"training is complete: step {plan.total_steps} of {plan.total_steps} in {workdir}")
  _say(results.summary_line(run_results, workdir))
  final = run_results.get("final_eval") or {}
  return {key: value for key, value in final.items() if key.startswith("eval")}


def _without_ids(batches, ids: collections.deque):
  """The batches without their `id`s, which go to `ids` (strings stay on the host)."""
  for batch in batches:
    ids.append(batch.pop("id"))
    yield batch


def _pending_to_json(pending: list[dict]) -> dict:
  fetched = jax.device_get([jax.tree.map(lambda x: x[0], m) for m in pending])
  return {"pending_train_metrics": [{key: float(value) for key, value in m.items()}
                                    for m in fetched]}


def _pending_from_json(extra: dict, local_devices: int) -> list[dict]:
  """Per-step metrics as the train step returns them: float32, one copy per local device."""
  return [{key: np.full((local_devices,), value, np.float32) for key, value in m.items()}
          for m in extra.get("pending_train_metrics", [])]


def _average(step_metrics: list[dict]) -> dict[str, float]:
  """The mean over steps of each metric (first device's copy; all are equal)."""
  fetched = jax.device_get([jax.tree.map(lambda x: x[0], m) for m in step_metrics])
  return {f"train/{key}": float(np.mean([m[key] for m in fetched])) for key in fetched[0]}


def evaluate_checkpoint(plan: Plan, workdir: pathlib.Path, step: int | None = None,
                        best: bool = False) -> tuple[int, dict[str, float]]:
  """Evaluates a checkpoint of the workdir: `step`, the best by eval top-1
  error (`best`), or the latest; returns its step and the metrics.

  The caller checks that `plan.config` is the workdir's network (see
  cnnjax.workdir.check_eval_config). Holds the workdir shared, so it never
  reads checkpoints a training is writing or deleting.
  """
  with parallel.own_workdir(workdir, "eval", shared=True):
    checkpointer = Checkpointer(workdir / "checkpoints", plan.config.keep_checkpoints,
                                read_only=True)
    try:
      chosen = checkpoint_lib.choose(checkpointer, workdir, step, best)
      state = restore(checkpointer, chosen, fresh_state(plan))
    finally:
      checkpointer.close()
  return chosen, evaluate(plan, bind_eval_step(plan), parallel.replicate(state, plan.devices))
