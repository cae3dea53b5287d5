"""GoogLeNet (Szegedy et al. 2015, Table 1) on the embedded `digits`, at 80x80,
just above the smallest input its pooling allows, with both auxiliary
classifiers (losses weighted 0.3, §5).

  cnnjax train --config experiments/googlenet_digits.py --workdir runs/googlenet_digits

SGD with momentum 0.9 and the paper's schedule shape (lr × 0.96 every 8
epochs, §6) compressed to 1 epoch steps. Expected: under 5% test top-1 error;
slow on a CPU (about 10 minutes on 2 cores).
"""

from cnnjax.config import base_config


def get_config(arg=None):
  del arg
  config = base_config()
  config.model.name = "googlenet"
  config.dataset.name = "digits"
  config.dataset.image_size = 80
  config.batch_size = 32
  config.num_epochs = 2.0
  config.log_every_steps = 20
  config.optimizer.learning_rate = 0.01
  config.optimizer.momentum = 0.9
  config.optimizer.weight_decay = 2e-4
  config.schedule.name = "exponential"
  config.schedule.decay_factor = 0.96
  config.schedule.decay_every_epochs = 1.0
  return config
