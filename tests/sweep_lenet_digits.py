"""A tiny ablation for the sweep's end-to-end test (tests/test_sweep_end_to_end.py):
LeNet-5 on the embedded digits, ReLU against tanh, eight steps of batch 16.

  cnnjax sweep --config tests/sweep_lenet_digits.py --workdir /tmp/sweep --seeds 2

ARG is comma-separated words: `tuned` adds a tuning stage (ReLU's learning
rate, two trials); `diverge` a third variant whose learning rate makes every
run diverge (exit status 3), to show that a failing run is reported while the
others finish. Not a measurement: eight steps decide nothing.
"""

import pathlib

from cnnjax import config as config_lib
from cnnjax.sweep import Claim, Sweep, Tuning, Variant

LENET_DIGITS = pathlib.Path(__file__).resolve().parents[1] / "experiments" / "lenet5_digits.py"


def get_config(arg=None):
  del arg
  config = config_lib.load(str(LENET_DIGITS))
  config.batch_size = 16
  config.num_train_steps = 8
  config.log_every_steps = 2
  config.eval_every_steps = 8
  config.checkpoint_every_steps = 8
  config.schedule.name = "constant"
  return config


def get_sweep(arg=None):
  words = set(arg.split(",")) if arg else set()
  variants = [Variant("relu", {"model.activation": "relu"}),
              Variant("tanh", {"model.activation": "tanh"})]
  if "diverge" in words:
    variants.append(Variant("diverge", {"optimizer.learning_rate": 1e38}))  # Inf at step 3.
  return Sweep(
      variants=variants,
      claims=[Claim("a ReLU network reaches the target training error faster than tanh",
                    "AlexNet §3.1, Figure 1", metric="epochs_to_target", better="relu",
                    worse="tanh", ratio=6.0),
              Claim("ReLU ends with a lower test error", "test claim",
                    metric="final eval/top1_error", better="relu", worse="tanh")],
      target_train_error=0.8,
      tuning=Tuning("epochs_to_target",
                    variant_grids={"relu": {"optimizer.learning_rate": (0.02, 0.05)}})
      if "tuned" in words else None)
