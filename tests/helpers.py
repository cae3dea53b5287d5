"""Small configs for tests: the real code paths on tiny data."""

import pathlib

from cnnjax import config as config_lib

ROOT = pathlib.Path(__file__).resolve().parents[1]
LENET_DIGITS = str(ROOT / "experiments" / "lenet5_digits.py")


def tiny_config(data_dir: str, **overrides):
  """The digits LeNet-5 experiment shrunk to a few steps; `overrides` use
  dotted keys with `__` for `.` (model__name="resnet20")."""
  config = config_lib.load(LENET_DIGITS, overrides.pop("model__name", None))
  config.dataset.data_dir = data_dir
  config.batch_size = 16
  config.num_train_steps = 6
  config.log_every_steps = 2
  config.eval_every_steps = 3
  config.checkpoint_every_steps = 3
  for key, value in overrides.items():
    config_lib.override(config, key.replace("__", "."), str(value))
  config_lib.validate(config)
  return config
