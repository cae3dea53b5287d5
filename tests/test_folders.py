"""`folder:PATH`: a folder of images in class sub-folders, prepared once as a
TFDS dataset and prepared again when it changes; its labels follow the
sorted class folder names (torchvision's ImageFolder rule); every format
TensorFlow decodes becomes RGB; an undecodable file is named or skipped;
its mistakes are one line each; its data order does not depend on the
devices; and experiments/finetune_folder.py fine-tunes on one."""

import io
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from helpers import ROOT, global_batches
from PIL import Image

from cnnjax import cli
from cnnjax import config as config_lib
from cnnjax.data import open_builder, preprocess, shapes
from cnnjax.data.source import Source

LENET_SHAPES = str(ROOT / "experiments" / "lenet5_shapes.py")
FINETUNE = str(ROOT / "experiments" / "finetune_folder.py")


def _encode(pixels, format: str, **options) -> bytes:
  """`pixels` (an array, or a PIL image) encoded by Pillow."""
  image = pixels if isinstance(pixels, Image.Image) else Image.fromarray(pixels)
  buffer = io.BytesIO()
  image.save(buffer, format=format, **options)
  return buffer.getvalue()


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
  """`shapes` as a folder: train/ 4 and val/ 1 images of each of 10 classes,
  JPEG and PNG of varying size (cnnjax.data.shapes.write_folder)."""
  path = tmp_path_factory.mktemp("photos") / "photos"
  shapes.write_folder(str(path), {"train": 4, "val": 1})
  return path


def _dataset(path, data_dir, **values):
  dataset = config_lib.base_config().dataset
  dataset.update(name=f"folder:{path}", data_dir=str(data_dir), eval_split="val", **values)
  return dataset


def _copies(data_dir):
  """The prepared copies of folders in `data_dir`."""
  return sorted(path.parent.name for path in (data_dir / "cnnjax_image_folder").glob("*-*/1.0.0"))


def test_labels_follow_the_sorted_class_folders_and_every_format_becomes_rgb(tmp_path):
  rng = np.random.default_rng(0)
  rgb = rng.integers(0, 256, (9, 12, 3), dtype=np.uint8)
  frames = [Image.fromarray(rgb).convert("P"), Image.fromarray(255 - rgb).convert("P")]
  gif = io.BytesIO()
  frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:])
  files = {  # Within train/: bytes, and the RGB pixels expected (None: lossy).
      "zebra/1.JPG": (_encode(rgb, "JPEG"), None),
      "zebra/nested/2.png": (_encode(rgb[..., 0], "PNG"), np.repeat(rgb[..., :1], 3, axis=2)),
      "Ant/3.gif": (gif.getvalue(), np.asarray(frames[0].convert("RGB"))),
      "Ant/4.bmp": (_encode(rgb, "BMP"), rgb),
      "Ant/5.png": (_encode(np.dstack([rgb, rgb[..., :1]]), "PNG"), rgb),  # Alpha dropped.
      "bee/6.jpeg": (_encode(Image.fromarray(rgb).convert("CMYK"), "JPEG"), None),
      "bee/7.webp": (_encode(rgb, "WEBP", lossless=True), rgb),
  }
  for name, (encoded, _) in files.items():
    (tmp_path / "pets" / "train" / name).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / "pets" / "train" / name).write_bytes(encoded)
  for ignored in ("train/bee/.8.jpg", "train/bee/notes.txt", "train/README.md", "val/.DS_Store"):
    (tmp_path / "pets" / ignored).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / "pets" / ignored).write_bytes(b"not an image")
  (tmp_path / "pets" / "val" / "bee").mkdir(parents=True)  # val/ need not have every class.
  (tmp_path / "pets" / "val" / "bee" / "v.png").write_bytes(files["Ant/4.bmp"][0])

  source = Source(open_builder(_dataset(tmp_path / "pets", tmp_path / "tfds")),
                  _dataset(tmp_path / "pets", tmp_path / "tfds"))
  assert source.class_names == ("Ant", "bee", "zebra")  # sorted(): upper case first.
  seen = {}
  for example in source.builder.as_dataset(
      split="train", decoders={"image": tfds.decode.SkipDecoding()}).as_numpy_iterator():
    name = example["file_name"].decode()
    assert example["label"] == source.class_names.index(name.split("/")[0])
    seen[name] = preprocess.decode_pixels(tf.constant(example["image"]), 3).numpy()
  assert sorted(seen) == sorted(files)  # Hidden files and non-images left out.
  for name, (_, expected) in files.items():
    assert seen[name].shape == (9, 12, 3)
    if expected is not None:
      np.testing.assert_array_equal(seen[name], expected, err_msg=name)
  metadata = json.loads(next((tmp_path / "tfds").glob("cnnjax_image_folder/*/1.0.0/"
                                                      "cnnjax_folder.json")).read_text())
  assert metadata["ignored"] == 2  # notes.txt, README.md (beside the classes); not hidden ones.


