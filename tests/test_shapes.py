"""The embedded `shapes` dataset: deterministic, class-balanced, drawn as
documented, and built offline by `open_builder` (a tiny version here)."""

import hashlib
import pathlib

import numpy as np
import pytest
import tensorflow_datasets as tfds
from helpers import tiny_config

from cnnjax.data import DATASETS, InputPipeline, open_builder, shapes, shapes_render
from cnnjax.training import train

CONFIGS = {"clean": shapes.CLEAN, "hard": shapes.HARD}


def _first(nuisances, split, stop):
  blocks = list(shapes.generate(nuisances, split, shapes.EXAMPLES_PER_CLASS[split], stop=stop))
  return np.concatenate([images for images, _ in blocks]), np.concatenate([l for _, l in blocks])


def test_generation_is_deterministic_and_a_prefix_does_not_depend_on_the_rest():
  images, labels = _first(shapes.HARD, "train", 300)
  again, again_labels = _first(shapes.HARD, "train", 300)
  np.testing.assert_array_equal(images, again)
  np.testing.assert_array_equal(labels, again_labels)
  longer, _ = _first(shapes.HARD, "train", 700)  # Two blocks.
  np.testing.assert_array_equal(longer[:300], images)
  test_images, _ = _first(shapes.HARD, "test", 300)
  assert not np.array_equal(test_images, images), "the test split has its own seed"


def test_splits_are_exactly_class_balanced_and_shuffled():
  for split, per_class in (("train", 5_000), ("test", 1_000)):
    labels = shapes.split_labels(split, shapes.EXAMPLES_PER_CLASS[split])
    assert len(labels) == 10 * per_class
    np.testing.assert_array_equal(np.bincount(labels), [per_class] * 10)
    assert len(set(labels[:20].tolist())) > 3, "classes are interleaved, not in runs"
  np.testing.assert_array_equal(shapes.split_labels("train", 5_000),
                                shapes.split_labels("train", 5_000))


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_images_are_rgb_uint8_and_use_the_range(name):
  images, labels = _first(CONFIGS[name], "test", 100)
  assert images.shape == (100, 32, 32, 3) and images.dtype == np.uint8
  assert labels.dtype == np.int64 and labels.min() >= 0 and labels.max() < 10
  assert images.min() < 30 and images.max() > 225
  assert all(image.std() > 5 for image in images), "no blank image"


def _canonical_coverage(labels, stroke=0.3):
  n = len(labels)
  return shapes_render.shape_coverage(
      np.asarray(labels), np.full((n, 2), 16.0, np.float32), np.full(n, 12.0, np.float32),
      np.zeros(n, np.float32), np.full(n, stroke, np.float32))


def test_every_class_draws_a_distinct_visible_shape():
  coverage = _canonical_coverage(np.arange(10))
  assert coverage.min() >= 0 and coverage.max() <= 1
  assert (coverage.sum(axis=(1, 2)) > 30).all(), "every shape covers some pixels"
  masks = coverage > 0.5
  for a in range(10):
    for b in range(a):
      assert (masks[a] != masks[b]).sum() >= 10, (shapes_render.CLASSES[a],
                                                    shapes_render.CLASSES[b])
  covered = dict(zip(shapes_render.CLASSES, coverage))
  centre = (16, 16)  # Pixel (15.5, 15.5) to (16.5, 16.5): around the shape's centre.
  for filled in ("disc", "square", "triangle", "cross", "star"):
    assert covered[filled][centre] > 0.5, filled
  for hollow in ("ring", "arc", "two_dots"):
    assert covered[hollow][centre] == 0, hollow
  # The arc is the ring less the 120 degrees facing -x; elsewhere they agree.
  left, right = (16, 16 - 8), (16, 16 + 8)  # (row, column): 8 pixels either side.
  assert covered["ring"][left] > 0.5 and covered["arc"][left] == 0
  np.testing.assert_array_equal(covered["ring"][:, 16:], covered["arc"][:, 16:])
  assert covered["arc"][right] > 0.5


