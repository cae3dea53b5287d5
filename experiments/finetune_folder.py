"""Fine-tuning a pretrained network on your own photographs: a folder of
images in class sub-folders (photos/train/CLASS/*.jpg, photos/val/CLASS/*.jpg),
from ImageNet weights to a test error in three commands:

  cnnjax import-weights --model resnet50 --from resnet50.safetensors --workdir runs/resnet50
  cnnjax train --config experiments/finetune_folder.py:runs/resnet50 \
      --config.dataset.name=folder:photos --workdir runs/photos
  cnnjax eval --workdir runs/photos --config.dataset.eval_split=test

The first makes a cnnjax workdir of torchvision's weights (how to get the
safetensors file: cnnjax/pretrained/import_weights.py); any cnnjax workdir
will do instead (`cnnjax train` writes one). The second prepares the folder
once (cnnjax/data/folders.py: the classes are the sorted folder names, as
torchvision's ImageFolder numbers them; `cnnjax data folder:photos` shows
what it found) and fine-tunes, evaluating on val/ every epoch; the third
reports the error on test/ (leave it out if the folder has val/ only; a
folder with test/ and no val/ trains with --config.dataset.eval_split=test).

ARG: the source workdir, then optionally, after a comma, the arm:

  all_layers   (default) every layer trained, the pretrained ones at a tenth
               of the rate of the new classifier (pretrained_learning_rate_scale)
  last_layer   a new classifier on frozen features (BatchNorm statistics
               frozen too): a linear probe, the cheapest; GoogLeNet's
               auxiliary classifiers are not used

What is taken from the source (its config.json): the network with every
option, its input size, its normalisation (an ImageNet network keeps
ImageNet's mean and standard deviation: its features were learnt on inputs
normalised so; a source trained on a dataset outside cnnjax's table, whose
statistics were computed, gets the folder's own), and its weights, all but
the classifier, which is new and sized to the folder's classes
(CLASSIFIERS). The recipe is the common one for photographs: random-area crops and flips (torchvision's RandomResizedCrop)
for training, the shorter side to size / 0.875 and the centre crop for
evaluation; SGD with Nesterov momentum 0.9 at 0.1 for batch 64 (linearly
scaled: 0.05 at its batch of 32, small folders take more steps), cosine
decay after a warm-up epoch, weight decay 1e-4, 30 epochs.
Override any of it with --config.KEY=VALUE (`cnnjax config` lists the keys).

Measured offline on 2 shared CPU cores (AMD EPYC, load 5-9), with stand-ins
for what cannot be downloaded here: torchvision's ResNet-18 trained by
PyTorch for 3 epochs on 10,000 `shapes/clean` scenes at 32x32
(scripts/torchvision_shapes_weights.py --size 32 --clean: 1.9% test error
in PyTorch), saved as torchvision's safetensors and imported
(--config.dataset.name=shapes/clean --config.dataset.image_size=32: 2.08% on
shapes/clean's 10,000 test images in cnnjax, so the import is right); the
folder: clean scenes drawn at 64 to 128 pixels as JPEG and PNG
(scripts/shapes_folder.py clean_photos --clean --train 20 --val 10 --test
50: 200 training images). Test top-1 error on its 500 test/ images, one
seed, each arm 180 steps in about 2 minutes:

  all_layers   8.4%
  last_layer   16.6%
  scratch      82.0%  (the same recipe without init_from: 200 images are few)

What this shows: the commands, the import, the new 10-way classifier and
both arms work end to end on JPEG and PNG files of varying size, and
features learnt elsewhere carry over to a folder. What it does not: anything
about ImageNet features on real photographs. On a folder of shapes/hard's
scenes (clutter, occlusion, any rotation) the same three arms all stayed at
86-87% validation error: features of clean shapes did not carry to them
from 200 images.
"""

import json
import pathlib

import ml_collections

from cnnjax import config as config_lib
from cnnjax.data import datasets
from cnnjax.errors import UserError

FILE = "experiments/finetune_folder.py"
ARMS = ("all_layers", "last_layer")
# The layers whose shape follows the number of classes, by model name prefix:
# a new classifier starts fresh there (tests/test_experiments.py checks the
# table against every registered model).
CLASSIFIERS = {"lenet5": ("output",), "alexnet": ("fc8",), "vgg": ("fc8",),
               "cifar_convnet_18pct": ("fc4",), "cifar_convnet": ("fc5",),
               "googlenet": ("fc", "aux4a/fc2", "aux4d/fc2"), "resnet": ("head",),
               "plain": ("head",), "densenet": ("head",)}


def classifier_layers(model: ml_collections.ConfigDict) -> tuple[str, ...]:
  """The layers of `model` (config.model) that a new classifier replaces."""
  for prefix, layers in CLASSIFIERS.items():
    if model.name.startswith(prefix):
      return layers if model.get("aux_classifiers", True) else layers[:1]
  raise UserError(f"{FILE} does not know the classifier of {model.name!r}; add it to CLASSIFIERS")


def _source_config(source: str) -> dict:
  path = pathlib.Path(source, "config.json")
  try:
    return json.loads(path.read_text())
  except (OSError, ValueError) as error:
    raise UserError(f"{FILE}: cannot read {path} ({error}); the ARG is the workdir of the "
                    "network to fine-tune, e.g. one `cnnjax import-weights` wrote") from None


def _tuples(value):
  """JSON's lists as the config's tuples."""
  return tuple(map(_tuples, value)) if isinstance(value, list) else value


def get_config(arg=None):
  source, _, arm = (arg or "").partition(",")
  arm = arm.strip() or "all_layers"
  if not source.strip() or arm not in ARMS:
    raise UserError(f"{FILE} takes the source workdir and an arm ({', '.join(ARMS)}), e.g. "
                    f"--config {FILE}:runs/resnet50,last_layer")
  stored = _source_config(source.strip())
  config = config_lib.base_config()
  config.model = ml_collections.ConfigDict(
      {key: _tuples(value) for key, value in stored["model"].items()})
  from_dataset = stored.get("dataset", {})
  table = datasets.DATASETS.get(from_dataset.get("name"))
  config.dataset.update(
      name="folder:photos", train_split="train", eval_split="val",
      image_size=from_dataset.get("image_size") or (table.image_size if table else 0),
      normalization=from_dataset.get("normalization", "standardize"),
      train_preprocess="random_area_crop_flip", eval_preprocess="resize_center_crop",
      mean=_tuples(from_dataset.get("mean") or (table.mean if table else ())),
      std=_tuples(from_dataset.get("std") or (table.std if table else ())))
  config.batch_size = 32
  config.num_epochs = 30.0
  config.log_every_steps = 10
  config.optimizer.update(name="sgd", learning_rate=0.1, base_batch_size=64, momentum=0.9,
                          nesterov=True, weight_decay=1e-4)
  config.schedule.update(name="cosine", warmup_epochs=1.0)
  classifier = classifier_layers(config.model)
  config.init_from = source.strip()
  config.init_from_exclude = tuple(f"^{layer}/" for layer in classifier)
  if arm == "last_layer":
    config.frozen = (f"^(?!{classifier[0]}/)",)  # Everything but the classifier.
    config.aux_loss_weight = 0.0
  else:
    config.pretrained_learning_rate_scale = 0.1
  return config