def test_an_undecodable_image_is_named_in_one_line_and_skipping_it_says_so(photos, tmp_path,
                                                                          capsys):
  folder = tmp_path / "photos"
  shutil.copytree(photos, folder)
  broken = folder / "train" / "disc" / "broken.jpg"
  broken.write_bytes(next((folder / "train" / "disc").glob("*.jpg")).read_bytes()[:400])
  data = ["data", f"folder:{folder}", f"--config.dataset.data_dir={tmp_path / 'tfds'}"]
  assert cli.main(data) == 2
  error = capsys.readouterr().err
  assert error.count("\n") == 1 and f"cannot decode {broken}: " in error
  assert "Invalid JPEG data" in error and "config.dataset.skip_undecodable=True" in error
  assert not _copies(tmp_path / "tfds")  # Named before anything was written.
  workdir = tmp_path / "run"
  assert cli.main(["train", "--config", LENET_SHAPES, "--workdir", str(workdir),
                   f"--config.dataset.name=folder:{folder}", "--config.dataset.eval_split=val",
                   f"--config.dataset.data_dir={tmp_path / 'tfds'}"]) == 2
  assert capsys.readouterr().err == error and not workdir.exists()

  assert cli.main([*data, "--config.dataset.skip_undecodable=True", "--format", "json"]) == 0
  out, err = capsys.readouterr()
  assert "left out 1 undecodable file of" in err and str(broken) in err
  shown = json.loads(out)
  assert shown["splits"] == {"train": 40, "val": 10}
  assert [item["path"] for item in shown["undecodable"]] == [str(broken)]
  assert cli.main(data) == 2  # The prepared copy remembers it: still named without the option.
  assert f"cannot decode {broken}" in capsys.readouterr().err


def test_a_changed_folder_is_prepared_again(photos, tmp_path, capsys):
  folder, data_dir = tmp_path / "photos", tmp_path / "tfds"
  shutil.copytree(photos, folder)
  dataset = _dataset(folder, data_dir)
  sizes = lambda: {name: split.num_examples
                   for name, split in open_builder(dataset).info.splits.items()}
  assert sizes() == {"train": 40, "val": 10} and "preparing" in capsys.readouterr().out
  assert sizes() == {"train": 40, "val": 10} and "preparing" not in capsys.readouterr().out
  first = _copies(data_dir)
  added = folder / "train" / "ring" / "extra.png"
  shutil.copy(next((folder / "train" / "disc").glob("*.png")), added)
  assert sizes() == {"train": 41, "val": 10}
  assert "removed" in capsys.readouterr().out and _copies(data_dir) != first
  second = _copies(data_dir)
  added.write_bytes(_encode(np.zeros((20, 30, 3), np.uint8), "PNG"))  # Rewritten in place.
  assert sizes() == {"train": 41, "val": 10} and _copies(data_dir) not in (first, second)
  added.unlink()
  assert sizes() == {"train": 40, "val": 10} and len(_copies(data_dir)) == 1


def _layout(tmp_path, photos, change):
  folder = tmp_path / "photos"
  shutil.copytree(photos, folder)
  change(folder)
  return folder


FOLDER_MISTAKES = {
    "missing": (lambda f: shutil.rmtree(f), "does not exist"),
    "no train": (lambda f: (f / "train").rename(f / "training"), "has no train/ folder"),
    "no val": (lambda f: shutil.rmtree(f / "val"), "has no val/, validation/ or test/ folder"),
    "empty class": (lambda f: (f / "val" / "empty").mkdir() or (f / "train" / "empty").mkdir(),
                    "train/empty has no images"),
    "class not in train": (lambda f: (f / "val" / "disc").rename(f / "val" / "discs"),
                           "val/discs is not a class of train/"),
    "no images": (lambda f: [path.unlink() for path in f.rglob("*.*")],
                  "has no images in train/"),
    "split the config names": (lambda f: None, "has no split 'test' "
                               "(config.dataset.eval_split='test'); it has train, val"),
}


@pytest.mark.parametrize("mistake", sorted(FOLDER_MISTAKES))
def test_folder_mistakes_are_one_line_exit_2_before_anything_is_created(mistake, photos, tmp_path,
                                                                        capsys):
  change, message = FOLDER_MISTAKES[mistake]
  folder = _layout(tmp_path, photos, change)
  workdir, data_dir = tmp_path / "run", tmp_path / "tfds"
  eval_split = "test" if mistake == "split the config names" else "val"
  assert cli.main(["train", "--config", LENET_SHAPES, "--workdir", str(workdir),
                   f"--config.dataset.name=folder:{folder}",
                   f"--config.dataset.data_dir={data_dir}",
                   f"--config.dataset.eval_split={eval_split}"]) == 2
  error = capsys.readouterr().err
  assert error.count("\n") == 1 and message in error, error
  assert not workdir.exists() and not data_dir.exists()


