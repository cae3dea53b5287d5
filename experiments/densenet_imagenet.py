"""DenseNet on ImageNet (Huang, Liu, van der Maaten, Weinberger 2017,
"Densely Connected Convolutional Networks", §3-4), one depth per argument:

  cnnjax train --config experiments/densenet_imagenet.py:121 --workdir runs/densenet121

Arguments (combine with commas): 121 (default), 169, 201, 161 — the network
(DenseNet-BC, growth rate 32; 161: 48); `smoke` — the same recipe for 4 steps
on the embedded `shapes/jpeg` at 1/4 of the image sizes, about a minute on
CPU: `--config experiments/densenet_imagenet.py:121,smoke`.

ImageNet must be prepared by TFDS (`imagenet2012`); its labelled evaluation
split is `validation` (TFDS's `test` has no labels).

Expected top-1 / top-5 error (%) on the ILSVRC-2012 validation set, Table 3,
as `eval/` (single centre crop) and `eval_10crop/` (`cnnjax report DIR` sets
ours beside them); torchvision's weights, centre crop:

| network | single crop | 10 crops | torchvision |
| --- | --- | --- | --- |
| 121 | 25.02 / 7.71 | 23.61 / 6.66 | 25.57 / 8.03 |
| 169 | 23.80 / 6.85 | 22.08 / 5.92 | 24.40 / 7.19 |
| 201 | 22.58 / 6.34 | 21.46 / 5.54 | 23.10 / 6.63 |
| 161 | (not in the paper's Table 3) | | (not listed here) |

Hardware and time: not run here (no ImageNet, no accelerator in this
change). 90 epochs of 1.28M images; DenseNet-121's step costs 3 x 2.8 GMACs
per image, and its many concatenations make it memory-bound: measure with
`cnnjax bench --model densenet121`.

The paper's recipe (§4.1, and [fb.resnet.torch] for the augmentation):
- SGD with Nesterov momentum 0.9 (no dampening), weight decay 1e-4, batch
  256, 90 epochs, lr 0.1 divided by 10 at epochs 30 and 60.
- "The same data augmentation scheme as in [fb.resnet.torch]": random
  8%-100% area crops with aspect ratio in [3/4, 4/3] resized to 224, colour
  jitter, PCA lighting (std 0.1), flips; mean/std normalisation.
- Test: one 224 centre crop, or 10 crops.

Departures, and why:
- The colour jitter is cnnjax's `photometric` op (TF-slim's Inception
  distortions: brightness, saturation, hue, contrast in random order), not
  fb.resnet.torch's ColorJitter (brightness, contrast, saturation 0.4 each,
  no hue).
- The learning rate scales linearly with the batch (base 256).
"""

from cnnjax import experiment_setup as setup
from cnnjax.config import base_config

FILE = "experiments/densenet_imagenet.py"
NETWORKS = {"121": "densenet121", "169": "densenet169", "201": "densenet201",
            "161": "densenet161"}
SMOKE_SCALE = 1 / 4  # 224 → 56: the stem and three transitions leave 1x1 maps at 29.


def get_config(arg=None):
  given = setup.words(arg, FILE, {
      **{word: f"the {name} network" for word, name in NETWORKS.items()},
      "smoke": "4 steps on the embedded shapes/jpeg at 1/4 size"})
  network = setup.one_of(given, NETWORKS, FILE, default="121")
  smoke = "smoke" in given
  px = setup.sizes(smoke, SMOKE_SCALE)

  config = base_config()
  config.model.name = NETWORKS[network]
  setup.imagenet(config)
  config.dataset.image_size = px(224)
  config.dataset.train_preprocess = (f"inception_crop({px(224)}) | photometric | "
                                     "pca_lighting(0.1) | flip")
  config.dataset.eval_preprocess = f"resize_shorter({px(256)}) | center_crop({px(224)})"
  config.extra_evals = (("10crop", f"resize_shorter({px(256)}) | ten_crop({px(224)})"),)
  config.dataset.normalization = "standardize"
  config.num_epochs = 90.0
  setup.sgd(config, learning_rate=0.1, batch_size=256, weight_decay=1e-4, nesterov=True)
  config.schedule.update(name="multistep", boundaries_epochs=(30.0, 60.0), decay_factor=0.1)
  if smoke:
    setup.smoke_imagenet(config)
  return config
