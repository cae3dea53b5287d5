"""DenseNet-BC (L=100, k=12) on CIFAR (Huang, Liu, van der Maaten, Weinberger
2017, "Densely Connected Convolutional Networks", §4.1-4.2):

  cnnjax train --config experiments/densenet_cifar.py --workdir runs/densenet_bc100_c10plus

Arguments (combine with commas): none — CIFAR-10 with the standard
augmentation ("C10+"); `noaug` — without augmentation ("C10"), with dropout
0.2 after each convolution but the first, as §4.2 does then; `c100` —
CIFAR-100 instead; `smoke` — the same recipe for 4 steps on the embedded
`shapes/hard` (32x32 RGB like CIFAR), about a minute on CPU:
`--config experiments/densenet_cifar.py:smoke`.

CIFAR must be prepared by TFDS (`tfds build cifar10` / `cifar100`; they
download).

Expected test error (%), Table 2 (`eval/top1_error`; `cnnjax report DIR`
sets ours beside them): C10+ 4.51, C10 5.92, C100+ 22.27.

Hardware and time: 300 epochs of 50k images at batch 64. Not run here:
CIFAR is not available offline. DenseNet-BC-100's step costs 3 x 0.29
GMACs per image, and its concatenations make it memory-bound: `cnnjax bench
--model densenet_bc100` measures yours.

The paper's recipe (§4.1), and how it is set here:
- SGD, Nesterov momentum 0.9 without dampening, weight decay 1e-4, batch 64,
  300 epochs, lr 0.1 divided by 10 at 50% and 75% of training (epochs 150
  and 225); He initialisation.
- Data: normalised by the channel means and standard deviations; with
  augmentation, "mirroring/shifting": 4 pixels of zero padding, a random
  32x32 crop, flips (the standard scheme of the ResNet paper). Test: the
  single 32x32 image.

Departures, and why:
- The paper holds out 5,000 training images only to choose its settings
  and trains the final models on all 50,000, as here.
- The learning rate scales linearly with the batch (base 64).
"""

from cnnjax import experiment_setup as setup
from cnnjax.config import base_config

FILE = "experiments/densenet_cifar.py"


def get_config(arg=None):
  given = setup.words(arg, FILE, {
      "noaug": "no augmentation, dropout 0.2", "c100": "CIFAR-100",
      "smoke": "4 steps on the embedded shapes/hard"})

  config = base_config()
  config.model.name = "densenet_bc100"
  config.dataset.name = "cifar100" if "c100" in given else "cifar10"
  config.dataset.image_size = 32
  if "noaug" in given:
    config.dataset.train_preprocess = "center_crop(32)"
    config.model.dropout_rate = 0.2
  else:
    config.dataset.train_preprocess = "pad(40) | random_crop(32) | flip"
  config.dataset.eval_preprocess = "center_crop(32)"
  config.dataset.normalization = "standardize"
  config.num_epochs = 300.0
  setup.sgd(config, learning_rate=0.1, batch_size=64, weight_decay=1e-4, nesterov=True)
  config.schedule.update(name="multistep", boundaries_epochs=(150.0, 225.0), decay_factor=0.1)
  config.log_every_steps = 100
  if "smoke" in given:
    setup.smoke_cifar(config)
  return config
