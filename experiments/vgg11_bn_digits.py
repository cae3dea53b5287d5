"""VGG-A (VGG-11; Simonyan, Zisserman 2015, Table 1) with BatchNorm after every
convolution (torchvision's vgg11_bn), shrunk to run on a CPU: the embedded
`digits` at 32x32, the smallest input its five pooling stages allow, each
stage at half the paper's width (32-64-128-256-256 maps) and FC6/FC7 of 256
units instead of 4,096; the layer structure is the paper's.

  cnnjax train --config experiments/vgg11_bn_digits.py --workdir runs/vgg11_bn_digits

Inputs as §2.1 has them (the mean pixel subtracted, nothing divided); recipe
of §3.1: SGD with momentum 0.9, weight decay 5e-4, dropout 0.5, lr 0.01 (the
paper divides it by 10 on plateaus; a cosine decay stands in for that over
this short run), after a linear warmup of 2 epochs: at 32x32 the last maps
are 1x1, and the average pooling to 7x7 before FC6 (torchvision's, see
cnnjax.models.vgg) repeats each value 49 times, so FC6 starts with outputs 7
times larger than at 224. Without the warmup the first steps (loss 3.8) killed
the dense ReLUs and the network stayed at chance (loss 2.30 after 5 epochs).
Measured: 16.3% test top-1 error after the 8 epochs (184 steps, about 5
minutes on 2 CPU cores); it is still improving there.
"""

from cnnjax.config import base_config


def get_config(arg=None):
  del arg
  config = base_config()
  config.model.name = "vgg11_bn"
  config.model.stages = ((32, (3,)), (64, (3,)), (128, (3, 3)), (256, (3, 3)), (256, (3, 3)))
  config.model.dense_features = 256
  config.dataset.name = "digits"
  config.dataset.image_size = 32
  config.dataset.normalization = "subtract_mean"
  config.batch_size = 64
  config.num_epochs = 8.0
  config.log_every_steps = 23
  config.optimizer.learning_rate = 0.01
  config.optimizer.momentum = 0.9
  config.optimizer.weight_decay = 5e-4
  config.schedule.name = "cosine"
  config.schedule.warmup_epochs = 2.0
  return config
