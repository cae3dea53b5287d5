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
1000, as long as the runs that measure; 1 epoch at `shapes`), and keeps the
rate that reached the target training error (25%; 5% at `shapes`) in the
fewest epochs (ties: the lower final training error, then the lower rate);
the summary shows every trial, the margin to the runner-up, and flags a rate
at the edge of its grid. The grids step by
factors of about 3 around the 80sec file's 0.001; tanh's and sigmoid's reach
higher because an earlier search (below) chose tanh's largest rate then, and
found no sigmoid rate that left chance. The stage costs 18 trials before the
9 runs that measure (`:shapes`: 11 trials and 6 runs, below; `:smoke`: 2
rates per activation).

That earlier search, run by hand before the tuning stage existed, on
shapes/clean for 1.5 epochs at commit 44d7559, epochs to 25% training error:

  relu     3e-4: 0.59   1e-3: 0.31   3e-3: 0.41   1e-2: 0.36   3e-2: never (stuck at chance)
  tanh     3e-4: never  1e-3: 0.85   3e-3: 0.49   1e-2: 0.28   3e-2: 0.28   1e-1: 0.56
  sigmoid  never at any rate from 3e-4 to 3e-1: chance level (89-91% error) throughout

`shapes`: shapes/clean (cnnjax/data/shapes.py), all 50,000 training images
at 32x32, 2,000 test images, batch 128, 1.5 epochs, target 5% training
error; ReLU and tanh only, 11 trials of 1 epoch, then 2 variants x 3 seeds,
two runs at a time on 2 cores. Why these:
- The target. The paper's 25% is tied to CIFAR-10: there it lies near the
  80sec network's floor (its layer file's header gives 26% test error), so
  counting epochs to it measures how fast each network fits the data. On
  shapes/clean 25% lies in the first fall from chance, which ReLU starts
  after a plateau that tanh does not have: both crossed it within 0.3
  epochs (below), so the count measured the first minutes of training.
  5% is past ReLU's fall (pilots: 0.3-0.4 epochs at rates 1e-3 and 3e-3)
  and reached by tanh at 0.7 epochs at both of its best rates (1e-2, 3e-2),
  well inside the run; 2% would not do: tanh at 3e-2 hovered at 2-5% to the
  end of 1.5 epochs, so its seeds would be censored at its floor.
- The dataset. shapes/hard is too slow for this budget: after 3 epochs
  ReLU (1e-3) was at 46% training error and tanh (1e-2) at 74%, so any
  target both reach needs 5 or more epochs a run, 27 runs.
- The length. 1.5 epochs covers tanh's 0.7 twice over. A trial only has
  to show which rate is fastest to the target: 1 epoch covers the best
  rates' 0.3-0.7 epochs with room, and a rate slower than that loses to
  them either way (a miss ranks last).
- The variants. Sigmoid is in no claim, and the earlier search found no
  sigmoid rate that left chance (above): its 7 trials and 3 seeds (10 of 27 runs)
  would measure that again. Without them, and with trials of 1 epoch, the
  sweep is 11 + 6 runs, 20 run-epochs, against 40.5 with sigmoid and full
  trials; the 9 runs of 1.5 epochs of the measurement below took 17.6
  minutes on 2 idle cores (1.3 minutes a run-epoch), so 40.5 would need
  about 53 and 20 fit in 30. The paper's setting keeps sigmoid and trials
  as long as the runs.

The pilots (one seed each, `cnnjax train --config
experiments/ablations/relu_vs_tanh.py:shapes` with the activation and rate
set, and `--config.dataset.name=shapes/hard --config.num_epochs=3` for the
hard ones), training error at the epochs given (means over 30 steps):

  clean relu 1e-3   0.23: 76%   0.31: 31%   0.38: 7%    0.46: 3%   0.54: 1%   0.62: 0%
  clean relu 3e-3   0.15: 78%   0.23: 21%   0.31: 4%    0.38: 0%
  clean tanh 1e-2   0.15: 60%   0.31: 27%   0.46: 13%   0.69: 5%   1.15: 2%   1.50: 2%
  clean tanh 3e-2   0.15: 49%   0.31: 19%   0.46: 10%   0.69: 5%   1.00: 4%   1.50: 3%
  hard  relu 1e-3   1.00: 86%   2.00: 65%   2.87: 46%
  hard  tanh 1e-2   1.00: 87%   2.00: 78%   2.59: 74%

