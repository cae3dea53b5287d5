"""VGG-A (VGG-11) with BatchNorm (Simonyan, Zisserman 2015, Table 1; BatchNorm as
torchvision's vgg11_bn) on the embedded `digits` at 32x32, the smallest input
its five pooling stages allow, with FC6/FC7 of 512 units instead of 4,096.

  cnnjax train --config experiments/vgg11_bn_digits.py --workdir runs/vgg11_bn_digits

Recipe of §3.1 (SGD, momentum 0.9, weight decay 5e-4, dropout 0.5) with
lr 0.01. Not yet shown to converge: a first run on 2 CPU cores (about 12
images/s) was still at chance (loss 2.30) after 40 of its 69 steps; the
learning rate for this shrunken setting is still to be tuned.
"""

from cnnjax.config import base_config


def get_config(arg=None):
  del arg
  config = base_config()
  config.model.name = "vgg11_bn"
  config.model.dense_features = 512
  config.dataset.name = "digits"
  config.dataset.image_size = 32
  config.batch_size = 64
  config.num_epochs = 3.0
  config.log_every_steps = 20
  config.optimizer.learning_rate = 0.01
  config.optimizer.momentum = 0.9
  config.optimizer.weight_decay = 5e-4
  config.schedule.name = "cosine"
  return config
