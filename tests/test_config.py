"""Experiment files and command-line overrides."""

import pytest
from helpers import LENET_DIGITS

from cnnjax import config as config_lib
from cnnjax.errors import UserError


def test_overrides_keep_types_and_parse_literals():
  config = config_lib.from_command_line(LENET_DIGITS, [
      ("optimizer.learning_rate", "1"), ("half_precision", "true"),
      ("schedule.boundaries_epochs", "(10, 20)"), ("schedule.name", "multistep"),
      ("model.activation", "relu")])
  assert config.optimizer.learning_rate == 1.0 and isinstance(config.optimizer.learning_rate, float)
  assert config.half_precision is True
  assert tuple(config.schedule.boundaries_epochs) == (10, 20)
  assert config.model.activation == "relu"


def test_every_model_option_is_a_config_key():
  config = config_lib.load(LENET_DIGITS)
  assert dict(config.model) == {"name": "lenet5", "activation": "scaled_tanh",
                                "pooling": "trainable", "c3_connections": "paper",
                                "initialization": "paper"}


def test_a_new_model_name_brings_its_own_options():
  config = config_lib.from_command_line(
      LENET_DIGITS, [("model.shortcut", "none"), ("model.name", "resnet20")])
  assert config.model.name == "resnet20" and config.model.shortcut == "none"
  assert "c3_connections" not in config.model


@pytest.mark.parametrize("key, text, message", [
    ("optimiser.name", "adam", "unknown config key 'config.optimiser'"),
    ("model.c3_table", "full", "unknown config key 'config.model.c3_table'"),
    ("num_epochs", "many", "config.num_epochs must be float, got 'many'"),
    ("batch_size", "0", "config.batch_size=0 is impossible"),
    ("schedule.decay_factor", "2.0", "config.schedule.decay_factor=2.0 is impossible"),
    ("extra_evals", "(('10-crop', 'ten_crop'),)", "config.extra_evals=.* is impossible"),
    ("extra_evals", "(('a', 'ten_crop'), ('a', 'center_crop'))", "config.extra_evals=.* is impossible"),
    ("extra_evals", "(('ema', 'ten_crop'),)", "config.extra_evals=.* is impossible"),
    ("extra_evals", "('10crop', 'ten_crop')", "config.extra_evals=.* is impossible"),
    ("ema_decay", "1", "config.ema_decay=1.0 is impossible; it must be in"),
    ("schedule.plateau_metric", "eval_10crop/top1_error",
     "config.schedule.plateau_metric='eval_10crop/top1_error' is impossible; it must be one of "
     "train/loss, eval/loss, eval/top1_error, eval/top5_error"),
])
def test_bad_overrides_name_the_key(key, text, message):
  with pytest.raises(UserError, match=message.replace("(", r"\(")):
    config_lib.from_command_line(LENET_DIGITS, [(key, text)])


def test_extra_evals_and_the_plateau_metric_they_offer():
  config = config_lib.from_command_line(LENET_DIGITS, [
      ("extra_evals", "(('10crop', 'ten_crop'),)"), ("ema_decay", "0.999"),
      ("schedule.plateau_metric", "eval_10crop_ema/top1_error")])
  assert config.extra_evals == (("10crop", "ten_crop"),)
  assert config_lib.eval_prefixes(config) == ["eval", "eval_10crop", "eval_ema",
                                              "eval_10crop_ema"]
