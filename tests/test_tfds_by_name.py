"""TFDS datasets outside cnnjax's table, by name: a catalogue dataset under
`tfds.testing.mock_data` (with learnable examples), and datasets TFDS
prepared in a test's data dir, read back by name from their files."""

import io
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
import tfds_builders
from helpers import ROOT
from PIL import Image

from cnnjax import cli
from cnnjax import config as config_lib
from cnnjax.training import train

LENET_SHAPES = str(ROOT / "experiments" / "lenet5_shapes.py")
FLOWERS = 100  # Mock examples: 20 of each of tf_flowers' 5 classes (80 train, 20 eval).
FLOWER_COLOURS = np.array([[60, 60, 60], [200, 60, 60], [60, 200, 60], [60, 60, 200],
                           [200, 200, 60]])


@pytest.fixture(scope="module")
def by_name_dir(tmp_path_factory):
  """A data dir where TFDS prepared `blobs` and `captions` (tests/tfds_builders.py)."""
  data_dir = tmp_path_factory.mktemp("tfds_by_name")
  tfds_builders.prepare(str(data_dir))
  return str(data_dir)


def _flower(index: int, learnable: bool = True) -> tuple[bytes, int]:
  """A PNG of varying size whose colour is its class: learnable in a few
  steps; or its label drawn independently of it (the negative control)."""
  rng = np.random.default_rng(index)
  colour = index % len(FLOWER_COLOURS)
  height, width = rng.integers(40, 80, 2)
  pixels = FLOWER_COLOURS[colour] + rng.normal(0, 20, (height, width, 3))
  buffer = io.BytesIO()
  Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buffer, format="PNG")
  return buffer.getvalue(), colour if learnable else int(rng.integers(len(FLOWER_COLOURS)))


