"""Input pipelines: the embedded digits builder, and the real TFDS builders of
mnist, cifar10 and imagenet2012 under `tfds.testing.mock_data`."""

import os
import subprocess
import sys
import zlib

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from helpers import ROOT, global_batches, tiny_config

from cnnjax.data import InputPipeline, open_builder
from cnnjax.errors import UserError
from cnnjax.training import train


def _pipeline(config, local_devices=4):
  return InputPipeline(open_builder(config.dataset), config.dataset, seed=config.seed,
                       process_index=0, process_count=1, local_devices=local_devices)


def test_digits_builder_has_the_documented_split(digits_dir):
  builder = open_builder(tiny_config(digits_dir).dataset)
  assert builder.info.splits["train"].num_examples == 1497
  assert builder.info.splits["test"].num_examples == 300
  example = next(iter(tfds.as_numpy(builder.as_dataset(split="test"))))
  assert example["image"].shape == (8, 8, 1) and 0 <= example["label"] < 10


def test_train_batches_are_shaped_per_device_normalised_and_seeded(digits_dir):
  pipeline = _pipeline(tiny_config(digits_dir, batch_size=64))
  batches = pipeline.train_batches(64)
  first = next(batches)
  assert first["image"].shape == (4, 16, 32, 32, 1) and first["image"].dtype == np.float32
  assert first["label"].shape == (4, 16) and first["label"].dtype == np.int32
  images = np.concatenate([next(batches)["image"] for _ in range(10)])
  assert abs(images.mean()) < 0.1 and abs(images.std() - 1) < 0.1
  again = next(_pipeline(tiny_config(digits_dir, batch_size=64)).train_batches(64))
  np.testing.assert_array_equal(first["image"], again["image"])
  other_seed = next(_pipeline(tiny_config(digits_dir, seed=1)).train_batches(64))
  assert not np.array_equal(first["label"], other_seed["label"])


def test_global_batches_do_not_depend_on_devices_or_processes(digits_dir):
  """1, 4 or 8 devices, in one, two or four processes: the same global
  batches, so a run's result does not depend on the hardware, and it can
  resume on other hardware (here 2 devices) exactly where it stopped."""
  config = tiny_config(digits_dir, batch_size=32, dataset__train_preprocess="pad_crop_flip")
  one = global_batches(config, 1, 1, steps=3)
  for process_count, local_devices in ((1, 4), (2, 1), (4, 2)):
    other = global_batches(config, process_count, local_devices, steps=3)
    for a, b in zip(one, other):
      np.testing.assert_array_equal(a["id"], b["id"])
      np.testing.assert_array_equal(a["image"], b["image"])  # Augmentation included.
  resumed = global_batches(config, 1, 2, steps=1, start_step=2)
  np.testing.assert_array_equal(resumed[0]["image"], one[2]["image"])


def test_shards_that_devices_or_the_batch_cannot_split_are_refused(digits_dir):
  pipeline = _pipeline(tiny_config(digits_dir, dataset__num_shards=6))
  with pytest.raises(UserError, match="num_shards=6 is not a multiple of the 4 devices"):
    pipeline.check_sharding(24)
  pipeline = _pipeline(tiny_config(digits_dir, dataset__num_shards=8))
  with pytest.raises(UserError, match="batch_size=20 is not a multiple of "
                                      "config.dataset.num_shards=8"):
    pipeline.check_sharding(20)


def test_subtract_mean_keeps_the_pixel_scale(digits_dir):
  """AlexNet §2 / VGG §2.1: the mean is subtracted from 0-255 pixels, nothing is divided."""
  config = tiny_config(digits_dir, batch_size=64)
  standardized = next(_pipeline(config).train_batches(64))["image"]
  config.dataset.normalization = "subtract_mean"
  pixels = next(_pipeline(config).train_batches(64))["image"]
  spec = _pipeline(config).spec
  np.testing.assert_allclose(pixels, standardized * np.float32(spec.std[0] * 255), atol=1e-3)
  assert pixels.std() > 50


def test_starting_at_a_step_continues_the_same_stream_across_epochs(digits_dir):
  pipeline = _pipeline(tiny_config(digits_dir))
  steps_per_epoch = pipeline.steps_per_epoch(128)
  assert steps_per_epoch == 1497 // 8 // 16  # The smallest of 8 shards, 16 examples each.
  stream = pipeline.train_batches(128)
  straight = [next(stream) for _ in range(steps_per_epoch + 3)]
  for start in (1, steps_per_epoch, steps_per_epoch + 2):
    resumed = next(pipeline.train_batches(128, start_step=start))
    np.testing.assert_array_equal(resumed["image"], straight[start]["image"])
    np.testing.assert_array_equal(resumed["label"], straight[start]["label"])
  # Each epoch is reshuffled: epoch 2 does not repeat epoch 1's order.
  assert not np.array_equal(straight[0]["label"], straight[steps_per_epoch]["label"])


def test_eval_batches_count_every_example_once(digits_dir):
  pipeline = _pipeline(tiny_config(digits_dir))
  batches = list(pipeline.eval_batches(128))
  assert len(batches) == 3 == pipeline.eval_steps(128)
  assert sum(batch["mask"].sum() for batch in batches) == 300
  assert batches[-1]["mask"].shape == (4, 32)
  labels = np.concatenate([b["label"].ravel()[b["mask"].ravel() > 0] for b in batches])
  expected = [example["label"] for example in tfds.as_numpy(
      open_builder(tiny_config(digits_dir).dataset).as_dataset(split="test"))]
  np.testing.assert_array_equal(labels, expected)


