"""The JAX side of `cnnjax bench`: times one model's compiled training step.

The step is the one `cnnjax train` runs, built from the same parts: the model
of `cnnjax.models.from_config`, the optimizer and schedule of `cnnjax.training.optim`
from the base config (SGD, momentum 0.9, constant rate), the step of
`cnnjax.training.steps.bind_train_step`, mapped by `cnnjax.training.parallel.map_train_step`
over every local device with the state donated, the state replicated and the
batch placed as training places them. Only the data differ: one synthetic
batch, put on the devices once and fed to every step, so that nothing but the
step is timed. Nothing here imports TensorFlow: it runs where only jax, flax,
optax and orbax-checkpoint are installed.

What is measured:
- compile_s: tracing, lowering and XLA compilation of the step
  (`lower(...).compile()`), whose executable the timed calls then reuse. With
  a persistent compilation cache (JAX_COMPILATION_CACHE_DIR) a hit is the
  time to load it.
- images_per_sec: `repeats` timings of `steps` consecutive steps, each ended
  by waiting for the state, after WARMUP_STEPS untimed steps; the median and
  the range over repeats. A compilation during the timed steps is an error.
- flops_per_image: XLA's cost analysis of the step (one device's program:
  forward, backward, update; a multiply-add counts 2) over that device's
  images: the larger of the compiled step's count and the CPU backend's
  count of the same program with XLA's own convolutions, which custom calls
  (oneDNN's on the CPU, cuDNN's on a GPU) hide from the first (see `_compile`).
- achieved_tflops = flops_per_image x images_per_sec, and mfu = achieved /
  peak, the peak being one device's (`peak_tflops`, or the best rate of a
  large square matmul of the same dtype, measured here) times the devices; on
  the CPU backend, whose devices share the processor's cores, the peak is the
  processor's (one device's matmul already uses every core).
- compile_cpu_s: the processor seconds this process spent meanwhile (all
  its threads), which a loaded machine inflates less than compile_s.
- with `batches` (cnnjax.bench.end_to_end): the same step fed by a real input
  pipeline, timed as above (same steps and repeats, each step waiting for its
  batch): end_to_end_images_per_sec, with its range.
- peak_memory_bytes: the largest `peak_bytes_in_use` of the devices'
  `memory_stats()`, read before the matmul; None where the backend reports
  none (CPU). It is the process's high-water mark, hence `cnnjax bench
  --model all` runs each model in a process of its own.
"""

import dataclasses
import functools
import math
import os
import pathlib
import platform
import statistics
import time
from typing import Callable, Iterator

import jax
import jax.numpy as jnp
import numpy as np

from cnnjax import config as config_lib
from cnnjax import kernels, models
from cnnjax.errors import UserError
from cnnjax.training import optim, parallel, steps

WARMUP_STEPS = 2  # The first call may still allocate and autotune; neither is timed.
SECONDS_PER_REPEAT = 2.0  # Without `steps`: as many steps as take about this long.
# The square matmul that measures the peak: big enough to saturate the device,
# small enough to take well under a second on two CPU cores.
PEAK_MATMUL_SIZE = {"cpu": 2048}
PEAK_MATMUL_SIZE_ACCELERATOR = 8192
PEAK_REPEATS = 5
PEAK_SECONDS_PER_TIMING = 0.05  # Enough matmuls per timing that dispatch is negligible.
BACKEND_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


@dataclasses.dataclass(frozen=True)
class Case:
  """One model to time. `batch_size` is global, over all local devices."""

  model: str
  image_size: int
  channels: int
  num_classes: int
  batch_size: int
  dtype: str  # "float32" or "bfloat16" (config.half_precision).
  steps: int | None  # Per timing; None: as many as take SECONDS_PER_REPEAT.
  repeats: int
  model_overrides: tuple[tuple[str, str], ...] = ()  # ("model.KEY", "VALUE") pairs.


def train_config(case: Case):
  """The config `cnnjax train` would give this model: base_config's optimizer,
  schedule, label smoothing, auxiliary loss and synchronised BatchNorm, the
  model's registered options, then `case.model_overrides`."""
  config = config_lib.base_config()
  config.model.name = case.model
  config.model.update(models.model_defaults(case.model))
  config.half_precision = case.dtype == "bfloat16"
  config.batch_size = case.batch_size
  config.lock()
  for key, text in case.model_overrides:
    config_lib.override(config, key, text)
  return config


