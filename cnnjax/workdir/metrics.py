"""Where metrics go: `metrics.jsonl`, TensorBoard event files and the progress
bar. Keys are `split/metric` (`train/loss`, `eval/top1_error`, ...); every
record also has its `step` and `epoch` (step / steps per epoch). Only the
process that `enabled` (process 0) writes anything.
"""

import contextlib
import json
import math
import os
import pathlib
import time

import tensorboardX
import tqdm


class MetricWriter:
  """Appends one JSON object per line to `metrics.jsonl` and mirrors it to TensorBoard."""

  def __init__(self, workdir: pathlib.Path, enabled: bool, steps_per_epoch: int):
    self.enabled = enabled
    self.steps_per_epoch = steps_per_epoch
    self.path = workdir / "metrics.jsonl"
    self._tensorboard = tensorboardX.SummaryWriter(str(workdir / "tensorboard")) if enabled else None

  def write(self, step: int, metrics: dict[str, float]) -> None:
    if not self.enabled:
      return
    record = {"step": int(step), "epoch": step / self.steps_per_epoch,
              **{key: _json_number(value) for key, value in metrics.items()}}
    with self.path.open("a") as file:
      file.write(json.dumps(record) + "\n")
    for key, value in metrics.items():
      self._tensorboard.add_scalar(key, value, int(step))
    self._tensorboard.flush()

  def forget_after(self, step: int) -> None:
    """Drops records of steps after `step`: a resumed run replays those steps."""
    if self.enabled:
      truncate_after(self.path, step)

  def close(self) -> None:
    if self._tensorboard:
      self._tensorboard.close()


def truncate_after(path: pathlib.Path, step: int) -> None:
  """Keeps the complete records of `path` (JSON lines) whose `step` is at most `step`.

  A killed process can leave a torn last line (no newline); it is dropped.
  The file is rewritten beside the old one and renamed over it, so an
  interruption leaves either the old or the new file, never half of one.
  """
  if not path.exists():
    return
  lines = path.read_text().splitlines(keepends=True)
  kept = [line for line in lines
          if line.endswith("\n") and line.strip() and json.loads(line)["step"] <= step]
  if len(kept) == len(lines):
    return
  temporary = path.with_suffix(".jsonl.tmp")
  temporary.write_text("".join(kept))
  os.replace(temporary, path)


class ExampleIdLog:
  """`example_ids/process_<index>.jsonl`: which examples each step trained on.

  One line per step, `{"step": s, "ids": [...]}` in batch order, so a user can
  audit the data order: across a resume no example is skipped or seen twice.
  """

  def __init__(self, workdir: pathlib.Path, process_index: int, start_step: int):
    self.path = workdir / "example_ids" / f"process_{process_index}.jsonl"
    self.path.parent.mkdir(exist_ok=True)
    truncate_after(self.path, start_step)

  def write(self, step: int, ids) -> None:
    record = {"step": int(step), "ids": [value.decode() for value in ids.reshape(-1)]}
    with self.path.open("a") as file:
      file.write(json.dumps(record) + "\n")


def _json_number(value) -> float | str:
  """JSON has no NaN or infinity; they are written as strings, never silently dropped."""
  value = float(value)
  return value if math.isfinite(value) else str(value)


def read(workdir: pathlib.Path) -> list[dict]:
  """The records of a workdir's `metrics.jsonl`, in order."""
  return read_jsonl(pathlib.Path(workdir) / "metrics.jsonl")


def read_jsonl(path: pathlib.Path) -> list[dict]:
  return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class Throughput:
  """Training images per second in steady state, one log interval at a time.

  The clock starts after the first step of a run (it compiles) and stops
  while the run evaluates or saves (`paused`), which is not training; so the
  logged images/s, the ETA and results.json's figure describe training alone.
  """

  def __init__(self, images_per_step: int):
    self._images_per_step = images_per_step
    self._start, self._steps, self._paused = time.perf_counter(), 0, 0.0

  def restart(self) -> None:
    self._start, self._steps, self._paused = time.perf_counter(), 0, 0.0

  def count_step(self) -> None:
    self._steps += 1

  @contextlib.contextmanager
  def paused(self):
    start = time.perf_counter()
    try:
      yield
    finally:
      self._paused += time.perf_counter() - start

  def images_per_sec(self) -> float:
    """Over the steps counted since the last restart (0 if none)."""
    elapsed = time.perf_counter() - self._start - self._paused
    return self._steps * self._images_per_step / elapsed if self._steps else 0.0


class Progress:
  """A progress bar over training steps: step count, loss, images/s and an ETA.

  tqdm's own ETA would average over the first step, which compiles: it
  promised 15 minutes for a one-minute run. The ETA here is measured from
  `start_clock` (after the first step) on, evaluations and saves included
  since they recur, and shown only once a few steps have been timed.
  """

  def __init__(self, total: int, initial: int, enabled: bool):
    self._enabled = enabled
    self._total = total
    self._clock = None  # (time, step) when steady state began.
    self._bar = tqdm.tqdm(total=total, initial=initial, disable=not enabled, unit="step",
                          dynamic_ncols=True, mininterval=1.0, desc="train",
                          bar_format="{desc} {n_fmt}/{total_fmt} |{bar}| {elapsed}{postfix}")

  def start_clock(self, step: int) -> None:
    self._clock = (time.perf_counter(), step)

  def update(self, step: int, metrics: dict[str, float]) -> None:
    self._bar.update(step - self._bar.n)
    postfix = {"loss": f"{metrics['train/loss']:.4f}",
               "images/s": f"{metrics['train/images_per_sec']:.0f}"}
    if self._clock and step > self._clock[1]:
      seconds_per_step = (time.perf_counter() - self._clock[0]) / (step - self._clock[1])
      postfix["eta"] = tqdm.tqdm.format_interval(seconds_per_step * (self._total - step))
    self._bar.set_postfix(postfix, refresh=False)

  def write(self, text: str, file=None) -> None:
    """Prints `text` above the bar (on `file`, default stdout)."""
    if self._enabled:  # tqdm.write prints even when the bar is disabled.
      self._bar.write(text, file=file)

  def close(self) -> None:
    self._bar.close()
