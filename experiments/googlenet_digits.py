"""GoogLeNet (Szegedy et al. 2015, Table 1) on the embedded `digits`, at 80x80,
just above the smallest input its pooling and auxiliary heads allow, with
both auxiliary classifiers (losses weighted 0.3, §5) and BatchNorm after
every convolution in place of LRN and conv biases (`norm = "batchnorm"`).

  cnnjax train --config experiments/googlenet_digits.py --workdir runs/googlenet_digits

Why BatchNorm here: the paper's network (LRN, Caffe's xavier initialisation)
barely left chance level within the few hundred steps 1,497 images allow:
86.3% test error after 6 epochs (276 steps, with a 1-epoch warmup), its
loss only starting to fall. The paper trained for about 250 epochs of
ImageNet. `--config.model.norm=lrn` restores the paper's layers.

SGD with momentum 0.9 and the paper's schedule shape (lr × 0.96 every 8
epochs, §6) compressed to 1-epoch steps. Measured: 2.67% test top-1 error
after 4 epochs (184 steps, about 8 minutes on 2 busy CPU cores).
"""

from cnnjax.config import base_config


def get_config(arg=None):
  del arg
  config = base_config()
  config.model.name = "googlenet"
  config.model.norm = "batchnorm"
  config.dataset.name = "digits"
  config.dataset.image_size = 80
  config.batch_size = 32
  config.num_epochs = 4.0
  config.log_every_steps = 23
  config.optimizer.learning_rate = 0.01
  config.optimizer.momentum = 0.9
  config.optimizer.weight_decay = 2e-4
  config.schedule.name = "exponential"
  config.schedule.decay_factor = 0.96
  config.schedule.decay_every_epochs = 1.0
  return config
