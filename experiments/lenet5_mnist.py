"""LeNet-5 on MNIST, as in LeCun et al. 1998 (§III.A, §III.C).

The 28x28 digits are centred in the paper's 32x32 field (padding, not
resizing). Training differs from the paper's stochastic diagonal
Levenberg-Marquardt (Appendix C): SGD with Nesterov momentum and a cosine
schedule, over 20 passes through the 60,000 training images as the paper did.

  cnnjax train --config experiments/lenet5_mnist.py --workdir runs/lenet5_mnist

Expected: about 1% test top-1 error (paper: 0.95% without distortions).
Needs MNIST prepared by TFDS (`tfds build mnist`); not measured on this
project's offline CI.
"""

from cnnjax.config import base_config


def get_config(arg=None):
  del arg
  config = base_config()
  config.model.name = "lenet5"
  config.dataset.name = "mnist"
  config.dataset.image_size = 32
  config.dataset.train_preprocess = "pad"
  config.dataset.eval_preprocess = "pad"
  config.batch_size = 64
  config.num_epochs = 20.0
  config.log_every_steps = 100
  config.optimizer.learning_rate = 0.02
  config.optimizer.nesterov = True
  config.schedule.name = "cosine"
  return config
