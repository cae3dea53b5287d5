"""The augmentation ops and recipe strings: each op eagerly and inside tf.data
on tiny images (crop geometry, scale-jitter range, PCA lighting statistics,
photometric ranges, stateless determinism), recipe parsing and its errors,
the pipeline's checks, and the per-pixel mean image."""

import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from helpers import ROOT, tiny_config

from cnnjax.data import InputPipeline, open_builder, pixel_mean, preprocess, recipes
from cnnjax.errors import UserError

RNG = np.random.default_rng(0)
PHOTO = RNG.integers(0, 256, (10, 14, 3), np.uint8)  # A tiny landscape RGB image.


def _example(image: np.ndarray) -> dict:
  return {"image": tf.io.encode_png(image), "label": tf.constant(0)}


def run(text: str, image: np.ndarray = PHOTO, seed=(1, 2), size: int = 8) -> np.ndarray:
  """Recipe `text` on `image`, eagerly, pixels in [0, 1]."""
  recipe = preprocess.recipe(recipes.parse(text, size, "train_preprocess"), image.shape[-1])
  return recipe(_example(image), tf.constant(seed, tf.int64))["image"].numpy()


def run_many(text: str, seeds: int, image: np.ndarray = PHOTO, size: int = 8) -> np.ndarray:
  """Recipe `text` inside tf.data, on `image` under seeds (7, 0) .. (7, seeds - 1)."""
  recipe = preprocess.recipe(recipes.parse(text, size, "train_preprocess"), image.shape[-1])
  example = _example(image)
  ds = tf.data.Dataset.range(seeds).map(
      lambda i: recipe(example, tf.stack([tf.constant(7, tf.int64), i]))["image"])
  return np.stack(list(ds.as_numpy_iterator()))


def as_uint8(image: np.ndarray) -> np.ndarray:
  return np.rint(image * 255).astype(np.uint8)


# Recipe strings.

def test_registered_names_are_recipe_strings_with_size_defaults():
  written = {name: recipes.canonical(recipes.parse(name, 32, "train_preprocess"))
             for name in recipes.NAMED}
  assert written == {
      "resize": "resize(32)", "pad": "pad(32)",
      "pad_crop_flip": "pad(40) | random_crop(32) | flip",
      "random_crop_flip": "random_crop(32) | flip",
      "random_area_crop_flip": "inception_crop(32) | flip",
      "center_crop": "center_crop(32)",
      "resize_center_crop": "resize_shorter(37) | center_crop(32)",
      "ten_crop": "ten_crop(32)"}
  ops = recipes.parse(" resize_shorter(256, 480)|random_crop(224) | flip|pca_lighting ", 224,
                      "train_preprocess")
  assert recipes.canonical(ops) == ("resize_shorter(256, 480) | random_crop(224) | flip | "
                                    "pca_lighting(0.1)")


@pytest.mark.parametrize("text, message", [
    ("warp", "unknown train_preprocess 'warp'; choose one of: center_crop, pad"),
    ("resize | warp(3)", "config.dataset.train_preprocess='resize | warp(3)': unknown op 'warp'"),
    ("resize_shorter", "resize_shorter takes resize_shorter(S) or (S_min, S_max)"),
    ("resize_shorter(1, 2, 3)", "resize_shorter takes"),
    ("flip(2)", "flip takes flip, got 'flip(2)'"),
    ("random_crop(2.5)", "random_crop(C): '2.5' is not a whole number of pixels"),
    ("resize(0)", "resize(S): '0' must be positive"),
    ("pca_lighting(-0.1)", "pca_lighting(STD): '-0.1' must be 0 or more"),
    ("pca_lighting(x)", "pca_lighting(STD): 'x' is not a number"),
    ("resize_shorter(480, 256)", "needs S_min <= S_max"),
    ("ten_crop | flip", "ten_crop gives several views and must be the last op"),
    ("", "is empty"),
])
def test_recipe_mistakes_are_one_line_user_errors_naming_the_key(text, message):
  with pytest.raises(UserError) as error:
    recipes.parse(text, 32, "train_preprocess")
  assert message in str(error.value) and "config.dataset.train_preprocess" in str(error.value)
  assert len(str(error.value).splitlines()) == 1


