"""What the ablations in this directory share; not an ablation itself.

- `words(arg, name, allowed)`: an ablation's ARG, comma-separated words
  (`lrn.py:alexnet,shapes`), each one the file knows.
- `on_shapes(...)`: the CPU-scale setting, on the embedded `shapes` dataset
  (cnnjax/data/shapes.py), which every ablation's `shapes` argument uses.
- `smoke(config)`: the same recipe for a few steps on a sliver of the data,
  so a whole sweep runs end to end in about a minute (plumbing, not a result).
- `alexnet_imagenet`, `vgg_imagenet`, `googlenet_imagenet`: the papers'
  ImageNet recipes simplified for ablations (departures in each
  docstring); `cuda_convnet(name)`: experiments/cuda_convnet_cifar10.py's.

An ablation imports this file from beside itself (the directory is put on
sys.path by the ablation), so that a recipe is written once and the
ablations override it, never copy it.
"""

import pathlib

import ml_collections

from cnnjax import config as config_lib
from cnnjax.config import base_config
from cnnjax.errors import UserError

EXPERIMENTS = pathlib.Path(__file__).resolve().parents[1]
EMBEDDED_DATASETS = ("shapes/clean", "shapes/hard")
SMOKE_STEPS = 4


def words(arg: str | None, name: str, allowed: dict[str, str]) -> frozenset[str]:
  """The words of ARG (`a,b`), each a key of `allowed` (word: what it does)."""
  given = frozenset(word.strip() for word in arg.split(",")) if arg else frozenset()
  unknown = sorted(given - set(allowed))
  if unknown:
    choices = "; ".join(f"{word}: {meaning}" for word, meaning in allowed.items())
    raise UserError(f"{name}.py has no argument {unknown[0]!r}; combine with commas any of "
                    f"({choices}), e.g. --config experiments/ablations/{name}.py:shapes")
  return given


def on_shapes(config: ml_collections.ConfigDict, *, dataset: str, train_examples: int,
              image_size: int, eval_examples: int = 10_000) -> None:
  """The embedded `shapes` at CPU scale: the first `train_examples` of its
  50,000 training images, the first `eval_examples` of its 10,000 test
  images, at `image_size` (resized from 32 when smaller)."""
  config.dataset.name = dataset
  config.dataset.data_dir = ""
  config.dataset.train_split = f"train[:{train_examples}]"
  config.dataset.eval_split = f"test[:{eval_examples}]"
  config.dataset.image_size = image_size


def smoke(config: ml_collections.ConfigDict) -> None:
  """A few steps of the same recipe on 512 training and 256 test images, at
  most 64 a batch: every variant starts, trains, evaluates and writes its
  results. Epoch-based schedules see 512-image epochs."""
  config.batch_size = min(config.batch_size, 64)
  config.eval_batch_size = min(config.eval_batch_size or config.batch_size, 64)
  config.dataset.train_split = "train[:512]"
  config.dataset.eval_split = "test[:256]"
  config.dataset.shuffle_buffer = 512
  config.num_train_steps = SMOKE_STEPS
  config.log_every_steps = 1
  config.eval_every_steps = SMOKE_STEPS
  config.checkpoint_every_steps = SMOKE_STEPS


def cuda_convnet(variant: str) -> ml_collections.ConfigDict:
  """experiments/cuda_convnet_cifar10.py's recipe for one layer file (80sec,
  18pct, 13pct, 11pct), loaded as that experiment defines it."""
  return config_lib.load(f"{EXPERIMENTS / 'cuda_convnet_cifar10.py'}:{variant}")


def _imagenet(model: str, image_size: int) -> ml_collections.ConfigDict:
  config = base_config()
  config.model.name = model
  config.dataset.name = "imagenet2012"
  config.dataset.eval_split = "validation"
  config.dataset.image_size = image_size
  # Scale and aspect jitter with flips (GoogLeNet §6; torchvision trains every
  # one of these networks so), and the single centre crop: the same
  # augmentation and evaluation for every network, so that the two arms of an
  # ablation differ in the ablated switch alone. The papers' own recipes (PCA
  # lighting, scale jittering, ten crops, dense evaluation, plateaus on the
  # validation error) are experiments/alexnet_imagenet.py, vgg_imagenet.py
  # and googlenet_imagenet.py.
  config.dataset.train_preprocess = "random_area_crop_flip"
  config.dataset.eval_preprocess = "resize_center_crop"
  config.optimizer.name = "sgd"
  config.optimizer.momentum = 0.9
  config.log_every_steps = 500
  return config


