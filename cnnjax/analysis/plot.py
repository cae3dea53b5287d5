"""`curves.png` for `cnnjax plot`: loss, top-1 error and learning rate (or one
--metric) of runs, variants or sweeps on one figure, one colour per curve,
training solid and evaluation dashed; a variant's seeds as their mean with a
band from min to max, as a sweep's curves.png (cnnjax.plotting)."""

import pathlib

import matplotlib

matplotlib.use("Agg")
from matplotlib import lines, pyplot  # noqa: E402

from cnnjax import plotting  # noqa: E402
from cnnjax.analysis.curves import PANELS, Group  # noqa: E402


def _percent(key: str) -> bool:
  return key.endswith(("top1_error", "top5_error"))


def _panels(metric: str | None):
  if metric is None:
    return PANELS
  return ((metric + (" (%)" if _percent(metric) else ""), metric, None),)


def plot_curves(groups: list[Group], x: str, path: pathlib.Path, metric: str | None = None,
                log_y: bool = False, smooth: float = 0.0) -> pathlib.Path:
  """Writes the groups' curves as a PNG at `path` and returns `path`.
  `smooth` (TensorBoard's weight) smooths curves of more than a few points,
  drawn over their raw values, faint."""
  panels = _panels(metric)
  figure, axes_list = pyplot.subplots(1, len(panels), figsize=(5 * len(panels) + 1, 4.4),
                                      squeeze=False)
  axes_list = axes_list[0]
  smoothed = set()  # The panels where a curve was smoothed.
  for index, group in enumerate(groups):
    color = f"C{index % 10}"
    for axes, (_, train_key, eval_key) in zip(axes_list, panels):
      for key, line in ((train_key, dict(linewidth=1.2)), (eval_key, dict(linestyle="--"))):
        curves = [run[key] for run in group.runs if key and run.get(key)]
        if not curves:
          continue
        xs, mean, low, high = plotting.mean_and_band(curves)
        scale = 100 if _percent(key) else 1
        if key == "train/learning_rate":  # Constant between logged steps, as schedules are.
          line = dict(line, drawstyle="steps-post")
        if eval_key and key == eval_key:
          line = dict(line, marker="o", markersize=3)
        if smooth and len(xs) > 12:
          axes.plot(xs, scale * mean, color=color, alpha=0.25, linewidth=0.8)
          mean = plotting.smooth(mean, smooth)
          smoothed.add(axes)
        axes.plot(xs, scale * mean, color=color, **plotting.style(len(xs), **line))
        if len(curves) > 1:
          axes.fill_between(xs, scale * low, scale * high, color=color, alpha=0.2, linewidth=0)
  for axes, (title, train_key, _) in zip(axes_list, panels):
    axes.set_title(title + (f", smoothed {smooth:g}" if axes in smoothed else ""), fontsize=10)
    axes.set_xlabel(x)
    axes.grid(alpha=0.3)
    positive = axes.has_data() and all(
        value > 0 for group in groups for run in group.runs for _, value in run.get(train_key, []))
    if positive and (log_y or train_key == "train/learning_rate"):
      axes.set_yscale("log")
    plotting.readable_axes(axes, integer_x=x == "step")
  handles = [lines.Line2D([], [], color=f"C{index % 10}", label=group.label + (
      f" (mean of {len(group.runs)} seeds, band min to max)" if len(group.runs) > 1 else ""))
             for index, group in enumerate(groups)]
  if metric is None:
    handles += [lines.Line2D([], [], color="black", linewidth=1.2, label="training"),
                lines.Line2D([], [], color="black", linestyle="--", marker="o", markersize=3,
                             label="evaluation")]
  axes_list[0].legend(handles=handles, fontsize=8)
  figure.tight_layout()
  figure.savefig(path, dpi=110, format="png")
  pyplot.close(figure)
  return path