def test_config_validation_parses_recipes_without_tensorflow():
  code = ("import sys\nfrom cnnjax import config\nfrom cnnjax.errors import UserError\n"
          "c = config.load(sys.argv[1])\nc.dataset.eval_preprocess = 'resize | warp'\n"
          "try:\n  config.validate(c)\nexcept UserError as e:\n  print(e)\n"
          "print('tensorflow' in sys.modules)\n")
  out = subprocess.run([sys.executable, "-c", code, str(ROOT / "experiments/lenet5_digits.py")],
                       cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": ""}, capture_output=True,
                       text=True, timeout=120).stdout.splitlines()
  assert "config.dataset.eval_preprocess='resize | warp': unknown op 'warp'" in out[0]
  assert out[1] == "False"


# Geometry of each op.

def test_resize_shorter_keeps_the_aspect_ratio_truncating_the_longer_side_as_torchvision():
  assert run("resize_shorter(6)").shape == (6, 8, 3)  # 14 * 6 / 10 = 8.4.
  assert run("resize_shorter(6)", PHOTO.transpose(1, 0, 2)).shape == (8, 6, 3)
  assert run("resize_shorter(7)").shape == (7, 9, 3)  # 9.8, truncated.
  assert run("resize(5)").shape == (5, 5, 3)


