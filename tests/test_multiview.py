"""cuda-convnet's crops and the multi-view evaluation: the recipes on tiny
images, the view axis through the eval pipeline, the softmax averaged over
views by the eval step (against a fake model whose logits are its input),
and one short run that trains on random crops and evaluates ten views."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow as tf
from flax import linen as nn
from helpers import tiny_config

from cnnjax.data import InputPipeline, dataset_spec, open_builder, preprocess, recipes
from cnnjax.errors import UserError
from cnnjax.models import create_model
from cnnjax.training import parallel, steps, train

SPEC = dataset_spec("digits")  # One channel.
IMAGE = (np.arange(36).reshape(6, 6, 1) * 7).astype(np.uint8)  # Every pixel distinct.


def apply_recipe(name: str, size: int, seed=(1, 2)) -> np.ndarray:
  example = {"image": tf.io.encode_png(IMAGE), "label": tf.constant(0)}
  recipe = preprocess.recipe(recipes.parse(name, size, "eval_preprocess"), SPEC.channels)
  out = recipe(example, tf.constant(seed, tf.int64))
  return np.rint(out["image"].numpy() * 255).astype(np.uint8)


def test_ten_crop_is_corners_and_centre_then_their_mirror_images():
  views = apply_recipe("ten_crop", 4)
  assert views.shape == (10, 4, 4, 1)
  corners = [(0, 0), (0, 2), (2, 0), (2, 2), (1, 1)]  # 6 - 4 = 2 spare pixels.
  for i, (top, left) in enumerate(corners):
    np.testing.assert_array_equal(views[i], IMAGE[top:top + 4, left:left + 4])
    np.testing.assert_array_equal(views[i + 5], IMAGE[top:top + 4, left:left + 4][:, ::-1])


def test_eval_batches_keep_the_view_axis_and_pad_with_it(digits_dir):
  config = tiny_config(digits_dir, dataset__eval_preprocess="ten_crop", dataset__image_size=6,
                       dataset__eval_split="test[:299]")
  pipelines = [InputPipeline(open_builder(config.dataset), config.dataset, seed=0,
                             process_index=index, process_count=2, local_devices=1)
               for index in (0, 1)]
  sizes = [int(p.read(config.dataset.eval_split).cardinality()) for p in pipelines]
  assert sorted(sizes) == [149, 150]
  smaller = pipelines[int(np.argmin(sizes))]
  first, padding = list(smaller.eval_batches(149))  # 150 in the other process: two batches.
  assert first["image"].shape == padding["image"].shape == (1, 149, 10, 6, 6, 1)
  assert first["mask"].sum() == 149 and padding["mask"].sum() == 0


@pytest.mark.parametrize("key", ["train_preprocess", "eval_preprocess"])
def test_crops_larger_than_the_images_are_user_errors(digits_dir, key):
  config = tiny_config(digits_dir, dataset__image_size=9, **{f"dataset__{key}": "ten_crop"})
  with pytest.raises(UserError, match=f"config.dataset.{key}='ten_crop' cuts 9x9 crops out of "
                                      "the 8x8 images of 'digits'; set config.dataset.image_size "
                                      "to 8 or less"):
    InputPipeline(open_builder(config.dataset), config.dataset, seed=0, process_index=0,
                  process_count=1, local_devices=4)


class ViewLogits(nn.Module):
  """A fake model whose logits are each image's top-left pixel."""

  num_classes: int = 3

  def __call__(self, images, *, train):
    return images[:, 0, 0, :self.num_classes]


def test_eval_step_averages_the_softmax_over_views():
  # Two examples of two views. The first's views (5, 0, 0) and (-5, 1, 0)
  # average to probabilities (0.49, 0.37, 0.14), class 0, though their mean
  # logits (0, 0.5, 0) favour its label 1: averaging softmaxes counts it wrong.
  logits = np.array([[[5.0, 0.0, 0.0], [-5.0, 1.0, 0.0]],
                     [[0.0, 1.0, 0.0], [0.0, 1.0, 0.5]]], np.float32)
  labels = np.array([1, 1], np.int32)
  images = np.broadcast_to(logits[:, :, None, None, :], (2, 2, 2, 2, 3))
  batch = {"image": images[None], "label": labels[None], "mask": np.array([[1.0, 1.0]])}
  state = steps.TrainState(step=jnp.zeros(()), params={}, batch_stats={}, opt_state=())
  devices = jax.local_devices()[:1]
  eval_fn = parallel.map_eval_step(functools.partial(steps.eval_step, model=ViewLogits()),
                                   devices=devices)
  sums = jax.tree.map(lambda x: float(x[0]),
                      eval_fn(parallel.replicate(state, devices), jax.device_put(batch)))

  probabilities = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
  averaged = probabilities.mean(axis=1)
  assert sums["loss"] == pytest.approx(-np.log(averaged[[0, 1], labels]).sum(), rel=1e-5)
  assert sums["top1_error"] == float((averaged.argmax(-1) != labels).sum()) == 1.0
  assert sums["count"] == 2.0