def alexnet_imagenet() -> ml_collections.ConfigDict:
  """AlexNet §5: SGD, batch 128, momentum 0.9, weight decay 5e-4, lr 0.01 and
  the §5 initialisation, pixels minus the mean (§2), 227x227 inputs. The
  paper divided the rate by 10 three times, when the validation error stopped
  improving, over about 90 epochs; here at epochs 30 and 60 of 90 (the
  reference recipe torchvision trains AlexNet with), a fixed schedule so that
  both arms of an ablation drop at the same time."""
  config = _imagenet("alexnet", 227)
  config.dataset.normalization = "subtract_mean"
  config.batch_size = 128
  config.num_epochs = 90.0
  config.optimizer.learning_rate = 0.01
  config.optimizer.weight_decay = 5e-4
  config.schedule.name = "multistep"
  config.schedule.boundaries_epochs = (30.0, 60.0)
  return config


def vgg_imagenet(model: str) -> ml_collections.ConfigDict:
  """VGG §3.1: SGD, batch 256, momentum 0.9, weight decay 5e-4, dropout 0.5,
  lr 0.01, pixels minus the mean (§2.1), 224x224 crops. The paper divided the
  rate by 10 three times on validation plateaus and stopped at 74 epochs;
  here at epochs 30 and 60 of 74 (torchvision's reference recipe steps every
  30), a fixed schedule shared by both arms."""
  config = _imagenet(model, 224)
  config.dataset.normalization = "subtract_mean"
  config.batch_size = 256
  config.num_epochs = 74.0
  config.optimizer.learning_rate = 0.01
  config.optimizer.weight_decay = 5e-4
  config.schedule.name = "multistep"
  config.schedule.boundaries_epochs = (30.0, 60.0)
  return config


def googlenet_imagenet() -> ml_collections.ConfigDict:
  """GoogLeNet §6: SGD with momentum 0.9, the rate decreased by 4% every 8
  epochs, 8%-100% area crops with aspect ratios in [3/4, 4/3]. The paper gives
  no base rate, batch, weight decay or length (and trained asynchronously
  with Polyak averaging, which experiments/googlenet_imagenet.py has and the
  ablations leave out); these are the BVLC Caffe replication's
  models/bvlc_googlenet/solver.prototxt: lr 0.01, batch 32, weight decay
  2e-4, x0.96 every 320,000 iterations (8 epochs), 10M iterations (250
  epochs)."""
  config = _imagenet("googlenet", 224)
  config.batch_size = 32
  config.num_epochs = 250.0
  config.optimizer.learning_rate = 0.01
  config.optimizer.weight_decay = 2e-4
  config.schedule.name = "exponential"
  config.schedule.decay_factor = 0.96
  config.schedule.decay_every_epochs = 8.0
  return config


def shorten(config: ml_collections.ConfigDict, num_epochs: float) -> None:
  """The same schedule over `num_epochs` instead of config.num_epochs: its
  boundaries and exponential period scaled by the same factor."""
  scale = num_epochs / config.num_epochs
  config.schedule.boundaries_epochs = tuple(b * scale for b in config.schedule.boundaries_epochs)
  config.schedule.decay_every_epochs *= scale
  config.schedule.warmup_epochs *= scale
  config.num_epochs = num_epochs


def cuda_convnet_13pct_shapes(*, train_examples: int,
                              num_epochs: float) -> ml_collections.ConfigDict:
  """experiments/cuda_convnet_cifar10.py:13pct on shapes/hard as on CIFAR-10:
  random 24x24 crops of the 32x32 images, mirrored half the time (every class
  of shapes is mirror-symmetric up to a rotation, and hard rotates freely),
  ten views at test; the first `train_examples` training images, 2,000 test
  images, the schedule shortened to `num_epochs`."""
  config = cuda_convnet("13pct")
  on_shapes(config, dataset="shapes/hard", train_examples=train_examples, image_size=24,
            eval_examples=2_000)
  shorten(config, num_epochs)
  config.log_every_steps = 10
  return config