Measured on `:shapes` with the tuning stage (commit ab66c78, 2026-12-07,
the `shapes` command above under `nice -n 15` on a 2-core AMD EPYC shared
with other work, load average 17 at the start, 21-35 when looked at, 28 at
the end): the sweep of relu_vs_tanh.py took 75.8 min wall and 28.9 minutes
of CPU (1,431 s user, 302 s sys: GNU time over the sweep and its runs),
within the 60 CPU-minutes of 30 minutes on 2 idle cores.
The trials (seed 1000, 1 epoch), epochs to 5% training error:

  relu  3e-4: 0.56   1e-3: 0.36   3e-3: 0.28 (chosen)   1e-2: 0.49   3e-2: never (90%)
  tanh  3e-4: never  1e-3: never  3e-3: never (5.8% at the end)   1e-2: 0.77 (chosen)
        3e-2: 0.82   1e-1: never

No choice at the edge of its grid; margins to the runner-up 0.08 (relu)
and 0.05 epochs (tanh). The seeds (0-2, 1.5 epochs), mean ± sample sd:

  variant  epochs to 5%   final train error  final eval error  rate
  relu     0.31 ± 0.04    0.00 ± 0.00%       0.00 ± 0.00%      3e-3
  tanh     0.68 ± 0.04    1.46 ± 0.63%       1.23 ± 0.13%      1e-2

NOT reproduced: ReLU 2.23x faster (ratio of geometric means), 95% Welch's t
interval on the log values 1.66x to 3.01x, short of the paper's 6x; every
seed reached the target (none censored), 3 and 3 seeds.

Measured on `:shapes` before the tuning stage and with the paper's 25% as
the target, with the rates the earlier search chose (relu 1e-3, tanh 1e-2,
sigmoid 1e-3) written into this file (commit 9254c78, 2-core AMD EPYC): ReLU
0.28 ± 0.04 epochs to 25%, tanh 0.31 ± 0.03 (1.09x); sigmoid never left
chance. The curves showed why that target decided it: tanh's error falls
from the first steps, ReLU's stays at chance for about 0.15 epochs and then
falls much more steeply, reaching 0% by 0.6 epochs while tanh is still near
5%.
"""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import ablation_common as common  # noqa: E402

from cnnjax.sweep import Claim, Sweep, Tuning, Variant  # noqa: E402

ARGS = {"shapes": "the CPU-scale setting on shapes/clean",
        "smoke": "a few steps of every variant (implies shapes)"}
ACTIVATIONS = ("relu", "tanh", "sigmoid")
SHAPES_ACTIVATIONS = ("relu", "tanh")  # The claim's two (see the docstring).
# The tuning stage's grids (see the docstring).
LEARNING_RATES = {"relu": (3e-4, 1e-3, 3e-3, 1e-2, 3e-2),
                  "tanh": (3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1),
                  "sigmoid": (3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1)}
SMOKE_LEARNING_RATES = (1e-3, 1e-2)
TARGET_TRAIN_ERROR = 0.25  # §3.1, Figure 1: CIFAR-10.
SHAPES_TARGET_TRAIN_ERROR = 0.05  # shapes/clean's analogue (see the docstring).
SHAPES_EPOCHS = 1.5
SHAPES_TRIAL_EPOCHS = 1.0  # Past tanh's 0.7 epochs to 5% (see the docstring).


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
  small = bool(args & {"shapes", "smoke"})
  activations = SHAPES_ACTIVATIONS if small else ACTIVATIONS
  rates = ({activation: SMOKE_LEARNING_RATES for activation in activations}
           if "smoke" in args else LEARNING_RATES)
  return Sweep(
      variants=[Variant(activation, {"model.activation": activation})
                for activation in activations],
      claims=[Claim("a four-layer convolutional network with ReLUs reaches a 25% training error "
                    "rate on CIFAR-10 six times faster than an equivalent network with tanh",
                    "AlexNet §3.1, Figure 1", metric="epochs_to_target", better="relu",
                    worse="tanh", ratio=6.0)],
      target_train_error=SHAPES_TARGET_TRAIN_ERROR if small else TARGET_TRAIN_ERROR,
      # "The learning rates for each network were chosen independently to make
      # training as fast as possible" (§3.1).
      tuning=Tuning("epochs_to_target",
                    variant_grids={activation: {"optimizer.learning_rate": rates[activation]}
                                   for activation in activations},
                    trial_overrides={"num_epochs": SHAPES_TRIAL_EPOCHS} if small else {}))