def test_scale_jitter_draws_every_shorter_side_in_its_range():
  shapes = [run_many("resize_shorter(6, 9)", 1, seed_image, size=6)[0].shape[:2]
            for seed_image in (PHOTO, PHOTO.transpose(1, 0, 2))]
  assert shapes[0][0] < shapes[0][1] and shapes[1][0] > shapes[1][1]
  recipe = preprocess.recipe(recipes.parse("resize_shorter(6, 9)", 6, "k"), 3)
  example = _example(PHOTO)
  sides = np.array(list(tf.data.Dataset.range(200).map(
      lambda i: tf.shape(recipe(example, tf.stack([tf.constant(3, tf.int64), i]))["image"])[:2])
      .as_numpy_iterator()))
  assert set(sides[:, 0]) == {6, 7, 8, 9}  # Both ends reached, nothing outside.
  np.testing.assert_array_equal(sides[:, 1], sides[:, 0] * 14 // 10)
  counts = np.bincount(sides[:, 0])[6:]
  assert counts.min() > 30, counts  # About uniform: 50 each expected.


def _jpeg(image: np.ndarray) -> bytes:
  return tf.io.encode_jpeg(tf.constant(image), quality=90).numpy()


@pytest.mark.parametrize("crop", ["random_crop", "center_crop"])
@pytest.mark.parametrize("jitter", [(20, 37), (9, None), (12, 12), (80, 120)])
def test_resize_then_crop_computes_only_the_crop_and_gives_the_same_pixels(jitter, crop):
  """Decoding, resizing and cropping in one, with a part of a JPEG decoded: as
  decoding all of it, resizing all of it and cropping, to rounding."""
  smallest, largest = jitter
  random = crop == "random_crop"
  rng = np.random.default_rng(0)
  for height, width in ((30, 41), (41, 30), (16, 16), (150, 97), (97, 150)):
    smooth = tf.image.resize(rng.uniform(0, 255, (height // 4, width // 4, 3)), (height, width))
    pixels = np.clip(smooth.numpy() + rng.normal(0, 8, (height, width, 3)), 0, 255).astype(np.uint8)
    for encoded in (_jpeg(pixels), tf.io.encode_png(pixels).numpy()):
      for draw in range(4 if random or largest else 1):
        resize_seed, crop_seed = tf.constant([draw, 1], tf.int64), tf.constant([draw, 2], tf.int64)
        args = (smallest,) if largest is None else (smallest, largest)
        decoded = preprocess.decode({"image": tf.constant(encoded)}, 3)["image"]
        resized = preprocess.resize_shorter(decoded, resize_seed, *args)
        expected = (preprocess.random_crop(resized, crop_seed, 8) if random
                    else preprocess.center_crop(resized, 8))
        fused = preprocess.decode_resize_shorter_then_crop(
            tf.constant(encoded), 3, resize_seed, smallest, largest, 8,
            crop_seed if random else None)
        np.testing.assert_allclose(fused, expected, rtol=0, atol=1e-4)
  # The recipe takes this path and draws as the ops did.
  ops = recipes.parse(f"resize_shorter({smallest}) | {crop}(8) | flip", 8, "k")
  example, seed = {"image": tf.constant(_jpeg(PHOTO)), "label": tf.constant(0)}, tf.constant([5, 3], tf.int64)
  step_by_step, rank = preprocess.decode(example, 3)["image"], 0
  for op in ops:
    step_by_step = preprocess.OPS[op.name](
        step_by_step, tf.random.experimental.stateless_fold_in(seed, rank), *op.args)
    rank += recipes.OPS[op.name].random
  np.testing.assert_allclose(preprocess.recipe(ops, 3)(example, seed)["image"], step_by_step,
                             rtol=0, atol=1e-4)


def test_inception_crop_decodes_only_its_box_and_gives_the_same_pixels():
  """Decoding the box and a margin of a JPEG, then cropping and resizing: the
  very pixels of decoding all of it first; the recipe takes this path."""
  rng = np.random.default_rng(1)
  for height, width in ((30, 41), (150, 97), (97, 150), (64, 64)):
    smooth = tf.image.resize(rng.uniform(0, 255, (height // 4, width // 4, 3)), (height, width))
    pixels = np.clip(smooth.numpy() + rng.normal(0, 8, (height, width, 3)), 0, 255).astype(np.uint8)
    for encoded in (_jpeg(pixels), tf.io.encode_png(pixels).numpy()):
      for draw in range(6):
        seed = tf.constant([draw, 7], tf.int64)
        decoded = preprocess.decode({"image": tf.constant(encoded)}, 3)["image"]
        np.testing.assert_array_equal(
            preprocess.decode_inception_crop(tf.constant(encoded), 3, seed, 12),
            preprocess.inception_crop(decoded, seed, 12))
  ops = recipes.parse("inception_crop(10) | flip", 10, "k")
  example, seed = {"image": tf.constant(_jpeg(PHOTO)), "label": tf.constant(0)}, tf.constant([5, 3], tf.int64)
  fold = lambda rank: tf.random.experimental.stateless_fold_in(seed, rank)
  step_by_step = preprocess.flip(preprocess.inception_crop(
      preprocess.decode(example, 3)["image"], fold(0), 10), fold(1))
  np.testing.assert_array_equal(preprocess.recipe(ops, 3)(example, seed)["image"], step_by_step)


def test_center_crop_rounds_its_offsets_half_to_even_as_torchvision_and_pads_small_images():
  image = RNG.integers(0, 256, (9, 12, 3), np.uint8)
  # Spare rows 5 → round(2.5) = 2; spare columns 8 → 4.
  np.testing.assert_array_equal(as_uint8(run("center_crop(4)", image)), image[2:6, 4:8])
  # Spare 3 → round(1.5) = 2.
  np.testing.assert_array_equal(as_uint8(run("center_crop(6)", image)), image[2:8, 3:9])
  square = image[:, :9].copy()
  np.testing.assert_array_equal(as_uint8(run("center_crop(9)", square)), square)  # The whole.
  padded = as_uint8(run("center_crop(11)", image))  # Rows padded 1 each side; columns cut.
  np.testing.assert_array_equal(padded[1:10], image[:, 0:11])
  assert not padded[0].any() and not padded[10].any()


def test_pad_centres_the_image_on_black():
  out = as_uint8(run("pad(14)", PHOTO))
  np.testing.assert_array_equal(out[2:12], PHOTO)
  assert not out[:2].any() and not out[12:].any()


def test_random_crop_and_flip_reach_every_position_eagerly_and_in_tf_data():
  image = RNG.integers(0, 256, (5, 6, 3), np.uint8)
  crops = {image[top:top + 4, left:left + 4][:, ::step].tobytes()
           for top in range(2) for left in range(3) for step in (1, -1)}
  seen = {as_uint8(view).tobytes() for view in run_many("random_crop(4) | flip", 150, image)}
  assert seen == crops
  np.testing.assert_array_equal(run_many("random_crop(4) | flip", 4, image)[3],
                                run("random_crop(4) | flip", image, seed=(7, 3)))


def test_inception_crop_boxes_cover_8_to_100_percent_at_aspect_3_4_to_4_3():
  boxes = np.array([np.concatenate([b.numpy() for b in preprocess.inception_box(
      tf.constant([60, 80, 3]), tf.constant([5, i], tf.int64))]) for i in range(150)])
  top, left, height, width = boxes[:, 0], boxes[:, 1], boxes[:, 3], boxes[:, 4]
  area = height * width / (60 * 80)
  aspect = width / height
  whole = area == 1
  assert (top + height <= 60).all() and (left + width <= 80).all()
  assert (area[~whole] >= 0.08 - 0.01).all() and area[~whole].min() < 0.2
  assert ((aspect[~whole] > 3 / 4 - 0.05) & (aspect[~whole] < 4 / 3 + 0.05)).all()
  assert run("inception_crop(5)").shape == (5, 5, 3)


# Colour.

def test_pca_lighting_adds_colours_with_alexnets_covariance():
  grey = np.full((2, 2, 3), 128, np.uint8)
  draws = 4000
  added = run_many("pca_lighting(0.1)", draws, grey)[:, 0, 0] - 128 / 255
  eigvec, eigval = preprocess.PCA_EIGENVECTORS, preprocess.PCA_EIGENVALUES
  expected = eigvec @ np.diag((0.1 * eigval) ** 2) @ eigvec.T
  np.testing.assert_allclose(np.cov(added.T), expected, atol=0.06 * expected.max())
  assert np.abs(added.mean(0)).max() < 4 * 0.1 * eigval[0] / np.sqrt(draws)
  # Mostly along the first eigenvector (brightness): its variance dominates.
  along = added @ eigvec
  assert along[:, 0].std() == pytest.approx(0.1 * eigval[0], rel=0.05)
  assert along[:, 2].std() == pytest.approx(0.1 * eigval[2], rel=0.05)


@pytest.mark.parametrize("shape", [(5, 7, 3), (2, 4, 6, 3), (6, 5, 1)])
def test_per_channel_arithmetic_is_broadcasting_bit_for_bit_at_any_known_or_unknown_shape(shape):
  image = RNG.uniform(-1, 2, shape).astype(np.float32)
  mean, std = tuple(RNG.uniform(0, 1, shape[-1])), tuple(RNG.uniform(0.1, 1, shape[-1]))
  expected = (image - np.float32(mean)) / np.float32(std)
  np.testing.assert_array_equal(preprocess.standardized(tf.constant(image), mean, std), expected)
  unknown = tf.function(lambda x: preprocess.standardized(x, mean, std),
                        input_signature=[tf.TensorSpec([None] * (len(shape) - 1) + [shape[-1]])])
  assert unknown.get_concrete_function().structured_outputs.shape[-1] == shape[-1]
  np.testing.assert_array_equal(unknown(image), expected)


def test_photometric_brightness_range_on_grey_and_every_output_in_range():
  # On grey, saturation, hue and contrast change nothing: what is left is the
  # brightness delta, uniform in +-32/255.
  grey = np.full((2, 2, 3), 128, np.uint8)
  delta = run_many("photometric", 400, grey)[:, 0, 0] - 128 / 255
  assert np.allclose(delta, delta[:, :1], atol=1e-5)
  assert np.abs(delta).max() <= 32 / 255 + 1e-5
  assert delta.min() < -28 / 255 and delta.max() > 28 / 255
  distorted = run_many("photometric", 100)
  assert distorted.min() >= 0 and distorted.max() <= 1
  saturation = distorted.max(-1) - distorted.min(-1)
  original = (PHOTO.max(-1) - PHOTO.min(-1)) / 255
  ratio = saturation.mean((1, 2)) / original.mean()
  assert ratio.min() < 0.8 and ratio.max() > 1.15  # Saturation (and contrast) both ways.


@pytest.mark.parametrize("text", ["resize_shorter(6, 9) | random_crop(6)", "flip",
                                  "pca_lighting(0.1)", "inception_crop(6)", "photometric"])
def test_random_ops_repeat_under_a_seed_and_change_under_another(text):
  same = run(text, seed=(4, 1), size=6)
  np.testing.assert_array_equal(same, run(text, seed=(4, 1), size=6))
  others = [run(text, seed=(4, i), size=6) for i in range(2, 8)]
  assert any(other.shape != same.shape or not np.array_equal(other, same) for other in others)


def test_ops_of_a_recipe_draw_from_their_own_seeds():
  """Adding a deterministic op keeps the random ones' draws: `pad_crop_flip`
  augments as it did before it was a recipe string."""
  padded = run("pad(10) | random_crop(6) | flip", PHOTO[:10, :10], seed=(2, 9))
  np.testing.assert_array_equal(padded, run("random_crop(6) | flip", PHOTO[:10, :10], seed=(2, 9)))


# The pipeline's checks and the per-pixel mean.

def _pipeline(config):
  return InputPipeline(open_builder(config.dataset), config.dataset, seed=0, process_index=0,
                       process_count=1, local_devices=4)


@pytest.mark.parametrize("overrides, message", [
    (dict(dataset__train_preprocess="random_crop(9)"),
     "random_crop(9)' cuts 9x9 crops out of the 8x8 images of 'digits'; crop 8 or less"),
    (dict(dataset__train_preprocess="resize_shorter(12) | random_crop(16)"),
     "cuts 16x16 crops out of the images whose shorter side can be 12"),
    (dict(dataset__train_preprocess="flip"), "gives 8x8 images, but the model takes 32x32"),
    (dict(dataset__eval_preprocess="resize_shorter(40)"), "gives images of varying size"),
    (dict(dataset__eval_preprocess="pad(6)"), "pads the 8x8 images of 'digits' to 6x6"),
    (dict(dataset__train_preprocess="resize | pca_lighting"),
     "pca_lighting changes RGB colours, and the images of 'digits' have 1 channel"),
])
def test_recipes_that_cannot_fit_the_images_or_the_model_are_user_errors(digits_dir, overrides,
                                                                         message):
  with pytest.raises(UserError, match="config.dataset.") as error:
    _pipeline(tiny_config(digits_dir, **overrides))
  assert message in str(error.value)


def test_subtract_pixel_mean_subtracts_the_train_splits_mean_image_cached_once(
    digits_dir, capsys):
  eval_recipe = "resize_shorter(36) | center_crop(32)"
  config = tiny_config(digits_dir, dataset__normalization="subtract_pixel_mean",
                       dataset__train_split="train[:300]", dataset__eval_preprocess=eval_recipe)
  pipeline = _pipeline(config)
  assert capsys.readouterr().out.count("computing the mean image of digits 'train[:300]'") == 1

  builder = open_builder(config.dataset)
  recipe = preprocess.recipe(recipes.parse(eval_recipe, 32, "eval_preprocess"), 1)
  no_seed = tf.zeros(2, tf.int64)
  read = lambda split: builder.as_dataset(split=split, decoders={"image": tfds.decode.SkipDecoding()})
  expected = np.mean([recipe(example, no_seed)["image"].numpy() for example in read("train[:300]")],
                     axis=0)
  cached = pixel_mean.cache_file(builder.data_dir, "train[:300]", eval_recipe, 32, 1)
  np.testing.assert_allclose(np.load(cached)["mean"], expected, atol=1e-5)
  first_test_image = recipe(next(iter(read("test"))), no_seed)["image"].numpy()
  np.testing.assert_allclose(next(pipeline.eval_batches(128))["image"][0, 0],
                             (first_test_image - expected) * 255, atol=1e-3)

  _pipeline(config)  # Read back, not computed again.
  assert "computing" not in capsys.readouterr().out


def test_pixel_mean_is_subtracted_from_views_and_resized_for_other_sizes():
  mean = np.linspace(0, 1, 2 * 2 * 3, dtype=np.float32).reshape(2, 2, 3)
  views = tf.ones((10, 2, 2, 3))
  out = preprocess.subtract_pixel_mean(views, None, mean).numpy()
  np.testing.assert_allclose(out, np.broadcast_to((1 - mean) * 255, (10, 2, 2, 3)), rtol=1e-6)
  flat = np.full((2, 2, 3), 0.25, np.float32)  # A constant mean resizes to itself.
  larger = preprocess.subtract_pixel_mean(tf.ones((5, 7, 3)), None, flat).numpy()
  np.testing.assert_allclose(larger, np.full((5, 7, 3), 0.75 * 255), rtol=1e-5)
  ops = recipes.single_view(recipes.parse("resize_shorter(9) | ten_crop(8)", 8, "eval_preprocess"))
  assert recipes.canonical(ops) == "resize_shorter(9) | center_crop(8)"


def test_a_mean_image_being_computed_elsewhere_is_waited_for_and_read(tmp_path, monkeypatch,
                                                                      capsys):
  """Two processes starting at once: the second waits on the lock file, then
  reads what the first wrote instead of computing it again."""
  import fcntl
  import threading

  path = pixel_mean.cache_file(str(tmp_path), "train", "center_crop(2)", 2, 3)
  monkeypatch.setattr(pixel_mean, "_compute", lambda *args: pytest.fail("computed twice"))
  result = {}
  with open(path.with_name(f".{path.name}.lock"), "a") as lock:  # The first process.
    fcntl.flock(lock, fcntl.LOCK_EX)
    waiter = threading.Thread(target=lambda: result.update(mean=pixel_mean.mean_image(
        None, None, "shapes/jpeg", "train", "center_crop(2)", 2, 3, str(tmp_path))))
    waiter.start()
    waiter.join(timeout=1.0)
    assert waiter.is_alive(), "it waits while the lock is held"
    np.savez(path, mean=np.full((2, 2, 3), 0.5, np.float32))
  waiter.join(timeout=10)
  np.testing.assert_array_equal(result["mean"], np.full((2, 2, 3), 0.5))
  assert "waiting for another process computing the mean image" in capsys.readouterr().out
