"""What every cnnjax plot shares (`cnnjax plot`, a sweep's curves.png): seeds
as a mean and a band, smoothing, and axes a person can read. Plots are
matplotlib PNG files, Agg backend, never a window; this module imports
matplotlib, so the tools import it only once their flags are checked."""

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
from matplotlib import ticker  # noqa: E402


def mean_and_band(curves: list[list[tuple[float, float]]]):
  """x, mean, min and max over the seeds' curves [(x, value), ...], at the x
  every seed logged (with two or three seeds a standard deviation says little)."""
  shared = sorted(set.intersection(*({x for x, _ in curve} for curve in curves)))
  by_x = [dict(curve) for curve in curves]
  values = np.array([[curve[x] for x in shared] for curve in by_x]).reshape(len(curves), -1)
  return np.array(shared), values.mean(axis=0), values.min(axis=0), values.max(axis=0)


def smooth(values, weight: float):
  """TensorBoard's smoothing: an exponential moving average with `weight` in
  [0, 1) (0: none), debiased so the first points are not pulled to zero."""
  if not weight:
    return np.asarray(values, float)
  smoothed, average = [], 0.0
  for count, value in enumerate(values, start=1):
    average = weight * average + (1 - weight) * value
    smoothed.append(average / (1 - weight ** count))
  return np.array(smoothed)


def style(count: int, **line) -> dict:
  """Plot keywords for a curve of `count` points: a lone point gets a marker
  (a line of one point draws nothing), a few get markers on the line."""
  if count <= 12 and "marker" not in line:
    line = dict(line, marker="o", markersize=4 if count == 1 else 3)
  return line


def _plain(value: float, _=None) -> str:
  """A tick label as a number is written: 0.02, 1e-05, 150, never 2x10^-2."""
  return f"{value:g}"


def readable_axes(axes, integer_x: bool) -> None:
  """Plain tick labels on both axes (also on a log scale, whose labels
  matplotlib writes as powers of ten, and whose minor ticks it labels when a
  range spans less than a decade: "1.99x10^-2"); whole numbers on an axis of
  steps, which has no half steps."""
  for axis in (axes.xaxis, axes.yaxis):
    if axis.get_scale() == "log":
      axis.set_major_formatter(ticker.FuncFormatter(_plain))
      axis.set_minor_formatter(ticker.NullFormatter())
      low, high = sorted(axis.get_view_interval())
      if low > 0 and high / low < 10:  # No power of ten inside: label a few plain values.
        axis.set_major_locator(ticker.MaxNLocator(nbins=5))
    else:
      axis.set_major_formatter(ticker.FuncFormatter(_plain))
  if integer_x:
    axes.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