def test_log_mean_softmax_stays_finite_when_a_view_underflows():
  logits = jnp.array([[[200.0, 0.0], [0.0, 0.0]]])  # e^-200 underflows in float32.
  log_p = steps._log_mean_softmax(logits)
  np.testing.assert_allclose(log_p, [[np.log(0.75), np.log(0.25)]], rtol=1e-6)
  saturated = steps._log_mean_softmax(jnp.array([[[200.0, 0.0], [200.0, 0.0]]]))
  assert np.isfinite(saturated).all()  # log(e^-200) = -200, not log(0).


def test_train_on_random_crops_and_evaluate_ten_views(digits_dir, tmp_path):
  """The 13pct net's recipe end to end on the 8x8 digits, cropped to 6x6."""
  config = tiny_config(digits_dir, model__name="cifar_convnet_13pct", dataset__image_size=6,
                       dataset__train_preprocess="random_crop_flip",
                       dataset__eval_preprocess="ten_crop", num_train_steps=2,
                       eval_every_steps=2, checkpoint_every_steps=2)
  final = train.train_and_evaluate(train.plan(config), tmp_path)
  # The path, not learning: 100 steps of it reached 0.84 top-1 error (measured);
  # tests/test_learning.py's cuda-convnet run (the 18% net) must learn.
  # One prediction per test image (its ten views averaged): a whole number of the 300 wrong.
  wrong = final["eval/top1_error"] * 300
  assert np.isfinite(final["eval/loss"]) and abs(wrong - round(wrong)) < 1e-3


WIDE = (np.arange(54).reshape(6, 9, 1) * 4).astype(np.uint8)  # Not square: 6x9.


def test_dense_views_are_the_central_square_and_its_mirror_at_each_scale():
  example = {"image": tf.constant(WIDE, tf.float32) / 255.0, "label": tf.constant(0)}
  views = preprocess.dense(example["image"], 4, 6)
  assert sorted(k for k in views if k.startswith("image")) == ["image", "image_1"]
  for key, scale in (("image", 4), ("image_1", 6)):
    width = 9 * scale // 6  # The shorter side (6) to `scale`, the longer truncated (torchvision).
    resized = tf.image.resize(example["image"], (scale, width), antialias=True).numpy()
    left = round((width - scale) / 2)  # torchvision's centre crop rounds half to even.
    square = resized[:, left:left + scale]
    assert views[key].shape == (2, scale, scale, 1)
    np.testing.assert_allclose(views[key][0], square, atol=1e-6)
    np.testing.assert_allclose(views[key][1], square[:, ::-1], atol=1e-6)


def test_eval_batches_carry_every_view_group_normalised_and_padded(digits_dir, monkeypatch):
  config = tiny_config(digits_dir, dataset__eval_split="test[:5]", dataset__image_size=8)
  pipeline = InputPipeline(open_builder(config.dataset), config.dataset, seed=0, process_index=0,
                           process_count=1, local_devices=1, extra_evals=(("d", "dense(6, 8)"),))
  assert pipeline.eval_image_shapes("dense(6, 8)") == {"image": (2, 6, 6, 1),
                                                       "image_1": (2, 8, 8, 1)}
  (batch,) = list(pipeline.eval_batches(8, "dense(6, 8)"))
  assert batch["image"].shape == (1, 8, 2, 6, 6, 1) and batch["image_1"].shape == (1, 8, 2, 8, 8, 1)
  assert batch["mask"].sum() == 5
  # The digits are 8x8: the second group is the image itself, standardised, then its mirror.
  (plain,) = list(pipeline.eval_batches(8, "center_crop"))
  np.testing.assert_allclose(batch["image_1"][0, :5, 0], plain["image"][0, :5], atol=1e-5)
  np.testing.assert_allclose(batch["image_1"][0, :5, 1], plain["image"][0, :5, :, ::-1],
                             atol=1e-5)