def check_devices(batch_size: int) -> int:
  """The per-device batch, or a UserError if `batch_size` does not divide."""
  count = jax.local_device_count()
  if batch_size % count:
    raise UserError(f"--batch-size {batch_size} does not divide evenly over {count} "
                    f"{jax.default_backend()} devices; use a multiple of {count}")
  return batch_size // count


def _synthetic_batch(case: Case, per_device_batch: int) -> dict:
  """Random images and labels shaped [local devices, per-device batch, ...], on the devices."""
  random = np.random.default_rng(0)
  shape = (jax.local_device_count(), per_device_batch, case.image_size, case.image_size,
           case.channels)
  batch = {"image": random.standard_normal(shape, np.float32),
           "label": random.integers(0, case.num_classes, shape[:2], dtype=np.int32)}
  return next(parallel.to_devices(iter([batch])))


class _CompileCounter:
  """Counts XLA compilations while open."""

  def __enter__(self):
    self.count = 0
    jax.monitoring.register_event_duration_secs_listener(self._listen)
    return self

  def _listen(self, event: str, duration: float, **kwargs) -> None:
    del duration, kwargs
    self.count += event == BACKEND_COMPILE_EVENT

  def __exit__(self, *exc):
    jax.monitoring.unregister_event_duration_listener(self._listen)


@dataclasses.dataclass
class _Step:
  """The train step of a case, ready to call as `state, _ = call(state, batch, rng)`."""

  call: Callable
  train_step: Callable  # `call` before mapping over the devices.
  state: object
  batch: dict
  rng: jax.Array


def _build_step(case: Case, per_device_batch: int, say: Callable[[str], None]) -> _Step:
  """The step, state and data as `cnnjax train` makes them (see the module docstring)."""
  config = train_config(case)
  model = models.from_config(config, steps.AXIS, num_classes=case.num_classes)
  image_shape = (case.image_size, case.image_size, case.channels)
  # Traces the model abstractly: a bad option or too small an input is a UserError here.
  jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False),
                 jax.ShapeDtypeStruct((1, *image_shape), jnp.float32))
  # The base config's constant schedule and SGD need no run length.
  schedule = optim.create_schedule(config.schedule, config.optimizer.learning_rate,
                                   steps_per_epoch=1, total_steps=1)
  optimizer = optim.create_optimizer(config, schedule, steps_per_epoch=1)
  devices = jax.local_devices()
  say(f"{case.model}: {'x'.join(map(str, image_shape))} images, batch {case.batch_size} on "
      f"{len(devices)} {devices[0].platform} device(s), {case.dtype}: compiling the train step")
  state = steps.create_train_state(jax.random.key(config.seed), model, optimizer, image_shape)
  train_step = steps.bind_train_step(config, model, optimizer, schedule)
  return _Step(parallel.map_train_step(train_step), train_step,
               parallel.replicate(jax.device_get(state)), _synthetic_batch(case, per_device_batch),
               parallel.replicate(jax.random.PRNGKey(config.seed)))


def compiled_step(case: Case):
  """The compiled train step of `case` as XLA built it for the local devices
  (`.as_text()` is its optimised HLO), for looking inside it
  (scripts/check_step_precision.py)."""
  step = _build_step(case, check_devices(case.batch_size), lambda text: None)
  return step.call.lower(step.state, step.batch, step.rng).compile()


def _compile(step: _Step) -> tuple[float, float, float | None]:
  """Seconds to trace, lower and compile the step (wall and processor), and
  its FLOPs (one device's program)."""
  started, cpu_started = time.perf_counter(), time.process_time()
  compiled = step.call.lower(step.state, step.batch, step.rng).compile()
  # The mapped step reuses this executable from JAX's caches (`_time` refuses a recompile).
  seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
  # Custom calls are invisible to XLA's cost analysis: cuDNN's and cuBLAS's
  # on a GPU (ResNet-50's step counted 0.41 of its 23.7 GFLOP an image on an
  # H200), oneDNN's convolutions on the CPU (cnnjax.kernels.onednn).
  flops = max(filter(None, (_flops(compiled), _flops_on_cpu(step))), default=None)
  return seconds, cpu_seconds, flops