def alexnet_shapes(*, train_examples: int, num_epochs: float) -> ml_collections.ConfigDict:
  """AlexNet's recipe (alexnet_imagenet) on shapes/hard at 67x67, its smallest
  input (the 32x32 images resized up), FC6 and FC7 of 512 units instead of
  4,096 (experiments/alexnet_digits.py's width), the schedule shortened to
  `num_epochs`, on the first `train_examples` training images.

  What the `shapes` sweeps of dropout.py and overlapping_pooling.py share
  (each says what it means for its own claims):

  Sizing (2-core AMD EPYC, commit 9254c78): AlexNet at 67x67 trains at 75
  images/s on one core, so a sweep of 2 variants x 3 seeds should take
  about 22 minutes (6 runs, two at a time, plus compiling and evaluating).

  The paper's network does not leave chance here: with LRN and the §5
  initialisation (weights N(0, 0.01), biases of 1) AlexNet stayed at 88-91%
  training and test error for 5 epochs of dropout.py's `shapes` (pilots in
  dropout.py), as it did on `digits` (experiments/alexnet_digits.py), so its
  two arms would be compared at chance and a verdict would be the setting's
  accident. Those sweeps therefore put BatchNorm after every convolution in
  place of LRN in both arms, as alexnet_digits.py does (the paper's setting
  keeps LRN); the ablated switch is still the only difference between the
  arms. With it the network leaves chance, but slowly: 80-81% training and
  test error after 3 epochs (117 steps).
  """
  config = alexnet_imagenet()
  on_shapes(config, dataset="shapes/hard", train_examples=train_examples,
            image_size=67, eval_examples=2_000)
  config.dataset.train_preprocess = "resize"
  config.dataset.eval_preprocess = "resize"
  config.model.dense_features = 512
  shorten(config, num_epochs)
  config.log_every_steps = 10
  return config


def vgg_a_shapes(*, train_examples: int, num_epochs: float) -> ml_collections.ConfigDict:
  """VGG-A's recipe (vgg_imagenet) on shapes/hard at 32x32, the smallest input
  its five pools allow, each stage at half the paper's width and FC6/FC7 of
  256 units (experiments/vgg11_bn_digits.py's net), batch 128, a 1-epoch
  warmup (as that experiment found necessary: at 32x32 the 1x1 maps are
  repeated 49 times before FC6), the schedule shortened to `num_epochs`, on
  the first `train_examples` training images."""
  config = vgg_imagenet("vgg_a")
  on_shapes(config, dataset="shapes/hard", train_examples=train_examples, image_size=32,
            eval_examples=2_000)
  config.dataset.train_preprocess = "resize"
  config.dataset.eval_preprocess = "resize"
  config.model.stages = ((32, (3,)), (64, (3,)), (128, (3, 3)), (256, (3, 3)), (256, (3, 3)))
  config.model.dense_features = 256
  config.batch_size = 128
  shorten(config, num_epochs)
  config.schedule.warmup_epochs = 1.0
  config.log_every_steps = 10
  return config


def googlenet_shapes(*, train_examples: int, num_epochs: float, image_size: int = 80):
  """GoogLeNet's recipe (googlenet_imagenet) on shapes/hard resized up to
  `image_size` (79 is the smallest its auxiliary heads allow), no crops (the
  images are resized whole), the schedule shortened to `num_epochs`, on the
  first `train_examples` training images."""
  config = googlenet_imagenet()
  on_shapes(config, dataset="shapes/hard", train_examples=train_examples,
            image_size=image_size, eval_examples=2_000)
  config.dataset.train_preprocess = "resize"
  config.dataset.eval_preprocess = "resize"
  shorten(config, num_epochs)
  config.log_every_steps = 10
  return config