def test_an_unknown_extra_eval_recipe_is_a_user_error(digits_dir):
  config = tiny_config(digits_dir)
  with pytest.raises(UserError, match=r"unknown extra_evals\['10crop'\] 'tencrop'.*"
                                     r"\(config.extra_evals\['10crop'\]\)"):
    InputPipeline(open_builder(config.dataset), config.dataset, seed=0, process_index=0,
                  process_count=1, local_devices=1, extra_evals=(("10crop", "tencrop"),))


class DenseProbe(nn.Module):
  """A fake model with the dense switch: logits [dense, 0, 0] plus the top-left pixel."""

  num_classes: int = 3

  def __call__(self, images, *, train, dense=False):
    return images[:, 0, 0, :3] + jnp.array([float(dense), 0.0, 0.0])


def eval_sums(model, batch, train_size=None):
  state = steps.TrainState(step=jnp.zeros(()), params={}, batch_stats={}, opt_state=())
  devices = jax.local_devices()[:1]
  eval_fn = parallel.map_eval_step(
      functools.partial(steps.eval_step, model=model, train_size=train_size), devices=devices)
  batch = jax.tree.map(lambda x: np.asarray(x)[None], batch)
  return jax.tree.map(lambda x: float(x[0]),
                      eval_fn(parallel.replicate(state, devices), jax.device_put(batch)))


def test_eval_step_averages_the_softmax_over_every_view_of_every_group():
  # One example: two views of 2x2 and one of 4x4 (a larger scale, evaluated densely).
  small = np.zeros((1, 2, 2, 2, 3), np.float32)
  small[0, 0, ..., :] = [0.0, 2.0, 0.0]
  small[0, 1, ..., :] = [1.0, 0.0, 0.0]
  large = np.zeros((1, 1, 4, 4, 3), np.float32)
  large[0, 0, ..., :] = [-3.0, 0.0, 1.0]
  label = np.array([2], np.int32)
  sums = eval_sums(DenseProbe(), {"image": small, "image_1": large, "label": label,
                                  "mask": np.ones((1,), np.float32)}, train_size=2)
  logits = np.array([[0.0, 2.0, 0.0], [1.0, 0.0, 0.0], [-2.0, 0.0, 1.0]])  # The last dense.
  probabilities = (np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)).mean(0)
  assert sums["loss"] == pytest.approx(-np.log(probabilities[2]), rel=1e-5)
  assert sums["top1_error"] == 1.0  # Class 1 wins on average, not the label 2.


def test_ten_crop_evaluation_equals_cropping_by_hand():
  """The whole path (recipe, view axis, eval step) on a tiny real network,
  against crops cut with NumPy, each run through the network, softmaxes averaged."""
  model = create_model("cifar_convnet_13pct", num_classes=10)
  variables = jax.jit(functools.partial(model.init, train=False))(
      jax.random.key(0), jnp.zeros((1, 6, 6, 1)))
  state = steps.TrainState(step=jnp.zeros(()), params=variables["params"], batch_stats={},
                           opt_state=())
  image = np.random.default_rng(0).integers(0, 256, (9, 9, 1), np.uint8)
  example = {"image": tf.io.encode_png(image), "label": tf.constant(3)}
  views = preprocess.recipe(recipes.parse("ten_crop", 6, "eval_preprocess"), SPEC.channels)(
      example, tf.constant((0, 0), tf.int64))
  devices = jax.local_devices()[:1]
  eval_fn = parallel.map_eval_step(functools.partial(steps.eval_step, model=model),
                                   devices=devices)
  batch = {"image": views["image"].numpy()[None, None], "label": np.array([[3]], np.int32),
           "mask": np.ones((1, 1), np.float32)}
  sums = eval_fn(parallel.replicate(state, devices), jax.device_put(batch))

  pixels = image.astype(np.float32) / 255.0
  crops = [pixels[top:top + 6, left:left + 6]  # 3 spare pixels: the centre starts at 1.
           for top, left in [(0, 0), (0, 3), (3, 0), (3, 3), (1, 1)]]
  crops = np.stack(crops + [crop[:, ::-1] for crop in crops])
  logits = np.asarray(jax.jit(functools.partial(model.apply, train=False))(variables, crops),
                      np.float64)
  probabilities = (np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)).mean(0)
  assert float(sums["loss"][0]) == pytest.approx(-np.log(probabilities[3]), rel=1e-4)
  assert float(sums["top1_error"][0]) == float(probabilities.argmax() != 3)