def _time(step: _Step, case: Case, batches: Iterator | None = None,
          steps_per_repeat: int | None = None) -> tuple[int, list[float]]:
  """Steps per timing and the seconds of each of `case.repeats` timings, on
  the synthetic batch or, given `batches`, on the next of them each step."""
  next_batch = (lambda: step.batch) if batches is None else (lambda: next(batches))
  for _ in range(WARMUP_STEPS):
    started = time.perf_counter()
    step.state, _ = step.call(step.state, next_batch(), step.rng)
    jax.block_until_ready(step.state)
    step_s = time.perf_counter() - started
  steps_per_repeat = (steps_per_repeat or case.steps
                      or max(1, round(SECONDS_PER_REPEAT / step_s)))
  seconds = []
  with _CompileCounter() as compilations:
    for _ in range(case.repeats):
      started = time.perf_counter()
      for _ in range(steps_per_repeat):
        step.state, _ = step.call(step.state, next_batch(), step.rng)
      jax.block_until_ready(step.state)
      seconds.append(time.perf_counter() - started)
  if compilations.count:
    raise RuntimeError(f"the train step of {case.model} compiled again while timed "
                       f"({compilations.count} compilations): its figures would be wrong")
  return steps_per_repeat, seconds


def steps_timer(case: Case, say: Callable[[str], None] = lambda text: None
                ) -> Callable[[int], float]:
  """The compiled, warmed-up train step of `case` as `run(n)`: the seconds n
  consecutive steps take, up to the state being ready. For timing it beside
  something else (scripts/compare_pytorch.py), in turns."""
  step = _build_step(case, check_devices(case.batch_size), say)
  _compile(step)
  for _ in range(WARMUP_STEPS):
    step.state, _ = step.call(step.state, step.batch, step.rng)
  jax.block_until_ready(step.state)

  def run(count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
      step.state, _ = step.call(step.state, step.batch, step.rng)
    jax.block_until_ready(step.state)
    return time.perf_counter() - started

  return run


def measure(case: Case, peak_tflops: float | None = None,
            say: Callable[[str], None] = lambda text: None,
            batches: Iterator | None = None) -> dict:
  """Compiles and times the training step of `case`; the figures as a dict
  (see cnnjax.bench for the keys). `say` receives progress lines. Given
  `batches` (on the devices, as `parallel.to_devices` yields them), the step
  is timed on them too, after the synthetic timings."""
  per_device_batch = check_devices(case.batch_size)
  step = _build_step(case, per_device_batch, say)
  compile_s, compile_cpu_s, flops = _compile(step)
  say(f"{case.model}: compiled in {compile_s:.1f} s ({compile_cpu_s:.1f} processor s); timing")
  steps_per_repeat, seconds = _time(step, case)
  fed = {}
  if batches is not None:
    say(f"{case.model}: timing the step fed by the input pipeline")
    _, fed_seconds = _time(step, case, batches, steps_per_repeat)
    fed_rates = [case.batch_size * steps_per_repeat / s for s in fed_seconds]
    fed = {"end_to_end_images_per_sec": statistics.median(fed_rates),
           "end_to_end_images_per_sec_min": min(fed_rates),
           "end_to_end_images_per_sec_max": max(fed_rates)}
  devices = jax.local_devices()
  memory = _peak_memory_bytes(devices)
  del step  # Frees the devices for the matmul.

  rates = [case.batch_size * steps_per_repeat / s for s in seconds]
  images_per_sec = statistics.median(rates)
  flops_per_image = flops / per_device_batch if flops else None
  if peak_tflops is None:
    peak_tflops, peak_source = matmul_peak_tflops(case.dtype, devices[0]), "measured"
  else:
    peak_source = "given"
  # Devices of the CPU backend share one processor (see the module docstring).
  total_peak = peak_tflops * (1 if devices[0].platform == "cpu" else len(devices))
  achieved = flops_per_image * images_per_sec / 1e12 if flops_per_image else None
  return {
      "model": case.model, "image_size": case.image_size, "channels": case.channels,
      "num_classes": case.num_classes, "batch_size": case.batch_size, "dtype": case.dtype,
      "images_per_sec": images_per_sec, "images_per_sec_min": min(rates),
      "images_per_sec_max": max(rates), "step_ms": 1000 * case.batch_size / images_per_sec,
      "steps": steps_per_repeat, "repeats": case.repeats, "compile_s": compile_s,
      "compile_cpu_s": compile_cpu_s, **fed,
      "flops_per_image": flops_per_image, "achieved_tflops": achieved,
      "mfu": achieved / total_peak if achieved else None,
      "peak_tflops": peak_tflops, "peak_source": peak_source,
      "peak_memory_bytes": memory, "model_overrides": dict(case.model_overrides),
      **environment(devices),
  }


def _flops(program) -> float | None:
  """A lowered or compiled program's FLOPs by XLA's cost analysis; None where it has none."""
  analysis = program.cost_analysis()
  if isinstance(analysis, (list, tuple)):  # Older JAX: one dict per program.
    analysis = analysis[0] if analysis else None
  flops = (analysis or {}).get("flops")
  return float(flops) if flops and flops > 0 else None


def _flops_on_cpu(step: _Step) -> float | None:
  """The FLOPs of one device's step as XLA's CPU backend counts them: the
  same program (as traced for the devices at hand) with XLA's own
  convolutions and pooling (cnnjax.kernels.with_xla_primitives), mapped over
  one CPU device, lowered and if need be compiled, never run."""
  try:
    cpu = jax.local_devices(backend="cpu")[:1]
  except RuntimeError:  # JAX_PLATFORMS without cpu.
    return None
  one_device = functools.partial(jax.tree.map,
                                 lambda x: jax.ShapeDtypeStruct((1, *x.shape[1:]), x.dtype))
  program = jax.pmap(kernels.with_xla_primitives(step.train_step), axis_name=steps.AXIS,
                     devices=cpu)
  lowered = program.lower(one_device(step.state), one_device(step.batch), one_device(step.rng))
  return _flops(lowered) or _flops(lowered.compile())


def _peak_memory_bytes(devices) -> int | None:
  stats = [device.memory_stats() for device in devices]
  if not all(stat and "peak_bytes_in_use" in stat for stat in stats):
    return None
  return max(int(stat["peak_bytes_in_use"]) for stat in stats)


def matmul_peak_tflops(dtype: str, device: jax.Device) -> float:
  """The best rate of an n x n @ n x n matmul of `dtype` on `device`, in
  TFLOP/s (2 n^3 FLOPs each): the peak this device reaches in practice."""
  size = PEAK_MATMUL_SIZE.get(device.platform, PEAK_MATMUL_SIZE_ACCELERATOR)
  with jax.default_device(device):
    matrix = jax.random.normal(jax.random.key(0), (size, size), jnp.dtype(dtype))
  matmul = jax.jit(jnp.matmul)
  jax.block_until_ready(matmul(matrix, matrix))  # Compiles.
  started = time.perf_counter()
  jax.block_until_ready(matmul(matrix, matrix))
  calls = max(1, math.ceil(PEAK_SECONDS_PER_TIMING / (time.perf_counter() - started)))
  best = math.inf
  for _ in range(PEAK_REPEATS):
    started = time.perf_counter()
    for _ in range(calls):
      product = matmul(matrix, matrix)
    jax.block_until_ready(product)
    best = min(best, (time.perf_counter() - started) / calls)
  return 2 * size ** 3 / best / 1e12


def environment(devices) -> dict:
  """What the figures were measured on, to be reported with them."""
  return {"platform": devices[0].platform, "device_kind": devices[0].device_kind,
          "device_count": len(devices), "host_cpu": host_cpu(), "jax_version": jax.__version__}


def host_cpu() -> str:
  """The processor: model name, cores this process may use and widest x86
  vector extension, on which the speed of CPU convolutions (and their ratio
  between frameworks) depends, e.g. "AMD EPYC, 2 cores, AVX-512"."""
  name, flags = platform.processor() or platform.machine(), set()
  cpuinfo = pathlib.Path("/proc/cpuinfo")
  if cpuinfo.exists():
    first_processor = cpuinfo.read_text().split("\n\n")[0].splitlines()
    fields = {key.strip(): value.strip()
              for key, _, value in (line.partition(":") for line in first_processor)}
    name, flags = fields.get("model name", name), set(fields.get("flags", "").split())
  vectors = next((label for flag, label in (("avx512f", "AVX-512"), ("avx2", "AVX2"),
                                            ("avx", "AVX")) if flag in flags), None)
  cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
  return ", ".join(filter(None, [name, f"{cores} cores", vectors]))