def test_thicker_strokes_cover_more_and_filled_shapes_ignore_them():
  thin, thick = _canonical_coverage(np.arange(10), 0.2), _canonical_coverage(np.arange(10), 0.4)
  for label, name in enumerate(shapes_render.CLASSES):
    grew = thick[label].sum() > thin[label].sum() + 5
    assert grew == (name in ("ring", "cross", "bar", "L", "arc")), name


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_scenes_are_drawn_from_the_documented_ranges(name):
  nuisances = CONFIGS[name]
  labels = shapes.split_labels("train", 50)
  scenes = shapes_render.sample_scenes(labels, np.random.default_rng(0), nuisances)
  radius = scenes["radius"]
  assert nuisances.radius[0] <= radius.min() and radius.max() <= nuisances.radius[1]
  offset = np.abs(scenes["centre"] - 16)
  assert (offset <= np.minimum(nuisances.shift, 16 - radius)[:, None] + 1e-5).all()
  assert offset.max() > 0.5 * nuisances.shift, "the whole range is used"
  assert np.abs(scenes["angle"]).max() <= np.deg2rad(nuisances.rotation) + 1e-6
  assert nuisances.stroke[0] <= scenes["stroke"].min() <= scenes["stroke"].max() <= \
      nuisances.stroke[1]
  contrast = np.abs((scenes["colour"] - scenes["background"]) @ shapes_render.LUMINANCE)
  assert contrast.min() >= nuisances.contrast
  assert np.abs(scenes["background_far"] - scenes["background"]).max() <= \
      nuisances.background_ramp + 1e-6
  assert scenes["shading"].max() <= nuisances.shading and scenes["noise"].max() <= nuisances.noise
  assert scenes["clutter_count"].max() == nuisances.clutter
  assert abs(scenes["occluded"].mean() - nuisances.occlusion) < 0.1


def test_clean_images_are_the_shape_on_a_plain_background():
  """Clean has no clutter, ramp, occluder or noise: every pixel beyond the
  shape's reach (1.1 radii, stroke ends included, plus a pixel) is the background."""
  labels = shapes.split_labels("test", 20)
  rng = np.random.default_rng(0)
  scenes = shapes_render.sample_scenes(labels, rng, shapes.CLEAN)
  images = shapes_render.draw(scenes, rng)
  rows, columns = np.mgrid[0:32, 0:32] + 0.5
  for image, centre, radius, background in zip(
      images, scenes["centre"], scenes["radius"], scenes["background"]):
    outside = np.hypot(columns - centre[0], rows - centre[1]) > 1.1 * radius + 1
    np.testing.assert_array_equal(image[outside], np.round(background * 255).astype(np.uint8)
                                  [None].repeat(outside.sum(), 0))
    assert (image[~outside] != image[outside][0]).any(axis=-1).sum() > 20


def test_clean_and_hard_images_are_those_drawn_before_shapes_jpeg():
  """The renderer learnt frames of other sizes without changing a byte of
  the 32x32 datasets (hashes of their first 100 images before that change)."""
  first = {name: next(shapes.generate(CONFIGS[name], split, shapes.EXAMPLES_PER_CLASS[split],
                                      stop=100))[0] for name, split in (("clean", "test"),
                                                                        ("hard", "train"))}
  assert {name: hashlib.sha256(images.tobytes()).hexdigest() for name, images in first.items()} \
      == {"clean": "ca5b6a5a6ed71418897c8c4b49e208f44298478f578c3a89163a1e782d7391f5",
          "hard": "263669d60e195a2a294697590d03440620d0415fdcf2c03c609dbdfeb4419fe2"}


def _jpeg_images(split, per_class, stop=None):
  blocks = list(shapes.generate(shapes.HARD, split, per_class, stop=stop, sizes=shapes.JPEG_SIZES))
  return [image for images, _ in blocks for image in images], np.concatenate([l for _, l in blocks])


def test_jpeg_sizes_cover_the_documented_ranges():
  frame = shapes.draw_sizes(shapes.JPEG_SIZES, np.random.default_rng(0), 2000)
  shorter = np.minimum(frame.heights, frame.widths)
  ratio = frame.widths / frame.heights
  assert shorter.min() == 64 and shorter.max() == 128
  assert 0.74 < ratio.min() < 0.76 and 1.32 < ratio.max() < 1.34
  assert abs((frame.widths > frame.heights).mean() - 0.5) < 0.05


def test_jpeg_scenes_keep_the_shape_inside_images_of_any_size():
  labels = shapes.split_labels("validation", 20)
  frame = shapes.draw_sizes(shapes.JPEG_SIZES, np.random.default_rng(1), len(labels))
  scenes = shapes_render.sample_scenes(labels, np.random.default_rng(2), shapes.HARD, frame)
  extent = frame.extent  # Units: the shorter side is 32.
  np.testing.assert_allclose(extent.min(1), 32, rtol=1e-6)
  inside = (scenes["centre"] - scenes["radius"][:, None] >= 0) & (
      scenes["centre"] + scenes["radius"][:, None] <= extent)
  assert inside.all()
  images, drawn_labels = _jpeg_images("validation", 50, stop=20)
  assert len(images) == 20
  np.testing.assert_array_equal(drawn_labels, shapes.split_labels("validation", 50)[:20])
  assert len({image.shape for image in images}) > 10 and all(
      64 <= min(image.shape[:2]) <= 128 and image.shape[2] == 3 for image in images)
  assert all(image.std() > 5 for image in images), "no blank image"


