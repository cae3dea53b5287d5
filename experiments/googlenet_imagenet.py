"""GoogLeNet (Inception v1) on ImageNet (Szegedy et al. 2015, "Going Deeper
with Convolutions", §5-7):

  cnnjax train --config experiments/googlenet_imagenet.py --workdir runs/googlenet

Arguments (combine with commas): none — the paper's network (`googlenet`:
LRN, 5x5 branches, auxiliary classifiers weighted 0.3); `bn` — torchvision's
variant (`googlenet_bn`: BatchNorm, 3x3 in the "5x5" branch), with this same
recipe; `smoke` — the same recipe for 4 steps on the embedded `shapes/jpeg`
at 1/2 of the image sizes (79 is the least its auxiliary heads accept), about
a minute on CPU: `--config experiments/googlenet_imagenet.py:smoke`.

ImageNet must be prepared by TFDS (`imagenet2012`); its labelled evaluation
split is `validation` (TFDS's `test` has no labels).

Expected top-5 error (%) on the ILSVRC-2012 validation set (Table 3 gives
top-5 only): one model, one crop 10.07 (`eval/` and, with the averaged
parameters the paper used, `eval_ema/`); 10 crops 9.15 (`eval_10crop/`,
`eval_10crop_ema/`); 144 crops 7.89 (not evaluated here: see below).
torchvision's `googlenet` weights (our `googlenet_bn`), one centre crop:
30.22 / 10.47 top-1 / top-5. `cnnjax report DIR` sets ours beside them.

Hardware and time: "a few high-end GPUs within a week" (§6), trained
asynchronously on the DistBelief CPU cluster. Not run here: no ImageNet, no
accelerator in this change. GoogLeNet's step costs 3 x 1.5 GMACs per image.

The paper's recipe (§6), and how it is set here:
- Asynchronous SGD, momentum 0.9, the learning rate decreased by 4% every 8
  epochs; Polyak averaging of the parameters for the final model (here an
  exponential moving average, `ema_decay`, evaluated beside the raw
  parameters every epoch).
- Crops of 8%-100% of the image's area, aspect ratio in [3/4, 4/3], resized
  to 224; photometric distortions (Howard 2013); flips.
- Auxiliary classifiers on 4a and 4d, their losses weighted 0.3 (§5).
- Test (§7): one centre crop; 10 crops; 144 crops (4 scales x 3 squares x 6
  crops x 2 mirrors).

Departures, and why:
- The paper gives no learning rate, batch, weight decay or length. These are
  the BVLC Caffe replication's (models/bvlc_googlenet/solver.prototxt): lr
  0.01, batch 32, weight decay 2e-4, x0.96 every 320,000 iterations (8
  epochs), 10M iterations (250 epochs); synchronous SGD. The learning rate
  scales linearly with the batch (base 32).
- Polyak averaging as an exponential moving average with decay 0.9999 (about
  the last 10,000 steps, 0.25 epochs at batch 32): the paper does not say
  its averaging window.
- Pixels are standardised per channel (ImageNet's mean and std); the paper
  does not say, and Caffe's replication subtracts the mean of 0-255 pixels.
- The photometric distortions are the TF-slim Inception preprocessing's
  (cnnjax/data/preprocess.py, `photometric`), the common implementation of
  Howard's; the paper does not give their ranges.
- 10 crops are the four corners and the centre of the image at shorter side
  256, and their mirrors (AlexNet's); §7's 10-crop setting is not described.
  The 144-crop evaluation is not provided.
"""

from cnnjax import experiment_setup as setup
from cnnjax.config import base_config

FILE = "experiments/googlenet_imagenet.py"
SMOKE_SCALE = 1 / 2  # 224 → 112: the auxiliary heads' 5x5/3 pools need 79 at least.


def get_config(arg=None):
  given = setup.words(arg, FILE, {
      "bn": "torchvision's googlenet_bn",
      "smoke": "4 steps on the embedded shapes/jpeg at 1/2 size"})
  smoke = "smoke" in given
  px = setup.sizes(smoke, SMOKE_SCALE)

  config = base_config()
  config.model.name = "googlenet_bn" if "bn" in given else "googlenet"
  setup.imagenet(config)
  config.dataset.image_size = px(224)
  config.dataset.train_preprocess = f"inception_crop({px(224)}) | photometric | flip"
  config.dataset.eval_preprocess = f"resize_shorter({px(256)}) | center_crop({px(224)})"
  config.extra_evals = (("10crop", f"resize_shorter({px(256)}) | ten_crop({px(224)})"),)
  config.dataset.normalization = "standardize"
  config.aux_loss_weight = 0.3
  config.ema_decay = 0.9999
  config.num_epochs = 250.0
  setup.sgd(config, learning_rate=0.01, batch_size=32, weight_decay=2e-4)
  config.schedule.update(name="exponential", decay_factor=0.96, decay_every_epochs=8.0)
  if smoke:
    setup.smoke_imagenet(config)
  return config
