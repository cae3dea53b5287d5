"""Where metrics go: `metrics.jsonl`, TensorBoard event files and the progress
bar (or plain progress lines where no terminal is). Keys are `split/metric`
(`train/loss`, `eval/top1_error`, ...); every record also has its `step` and
`epoch` (step / steps per epoch). Only the process that `enabled` (process 0)
writes anything.
"""

import contextlib
import json
import math
import os
import pathlib
import sys
import time

import tqdm


class MetricWriter:
  """Appends one JSON object per line to `metrics.jsonl` and mirrors it to TensorBoard."""

  def __init__(self, workdir: pathlib.Path, enabled: bool, steps_per_epoch: int):
    self.enabled = enabled
    self.steps_per_epoch = steps_per_epoch
    self.path = workdir / "metrics.jsonl"
    self._tensorboard = None
    if enabled:
      import tensorboardX  # Here, not at the top: the sweep's launcher reads progress_mode.

      self._tensorboard = tensorboardX.SummaryWriter(str(workdir / "tensorboard"))

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


PROGRESS_VARIABLE = "CNNJAX_PROGRESS"  # "bar" or "lines": forces either mode.
PROGRESS_MODES = ("bar", "lines")
LINE_EVERY_SECONDS = 30.0  # How often a plain progress line is printed.


def progress_mode(stream=None) -> str:
  """"bar" on a terminal, "lines" where there is none (a file, a pipe, a
  SLURM log: a bar's carriage returns would glue its redraws and the
  evaluations together there); CNNJAX_PROGRESS=bar|lines forces either.
  `stream` is where the bar would be drawn (default: stderr)."""
  forced = os.environ.get(PROGRESS_VARIABLE, "").strip().lower()
  if forced:
    if forced not in PROGRESS_MODES:
      from cnnjax.errors import UserError

      raise UserError(f"{PROGRESS_VARIABLE}={forced!r}: use bar or lines (default: bar on a "
                      "terminal, lines otherwise)")
    return forced
  stream = sys.stderr if stream is None else stream
  return "bar" if hasattr(stream, "isatty") and stream.isatty() else "lines"


class Progress:
  """Training's progress: step count, loss, images/s and an ETA, as a bar on a
  terminal or as a plain line every LINE_EVERY_SECONDS elsewhere (and at the
  first and last log), each evaluation on its own line (see `progress_mode`).

  tqdm's own ETA would average over the first step, which compiles: it
  promised 15 minutes for a one-minute run. The ETA here is measured from
  `start_clock` (after the first step) on, evaluations and saves included
  since they recur, and shown only once a few steps have been timed.
  """

  def __init__(self, total: int, initial: int, enabled: bool, mode: str | None = None,
               every_seconds: float = LINE_EVERY_SECONDS):
    self._enabled = enabled
    self._total = total
    self._clock = None  # (time, step) when steady state began.
    self._lines = (mode or progress_mode()) == "lines"
    self._every_seconds = every_seconds
    self._last_line = None  # When the last plain line was printed.
    self._bar = tqdm.tqdm(total=total, initial=initial, disable=not enabled or self._lines,
                          unit="step", dynamic_ncols=True, mininterval=1.0, desc="train",
                          bar_format="{desc} {n_fmt}/{total_fmt} |{bar}| {elapsed}{postfix}")

  def start_clock(self, step: int) -> None:
    self._clock = (time.perf_counter(), step)

  def _eta(self, step: int) -> str | None:
    if not (self._clock and step > self._clock[1]):
      return None
    seconds_per_step = (time.perf_counter() - self._clock[0]) / (step - self._clock[1])
    return tqdm.tqdm.format_interval(seconds_per_step * (self._total - step))

  def update(self, step: int, metrics: dict[str, float]) -> None:
    loss, speed = f"{metrics['train/loss']:.4f}", f"{metrics['train/images_per_sec']:.0f}"
    eta = self._eta(step)
    if self._lines:
      now = time.monotonic()
      due = self._last_line is None or now - self._last_line >= self._every_seconds
      if self._enabled and (due or step == self._total):
        self._last_line = now
        print(f"train step {step}/{self._total} ({100 * step / self._total:.0f}%): loss {loss}, "
              f"{speed} images/s" + (f", eta {eta}" if eta else ""), flush=True)
      return
    self._bar.update(step - self._bar.n)
    postfix = {"loss": loss, "images/s": speed}
    if eta:
      postfix["eta"] = eta
    self._bar.set_postfix(postfix, refresh=False)

  def write(self, text: str, file=None) -> None:
    """Prints `text` on its own line (on `file`, default stdout), above the bar."""
    if not self._enabled:  # tqdm.write prints even when the bar is disabled.
      return
    if self._lines:
      print(text, file=file or sys.stdout, flush=True)
    else:
      self._bar.write(text, file=file)

  def close(self) -> None:
    self._bar.close()