MOCKED = {
    "mnist": dict(dataset__eval_split="test", dataset__image_size=32,
                  dataset__train_preprocess="pad", dataset__eval_preprocess="pad"),
    # LeNet-5 (tiny_config's network) at 32x32x3: the builders and the
    # recipes are under test here, and it compiles in a fraction of ResNet-20's time.
    "cifar10": dict(dataset__train_preprocess="pad_crop_flip"),
    "imagenet2012": dict(dataset__eval_split="validation",
                         dataset__image_size=32, dataset__train_preprocess="random_area_crop_flip",
                         dataset__eval_preprocess="resize_center_crop"),
}
MOCK_EXAMPLES = 96  # Per split.
MOCK_LEVELS = np.array([30, 100, 170, 240])  # Grey level of class k (of the first four).


def mock_examples(learnable: bool):
  """An `as_dataset_fn` for tfds.testing.mock_data: PNG images of the
  builder's shape (40 to 60 pixels a side where it varies), each of one grey
  level plus noise; their labels that level's class (`learnable`), or drawn
  independently of it (the negative control: random labels)."""
  def as_dataset(self, split, decoders=None, read_config=None, shuffle_files=False):
    del decoders, shuffle_files
    # A shard of a split (tfds.even_splits, as cnnjax reads the train split) or a whole one.
    name, shard, shards = ((split, 0, 1) if isinstance(split, str)
                           else (split.split, split.index, split.count))
    rng = np.random.default_rng(zlib.crc32(name.encode()))  # Other images in each split.
    shape = self.info.features["image"].shape
    images, labels = [], []
    for index in range(MOCK_EXAMPLES):
      level = index % len(MOCK_LEVELS)
      height, width = (size or rng.integers(40, 61) for size in shape[:2])
      pixels = MOCK_LEVELS[level] + rng.normal(0, 12, (height, width, shape[2]))
      images.append(tf.io.encode_png(np.clip(pixels, 0, 255).astype(np.uint8)).numpy())
      labels.append(level if learnable else rng.integers(len(MOCK_LEVELS)))
    part = slice(shard * MOCK_EXAMPLES // shards, (shard + 1) * MOCK_EXAMPLES // shards)
    ds = tf.data.Dataset.from_tensor_slices({"image": images[part],
                                             "label": np.array(labels)[part]})
    if read_config and read_config.add_tfds_id:
      ids = [f"{self.name}-{name}.tfrecord-00000-of-00001__{i}"
             for i in range(MOCK_EXAMPLES)][part]
      ds = tf.data.Dataset.zip(ds, tf.data.Dataset.from_tensor_slices(ids)).map(
          lambda example, tfds_id: {**example, "tfds_id": tfds_id})
    return ds
  return as_dataset


@pytest.mark.parametrize("name", sorted(MOCKED))
def test_real_builders_train_evaluate_and_learn_under_mock_data(name, tmp_path):
  """Each builder's features and splits through the recipes, batches, a run
  that learns its mock examples, and the same run on random labels, which
  must not: four grey levels, chance 0.75."""
  # The modern LeNet-5 with Adam (experiments/lenet5_shapes.py's recipe) learns
  # grey levels in a few steps; the paper's network with SGD had half the
  # classes confused after 30 (0.5 error, measured).
  config = tiny_config("", dataset__name=name, model__name="lenet5_modern", batch_size=16,
                       num_train_steps=40, eval_every_steps=40, checkpoint_every_steps=40,
                       optimizer__name="adam", optimizer__learning_rate=2e-3, **MOCKED[name])
  errors = []
  for learnable in (True, False):
    with tfds.testing.mock_data(num_examples=MOCK_EXAMPLES,
                                as_dataset_fn=mock_examples(learnable)):
      pipeline = _pipeline(config)
      batch = next(pipeline.train_batches(16))
      channels = pipeline.spec.channels
      assert batch["image"].shape == (4, 4, 32, 32, channels)
      assert (0 <= batch["label"]).all() and (batch["label"] < len(MOCK_LEVELS)).all()
      final = train.train_and_evaluate(train.plan(config), tmp_path / str(learnable))
    errors.append(final["eval/top1_error"])
  print(f"{name} under mock_data: {errors[0]:.3f}; random labels: {errors[1]:.3f}")
  # Four grey levels 70 apart under noise of 12, chance 0.75: 40 steps reach 0.0
  # (imagenet2012), 0.09 (mnist) and 0.25 (cifar10's padded crops; measured); 0.5 is
  # twice the worst, two thirds of chance. Random labels: 0.64 to 0.78 (measured;
  # 96 images: chance's standard deviation is 0.044).
  assert errors[0] < 0.5
  assert errors[1] > 0.55


def test_processes_starting_at_once_build_an_embedded_dataset_once(tmp_path):
  """A sweep's first runs open `digits` together on a fresh machine."""
  code = ("import sys\nfrom cnnjax.config import base_config\nfrom cnnjax.data import open_builder\n"
          "dataset = base_config().dataset\ndataset.name, dataset.data_dir = 'digits', sys.argv[1]\n"
          "print(open_builder(dataset).info.splits['train'].num_examples)\n")
  processes = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], cwd=ROOT,
                                env={**os.environ, "PYTHONPATH": str(ROOT)},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(2)]
  outputs = [process.communicate(timeout=300) for process in processes]
  assert [process.returncode for process in processes] == [0, 0], outputs
  printed = "".join(out for out, _ in outputs)
  assert printed.count("building the embedded dataset digits") == 1
  assert printed.count("1497") == 2
