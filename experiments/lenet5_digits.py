"""LeNet-5 on the embedded `digits` dataset: the default, offline experiment.

Paper: LeCun, Bottou, Bengio, Haffner 1998, "Gradient-based learning applied
to document recognition" (LeNet-5: §II.B). The 1,797 scikit-learn digits
(8x8) are resized to the paper's 32x32 input; the model is the paper's
(scaled tanh, trainable subsampling, Table I's C3 connections).

  cnnjax train --config experiments/lenet5_digits.py --workdir runs/lenet5_digits

Measured on 2026-12-07 (commit 924c011; 2 CPU cores, AMD EPYC, load about 2
from other work): 0.0% test top-1 error (none of the 300 test images wrong)
after 30 epochs, 21 s of training (4,021 images/s), 44 s with start-up.
docs/models.md quotes this figure.
"""

from cnnjax.config import base_config


def get_config(arg=None):
  del arg
  config = base_config()
  config.model.name = "lenet5"
  config.dataset.name = "digits"
  config.dataset.image_size = 32
  config.batch_size = 32
  config.num_epochs = 30.0
  config.log_every_steps = 20
  config.optimizer.name = "sgd"
  config.optimizer.learning_rate = 0.02
  config.optimizer.momentum = 0.9
  config.schedule.name = "cosine"
  return config