def test_a_recipe_that_needs_a_fixed_size_is_refused_on_images_of_varying_size(photos, tmp_path,
                                                                              capsys):
  assert cli.main(["train", "--config", LENET_SHAPES, "--workdir", str(tmp_path / "run"),
                   f"--config.dataset.name=folder:{photos}",
                   f"--config.dataset.data_dir={tmp_path / 'tfds'}",
                   "--config.dataset.eval_split=val",
                   "--config.dataset.train_preprocess=pad_crop_flip"]) == 2
  error = capsys.readouterr().err
  assert error.count("\n") == 1 and "vary in size; resize them first" in error
  assert not (tmp_path / "run").exists()


RESIZING = ("resize", "random_area_crop_flip", "resize_center_crop", "center_crop",
            "resize_shorter(40, 48) | random_crop | flip | pca_lighting | photometric",
            "resize_shorter(36) | ten_crop", "dense(32, 40)")
FIXED_SIZE = ("pad", "pad_crop_flip", "random_crop_flip", "ten_crop")


def test_every_recipe_works_on_images_of_varying_size_or_is_refused_in_one_line(photos, tmp_path):
  """Resizing recipes give the model's input from any image; a recipe that
  crops or pads images as they are needs them of one size, and says so."""
  from cnnjax.data import InputPipeline
  from cnnjax.errors import UserError

  for recipe in RESIZING + FIXED_SIZE:
    views = {"ten_crop": (10,), "dense": (2,)}  # Evaluation only: several views of an image.
    view = next((view for word, view in views.items() if word in recipe), ())
    # Each normalisation once: they follow the recipe, whatever it is.
    normalizations = (("standardize", "subtract_mean", "subtract_pixel_mean")
                      if recipe == "resize_center_crop" else ("standardize",))
    for normalization in normalizations:
      dataset = _dataset(photos, tmp_path, train_preprocess="resize" if view else recipe,
                         eval_preprocess=recipe, normalization=normalization, num_shards=1)
      make = lambda: InputPipeline(open_builder(dataset), dataset, seed=0, process_index=0,
                                   process_count=1, local_devices=1, input_size=32)
      if recipe in FIXED_SIZE:
        with pytest.raises(UserError, match="vary in size; resize them first"):
          make()
        break
      pipeline = make()
      assert next(pipeline.train_batches(8))["image"].shape == (1, 8, 32, 32, 3)
      batch = next(pipeline.eval_batches(8))
      assert batch["image"].shape == (1, 8, *view, 32, 32, 3), recipe
      assert np.isfinite(batch["image"]).all()


def test_the_data_order_of_a_folder_does_not_depend_on_devices_or_processes(photos, tmp_path):
  config = config_lib.base_config()
  config.dataset = _dataset(photos, tmp_path / "tfds", train_preprocess="random_area_crop_flip",
                            num_shards=4, shuffle_buffer=16)
  one = global_batches(config, 1, 1, steps=3, batch_size=8, input_size=32)
  for processes, devices in ((1, 4), (2, 2)):
    other = global_batches(config, processes, devices, steps=3, batch_size=8, input_size=32)
    for a, b in zip(one, other):
      np.testing.assert_array_equal(a["id"], b["id"])
      np.testing.assert_array_equal(a["image"], b["image"])


def test_processes_starting_at_once_prepare_a_folder_once(photos, tmp_path):
  """A sweep's first runs open the same new folder together."""
  processes = [subprocess.Popen(
      [sys.executable, "-m", "cnnjax", "data", f"folder:{photos}",
       f"--config.dataset.data_dir={tmp_path}", "--format", "json"], cwd=ROOT,
      env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
      text=True) for _ in range(2)]
  outputs = [process.communicate(timeout=300) for process in processes]
  assert [process.returncode for process in processes] == [0, 0], outputs
  lines = [line for _, err in outputs for line in err.splitlines()]
  assert sum(line.startswith("preparing folder:") for line in lines) == 1, lines
  assert json.loads(outputs[0][0]) == json.loads(outputs[1][0])
  assert len(_copies(tmp_path)) == 1


