"""Transfer learning end to end on the embedded data, as ImageNet features
are carried to a small dataset: a modern LeNet-5 learnt on plentiful varied
images (`shapes/hard`, 50,000: any rotation, clutter, occlusion) is
fine-tuned on few plain ones (`shapes/clean`, its first 1,000 training
images, about 100 per class), against the same network trained on those
1,000 from scratch. Evaluated on the 10,000 `shapes/clean` test images. The
arms (cnnjax/training/finetune.py):

  source       shapes/hard, 3 epochs, from scratch: the pretrained network.
  scratch      shapes/clean[:1000], from scratch: the baseline.
  last_layer   shapes/clean[:1000] from `source`, a fresh classifier (`output`),
               everything else frozen: a linear probe of the learnt features.
  all_layers   shapes/clean[:1000] from `source`, a fresh classifier; every
               layer trained, the pretrained ones at a tenth of the rate.

  cnnjax train --config experiments/finetune_shapes.py:source --workdir runs/finetune/source
  cnnjax train --config experiments/finetune_shapes.py:scratch --workdir runs/finetune/scratch
  cnnjax train --config experiments/finetune_shapes.py:last_layer --workdir runs/finetune/last_layer
  cnnjax train --config experiments/finetune_shapes.py:all_layers --workdir runs/finetune/all_layers

The fine-tuning arms read `runs/finetune/source` (override with
--config.init_from=DIR). Both tasks have the same ten classes; the classifier
is re-learnt anyway, as it must be when a target task's classes differ, so
what transfers is the features alone.

Measured on 2 CPU cores (AMD EPYC), seeds 0, 1 and 2 of each arm
(--config.seed=S --workdir runs/finetune/ARM_seedS), `cnnjax report
runs/finetune/*`; test top-1 error on the 10,000 `shapes/clean` images:

  source        35.24% on shapes/hard's test images (3 epochs, 1 min 15 s;
                36.38% retrained on 2026-12-07 at commit 924c011)
  scratch       0.66, 0.80, 0.70%   (66 to 80 images wrong)
  last_layer    0.03, 0.61, 0.14%
  all_layers    0.01, 0.03, 0.02%   (1 to 3 images wrong)

Each fine-tuning arm trains in 25-35 s. Features learnt on the varied
images carry over: the whole network fine-tuned makes 20 to 70 times fewer
errors than the same network trained on the 1,000 images alone, and a new
classifier on frozen features alone does better than training from scratch in
all three seeds, though its error varies more across seeds.
"""

import pathlib

from cnnjax import config as config_lib
from cnnjax import experiment_setup as setup

FILE = "experiments/finetune_shapes.py"
ARMS = {"source": "pretrain on shapes/hard", "scratch": "the baseline, no pretraining",
        "last_layer": "fine-tune the classifier alone", "all_layers": "fine-tune every layer"}
SOURCE_WORKDIR = "runs/finetune/source"
TARGET_EXAMPLES = 1000  # About 100 per class: the train split is in random order.


def get_config(arg=None):
  arm = setup.one_of(setup.words(arg, FILE, ARMS), ARMS, FILE, default="scratch")
  # LeNet-5 (modern) with experiments/lenet5_shapes.py's recipe: Adam 2e-3,
  # cosine after a warm-up epoch, on shapes/hard.
  config = config_lib.load(str(pathlib.Path(__file__).with_name("lenet5_shapes.py")))
  if arm == "source":
    config.num_epochs = 3.0
    return config
  config.batch_size = 64
  config.dataset.name = "shapes/clean"
  config.dataset.train_split = f"train[:{TARGET_EXAMPLES}]"
  config.num_epochs = 40.0  # 40,000 images seen, the same in every arm.
  config.eval_every_steps = 150
  if arm != "scratch":
    config.init_from = SOURCE_WORKDIR
    config.init_from_exclude = ("^output/",)
  if arm == "last_layer":
    config.frozen = ("^C1/", "^C3/", "^C5/", "^F6/")
  if arm == "all_layers":
    config.pretrained_learning_rate_scale = 0.1
  return config
