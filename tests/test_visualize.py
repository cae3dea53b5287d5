"""Filters, feature maps, dead and correlated channels, occlusion and saliency
(cnnjax.analysis.visualize) against answers known by construction, and the
four commands on a trained digits run, their pictures read back."""

import json

import jax
import jax.numpy as jnp
import matplotlib.image
import numpy as np
import pytest

from cnnjax import cli, models
from cnnjax.analysis import run as run_lib
from cnnjax.analysis import visualize


def test_filter_grid_puts_each_kernel_in_its_towers_block_scaled_around_grey():
  kernel = np.arange(2 * 2 * 3 * 4, dtype=np.float32).reshape(2, 2, 3, 4) - 20
  grid = visualize.filter_grid(visualize.Filters("conv1", kernel, towers=2), columns=2)
  # Two towers of one row of two 2x2 kernels each, a white gap of 1 between
  # kernels and of 2 more between the towers.
  assert grid.shape == (2 + 1 + 2 + 2, 2 + 1 + 2, 3)
  scale = np.abs(kernel[..., 2]).max()
  np.testing.assert_allclose(grid[5:7, 0:2], 0.5 + 0.5 * kernel[..., 2] / scale)  # Tower 2, first.
  np.testing.assert_allclose(grid[0:2, 3:5], 0.5 + 0.5 * kernel[..., 1] / np.abs(
      kernel[..., 1]).max())
  assert (grid[2:5] == 1).all() and (grid[:, 2] == 1).all()  # The gaps.
  assert 0 <= grid.min() and grid.max() <= 1


@pytest.mark.parametrize("name, expected", [
    ("lenet5", "C1/kernel"), ("alexnet", "conv1/conv/kernel"),
    ("densenet_bc100", "conv_init/kernel"),  # Its block1 sorts before conv_init.
    ("resnet20", "conv_init/kernel")])
def test_the_first_convolution_is_the_one_reading_the_image(name, expected):
  model = models.create_model(name, num_classes=10)
  size, channels = models.NATIVE_INPUT_SIZE[name], models.NATIVE_INPUT_CHANNELS[name]
  params = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, size, size,
                                                                           channels)),
                                             train=False))["params"]
  assert visualize.first_kernel(params, channels)[0] == expected


def test_channel_report_counts_dead_and_constant_channels_and_their_correlation():
  rng = np.random.default_rng(0)
  base = rng.normal(size=(4, 5, 5))
  maps = np.stack([np.full((4, 5, 5), -1.0),  # Dead and constant.
                   np.full((4, 5, 5), 3.0),  # Constant, not dead.
                   base, 1 - 2 * base,  # Perfectly (anti)correlated: |r| = 1.
                   -np.abs(base)], axis=-1)  # Never above zero: dead, not constant.
  report = visualize.channel_report("layer", maps[..., :4])
  assert (report.channels, report.dead, report.constant) == (4, 1, 2)
  assert report.mean_abs_correlation == pytest.approx(1.0)
  assert visualize.channel_report("layer", maps).dead == 2
  # Orthogonal patterns: r = 0 exactly.
  a = np.array([1.0, -1, 1, -1]).reshape(1, 2, 2)
  b = np.array([1.0, 1, -1, -1]).reshape(1, 2, 2)
  assert visualize.channel_report("x", np.stack([a, b], -1)).mean_abs_correlation == pytest.approx(
      0.0, abs=1e-12)


def test_feature_maps_share_their_layers_scale_with_a_colour_bar(tmp_path, monkeypatch):
  """1x1 maps scaled each on its own were identical dark squares: on the
  layer's scale their values show, and a colour bar says what they are."""
  from cnnjax.analysis import pictures

  figures = []
  monkeypatch.setattr(pictures.pyplot, "close", figures.append)
  maps = {"conv": np.arange(2 * 2 * 3, dtype=np.float32).reshape(2, 2, 3),
          "pool": np.array([[[1.0, -2.0, 5.0]]], np.float32)}
  pictures.draw_feature_maps(np.zeros((4, 4, 1)), maps, "title", tmp_path / "maps.png")
  (figure,) = figures
  rows = {}
  for axes in figure.axes:
    for image in axes.get_images()[:1]:
      if image.get_cmap().name == "viridis":
        rows.setdefault(axes.get_subplotspec().rowspan.start, set()).add(image.get_clim())
  assert rows == {0: {(0.0, 11.0)}, 1: {(-2.0, 5.0)}}
  assert len(figure.axes) == 2 * (1 + 3 + 1)  # Image, 3 channels, colour bar per row.
  assert "each row on its layer's scale" in figure._suptitle.get_text()


