"""ReLU against tanh (and sigmoid): AlexNet §3.1, Figure 1.

  cnnjax sweep --config experiments/ablations/relu_vs_tanh.py --workdir runs/relu_vs_tanh
  cnnjax sweep --config experiments/ablations/relu_vs_tanh.py:shapes --workdir runs/relu_vs_tanh_shapes
  cnnjax sweep --config experiments/ablations/relu_vs_tanh.py:smoke --workdir /tmp/relu_vs_tanh_smoke

The claim: "a four-layer convolutional neural network with ReLUs (solid line)
reaches a 25% training error rate on CIFAR-10 six times faster than an
equivalent network with tanh neurons (dashed line). The learning rates for
each network were chosen independently to make training as fast as possible.
No regularization of any kind was employed." The network is cuda-convnet's
layers-80sec.cfg (cifar_convnet_80sec: three 5x5 convolutions with pooling,
two dense layers), trained by experiments/cuda_convnet_cifar10.py:80sec's
recipe without its weight decay and at a constant learning rate, since
Figure 1 shows neither decay nor a drop; 40 epochs (the figure's x-axis ends
at 35). Sigmoid, which the paper does not plot, is a third variant.

The learning rates are the sweep's tuning stage, as the paper chose them:
each activation trains once per rate of its grid (a trial, one seed, seed
1000, as long as the runs that measure), and keeps the rate that reached 25%
training error in the fewest epochs (ties: the lower final training error,
then the lower rate); the summary shows every trial, the margin to the
runner-up, and flags a rate at the edge of its grid. The grids step by
factors of about 3 around the 80sec file's 0.001; tanh's and sigmoid's reach
higher because an earlier search (below) chose tanh's largest rate then, and
found no sigmoid rate that left chance. The stage costs 18 trials before the
9 runs that measure (`:smoke`: 2 rates per activation).

That earlier search, run by hand before the tuning stage existed, on
shapes/clean for 1.5 epochs at commit 44d7559, epochs to 25% training error:

  relu     3e-4: 0.59   1e-3: 0.31   3e-3: 0.41   1e-2: 0.36   3e-2: never (stuck at chance)
  tanh     3e-4: never  1e-3: 0.85   3e-3: 0.49   1e-2: 0.28   3e-2: 0.28   1e-1: 0.56
  sigmoid  never at any rate from 3e-4 to 3e-1: chance level (89-91% error) throughout

`shapes`: shapes/clean (cnnjax/data/shapes.py), all 50,000 training images
at 32x32, 2,000 test images, batch 128, 1.5 epochs, target 25% training
error as in the paper; 3 variants x 3 seeds, two runs at a time on 2 cores.

Measured on `:shapes` before the tuning stage, with the rates that search
chose (relu 1e-3, tanh 1e-2, sigmoid 1e-3) written into this file (commit
9254c78, 2-core AMD EPYC, otherwise idle): the whole sweep took 17 min 37 s
(9 runs of 203-217 s, two at a time), with the verdict of the range rule
that preceded the confidence intervals.

  variant  final eval error  final train error  epochs to 25% train error
  relu     0.02 ± 0.03%      0.00 ± 0.00%       0.28 ± 0.04 (3 of 3)
  tanh     1.17 ± 0.79%      1.61 ± 0.74%       0.31 ± 0.03 (3 of 3)
  sigmoid  89.70 ± 0.26%     90.57 ± 0.63%      not reached

The claim is NOT reproduced at this scale: ReLU reaches 25% 1.09x faster
than tanh (the seeds allow at most 1.40x), not 6x. The curves show why the
target decides it: tanh's error falls from the first steps, ReLU's stays at
chance for about 0.15 epochs and then falls much more steeply, crossing 25%
at the same time as tanh and reaching 0% by 0.6 epochs while tanh is still
near 5%. The paper's target was kept, not moved to where ReLU would win.
Sigmoid never leaves chance.
"""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import ablation_common as common  # noqa: E402

from cnnjax.sweep import Claim, Sweep, Tuning, Variant  # noqa: E402

ARGS = {"shapes": "the CPU-scale setting on shapes/clean",
        "smoke": "a few steps of every variant (implies shapes)"}
ACTIVATIONS = ("relu", "tanh", "sigmoid")
# The tuning stage's grids (see the docstring).
LEARNING_RATES = {"relu": (3e-4, 1e-3, 3e-3, 1e-2, 3e-2),
                  "tanh": (3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1),
                  "sigmoid": (3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1)}
SMOKE_LEARNING_RATES = (1e-3, 1e-2)
TARGET_TRAIN_ERROR = 0.25  # §3.1, Figure 1.
SHAPES_EPOCHS = 1.5


def get_config(arg=None):
  args = common.words(arg, "relu_vs_tanh", ARGS)
  config = common.cuda_convnet("80sec")
  config.optimizer.weight_decay_by_layer = ()  # "No regularization of any kind."
  config.schedule.name = "constant"
  config.num_epochs = 40.0
  if args & {"shapes", "smoke"}:
    common.on_shapes(config, dataset="shapes/clean", train_examples=50_000, image_size=32,
                     eval_examples=2_000)
    config.num_epochs = SHAPES_EPOCHS
    config.log_every_steps = 10
  if "smoke" in args:
    common.smoke(config)
  return config


def get_sweep(arg=None):
  args = common.words(arg, "relu_vs_tanh", ARGS)
  rates = ({activation: SMOKE_LEARNING_RATES for activation in ACTIVATIONS}
           if "smoke" in args else LEARNING_RATES)
  return Sweep(
      variants=[Variant(activation, {"model.activation": activation})
                for activation in ACTIVATIONS],
      claims=[Claim("a four-layer convolutional network with ReLUs reaches a 25% training error "
                    "rate on CIFAR-10 six times faster than an equivalent network with tanh",
                    "AlexNet §3.1, Figure 1", metric="epochs_to_target", better="relu",
                    worse="tanh", ratio=6.0)],
      target_train_error=TARGET_TRAIN_ERROR,
      # "The learning rates for each network were chosen independently to make
      # training as fast as possible" (§3.1).
      tuning=Tuning("epochs_to_target",
                    variant_grids={activation: {"optimizer.learning_rate": rates[activation]}
                                   for activation in ACTIVATIONS}))
