"""Max pooling against a strided convolution in its place: Springenberg et
al. 2015 ("Striving for simplicity"), the lecture notes' "Stride greater than 1".

  cnnjax sweep --config experiments/ablations/pooling_vs_stride.py --workdir runs/pooling_vs_stride
  cnnjax sweep --config experiments/ablations/pooling_vs_stride.py:shapes --workdir runs/pooling_vs_stride_shapes
  cnnjax sweep --config experiments/ablations/pooling_vs_stride.py:smoke --workdir /tmp/pooling_vs_stride_smoke

The claim (abstract, §3.1): "max-pooling can simply be replaced by a
convolutional layer with increased stride without loss in accuracy"; Table 3
of the paper (CIFAR-10, no augmentation): model C 9.31% test error with max
pooling, Strided-CNN-C 10.22%, All-CNN-C 9.08% (a strided convolution added
in place of each pool). The ablation here is the All-CNN form: each of
cuda-convnet 13pct's two 3x3/2 max pools replaced by a learned 3x3/2
convolution with as many maps (`model.pooling=("conv", "conv")`, see
cnnjax/models/cuda_convnet.py), with experiments/cuda_convnet_cifar10.py's
13pct recipe on CIFAR-10, a margin of 0.5 points counted as "without loss".

`shapes`: ablation_common.cuda_convnet_13pct_shapes: shapes/hard with 24x24
random crops and flips, ten-view test on 2,000 test images, all 50,000
training images, 2 epochs; 2 variants x 3 seeds, two runs at a time on
2 cores.

Not yet measured: this `shapes` sweep has been sized and smoke-run, not run in
full. Sizing (2-core AMD EPYC, commit 9254c78): the 13pct net at 24x24 trains
at 262-263 images/s on one core with either pooling, so the sweep should take
about 21 minutes (6 runs, two at a time, plus compiling and evaluating).
"""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import ablation_common as common  # noqa: E402

from cnnjax.sweep.spec import Claim, Sweep, Variant  # noqa: E402

ARGS = {"shapes": "the CPU-scale setting on shapes/hard",
        "smoke": "a few steps of every variant (implies shapes)"}
SHAPES = dict(train_examples=50_000, num_epochs=2.0)


def get_config(arg=None):
  args = common.words(arg, "pooling_vs_stride", ARGS)
  config = (common.cuda_convnet_13pct_shapes(**SHAPES) if args & {"shapes", "smoke"}
            else common.cuda_convnet("13pct"))
  if "smoke" in args:
    common.smoke(config)
  return config


def get_sweep(arg=None):
  common.words(arg, "pooling_vs_stride", ARGS)
  return Sweep(
      [Variant("max_pool", {"model.pooling": ("max", "max")}),
       Variant("strided_conv", {"model.pooling": ("conv", "conv")})],
      claims=[Claim("max-pooling can simply be replaced by a convolutional layer with increased "
                    "stride without loss in accuracy", "Springenberg et al. 2015, abstract, §3.1",
                    metric="final eval/top1_error", better="strided_conv", worse="max_pool",
                    difference=-0.005)])