def test_occlusion_positions_cover_every_pixel():
  assert visualize.occlusion_positions(10, 4, 3) == [0, 3, 6]
  assert visualize.occlusion_positions(10, 4, 4) == [0, 4, 6]
  assert visualize.occlusion_positions(8, 8, 1) == [0]
  with pytest.raises(visualize.UserError, match="--patch 9 must be between 1 and the image"):
    visualize.occlusion_positions(8, 9, 1)


def test_occlusion_lowers_the_class_probability_exactly_where_the_evidence_is_covered():
  """Class 0's logit is 10 x the mean of pixels [2:4, 2:4], class 1's is 0."""
  def apply(images):
    evidence = 10 * images[:, 2:4, 2:4, 0].mean(axis=(1, 2))
    return jnp.stack([evidence, jnp.zeros_like(evidence)], -1)

  image = np.ones((8, 8, 1), np.float32)
  probabilities = visualize.occlusion_map(apply, image, 0, patch=2, stride=1, chunk=16)
  assert probabilities.shape == (7, 7)
  expected = np.zeros((7, 7))
  for top in range(7):
    for left in range(7):
      covered = sum(top <= r < top + 2 and left <= c < left + 2 for r in (2, 3) for c in (2, 3))
      expected[top, left] = 1 / (1 + np.exp(-10 * (1 - covered / 4)))
  np.testing.assert_allclose(probabilities, expected, rtol=1e-5)
  assert probabilities[2, 2] == pytest.approx(0.5)  # The evidence fully covered.
  heat = visualize.coverage_map(probabilities, (8, 8), 2, 1)
  assert heat.shape == (8, 8) and heat[2:4, 2:4].max() < heat[6:, 6:].min()


def test_saliency_of_a_linear_model_is_its_weights():
  weights = np.random.default_rng(0).normal(size=(4 * 4 * 3, 5)).astype(np.float32)
  apply = lambda images: images.reshape(len(images), -1) @ weights
  image = np.random.default_rng(1).normal(size=(4, 4, 3)).astype(np.float32)
  np.testing.assert_allclose(visualize.saliency_map(apply, image, 3),
                             np.abs(weights[:, 3].reshape(4, 4, 3)).max(-1), rtol=1e-6)


@pytest.fixture
def trained(learned_digits):
  """The digits run that tests/test_learning.py shows learns (60 steps)."""
  return learned_digits[0]


def _pixels(path) -> np.ndarray:
  """The PNG at `path` as 8-bit RGB (matplotlib reads PNGs as floats in [0, 1])."""
  assert path.read_bytes()[:4] == b"\x89PNG"
  return np.rint(matplotlib.image.imread(path)[..., :3] * 255).astype(np.uint8)


def _shows(path) -> bool:
  """Whether the PNG at `path` shows a picture: many colours, not a blank page."""
  return len(np.unique(_pixels(path).reshape(-1, 3), axis=0)) > 50


