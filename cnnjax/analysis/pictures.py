"""PNG files of what cnnjax.analysis.visualize computes: filter grids, feature
maps, occlusion and saliency maps beside their images. matplotlib with the Agg
backend (a file, never a window), as cnnjax plot."""

import pathlib

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
from matplotlib import pyplot  # noqa: E402

MAX_CHANNELS = 16  # Feature maps drawn per layer: the first ones.


def _shown(image: np.ndarray) -> dict:
  """imshow arguments for an image in [0, 1], [H, W, 1 or 3] or [H, W]."""
  if image.ndim == 3 and image.shape[-1] == 1:
    image = image[..., 0]
  return {"X": image, "cmap": "gray" if image.ndim == 2 else None, "vmin": 0, "vmax": 1}


def _save(figure, path: pathlib.Path) -> pathlib.Path:
  figure.savefig(path, dpi=100, bbox_inches="tight")
  pyplot.close(figure)
  return path


def draw_filters(grid: np.ndarray, title: str, path: pathlib.Path) -> pathlib.Path:
  """The grid of cnnjax.analysis.visualize.filter_grid, enlarged without smoothing."""
  height, width = grid.shape[:2]
  inches = min(12.0, max(3.0, width / 8))
  figure = pyplot.figure(figsize=(inches, max(1.5, inches * height / width) + 0.4))
  axes = figure.add_subplot()
  axes.imshow(interpolation="nearest", **_shown(grid))
  axes.set_title(title, fontsize=9)
  axes.axis("off")
  return _save(figure, path)


def draw_feature_maps(image: np.ndarray, maps: dict[str, np.ndarray], title: str,
                      path: pathlib.Path) -> pathlib.Path:
  """One row per layer: the image, then the layer's first channels on one
  colour scale per layer (its minimum to maximum over the channels drawn),
  with that scale as a colour bar; so channels of a layer compare by eye, and
  a 1x1 map shows its value instead of a square scaled to itself."""
  columns = 1 + min(MAX_CHANNELS, max(m.shape[-1] for m in maps.values()))
  figure, axes = pyplot.subplots(len(maps), columns + 1, squeeze=False,
                                 figsize=(1.1 * columns + 0.9, 1.2 * len(maps) + 0.5),
                                 gridspec_kw={"width_ratios": [1] * columns + [0.12]})
  for row, (name, layer) in enumerate(maps.items()):
    axes[row, 0].imshow(interpolation="nearest", **_shown(image))
    axes[row, 0].set_title(name, fontsize=7, loc="left")
    drawn = layer[..., :columns - 1]
    low, high = float(drawn.min()), float(drawn.max())
    for column in range(1, columns):
      channel = column - 1
      if channel < layer.shape[-1]:
        shown = axes[row, column].imshow(layer[..., channel], cmap="viridis", vmin=low,
                                          vmax=max(high, low + 1e-12), interpolation="nearest")
        axes[row, column].set_title(str(channel), fontsize=6)
    for ax in axes[row, :-1]:
      ax.axis("off")
    bar = figure.colorbar(shown, cax=axes[row, -1])
    bar.ax.tick_params(labelsize=6)
  figure.suptitle(f"{title}\neach row on its layer's scale: min to max over the channels drawn",
                  fontsize=9)
  return _save(figure, path)


def draw_heat_map(image: np.ndarray, heat: np.ndarray, title: str, label: str,
                  path: pathlib.Path, vmin: float | None = None,
                  vmax: float | None = None) -> pathlib.Path:
  """The image, the map [H', W'] (stretched over the image) with its colour
  bar, and the two overlaid."""
  figure, axes = pyplot.subplots(1, 3, figsize=(9, 3.2))
  height, width = image.shape[:2]
  extent = (-0.5, width - 0.5, height - 0.5, -0.5)
  axes[0].imshow(interpolation="nearest", **_shown(image))
  axes[0].set_title("image", fontsize=8)
  shown = axes[1].imshow(heat, cmap="inferno", vmin=vmin, vmax=vmax, extent=extent,
                         interpolation="nearest")
  axes[1].set_title(label, fontsize=8)
  figure.colorbar(shown, ax=axes[1], fraction=0.046, pad=0.04)
  axes[2].imshow(interpolation="nearest", **_shown(image))
  axes[2].imshow(heat, cmap="inferno", alpha=0.55, vmin=vmin, vmax=vmax, extent=extent,
                 interpolation="nearest")
  axes[2].set_title("overlaid", fontsize=8)
  for ax in axes:
    ax.axis("off")
  figure.suptitle(title, fontsize=9)
  return _save(figure, path)


def draw_probe(rows: list[dict], title: str, path: pathlib.Path) -> pathlib.Path:
  """cnnjax probe's figure: each layer's equivariance error against the shift
  (pad solid, wrap dashed), the output's consistency and accuracy against
  the shift, and one panel per other transform."""
  others = sorted({row["transform"] for row in rows} - {"shift"})
  shifted = [row for row in rows if row["transform"] == "shift"]
  panels = (2 if shifted else 0) + len(others)
  columns = min(3, panels)
  rows_of_panels = -(-panels // columns)
  figure, axes = pyplot.subplots(rows_of_panels, columns, squeeze=False,
                                 figsize=(4.6 * columns, 3.6 * rows_of_panels))
  axes = list(axes.ravel())
  for spare in axes[panels:]:
    spare.axis("off")
  styles = {"pad": "-", "wrap": "--"}
  if shifted:
    error_axes, output_axes = axes.pop(0), axes.pop(0)
    layers = list(dict.fromkeys(row["layer"] for row in shifted if row["layer"] != "output"))
    for index, layer in enumerate(layers):
      for mode, style in styles.items():
        points = [(row["magnitude"], row["value"]) for row in shifted
                  if row["layer"] == layer and row["mode"] == mode]
        if points:
          error_axes.plot(*zip(*points), style, marker="o", markersize=3, color=f"C{index % 10}",
                          label=f"{layer} ({mode})" if mode == "pad" else None)
    error_axes.set(xlabel="shift k (pixels)", ylabel="equivariance error",
                   title="layers (pad solid, wrap dashed)")
    error_axes.legend(fontsize=7)
    for index, metric in enumerate(("consistency", "accuracy")):
      for mode, style in styles.items():
        points = [(row["magnitude"], row["value"]) for row in shifted
                  if row["metric"] == metric and row["mode"] == mode]
        output_axes.plot(*zip(*points), style, marker="o", markersize=3, color=f"C{index}",
                         label=f"{metric} ({mode})")
    output_axes.set(xlabel="shift k (pixels)", ylim=(0, 1.02), title="output")
    output_axes.legend(fontsize=7)
  for transform, panel in zip(others, axes):
    for index, metric in enumerate(("consistency", "accuracy")):
      points = [(row["magnitude"], row["value"]) for row in rows
                if row["transform"] == transform and row["metric"] == metric]
      panel.plot(*zip(*points), marker="o", markersize=3, color=f"C{index}", label=metric)
    panel.set(xlabel=transform, ylim=(0, 1.02), title=f"output under {transform}")
    panel.legend(fontsize=7)
  figure.suptitle(title, fontsize=9)
  figure.tight_layout()
  return _save(figure, path)
