"""Every experiment file loads, validates and plans (model traced abstractly,
data opened) without compiling anything, so none rots unnoticed."""

import pytest
import tensorflow_datasets as tfds
from helpers import ROOT

from cnnjax import config as config_lib
from cnnjax.training import train

# finetune_folder.py needs a source workdir and a folder of images as its
# argument: tests/test_folders.py plans, trains and evaluates it end to end.
EXPERIMENTS = sorted(path for path in (ROOT / "experiments").glob("*.py")
                     if path.name != "finetune_folder.py")


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda path: path.stem)
def test_experiment_plans(path, digits_dir):
  config = config_lib.load(str(path))
  assert path.read_text().startswith('"""'), "an experiment opens with its paper and command"
  assert f"cnnjax train --config experiments/{path.name}" in path.read_text()
  config_lib.validate(config)
  if config.dataset.name == "digits":
    config.dataset.data_dir = digits_dir
    plan = train.plan(config)
  else:
    # A smaller batch needs fewer mock images (ImageNet's are large, and a
    # per-pixel mean reads them all); what is checked does not depend on it.
    config.batch_size = min(config.batch_size, 64)
    with tfds.testing.mock_data(num_examples=config.batch_size):
      plan = train.plan(config)
  assert plan.total_steps > 0