def test_the_four_commands_write_their_pictures(trained, tmp_path, capsys):
  out = tmp_path / "pictures"
  common = ["--workdir", str(trained), "--out", str(out)]
  assert cli.main(["filters", *common]) == 0
  assert "wrote" in capsys.readouterr().out
  # The PNG holds the trained C1 kernels: each weight's grey (matplotlib's
  # `gray` map: 256 levels) is one of its colours, and its kernels are grey.
  grid = visualize.filter_grid(visualize.first_convolution(
      run_lib.load(trained).variables["params"], 1))
  pixels = _pixels(out / "filters.png")
  greys = pixels[(pixels[..., 0] == pixels[..., 1]) & (pixels[..., 1] == pixels[..., 2])][:, 0]
  levels = np.unique(greys.astype(int))
  expected = np.minimum(np.floor(grid.ravel() * 256), 255)
  assert np.abs(expected[:, None] - levels[None, :]).min(axis=1).max() <= 1
  assert len(np.unique(expected)) > 50  # Many distinct weights: a match means something.
  assert cli.main(["activations", *common, "--images", "1", "--first", "5",
                   "--probe-images", "32"]) == 0
  printed = capsys.readouterr().out
  assert _shows(out / "activations_5.png") and "C3" in printed
  assert ("left out by default, their maps being single values: C5 (1x1); --layers names them"
          in printed)
  report = json.loads((out / "channels.json").read_text())
  assert report["images"] == 32 and report["step"] == 60
  assert [(row["layer"], row["channels"]) for row in report["layers"]] == [
      ("C1", 6), ("S2", 6), ("C3", 16), ("S4", 16)]
  assert all(0 <= row["mean_abs_correlation"] <= 1 for row in report["layers"])
  assert cli.main(["occlusion", *common, "--images", "1", "--patch", "8", "--stride", "4"]) == 0
  assert "unoccluded" in capsys.readouterr().out and _shows(out / "occlusion_0.png")
  assert cli.main(["saliency", *common, "--images", "1", "--class", "predicted"]) == 0
  assert "predicted" in capsys.readouterr().out and _shows(out / "saliency_0.png")
  assert not (trained / "eval").exists()  # Nothing written into the workdir.


@pytest.mark.parametrize("argv, message", [
    (["activations", "--layers", "C9"], "--layers: no feature map named 'C9'; this network has C1"),
    (["occlusion", "--patch", "40"], "--patch 40 must be between 1 and the image size 32"),
    (["saliency", "--images", "0"], "--images must be at least 1, got 0"),
    (["filters", "--step", "4"], "no checkpoint of step 4"),
    (["activations", "--first", "299", "--images", "2"], "ask for at most 1 from 299"),
    (["activations", "--images", "1", "--probe-images", "400"],
     "--probe-images 400: the eval split 'test' has 300 images"),
])
def test_mistakes_are_one_line(trained, tmp_path, capsys, argv, message):
  command, *flags = argv
  assert cli.main([command, "--workdir", str(trained), "--out", str(tmp_path), *flags]) == 2
  error = capsys.readouterr().err.strip()
  assert len(error.splitlines()) == 1 and message in error, error


def test_out_inside_the_workdir_is_refused(trained, capsys):
  assert cli.main(["filters", "--workdir", str(trained), "--out", str(trained / "pics")]) == 2
  assert "is inside the workdir" in capsys.readouterr().err
  assert not (trained / "pics").exists()


def test_probe_measures_shifts_on_the_trained_run(trained, tmp_path, capsys):
  out = tmp_path / "probe"
  assert cli.main(["probe", "--workdir", str(trained), "--out", str(out), "--images", "16",
                   "--max-shift", "2", "--mode", "pad", "--format", "json"]) == 0
  rows = json.loads(capsys.readouterr().out.split("wrote")[0])
  assert json.loads((out / "probe.json").read_text())["rows"] == rows
  assert _shows(out / "probe.png")
  error = {(row["magnitude"], row["layer"]): row["value"] for row in rows
           if row["metric"] == "equivariance_error"}
  assert error[1, "C1"] < 1e-5 and error[2, "S2"] < 1e-5 and error[1, "S2"] > 0.01
  consistency = [row["value"] for row in rows if row["metric"] == "consistency"]
  assert len(consistency) == 3 and consistency[0] == 1.0


@pytest.mark.parametrize("flags, message", [
    (["--transforms", "colour"], "--transforms colour needs colour images"),
    (["--transforms", "shear"], "--transforms: no transform 'shear'"),
    (["--max-shift", "40"], "--max-shift 40 must be smaller than the image size 32"),
])
def test_probe_mistakes_are_one_line(trained, tmp_path, capsys, flags, message):
  assert cli.main(["probe", "--workdir", str(trained), "--out", str(tmp_path), *flags]) == 2
  error = capsys.readouterr().err.strip()
  assert len(error.splitlines()) == 1 and message in error, error
