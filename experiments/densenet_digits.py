"""DenseNet-BC (Huang et al. 2017, §3, CIFAR layout: three dense blocks,
bottlenecks, compression 0.5, growth 12) on the embedded `digits`, shrunk to 6
layers per block (DenseNet-BC-40) so it trains on a CPU.

  cnnjax train --config experiments/densenet_digits.py --workdir runs/densenet_digits

The paper's CIFAR recipe (SGD with Nesterov momentum 0.9, weight decay 1e-4,
lr 0.1 divided by 10 at 50% and 75% of training) at batch 64. Expected: about
1.3% test top-1 error (measured: 1.33%, 4 of 300), in about 7 minutes on 2
CPU cores.
"""

from cnnjax.config import base_config


def get_config(arg=None):
  del arg
  config = base_config()
  config.model.name = "densenet_bc100"
  config.model.block_config = (6, 6, 6)
  config.dataset.name = "digits"
  config.dataset.image_size = 32
  config.batch_size = 64
  config.num_epochs = 10.0
  config.log_every_steps = 20
  config.optimizer.learning_rate = 0.1
  config.optimizer.momentum = 0.9
  config.optimizer.nesterov = True
  config.optimizer.weight_decay = 1e-4
  config.schedule.name = "multistep"
  config.schedule.boundaries_epochs = (5.0, 7.5)
  return config