@pytest.fixture
def tiny_shapes(monkeypatch, tmp_path):
  """`shapes` shrunk to 3 train and 2 test (jpeg: validation) images per class."""
  monkeypatch.setattr(shapes, "EXAMPLES_PER_CLASS", {"train": 3, "test": 2})
  monkeypatch.setattr(shapes, "JPEG_EXAMPLES_PER_CLASS", {"train": 3, "validation": 2})
  return str(tmp_path)


def test_shapes_jpeg_is_built_offline_as_jpeg_images_of_varying_size(tiny_shapes):
  spec = DATASETS["shapes/jpeg"]
  assert (spec.num_classes, spec.image_size, spec.channels) == (10, 224, 3)
  builder = open_builder(tiny_config(tiny_shapes, dataset__name="shapes/jpeg",
                                     dataset__image_size=224).dataset)
  assert builder.info.features["image"].shape == (None, None, 3)
  assert {split: info.num_examples for split, info in builder.info.splits.items()} == \
      {"train": 30, "validation": 20}
  encoded = builder.as_dataset(split="validation", decoders={"image": tfds.decode.SkipDecoding()})
  assert all(example["image"].numpy()[:2] == b"\xff\xd8" for example in encoded)  # JPEG.
  images, labels = _jpeg_images("validation", 2)
  drawn = {(image.shape, label): image for image, label in zip(images, labels)}
  stored = {(example["image"].shape, example["label"]): example["image"]
            for example in tfds.as_numpy(builder.as_dataset(split="validation"))}
  assert stored.keys() == drawn.keys()  # TFDS stores them in its own order.
  errors = [np.abs(stored[key].astype(float) - drawn[key]).mean() for key in drawn]
  # JPEG's loss, in grey levels: mostly hard's pixel noise (std up to 10);
  # another image of the split would differ by tens.
  assert 0 < max(errors) < 10, errors


def test_imagenet_recipes_run_on_shapes_jpeg(tiny_shapes):
  config = tiny_config(
      tiny_shapes, dataset__name="shapes/jpeg", dataset__eval_split="validation",
      dataset__image_size=32, dataset__normalization="subtract_pixel_mean",
      dataset__train_preprocess="resize_shorter(36, 64) | random_crop(32) | flip | "
                                "pca_lighting(0.1)",
      dataset__eval_preprocess="resize_shorter(36) | ten_crop(32)")
  pipeline = InputPipeline(open_builder(config.dataset), config.dataset, seed=0, process_index=0,
                           process_count=1, local_devices=4)
  batch = next(pipeline.train_batches(8))
  assert batch["image"].shape == (4, 2, 32, 32, 3) and np.isfinite(batch["image"]).all()
  assert next(pipeline.eval_batches(8))["image"].shape == (4, 2, 10, 32, 32, 3)


def test_open_builder_prepares_either_config_offline(tiny_shapes):
  assert "shapes" in tfds.list_builders()
  for name, nuisances in CONFIGS.items():
    spec = DATASETS[f"shapes/{name}"]
    assert (spec.num_classes, spec.image_size, spec.channels) == (10, 32, 3)
    builder = open_builder(tiny_config(tiny_shapes, dataset__name=f"shapes/{name}").dataset)
    assert builder.builder_config.name == name
    assert builder.info.splits["train"].num_examples == 30
    assert builder.info.splits["test"].num_examples == 20
    records = tfds.as_numpy(builder.as_dataset(split="test", batch_size=-1))
    images, labels = _first(nuisances, "test", 20)  # What the generator draws, in order.
    drawn = {image.tobytes(): label for image, label in zip(images, labels)}
    assert {image.tobytes(): label for image, label in zip(records["image"],
                                                           records["label"])} == drawn


def test_two_builds_write_identical_records(tiny_shapes, tmp_path):
  files = []
  for data_dir in (tmp_path / "first", tmp_path / "second"):
    builder = open_builder(tiny_config(str(data_dir), dataset__name="shapes/hard").dataset)
    files.append(sorted(pathlib.Path(builder.data_dir).glob("*.tfrecord*")))
  assert len(files[0]) == 2
  for first, second in zip(*files):
    assert first.name == second.name and first.read_bytes() == second.read_bytes()


def test_a_run_on_shapes_hard_plans_and_feeds_rgb_batches(tiny_shapes):
  config = tiny_config(tiny_shapes, dataset__name="shapes/hard", model__name="lenet5_modern",
                       batch_size=8)
  plan = train.plan(config)
  assert plan.image_shape == (32, 32, 3) and plan.steps_per_epoch == 3
  batch = next(plan.pipeline.train_batches(8))
  assert batch["image"].shape == (4, 2, 32, 32, 3)
  assert abs(batch["image"].mean()) < 1 and 0.3 < batch["image"].std() < 3
