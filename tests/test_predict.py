"""`cnnjax predict`: top classes with names and probabilities per image,
through the workdir's evaluation preprocessing; an unreadable file is one
line and the others are still predicted."""

import json
import pathlib

import numpy as np
import pytest
import torchvision_golden as golden
from helpers import tiny_config
from PIL import Image

from cnnjax import cli
from cnnjax import config as config_lib
from cnnjax.data import class_names, open_builder
from cnnjax.data.source import Source
from cnnjax.training import train

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "torchvision"


@pytest.fixture(scope="module")
def digits_run(digits_dir, tmp_path_factory):
  """LeNet-5 trained 150 steps on digits (about 3% test error), and 30 of its
  test images as PNG files named by their label."""
  workdir = tmp_path_factory.mktemp("digits_run")
  config = tiny_config(digits_dir, num_train_steps=150, eval_every_steps=150,
                       checkpoint_every_steps=150, batch_size=32)
  train.train_and_evaluate(train.plan(config), workdir)
  images = tmp_path_factory.mktemp("digit_images")
  source = Source(open_builder(config.dataset), config.dataset)
  split = config.dataset.eval_split
  for index, example in enumerate(source.open(split, split).take(30).as_numpy_iterator()):
    (images / f"{index:02d}_{example['label']}.png").write_bytes(example["image"])
  return workdir, images


def _predict(capsys, *args) -> tuple[int, str, str]:
  status = cli.main(["predict", *map(str, args)])
  captured = capsys.readouterr()
  return status, captured.out, captured.err


def test_a_digits_workdir_predicts_its_own_test_images(digits_run, capsys):
  workdir, images = digits_run
  status, out, err = _predict(capsys, "--workdir", workdir, images, "--format", "json",
                              "--top-k", "3")
  assert status == 0, err
  printed = json.loads(out)
  assert printed["step"] == 150 and len(printed["predictions"]) == 30
  right = 0
  for prediction in printed["predictions"]:
    label = int(pathlib.Path(prediction["image"]).stem.split("_")[1])
    top = prediction["top_k"]
    assert len(top) == 3 and [guess["class"] for guess in top] == [
        str(guess["label"]) for guess in top]  # digits' classes are named "0" to "9".
    probabilities = [guess["probability"] for guess in top]
    assert probabilities == sorted(probabilities, reverse=True) and sum(probabilities) <= 1 + 1e-6
    right += top[0]["label"] == label
  assert right >= 27  # At most 3 of 30 wrong; the run's test error is about 3%.


def test_an_unreadable_file_is_one_line_and_the_others_are_predicted(digits_run, capsys,
                                                                      tmp_path):
  workdir, images = digits_run
  broken = tmp_path / "broken.png"
  broken.write_text("not an image")
  first = sorted(images.iterdir())[0]
  status, out, err = _predict(capsys, "--workdir", workdir, broken, first, tmp_path / "absent.jpg")
  assert status == 1
  assert err.splitlines() == [
      f"cnnjax: cannot predict {broken}: Unknown image file format. One of JPEG, JPEG XL, PNG, "
      "GIF, BMP, WebP required.", f"cnnjax: cannot predict {tmp_path / 'absent.jpg'}: No such "
      "file or directory"]
  line, = out.splitlines()
  assert line.startswith(f"{first}: {first.stem.split('_')[1]} ") and line.count("%") == 5


def test_imported_weights_predict_with_the_datasets_class_names(tmp_path, capsys):
  """torchvision's ResNet-18 layout (the golden weights, 10 classes) imported
  for a folder dataset of 10 classes: its names are the class folders'."""
  folder = tmp_path / "photos"
  rng = np.random.default_rng(0)
  for split in ("train", "validation"):
    for index in range(10):
      (folder / split / f"class_{index}").mkdir(parents=True)
      pixels = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
      Image.fromarray(pixels).save(folder / split / f"class_{index}" / "a.png")
  record = json.loads((FIXTURES / "resnet18.json").read_text())
  weights = tmp_path / "resnet18.safetensors"
  golden.write_safetensors(weights, golden.golden_weights(record["seed"], record["state_dict"]))
  workdir = tmp_path / "imported"
  assert cli.main(["import-weights", "--model", "resnet18", "--from", str(weights), "--workdir",
                   str(workdir), f"--config.dataset.name=folder:{folder}",
                   "--config.dataset.image_size=32",
                   f"--config.dataset.data_dir={tmp_path}/tfds"]) == 0
  capsys.readouterr()
  image = folder / "validation" / "class_3" / "a.png"
  status, out, err = _predict(capsys, "--workdir", workdir, image, "--format", "json",
                              "--top-k", "10")
  assert status == 0, err
  top = json.loads(out)["predictions"][0]["top_k"]
  assert sorted(guess["class"] for guess in top) == [f"class_{index}" for index in range(10)]
  assert sum(guess["probability"] for guess in top) == pytest.approx(1, abs=1e-5)


def test_imagenet_classes_are_named_by_their_synonyms():
  config = config_lib.base_config()
  config.dataset.name = "imagenet2012"
  import tensorflow_datasets as tfds

  names = Source(tfds.builder("imagenet2012"), config.dataset).class_names
  assert len(names) == 1000 and len(set(names)) == 1000
  assert (names[0], names[281], names[409]) == ("tench, Tinca tinca", "tabby, tabby cat",
                                                "analog clock")
  assert class_names.short(names[281]) == "tabby"


def test_a_folder_without_images_is_refused_at_once(tmp_path, capsys):
  (tmp_path / "empty").mkdir()
  status, _, err = _predict(capsys, "--workdir", tmp_path, tmp_path / "empty")
  assert status == 2 and f"{tmp_path / 'empty'} holds no image" in err
