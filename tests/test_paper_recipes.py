"""The papers' experiment files (experiments/*_imagenet.py, resnet_cifar10.py,
densenet_cifar.py): every argument loads and validates, each states what the
issue asks of it, the smoke variants keep the recipe, and mistakes in the
argument are one line."""

import pytest
from helpers import ROOT

from cnnjax import config as config_lib
from cnnjax.errors import UserError

# Each file with every argument it takes alone (the default first).
VARIANTS = {
    "alexnet_imagenet": ["", "owt", "nolrn"],
    "vgg_imagenet": ["", "a_lrn", "b", "c", "d", "e", "384", "jitter", "e,jitter"],
    "googlenet_imagenet": ["", "bn"],
    "resnet_imagenet": ["", "18", "34", "101", "152", "plain18", "plain34", "torchvision"],
    "densenet_imagenet": ["", "169", "201", "161"],
    "resnet_cifar10": ["", "32", "44", "56", "110", "plain20", "plain32", "plain44", "plain56"],
    "densenet_cifar": ["", "noaug", "c100", "noaug,c100"],
}
CASES = [(name, arg) for name, args in VARIANTS.items() for arg in args]


def load(name: str, arg: str):
  path = ROOT / "experiments" / f"{name}.py"
  config = config_lib.load(f"{path}:{arg}" if arg else str(path))
  config_lib.validate(config)
  return config


@pytest.mark.parametrize("name, arg", CASES, ids=[f"{n}:{a}" for n, a in CASES])
def test_every_variant_loads_and_its_smoke_keeps_the_recipe(name, arg):
  config = load(name, arg)
  smoke = load(name, f"{arg},smoke" if arg else "smoke")
  # The smoke run is the same recipe: model, optimizer, schedule kind,
  # normalisation and evaluation modes; only data, sizes and length change.
  assert smoke.model.name == config.model.name
  assert smoke.model.to_dict() == config.model.to_dict()
  assert smoke.optimizer.to_dict() == config.optimizer.to_dict()
  assert smoke.schedule.name == config.schedule.name
  assert smoke.dataset.normalization == config.dataset.normalization
  assert [mode for mode, _ in smoke.extra_evals] == [mode for mode, _ in config.extra_evals]
  assert smoke.ema_decay == config.ema_decay
  ops = lambda recipe: [op.split("(")[0].strip() for op in recipe.split("|")]
  for key in ("train_preprocess", "eval_preprocess"):
    assert ops(smoke.dataset[key]) == ops(config.dataset[key])
  assert smoke.dataset.name in ("shapes/jpeg", "shapes/hard")
  assert smoke.num_train_steps > 0


@pytest.mark.parametrize("name", VARIANTS)
def test_a_file_opens_with_its_paper_command_results_and_departures(name):
  text = (ROOT / "experiments" / f"{name}.py").read_text()
  assert text.startswith('"""')
  for needed in (f"cnnjax train --config experiments/{name}.py", "Expected",
                 "Hardware and time", "Departures", "smoke"):
    assert needed in text, needed


@pytest.mark.parametrize("name", [n for n in VARIANTS if n.endswith("_imagenet")])
def test_imagenet_recipes_report_on_the_labelled_validation_split(name):
  config = load(name, "")
  assert (config.dataset.name, config.dataset.eval_split) == ("imagenet2012", "validation")
  assert config.optimizer.base_batch_size == config.batch_size  # The paper's rate at its batch.


def test_paper_schedules_in_iterations():
  """ResNet §4.2: 64k iterations, drops at 32k and 48k, at batch 128 (390
  steps an epoch); ResNet-110 at 0.01 for its first 400."""
  config = load("resnet_cifar10", "110")
  steps_per_epoch = 50_000 // 128
  assert round(config.num_epochs * steps_per_epoch) == 64_000
  assert [round(b * steps_per_epoch) for b in config.schedule.boundaries_epochs] == [32_000,
                                                                                      48_000]
  assert round(config.schedule.warmup_epochs * steps_per_epoch) == 400
  assert config.schedule.warmup_kind == "constant"
  assert load("resnet_cifar10", "56").schedule.warmup_epochs == 0


@pytest.mark.parametrize("arg, message", [
    ("51", "has no argument '51'"),
    ("50,101", "'50' and '101' exclude each other"),
])
def test_a_wrong_argument_is_one_line(arg, message):
  with pytest.raises(UserError, match=message):
    load("resnet_imagenet", arg)
