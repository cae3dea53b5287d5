"""`cnnjax bench --data DATASET [--recipe RECIPE]`: the training step fed by
the real input pipeline, beside the step alone and the pipeline alone.

The pipeline is the one `cnnjax train` reads: `cnnjax.data.InputPipeline`
over the dataset's TFDS builder (decoding, the recipe's augmentation seeded
per example, normalisation, batches of the global batch split over the local
devices), with training's `parallel.to_devices` putting each batch on the
devices two ahead. Three rates come out of one process, in this order:

- images_per_sec: the step alone on one synthetic batch (cnnjax.bench.timing);
- end_to_end_images_per_sec: the same compiled step on the pipeline's
  batches, as training runs it, timed as the step alone was (same steps and
  repeats);
- input_images_per_sec: the pipeline alone, batches taken as fast as it
  gives them, each waited for on the devices (as many batches per timing as
  the step's timings take, after WARMUP_BATCHES).

`limited_by` names the slower of the two parts ("input" or "step"), and
`end_to_end_fraction` is the end-to-end rate over the step's: a run near 1
is step-bound; well below it, the input pipeline (or the two competing for
the processor's cores) holds the step back.

This module imports TensorFlow (through cnnjax.data); `cnnjax bench` without
--data never imports it.
"""

import statistics
import time
from typing import Callable

import jax

from cnnjax.bench import timing
from cnnjax.data import InputPipeline, describe, open_builder
from cnnjax.errors import UserError
from cnnjax.training import parallel

WARMUP_BATCHES = 3  # tf.data starts its threads and fills its buffers.


def _check_channels(dataset, case: timing.Case) -> None:
  channels = describe(dataset).channels
  if channels != case.channels:
    raise UserError(f"--data {dataset.name} has {channels}-channel images and {case.model} "
                    f"reads {case.channels}; give --channels {channels}")


def _input_pipeline(dataset, case: timing.Case) -> InputPipeline:
  pipeline = InputPipeline(open_builder(dataset), dataset, seed=0,
                           process_index=jax.process_index(),
                           process_count=jax.process_count(),
                           local_devices=jax.local_device_count(), input_size=case.image_size)
  pipeline.check_sharding(case.batch_size)
  return pipeline


def device_batches(pipeline: InputPipeline, batch_size: int):
  """The pipeline's training batches on the devices, as `cnnjax train` feeds them."""
  def without_ids():
    for batch in pipeline.train_batches(batch_size):
      batch.pop("id")
      yield batch
  return parallel.to_devices(without_ids())


def _time_input(batches, batch_size: int, count: int, repeats: int) -> list[float]:
  """Images/s of `repeats` timings of `count` batches, each waited for on the devices."""
  for _ in range(WARMUP_BATCHES):
    jax.block_until_ready(next(batches))
  rates = []
  for _ in range(repeats):
    started = time.perf_counter()
    for _ in range(count):
      jax.block_until_ready(next(batches))
    rates.append(batch_size * count / (time.perf_counter() - started))
  return rates


def measure(case: timing.Case, dataset, peak_tflops: float | None = None,
            say: Callable[[str], None] = lambda text: None) -> dict:
  """The figures of `cnnjax bench` for `case`, and the three rates of the
  module docstring, reading `dataset` (config.dataset, from
  cnnjax.bench.command.dataset_config) at the case's
  input side."""
  dataset = dataset.copy_and_resolve_references()
  dataset.image_size = case.image_size
  _check_channels(dataset, case)
  pipeline = _input_pipeline(dataset, case)
  batches = device_batches(pipeline, case.batch_size)
  row = timing.measure(case, peak_tflops, say, batches=batches)
  say(f"{case.model}: timing the input pipeline alone")
  rates = _time_input(batches, case.batch_size, row["steps"], case.repeats)
  input_rate = statistics.median(rates)
  return {**row, "data": pipeline.dataset.name,
          "recipe": pipeline.dataset.train_preprocess,
          "input_images_per_sec": input_rate, "input_images_per_sec_min": min(rates),
          "input_images_per_sec_max": max(rates),
          "end_to_end_fraction": row["end_to_end_images_per_sec"] / row["images_per_sec"],
          "limited_by": "input" if input_rate < row["images_per_sec"] else "step"}
