"""Training learns, and the tests saying so can fail.

For every data source and one small member of each model family: a short run
whose final top-1 error must beat a threshold set well below chance and well
above what the run reaches, and its negative control, the same run, which must
stay near chance. The two controls:

- Random labels (`random_labels`: each image's label a hash of its encoded
  bytes, fixed per image, independent of what it shows, in both splits), for
  the data sources: what a data source must get right is which label goes
  with which image, and this is that going wrong. The control runs the very
  program its run compiled (a persistent-cache hit): it costs only its steps.
- Learning rate zero, for the model families: what a network and its train
  step must get right is that the update reaches the parameters, and this is
  the update never applied. The network at its initialisation must not pass.
  It compiles a program of its own (the rate is a constant in it).

(The TFDS sources' own tests, tests/test_data.py and tests/test_tfds_by_name.py,
and digits' LeNet-5 here, whose run tests/test_train.py and
tests/test_visualize.py read, complete the list.) The errors each run and
control reach are printed (`pytest -rP` shows them). Chance is 0.9 throughout
(ten balanced classes); a control must stay above 0.75.
"""

import jax
import pytest
import tensorflow as tf
from helpers import tiny_config
from small_members import GoogLeNetStem

from cnnjax import models
from cnnjax.data import shapes
from cnnjax.data.source import Source
from cnnjax.training import train


# The runs here train on one of the four test devices: what they test is learning,
# which the other tests check is the same on any device count, and four devices
# sharing 2 cores cost 1.5x the time per step (alexnet's, measured).
ONE_DEVICE = jax.devices()[:1]


def random_labels(open_split):
  """`Source.open` with every label replaced by a hash of its encoded image."""
  def open_with_random_labels(self, *args, **kwargs):
    classes = self.spec.num_classes
    relabel = lambda example: {**example, "label": tf.cast(
        tf.strings.to_hash_bucket_fast(example["image"], classes), example["label"].dtype)}
    return open_split(self, *args, **kwargs).map(relabel)
  return open_with_random_labels


def final_error(config, workdir, control: str | None = None, devices=ONE_DEVICE) -> float:
  """The final eval/top1_error of `config` trained in `workdir`; `control`:
  None, "random_labels" or "learning_rate_zero"."""
  with pytest.MonkeyPatch.context() as patch:
    if control == "random_labels":
      patch.setattr(Source, "open", random_labels(Source.open))
    elif control == "learning_rate_zero":
      config = config.copy_and_resolve_references()
      config.optimizer.learning_rate = 0.0
    final = train.train_and_evaluate(train.plan(config, devices=devices), workdir)
  return final["eval/top1_error"]


def test_lenet5_learns_digits_and_not_their_random_labels(learned_digits, digits_dir, tmp_path):
  """The embedded `digits` (a data source) and LeNet-5 (its family's member)."""
  _, plan, final = learned_digits
  # On all four devices, as the shared run trained: the program it compiled.
  control = final_error(plan.config, tmp_path, "random_labels", devices=None)
  print(f"digits, lenet5: {final['eval/top1_error']:.3f}; random labels: {control:.3f}")
  # 60 steps of 32 reach 8.7% (the paper's network; 0% after 30 epochs):
  # 30% is three times that and a third of chance.
  assert final["eval/top1_error"] < 0.3
  assert control > 0.75  # Chance: 0.9 (measured: 0.927).


@pytest.fixture(scope="session")
def small_shapes(tmp_path_factory):
  """A data dir for `shapes` shrunk to 200 train and 30 test (jpeg: validation)
  images per class; each config is built by its first run."""
  return str(tmp_path_factory.mktemp("small_shapes"))


# name → (overrides of SGD at 0.05 for 300 steps of 32, threshold: the final error must be
# below it).
ADAM_WARMED_UP = dict(optimizer__name="adam", optimizer__learning_rate=2e-3,
                      schedule__warmup_epochs=1.0, num_train_steps=600)
SHAPES = {
    "clean": ({}, 0.3),  # Reaches 0.010 (measured).
    # experiments/lenet5_shapes.py's recipe: with SGD at 0.05 both stayed at chance
    # (0.90 and 0.89 after 300 steps, measured), as that file says of the full dataset.
    # `hard` is hard by design (a linear model is at chance, LeNet-5 needs epochs of
    # 50,000 images): 600 steps on 2,000 images reach 0.74 (measured), its random
    # labels 0.89. The threshold lies between, 3 standard deviations of 300 images from each.
    "hard": (ADAM_WARMED_UP, 0.8),
    # Resized to LeNet's 32x32 from 64 to 128 pixels a side: 0.79 (measured). A weak
    # bar (chance is 0.9): the suite's budget does not take this variant further.
    "jpeg": (ADAM_WARMED_UP | {"dataset__eval_split": "validation", "dataset__image_size": 32},
             0.85),
}


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_lenet5_modern_learns_each_shapes_variant_and_not_its_random_labels(name, small_shapes,
                                                                           tmp_path):
  overrides, threshold = SHAPES[name]
  settings = dict(batch_size=32, num_train_steps=300, log_every_steps=100,
                  optimizer__learning_rate=0.05) | overrides
  steps = settings["num_train_steps"]
  config = tiny_config(small_shapes, model__name="lenet5_modern", dataset__name=f"shapes/{name}",
                       eval_every_steps=steps, checkpoint_every_steps=steps, **settings)
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(shapes, "EXAMPLES_PER_CLASS", {"train": 200, "test": 30})
    patch.setattr(shapes, "JPEG_EXAMPLES_PER_CLASS", {"train": 200, "validation": 30})
    error = final_error(config, tmp_path / "run")
    control = final_error(config, tmp_path / "control", "random_labels")
  print(f"shapes/{name}, lenet5_modern: {error:.3f}; random labels: {control:.3f}")
  assert error < threshold
  assert control > 0.75  # Chance: 0.9.


