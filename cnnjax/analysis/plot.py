"""`curves.png` for `cnnjax plot`: loss, top-1 error and learning rate of
several runs on one figure, one colour per workdir, training solid and
evaluation dashed with markers. matplotlib with the Agg backend, as
cnnjax.sweep.plot: a PNG file, never a window."""

import pathlib

import matplotlib

matplotlib.use("Agg")
from matplotlib import lines, pyplot  # noqa: E402

from cnnjax.analysis.curves import PANELS, Run  # noqa: E402

PERCENT_KEYS = ("train/top1_error", "eval/top1_error")


def plot_curves(runs: list[Run], x: str, path: pathlib.Path) -> pathlib.Path:
  """Writes the runs' curves as a PNG at `path` and returns `path`."""
  figure, panels = pyplot.subplots(1, len(PANELS), figsize=(15, 4.4))
  for index, run in enumerate(runs):
    color = f"C{index % 10}"
    for axes, (_, train_key, eval_key) in zip(panels, PANELS):
      for key, style in ((train_key, dict(linewidth=1.2)),
                         (eval_key, dict(linestyle="--", marker="o", markersize=3))):
        points = run.series.get(key) if key else None
        if not points:
          continue
        scale = 100 if key in PERCENT_KEYS else 1
        if key == "train/learning_rate":  # Constant between logged steps, as schedules are.
          style = dict(style, drawstyle="steps-post")
        axes.plot([p[0] for p in points], [scale * p[1] for p in points], color=color, **style)
  for axes, (title, train_key, _) in zip(panels, PANELS):
    axes.set_title(title, fontsize=10)
    axes.set_xlabel(x)
    axes.grid(alpha=0.3)
    if train_key == "train/learning_rate" and axes.has_data() and all(
        value > 0 for run in runs for _, value in run.series.get(train_key, [])):
      axes.set_yscale("log")
  handles = [lines.Line2D([], [], color=f"C{index % 10}", label=run.label)
             for index, run in enumerate(runs)]
  handles += [lines.Line2D([], [], color="black", linewidth=1.2, label="training"),
              lines.Line2D([], [], color="black", linestyle="--", marker="o", markersize=3,
                           label="evaluation")]
  panels[0].legend(handles=handles, fontsize=8)
  figure.tight_layout()
  figure.savefig(path, dpi=110, format="png")
  pyplot.close(figure)
  return path
