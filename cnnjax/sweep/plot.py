"""`curves.png`: a sweep's error curves, in the manner of AlexNet's Figure 1.

Two panels against epochs: training top-1 error (each point the mean over a
log interval) with the sweep's target as a dashed line, and eval top-1
error. Per variant, the line is the mean over its finished seeds and the band
their minimum to maximum (with two or three seeds a standard deviation says
little), at the steps every seed logged (cnnjax.plotting). A run with one
evaluation draws it as a point, a few as a line with markers. matplotlib with
the Agg backend: it writes a PNG and never opens a window.
"""

import pathlib

import matplotlib

matplotlib.use("Agg")
from matplotlib import pyplot  # noqa: E402

from cnnjax import plotting  # noqa: E402


def _mean_and_band(curves: list[list[tuple[int, float, float]]]):
  """Epochs, mean, min and max over the seeds' curves [(step, epoch, error)],
  at the steps all share (the seeds' epochs of a step are the same)."""
  epochs = {step: epoch for curve in curves for step, epoch, _ in curve}
  steps, mean, low, high = plotting.mean_and_band(
      [[(step, error) for step, _, error in curve] for curve in curves])
  return [epochs[step] for step in steps], mean, low, high


def _seeds(count: int) -> str:
  return f"{count} seed{'s' * (count != 1)}"


def plot_curves(summary, path: pathlib.Path) -> None:
  """Writes `summary`'s curves (a cnnjax.sweep.summary.Summary) as a PNG at `path`."""
  figure, (train_axes, eval_axes) = pyplot.subplots(1, 2, figsize=(11, 4.2), sharey=True)
  panels = ((train_axes, "train_curve", "training top-1 error (mean over each log interval)"),
            (eval_axes, "eval_curve", "eval top-1 error"))
  for index, variant in enumerate(summary.sweep.variants):
    color = f"C{index % 10}"
    runs = summary.of(variant.name)
    for axes, curve_name, _ in panels:
      curves = [getattr(run, curve_name) for run in runs if getattr(run, curve_name)]
      if not curves:
        continue
      epochs, mean, low, high = _mean_and_band(curves)
      axes.plot(epochs, 100 * mean, color=color, label=f"{variant.name} ({_seeds(len(curves))})",
                **plotting.style(len(epochs)))
      if len(curves) > 1:
        axes.fill_between(epochs, 100 * low, 100 * high, color=color, alpha=0.2, linewidth=0)
  target = summary.sweep.target_train_error
  if target is not None:
    train_axes.axhline(100 * target, color="black", linestyle="--", linewidth=1,
                       label=f"target {100 * target:g}%")
  for axes, _, title in panels:
    axes.set_title(title, fontsize=10)
    axes.set_xlabel("epochs")
    axes.grid(alpha=0.3)
    plotting.readable_axes(axes, integer_x=False)
    if axes.has_data():
      axes.legend(fontsize=8)
  train_axes.set_ylabel("top-1 error (%)")
  figure.suptitle(f"{summary.spec}: mean over seeds, band from min to max", fontsize=10)
  figure.tight_layout()
  figure.savefig(path, dpi=110, format="png")
  pyplot.close(figure)