def _mock_flowers(self, split, decoders=None, read_config=None, shuffle_files=False,
                  learnable=True):
  """tf_flowers' examples of `split`, images encoded (cnnjax skips TFDS's
  decoding): "train", a percent slice of it ("train[80%:]"), or a shard of
  one (tfds.even_splits, as cnnjax reads the train split)."""
  del self, decoders, shuffle_files
  spec, shard, shards = ((split, 0, 1) if isinstance(split, str)
                         else (split.split, split.index, split.count))
  start, stop = re.fullmatch(r"train(?:\[(\d*)%?:(\d*)%?\])?", spec).groups()
  start, stop = int(start or 0) * FLOWERS // 100, int(stop or 100) * FLOWERS // 100
  indices = range(start + shard * (stop - start) // shards,
                  start + (shard + 1) * (stop - start) // shards)
  encoded, labels = zip(*(_flower(index, learnable) for index in indices))
  ds = tf.data.Dataset.from_tensor_slices({"image": list(encoded),
                                           "label": np.array(labels, np.int64)})
  if read_config and read_config.add_tfds_id:
    ids = [f"tf_flowers-train.tfrecord-00000-of-00001__{i}" for i in indices]
    ds = tf.data.Dataset.zip(ds, tf.data.Dataset.from_tensor_slices(ids)).map(
        lambda example, tfds_id: {**example, "tfds_id": tfds_id})
  return ds


def _mock_random_flowers(self, split, decoders=None, read_config=None, shuffle_files=False):
  """The same examples, their labels drawn independently of their colours."""
  return _mock_flowers(self, split, decoders, read_config, shuffle_files, learnable=False)


def test_a_catalogue_dataset_of_varying_sizes_trains_by_name_under_mock_data(tmp_path):
  """tf_flowers (5 classes, photographs of any size, outside cnnjax's table):
  classes, image shape and splits from its DatasetInfo (metadata written as
  TFDS writes it, examples mocked), mean and std computed, trained and
  evaluated by name with resizing recipes."""
  data_dir = str(tmp_path / "tfds")
  with tfds.testing.mock_data(data_dir=data_dir, as_dataset_fn=_mock_flowers):
    builder = tfds.builder("tf_flowers", data_dir=data_dir)
    template = tfds.core.ShardedFileTemplate(data_dir=builder.data_path, dataset_name="tf_flowers",
                                             split="train", filetype_suffix="tfrecord")
    builder.info.set_splits(tfds.core.SplitDict([tfds.core.SplitInfo(
        name="train", shard_lengths=[FLOWERS], num_bytes=0, filename_template=template)]))
    builder.data_path.mkdir(parents=True)
    builder.info.write_to_directory(builder.data_path)  # What `tfds build` leaves, but data.

    config = config_lib.from_command_line(LENET_SHAPES, [
        ("dataset.name", "tf_flowers"), ("dataset.data_dir", data_dir),
        ("dataset.train_split", "train[:80%]"), ("dataset.eval_split", "train[80%:]"),
        ("dataset.train_preprocess", "random_area_crop_flip"),
        ("dataset.eval_preprocess", "resize_center_crop"), ("dataset.num_shards", "4"),
        ("batch_size", "16"), ("num_train_steps", "30"), ("eval_every_steps", "30"),
        ("checkpoint_every_steps", "30"), ("log_every_steps", "10")])
    plan = train.plan(config)
    assert plan.pipeline.spec.num_classes == 5 and plan.image_shape == (32, 32, 3)  # LeNet's.
    assert plan.pipeline.class_names[0] == "dandelion"
    mean, _ = plan.pipeline.mean_and_std
    expected = np.mean([FLOWER_COLOURS[i % 5] for i in range(FLOWERS)], axis=0) / 255
    np.testing.assert_allclose(mean, expected, atol=0.02)  # Pixel-weighted: sizes vary.
    final = train.train_and_evaluate(plan, tmp_path / "run")
  # The same run on random labels: the negative control.
  with tfds.testing.mock_data(data_dir=data_dir, as_dataset_fn=_mock_random_flowers):
    control = train.train_and_evaluate(train.plan(config), tmp_path / "control")
  errors = final["eval/top1_error"], control["eval/top1_error"]
  print(f"tf_flowers by name under mock_data: {errors[0]:.3f}; random labels: {errors[1]:.3f}")
  # Five colours 140 grey levels apart under noise of 20: 30 steps reach at most 0.05
  # (measured); chance is 0.8.
  assert errors[0] < 0.35
  assert errors[1] > 0.5


def _cnnjax_data(name, data_dir):
  return subprocess.Popen(
      [sys.executable, "-m", "cnnjax", "data", name, f"--config.dataset.data_dir={data_dir}",
       "--format", "json"], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_cnnjax_data_reads_the_info_and_computes_the_statistics_once_for_all(by_name_dir):
  """Three processes starting at once (a sweep's runs): one computes the
  statistics, the others wait and read them; all print the same."""
  processes = [_cnnjax_data("blobs", by_name_dir) for _ in range(3)]
  outputs = [process.communicate(timeout=300) for process in processes]
  assert [process.returncode for process in processes] == [0, 0, 0], outputs
  assert sum("computing the pixel mean" in err for _, err in outputs) == 1
  shown = [json.loads(out) for out, _ in outputs]
  assert shown[0] == shown[1] == shown[2]
  assert shown[0]["kind"] == "tfds" and shown[0]["class_names"] == ["dark", "light"]
  assert shown[0]["splits"] == {"train": 64, "test": 16}
  assert shown[0]["image_shape"] == [16, 16, 3] and shown[0]["native_image_size"] == 16
  assert shown[0]["features"] == {"image": "picture", "label": "kind"}
  assert shown[0]["statistics"] == "all 64 images of 'train'"
  pixels = np.stack([example["picture"] for example in tfds.as_numpy(
      tfds.builder("blobs", data_dir=by_name_dir).as_dataset(split="train"))]) / 255
  np.testing.assert_allclose(shown[0]["mean"], pixels.mean(axis=(0, 1, 2)), atol=1e-6)
  np.testing.assert_allclose(shown[0]["std"], pixels.std(axis=(0, 1, 2)), atol=1e-6)


def test_a_prepared_dataset_outside_the_table_trains_and_evaluates_by_name(by_name_dir, tmp_path,
                                                                          capsys):
  workdir = tmp_path / "run"
  common = ["--config.dataset.name=blobs", f"--config.dataset.data_dir={by_name_dir}",
            "--config.dataset.image_size=32"]
  assert cli.main(["train", "--config", LENET_SHAPES, "--workdir", str(workdir), *common,
                   "--config.batch_size=16", "--config.dataset.num_shards=4",
                   "--config.num_train_steps=12", "--config.eval_every_steps=12",
                   "--config.checkpoint_every_steps=12"]) == 0
  assert json.loads((workdir / "results.json").read_text())["final_eval"]["eval/top1_error"] <= 0.25
  assert cli.main(["eval", "--workdir", str(workdir)]) == 0
  evaluation = json.loads((workdir / "eval" / "12.json").read_text())["evaluations"][0]
  assert evaluation["class_names"] == ["dark", "light"] and evaluation["dataset"] == "blobs"


@pytest.mark.parametrize("overrides, message", [
    (["--config.dataset.name=captions"],
     "dataset 'captions' cannot be trained on: cnnjax needs an integer class label feature, and "
     "it has none (a tfds.features.ClassLabel); its features: image (Image), label (Text)"),
    (["--config.dataset.name=blobs", "--config.dataset.eval_split=validation"],
     "dataset 'blobs' has no split 'validation' (config.dataset.eval_split='validation'); it has "
     "train, test"),
    (["--config.dataset.name=oxford_flowers10"],
     "unknown dataset 'oxford_flowers10' (config.dataset.name)"),
    (["--config.dataset.name=oxford_flowers102"],
     "dataset 'oxford_flowers102' is not prepared in"),
])
def test_mistakes_are_one_line_exit_2_and_create_nothing(overrides, message, by_name_dir, tmp_path,
                                                         capsys):
  before = sorted(os.walk(by_name_dir))
  workdir = tmp_path / "run"
  assert cli.main(["train", "--config", LENET_SHAPES, "--workdir", str(workdir),
                   f"--config.dataset.data_dir={by_name_dir}", *overrides]) == 2
  error = capsys.readouterr().err
  assert len(error.strip().splitlines()) == 1 and message in error, error
  if "unknown dataset" in message:
    assert "did you mean 'oxford_flowers102'" in error
  if "not prepared" in message:
    assert f"tfds build oxford_flowers102 --data_dir {by_name_dir}" in error
  assert not workdir.exists() and sorted(os.walk(by_name_dir)) == before
