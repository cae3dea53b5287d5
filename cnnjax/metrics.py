"""Where metrics go: `metrics.jsonl`, TensorBoard event files and the progress
bar. Keys are `split/metric` (`train/loss`, `eval/top1_error`, ...); only the
process that `enabled` (process 0) writes anything.
"""

import json
import math
import os
import pathlib

import tensorboardX
import tqdm


class MetricWriter:
  """Appends one JSON object per line to `metrics.jsonl` and mirrors it to TensorBoard."""

  def __init__(self, workdir: pathlib.Path, enabled: bool):
    self.enabled = enabled
    self.path = workdir / "metrics.jsonl"
    self._tensorboard = tensorboardX.SummaryWriter(str(workdir / "tensorboard")) if enabled else None

  def write(self, step: int, metrics: dict[str, float]) -> None:
    if not self.enabled:
      return
    record = {"step": int(step), **{key: _json_number(value) for key, value in metrics.items()}}
    with self.path.open("a") as file:
      file.write(json.dumps(record) + "\n")
    for key, value in metrics.items():
      self._tensorboard.add_scalar(key, value, int(step))
    self._tensorboard.flush()

  def forget_after(self, step: int) -> None:
    """Drops records of steps after `step`: a resumed run replays those steps.

    The file is rewritten beside the old one and renamed over it, so an
    interruption leaves either the old or the new file, never half of one.
    """
    if not self.enabled or not self.path.exists():
      return
    lines = self.path.read_text().splitlines(keepends=True)
    kept = [line for line in lines if line.strip() and json.loads(line)["step"] <= step]
    if len(kept) == len(lines):
      return
    temporary = self.path.with_suffix(".jsonl.tmp")
    temporary.write_text("".join(kept))
    os.replace(temporary, self.path)

  def close(self) -> None:
    if self._tensorboard:
      self._tensorboard.close()


def _json_number(value) -> float | str:
  """JSON has no NaN or infinity; they are written as strings, never silently dropped."""
  value = float(value)
  return value if math.isfinite(value) else str(value)


def read(workdir: pathlib.Path) -> list[dict]:
  """The records of a workdir's `metrics.jsonl`, in order."""
  path = pathlib.Path(workdir) / "metrics.jsonl"
  return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class Progress:
  """A progress bar over training steps: step count, ETA, loss and images/s."""

  def __init__(self, total: int, initial: int, enabled: bool):
    self._enabled = enabled
    self._bar = tqdm.tqdm(total=total, initial=initial, disable=not enabled, unit="step",
                          dynamic_ncols=True, mininterval=1.0, desc="train")

  def update(self, step: int, metrics: dict[str, float]) -> None:
    self._bar.update(step - self._bar.n)
    self._bar.set_postfix(loss=f"{metrics['train/loss']:.4f}",
                          images_per_sec=f"{metrics['train/images_per_sec']:.0f}", refresh=False)

  def write(self, text: str) -> None:
    if self._enabled:  # tqdm.write prints even when the bar is disabled.
      self._bar.write(text)

  def close(self) -> None:
    self._bar.close()