def test_the_folder_statistics_are_exact_and_as_a_pass_over_the_split_computes_them(photos,
                                                                                    tmp_path):
  """Preparing measures train/ as it decodes it; a split the preparation did
  not measure is measured on first use: the two agree on the same images."""
  prepared = Source(open_builder(_dataset(photos, tmp_path / "tfds")),
                    _dataset(photos, tmp_path / "tfds"))
  every = _dataset(photos, tmp_path / "tfds", train_split="train[:100%]")
  measured = Source(open_builder(every), every)
  assert prepared.measured_statistics.exact and prepared.measured_statistics.images == 40
  np.testing.assert_allclose(measured.mean_and_std, prepared.mean_and_std, atol=2e-6)


@pytest.fixture(scope="module")
def finetuned(photos, tmp_path_factory):
  """A LeNet trained 4 steps on the ten classes, then fine-tuned
  (last_layer) on three of them with experiments/finetune_folder.py."""
  root = tmp_path_factory.mktemp("finetune")
  data_dir = root / "tfds"
  common = [f"--config.dataset.data_dir={data_dir}", "--config.batch_size=16",
            "--config.dataset.num_shards=4", "--config.num_train_steps=4",
            "--config.eval_every_steps=4", "--config.checkpoint_every_steps=4"]
  assert cli.main(["train", "--config", LENET_SHAPES, "--workdir", str(root / "source"),
                   f"--config.dataset.name=folder:{photos}", "--config.dataset.eval_split=val",
                   "--config.dataset.image_size=32", *common]) == 0
  three = root / "three"
  for split in ("train", "val"):
    for name in ("L", "disc", "star"):
      shutil.copytree(photos / split / name, three / split / name)
  assert cli.main(["train", "--config", f"{FINETUNE}:{root / 'source'},last_layer",
                   "--workdir", str(root / "tuned"), f"--config.dataset.name=folder:{three}",
                   *common, "--config.batch_size=8"]) == 0
  return root


def test_finetune_folder_starts_from_the_source_with_a_new_classifier_and_evaluates(
    finetuned, capsys):
  from cnnjax.workdir.checkpoint import Checkpointer

  saved = {}
  for run in ("source", "tuned"):
    checkpointer = Checkpointer(finetuned / run / "checkpoints", keep=1, read_only=True)
    saved[run] = checkpointer.restore_as_saved(checkpointer.latest_step())["params"]
  assert saved["tuned"]["output"]["kernel"].shape[-1] == 3  # The folder's classes.
  for layer in ("C1", "C3", "C5", "F6"):  # last_layer: the features are the source's.
    np.testing.assert_array_equal(saved["tuned"][layer]["kernel"], saved["source"][layer]["kernel"])
  config = json.loads((finetuned / "tuned" / "config.json").read_text())
  assert config["dataset"]["mean"] == config["dataset"]["std"] == []  # A folder source: its own.
  assert cli.main(["eval", "--workdir", str(finetuned / "tuned")]) == 0
  evaluation = json.loads((finetuned / "tuned" / "eval" / "4.json").read_text())["evaluations"][0]
  assert evaluation["class_names"] == ["L", "disc", "star"] and evaluation["split"] == "val"
  capsys.readouterr()
  assert cli.main(["report", str(finetuned / "tuned")]) == 0
  assert f"folder:{finetuned / 'three'}" in capsys.readouterr().out


def test_finetune_folder_knows_the_classifier_of_every_registered_model():
  """experiments/finetune_folder.py's CLASSIFIERS name exactly the layers
  whose shape follows the number of classes, checked on one model of each
  entry (traced abstractly), and every registered model has an entry."""
  import functools
  import importlib.util

  import jax
  import jax.numpy as jnp
  import ml_collections

  from cnnjax import models
  from cnnjax.training.finetune import path_name

  spec = importlib.util.spec_from_file_location("finetune_folder", FINETUNE)
  experiment = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(experiment)
  checked = set()
  for name in models.list_models():
    layers = experiment.classifier_layers(ml_collections.ConfigDict({"name": name}))
    prefix = next(prefix for prefix in experiment.CLASSIFIERS if name.startswith(prefix))
    if prefix in checked:
      continue
    checked.add(prefix)
    shapes_of = []
    for classes in (10, 11):
      model = models.create_model(name, num_classes=classes)
      size = models.NATIVE_INPUT_SIZE[name]
      variables = jax.eval_shape(functools.partial(model.init, train=False), jax.random.key(0),
                                 jnp.zeros((1, size, size, models.NATIVE_INPUT_CHANNELS[name])))
      shapes_of.append({path_name(path): leaf.shape for path, leaf
                        in jax.tree_util.tree_leaves_with_path(variables["params"])})
    changed = {path.rsplit("/", 1)[0] for path in shapes_of[0]
               if shapes_of[0][path] != shapes_of[1][path]}
    assert changed == set(layers), name
  assert checked == set(experiment.CLASSIFIERS)
