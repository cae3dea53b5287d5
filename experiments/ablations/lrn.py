"""Local response normalisation on and off: AlexNet §3.3 and VGG Table 3.

  cnnjax sweep --config experiments/ablations/lrn.py --workdir runs/lrn
  cnnjax sweep --config experiments/ablations/lrn.py:shapes --workdir runs/lrn_shapes
  cnnjax sweep --config experiments/ablations/lrn.py:smoke --workdir /tmp/lrn_smoke
  cnnjax sweep --config experiments/ablations/lrn.py:alexnet --workdir runs/lrn_alexnet
  cnnjax sweep --config experiments/ablations/lrn.py:vgg --workdir runs/lrn_vgg

The claims:
- AlexNet §3.3 (CIFAR-10): "a four-layer CNN achieved a 13% test error rate
  without normalization and 11% with normalization". The networks are
  cuda-convnet's layers-conv-local-13pct.cfg and its first
  layers-conv-local-11pct.cfg (cifar_convnet_13pct, and the same network
  with `model.norm=cross_map`: cross-map LRN of size 5 after conv1 and conv2,
  see cnnjax/models/cuda_convnet.py), with experiments/cuda_convnet_cifar10.py's
  13pct recipe and ten-view test (the paper's 13% and 11% are ten-view).
- AlexNet §3.3 (ImageNet, `:alexnet`): "response normalization reduces our
  top-1 and top-5 error rates by 1.4% and 1.2%"; the recipe is
  ablation_common.alexnet_imagenet (its departures are written there).
- VGG Table 3 (`:vgg`): A-LRN (29.7% top-1) is no better than A (29.6%)
  "without any normalisation layers"; the recipe is ablation_common.vgg_imagenet.

One shared setting, untuned: neither paper tuned the arms apart. AlexNet
§3.3 reports cuda-convnet's two layer files as they were trained, with the
same learning parameters, and VGG §3.1 trains every configuration with one
recipe; the arms here differ in the normalisation alone.

`shapes` (alone: the CIFAR-10 pair): shapes/hard (cnnjax/data/shapes.py), all
50,000 training images, 24x24 random crops with flips as on CIFAR-10, ten-view
test on 2,000 test images, the 13pct schedule (÷10 twice) shortened to
2 epochs; 2 variants x 3 seeds, two runs at a time on 2 cores.
`alexnet,shapes` and `vgg,shapes` are ablation_common's alexnet_shapes (67x67,
10,000 training images, 3 epochs) and vgg_a_shapes (32x32, 10,000 training
images, 3.5 epochs), sized from their measured speed (75 and 84 images/s on
one core) to fit the same 30 minutes.

Measured on `:shapes` (commit 6eaba51, 2-core AMD EPYC, otherwise idle): 26 min
46 s for the sweep (runs of 453-573 s, longer than the 21 minutes estimated).
  no_lrn  final eval error 51.88 ± 1.41%, final train error 63.72 ± 1.27%
  lrn     final eval error 55.65 ± 0.85%, final train error 66.20 ± 2.06%
NOT reproduced at this scale: LRN is 3.8 points worse after 2 epochs, beyond
the seeds' spread (the paper: 2 points better after full training). The
`:alexnet,shapes` and `:vgg,shapes` sweeps are sized (75 and 84 images/s on
one core: about 22-23 minutes) and smoke-run, not run in full.

Whether `shapes` measures the claim: not yet. The paper compares the test
error of two trained networks (13% and 11% after cuda-convnet's full
schedule); after 2 epochs both arms are at 52-56% test error and 64-66%
training error, still falling when the shortened schedule divides the rate
(at 1.7 and 1.9 epochs), so the measurement above is how LRN changes the
first 780 steps, not the trained error. A setting that measures the claim
trains both arms to their plateau on data whose floor leaves room for 2
points: shapes/clean does not (there the smaller 80sec net with ReLUs
reached 0.00% test error within 1.5 epochs, relu_vs_tanh.py's trials), and on shapes/hard the 13pct pair's
plateau is unknown. Finding it takes one run long enough to flatten (the
13pct net trains at 262 images/s on one core: 10 epochs of the 50,000
images is about 32 minutes of one core), which the shared machine did not
allow on 2026-12-07; until then this setting stays, and its verdict is about
early training, as said here. Not rerun with the sweep's intervals.
"""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import ablation_common as common  # noqa: E402

from cnnjax.sweep.spec import Claim, Sweep, Variant  # noqa: E402

ARGS = {"alexnet": "AlexNet on ImageNet (§3.3) instead of the CIFAR-10 pair",
        "vgg": "VGG-A against A-LRN on ImageNet (VGG Table 3) instead of the CIFAR-10 pair",
        "shapes": "the CPU-scale setting on shapes/hard",
        "smoke": "a few steps of every variant (implies shapes)"}
SHAPES = {"cuda_convnet": dict(train_examples=50_000, num_epochs=2.0),
          "alexnet": dict(train_examples=10_000, num_epochs=3.0),
          "vgg": dict(train_examples=10_000, num_epochs=3.5)}


def get_config(arg=None):
  args = common.words(arg, "lrn", ARGS)
  if {"alexnet", "vgg"} <= args:
    raise common.UserError("lrn.py: choose one of alexnet and vgg, e.g. lrn.py:vgg,shapes")
  small = bool(args & {"shapes", "smoke"})
  if "alexnet" in args:
    config = (common.alexnet_shapes(**SHAPES["alexnet"]) if small
              else common.alexnet_imagenet())
  elif "vgg" in args:
    config = (common.vgg_a_shapes(**SHAPES["vgg"]) if small
              else common.vgg_imagenet("vgg_a"))
  else:
    config = (common.cuda_convnet_13pct_shapes(**SHAPES["cuda_convnet"]) if small
              else common.cuda_convnet("13pct"))
  if "smoke" in args:
    common.smoke(config)
  return config


def get_sweep(arg=None):
  args = common.words(arg, "lrn", ARGS)
  if "alexnet" in args:
    return Sweep(
        [Variant("lrn", {"model.norm": "lrn"}), Variant("no_lrn", {"model.norm": "none"})],
        claims=[Claim("response normalization reduces the top-1 error rate by 1.4%",
                      "AlexNet §3.3", metric="final eval/top1_error", better="lrn",
                      worse="no_lrn", difference=0.014)])
  if "vgg" in args:
    return Sweep(
        [Variant("a", {"model.norm": "none"}), Variant("a_lrn", {"model.norm": "lrn"})],
        claims=[Claim("local response normalisation (A-LRN) does not improve on model A "
                      "without any normalisation layers", "VGG §4.1, Table 3 (A 29.6%, "
                      "A-LRN 29.7% top-1)", metric="final eval/top1_error", better="a",
                      worse="a_lrn", difference=-0.005)])
  return Sweep(
      [Variant("no_lrn", {"model.norm": "none"}), Variant("lrn", {"model.norm": "cross_map"})],
      claims=[Claim("a four-layer CNN achieved a 13% test error rate without normalization "
                    "and 11% with normalization", "AlexNet §3.3 (CIFAR-10)",
                    metric="final eval/top1_error", better="lrn", worse="no_lrn",
                    difference=0.02)])