@pytest.fixture(scope="session")
def shapes_folder(tmp_path_factory):
  """`shapes/clean`'s scenes as a folder (cnnjax.data.shapes.write_folder):
  50 train and 10 val images of each class, JPEG and PNG, 64 to 128 pixels a side."""
  path = tmp_path_factory.mktemp("shapes_folder") / "shapes"
  shapes.write_folder(str(path), {"train": 50, "val": 10}, shapes.CLEAN)
  return path


def test_lenet5_modern_learns_a_folder_of_images(shapes_folder, tmp_path):
  config = tiny_config(str(tmp_path / "tfds"), model__name="lenet5_modern",
                       dataset__name=f"folder:{shapes_folder}", dataset__eval_split="val",
                       dataset__image_size=32, batch_size=32, num_train_steps=200,
                       eval_every_steps=200, checkpoint_every_steps=200, log_every_steps=100,
                       optimizer__name="adam", optimizer__learning_rate=2e-3)
  error = final_error(config, tmp_path / "run")
  control = final_error(config, tmp_path / "control", "random_labels")
  print(f"folder of shapes/clean, lenet5_modern: {error:.3f}; random labels: {control:.3f}")
  assert error < 0.4  # Reaches 0.09 (measured); chance 0.9.
  assert control > 0.75  # 0.89 (measured).


# One small member of each family but LeNet-5's (above), on `digits` at the
# smallest input each takes (digits are 8x8): name → overrides of SGD at 0.05
# for 50 steps of 32 (a little more than an epoch).
# Adam: its steps do not scale with the gradients, which these start with far
# from LeNet's (SGD at 0.05 left them near chance after 50 steps on four devices,
# measured: 0.80 alexnet, 0.91 vgg11_bn), for 100 steps, without dropout.
ADAM = dict(optimizer__name="adam", optimizer__learning_rate=1e-3, num_train_steps=100)
FAMILIES = {
    # 0.40 after 100 steps on four devices (measured).
    "alexnet": ADAM | dict(model__features=(32, 64, 64, 64, 64), model__dense_features=128,
                           model__dropout_rate=0.0, model__norm="batchnorm",
                           dataset__image_size=67, num_train_steps=200),
    "vgg11_bn": ADAM | dict(model__stages=((8, (3,)), (16, (3,)), (32, (3, 3)), (32, (3, 3)),
                                           (32, (3, 3))), model__dense_features=64,
                            model__dropout_rate=0.0, dataset__image_size=32),
    "resnet20": dict(dataset__image_size=8),
    "densenet_bc100": dict(model__block_config=(2, 2, 2), dataset__image_size=8),
    # cuda-convnet's smallest net (layers-80sec.cfg) at 24x24, CIFAR-10's crop: 0.26 after
    # 100 Adam steps on four devices, 0.090 after 200 on one (measured). Its 13% and 18% nets at their 6x6 and
    # 12x12 digits crops stayed at 0.84-0.91 after 100 steps: too little image to learn from.
    "cifar_convnet_80sec": ADAM | dict(dataset__image_size=24, num_train_steps=200),
    # GoogLeNet as its stem and inception 3a (tests/small_members.py): the nine modules
    # and two auxiliary heads of the full network took 7.8 minutes of one worker (idle
    # 2 cores) to compile and train twice, which the suite's 10 minutes cannot hold.
    "googlenet": ADAM | dict(model__aux_classifiers=False, dataset__image_size=32),
}
CONTROLS = {name: "learning_rate_zero" for name in FAMILIES}


def _family_member(from_config):
  """`cnnjax.models.from_config`, building GoogLeNet's stem and inception 3a
  where the config names `googlenet`."""
  def member(config, *args, num_classes=None, **kwargs):
    if config.model.name == "googlenet":
      return GoogLeNetStem(num_classes=num_classes)
    return from_config(config, *args, num_classes=num_classes, **kwargs)
  return member


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_a_small_member_of_each_family_learns_digits_and_not_without_updates(
    name, digits_dir, tmp_path):
  settings = dict(batch_size=32, num_train_steps=50, log_every_steps=50,
                  optimizer__learning_rate=0.05) | FAMILIES[name]  # SGD unless Adam.
  steps = settings["num_train_steps"]
  config = tiny_config(digits_dir, model__name=name, eval_every_steps=steps,
                       checkpoint_every_steps=steps, **settings)
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(models, "from_config", _family_member(models.from_config))
    error = final_error(config, tmp_path / "run")
    control = final_error(config, tmp_path / "control", CONTROLS[name])
  print(f"digits, {name}: {error:.3f}; {CONTROLS[name]}: {control:.3f}")
  # Measured: 0.027 (resnet20), 0.037 (alexnet), 0.047 (vgg11_bn), 0.073 (densenet_bc100),
  # 0.090 (cifar_convnet_80sec), 0.107 (googlenet); 30% is a third of chance, and several
  # times what the runs reach.
  assert error < 0.3
  assert control > 0.75  # Chance: 0.9 (measured: 0.87 to 0.93).
