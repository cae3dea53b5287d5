"""The published numbers cnnjax reproduces: one cited row per (source, model,
dataset, evaluation mode, conditions), read by `cnnjax report`.

Errors are in percent, as the papers print them (torchvision's acc@1/acc@5
as 100 - accuracy). `None`: the source gives no such number (GoogLeNet's
Table 3 has top-5 only; the CIFAR and MNIST papers top-1 only).

A row is about one network of cnnjax's registry (`model`, `options` its
ablation switches where the paper names them, e.g. ResNet's shortcut option)
on one TFDS dataset and split, evaluated one way. `mode` uses the names of
the metrics cnnjax writes (cnnjax.training.train, config.extra_evals):
  eval                   a single view: the centre crop, or the whole image
  eval_10crop            4 corners + centre and their mirror images, softmax averaged
  eval_dense             the network applied fully convolutionally at one scale Q (VGG §3.2)
  eval_dense_multiscale  the same at several scales, scores averaged (VGG Table 4,
                         ResNet Table 4)
  eval_144crop           GoogLeNet §7's 144 crops
A run's Polyak/EMA parameters (`eval_ema`, `eval_NAME_ema`) are compared with
the same rows as its raw parameters: the mode names how the images are cut.

Conditions a row states (what tells rows of one model, dataset and mode
apart, and the scales and network options the paper gives with a number),
each matched against what the run's config shows (cnnjax.report reads them):
  train_scale   the shorter side when training, (S,) fixed or (S_min, S_max)
                jittered (VGG §3.1): the run's `resize_shorter(...)` op
  test_scales   the shorter side(s) the evaluation resizes to, Q (VGG §3.2,
                ResNet §3.4): the arguments of the mode's `dense(...)` or
                `resize_shorter(...)` op
  augmentation  trained on augmented images (the CIFAR papers' C10 / C10+)
  options       model options the network had (`model.KEY` of the run's config)
None (or empty) means the row does not depend on it.

`SAME_NETWORK` names the registry's aliases (VGG's letters and torchvision's
depths are one class), so a row about `vgg16` also stands beside a `vgg_d` run.

Sources: each row's citation: the papers' tables (ResNet Table 4's scales
from §3.4) and torchvision's weight metadata (the `IMAGENET1K_V1` weights'
published acc@1 and acc@5).
Left out: ensembles (AlexNet's 5 CNNs, GoogLeNet's 7 models), AlexNet's
ILSVRC-2010 test numbers (no TFDS split), LeNet-5's 0.8% with distortions (no
such recipe), VGG's multi-crop and Table 4 rows other than the jittered D
and E, and DenseNet-161 (not in the paper's Table 3, which has DenseNet-264).
"""

import dataclasses

PAPER, TORCHVISION = "paper", "torchvision"
IMAGENET = ("imagenet2012", "validation")  # ImageNet's labelled evaluation split in TFDS.
MODES = ("eval", "eval_10crop", "eval_dense", "eval_dense_multiscale", "eval_144crop")


@dataclasses.dataclass(frozen=True)
class Published:
  """One published result, with where it is printed."""

  source: str  # PAPER or TORCHVISION: the report shows them in separate columns.
  citation: str  # Paper and table or section, or torchvision's weights.
  model: str  # A name of cnnjax's registry.
  dataset: str  # A TFDS name.
  split: str  # The split evaluated on (ImageNet's labelled one is `validation`).
  mode: str  # One of MODES.
  top1_error: float | None  # Percent.
  top5_error: float | None
  train_scale: tuple[int, ...] | None = None
  test_scales: tuple[int, ...] | None = None
  augmentation: bool | None = None
  options: tuple[tuple[str, object], ...] = ()
  note: str = ""

  @property
  def key(self) -> tuple:
    """What no two rows share: a run's (model, mode) meets at most one row per source."""
    return (self.source, self.model, self.dataset, self.split, self.mode, self.train_scale,
            self.test_scales, self.augmentation, self.options)


def _torchvision(model: str, weights: str, acc1: float, acc5: float) -> Published:
  """torchvision's published accuracy (single 224 centre crop of the image
  resized to 256) as errors."""
  citation = f"torchvision {weights} (acc@1 {acc1:.2f}, acc@5 {acc5:.2f})"
  return Published(TORCHVISION, citation, model, *IMAGENET, "eval", round(100 - acc1, 2),
                   round(100 - acc5, 2))


_ALEXNET = "Krizhevsky et al. 2012 (AlexNet)"
_VGG = "Simonyan & Zisserman 2015 (VGG)"
_GOOGLENET = "Szegedy et al. 2015 (GoogLeNet)"
_RESNET = "He et al. 2016 (ResNet)"
_DENSENET = "Huang et al. 2017 (DenseNet)"
_CUDA_CONVNET = "cuda-convnet (Krizhevsky 2012)"


def _vgg(model: str, table: str, mode: str, top1: float, top5: float, train_scale: tuple,
         test_scales: tuple) -> Published:
  scale = ("S=" + str(train_scale[0]) if len(train_scale) == 1
           else "S=[" + ";".join(map(str, train_scale)) + "]")  # The paper's notation.
  tests = (f"Q={test_scales[0]}" if len(test_scales) == 1
           else "Q={" + ",".join(map(str, test_scales)) + "}")
  return Published(PAPER, f"{_VGG}, {table} ({scale}, {tests})", model, *IMAGENET, mode, top1,
                   top5, train_scale=train_scale, test_scales=test_scales)


def _resnet(model: str, table: str, mode: str, top1: float, top5: float | None,
            shortcut: str) -> Published:
  return Published(PAPER, f"{_RESNET}, {table}", model, *IMAGENET, mode, top1, top5,
                   options=(("shortcut", shortcut),))


def _resnet_multiscale(model: str, table: str, top1: float, top5: float) -> Published:
  """ResNet Table 4: fully convolutional, scores averaged over the shorter
  sides 224, 256, 384, 480, 640 (§3.4), option B shortcuts."""
  return Published(PAPER, f"{_RESNET}, {table}", model, *IMAGENET, "eval_dense_multiscale", top1,
                   top5, test_scales=(224, 256, 384, 480, 640), options=(("shortcut", "B"),))


def _googlenet(mode: str, crops: str, top5: float) -> Published:
  return Published(PAPER, f"{_GOOGLENET}, Table 3 (1 model, {crops})", "googlenet", *IMAGENET,
                   mode, None, top5,
                   note="Polyak-averaged parameters (§6): compare the run's _ema mode")


def _resnet_cifar(model: str, top1: float, note: str = "") -> Published:
  return Published(PAPER, f"{_RESNET}, Table 6", model, "cifar10", "test", "eval", top1, None,
                   augmentation=True, options=(("shortcut", "A"),), note=note)


def _densenet(model: str, mode: str, top1: float, top5: float) -> Published:
  crop = {"eval": "single crop", "eval_10crop": "10-crop"}[mode]
  return Published(PAPER, f"{_DENSENET}, Table 3 ({crop})", model, *IMAGENET, mode, top1, top5)


_JITTERED = (256, 512)  # VGG §3.1: S uniform in [256, 512]; tested at Q = 384 (Table 3).

PUBLISHED: tuple[Published, ...] = (
    # LeNet-5 (LeCun et al. 1998, §III.C): 0.95% without distortions (0.8% with
    # affine distortions, which cnnjax has no recipe for; left out).
    Published(PAPER, "LeCun et al. 1998 (LeNet-5), §III.C", "lenet5", "mnist", "test", "eval",
              0.95, None, augmentation=False),
    # AlexNet Table 2: one CNN on ILSVRC-2012 validation, ten patches averaged
    # (§4.1). Its ILSVRC-2010 test numbers (Table 1) have no TFDS split.
    Published(PAPER, f"{_ALEXNET}, Table 2 (1 CNN)", "alexnet", *IMAGENET, "eval_10crop",
              40.7, 18.2),
    # VGG Table 3: dense evaluation at one scale, Q = S for a fixed S, Q = 384 for S in [256, 512].
    _vgg("vgg_a", "Table 3", "eval_dense", 29.6, 10.4, (256,), (256,)),
    _vgg("vgg_a_lrn", "Table 3", "eval_dense", 29.7, 10.5, (256,), (256,)),
    _vgg("vgg_b", "Table 3", "eval_dense", 28.7, 9.9, (256,), (256,)),
    _vgg("vgg_c", "Table 3", "eval_dense", 28.1, 9.4, (256,), (256,)),
    _vgg("vgg_c", "Table 3", "eval_dense", 28.1, 9.3, (384,), (384,)),
    _vgg("vgg_c", "Table 3", "eval_dense", 27.3, 8.8, _JITTERED, (384,)),
    _vgg("vgg_d", "Table 3", "eval_dense", 27.0, 8.8, (256,), (256,)),
    _vgg("vgg_d", "Table 3", "eval_dense", 26.8, 8.7, (384,), (384,)),
    _vgg("vgg_d", "Table 3", "eval_dense", 25.6, 8.1, _JITTERED, (384,)),
    _vgg("vgg_e", "Table 3", "eval_dense", 27.3, 9.0, (256,), (256,)),
    _vgg("vgg_e", "Table 3", "eval_dense", 26.9, 8.7, (384,), (384,)),
    _vgg("vgg_e", "Table 3", "eval_dense", 25.5, 8.0, _JITTERED, (384,)),
    # VGG Table 4 (= Table 5's dense row for D): Q in {256, 384, 512}.
    _vgg("vgg_d", "Tables 4 and 5", "eval_dense_multiscale", 24.8, 7.5, _JITTERED,
         (256, 384, 512)),
    _vgg("vgg_e", "Table 4", "eval_dense_multiscale", 24.8, 7.5, _JITTERED, (256, 384, 512)),
    # GoogLeNet Table 3: one model, top-5 only; the final model is Polyak-averaged (§6).
    _googlenet("eval", "1 crop", 10.07),
    _googlenet("eval_10crop", "10 crops", 9.15),
    _googlenet("eval_144crop", "144 crops", 7.89),
    # ResNet Table 2 (10-crop top-1; shortcuts option A, zero padding) and
    # Table 3 (10-crop; options A, B, C for ResNet-34, B for the deeper nets).
    _resnet("plain18", "Table 2", "eval_10crop", 27.94, None, "none"),
    _resnet("plain34", "Table 2", "eval_10crop", 28.54, None, "none"),
    _resnet("resnet18", "Table 2", "eval_10crop", 27.88, None, "A"),
    _resnet("resnet34", "Tables 2 and 3 (34 A)", "eval_10crop", 25.03, 7.76, "A"),
    _resnet("resnet34", "Table 3 (34 B)", "eval_10crop", 24.52, 7.46, "B"),
    _resnet("resnet34", "Table 3 (34 C)", "eval_10crop", 24.19, 7.40, "C"),
    _resnet("resnet50", "Table 3", "eval_10crop", 22.85, 6.71, "B"),
    _resnet("resnet101", "Table 3", "eval_10crop", 21.75, 6.05, "B"),
    _resnet("resnet152", "Table 3", "eval_10crop", 21.43, 5.71, "B"),
    # ResNet Table 4: single models, fully convolutional at several scales.
    _resnet_multiscale("resnet34", "Table 4 (34 B)", 21.84, 5.71),
    _resnet_multiscale("resnet50", "Table 4", 20.74, 5.25),
    _resnet_multiscale("resnet101", "Table 4", 19.87, 4.60),
    _resnet_multiscale("resnet152", "Table 4", 19.38, 4.49),
    # ResNet Table 6 (§4.2): CIFAR-10 test error, option A, 4-pixel pad + crop + flip.
    _resnet_cifar("resnet20", 8.75),
    _resnet_cifar("resnet32", 7.51),
    _resnet_cifar("resnet44", 7.17),
    _resnet_cifar("resnet56", 6.97),
    _resnet_cifar("resnet110", 6.43, "best of 5 runs; their mean 6.61 ± 0.16"),
    # DenseNet Table 3: ImageNet, single centre crop and 10-crop (DenseNet-161
    # is not in it; left out).
    _densenet("densenet121", "eval", 25.02, 7.71),
    _densenet("densenet121", "eval_10crop", 23.61, 6.66),
    _densenet("densenet169", "eval", 23.80, 6.85),
    _densenet("densenet169", "eval_10crop", 22.08, 5.92),
    _densenet("densenet201", "eval", 22.58, 6.34),
    _densenet("densenet201", "eval_10crop", 21.46, 5.54),
    # DenseNet Table 2: BC (L=100, k=12) on C10 (no augmentation, dropout 0.2),
    # C10+ and C100+ (standard augmentation: translation and mirroring).
    Published(PAPER, f"{_DENSENET}, Table 2 (C10)", "densenet_bc100", "cifar10", "test", "eval",
              5.92, None, augmentation=False, options=(("dropout_rate", 0.2),)),
    Published(PAPER, f"{_DENSENET}, Table 2 (C10+)", "densenet_bc100", "cifar10", "test",
              "eval", 4.51, None, augmentation=True),
    Published(PAPER, f"{_DENSENET}, Table 2 (C100+)", "densenet_bc100", "cifar100", "test",
              "eval", 22.27, None, augmentation=True),
    # cuda-convnet's CIFAR-10 nets (AlexNet §3.3, footnote 3): the error each
    # layer file's name and header state; 13pct and 11pct test on ten views,
    # and differ by LRN (the pair is AlexNet §3.3's ablation, 13% -> 11%).
    Published(PAPER, f"{_CUDA_CONVNET}, example-layers/layers-80sec.cfg", "cifar_convnet_80sec",
              "cifar10", "test", "eval", 26.0, None, augmentation=False),
    Published(PAPER, f"{_CUDA_CONVNET}, example-layers/layers-18pct.cfg", "cifar_convnet_18pct",
              "cifar10", "test", "eval", 18.0, None, augmentation=False),
    Published(PAPER, f"{_CUDA_CONVNET}, example-layers/layers-conv-local-13pct.cfg; "
              f"{_ALEXNET}, §3.3", "cifar_convnet_13pct", "cifar10", "test", "eval_10crop", 13.0,
              None, augmentation=True, options=(("norm", "none"),)),
    Published(PAPER, f"{_CUDA_CONVNET}, example-layers/layers-conv-local-11pct.cfg; "
              f"{_ALEXNET}, §3.3", "cifar_convnet_11pct", "cifar10", "test", "eval_10crop", 11.0,
              None, augmentation=True, options=(("norm", "cross_map"),)),
    # torchvision's ImageNet weights, single centre crop.
    _torchvision("alexnet_owt", "AlexNet_Weights.IMAGENET1K_V1", 56.52, 79.07),
    _torchvision("vgg11", "VGG11_Weights.IMAGENET1K_V1", 69.02, 88.63),
    _torchvision("vgg11_bn", "VGG11_BN_Weights.IMAGENET1K_V1", 70.37, 89.81),
    _torchvision("vgg13", "VGG13_Weights.IMAGENET1K_V1", 69.93, 89.25),
    _torchvision("vgg13_bn", "VGG13_BN_Weights.IMAGENET1K_V1", 71.59, 90.37),
    _torchvision("vgg16", "VGG16_Weights.IMAGENET1K_V1", 71.59, 90.38),
    _torchvision("vgg16_bn", "VGG16_BN_Weights.IMAGENET1K_V1", 73.36, 91.52),
    _torchvision("vgg19", "VGG19_Weights.IMAGENET1K_V1", 72.38, 90.88),
    _torchvision("vgg19_bn", "VGG19_BN_Weights.IMAGENET1K_V1", 74.22, 91.84),
    _torchvision("googlenet_bn", "GoogLeNet_Weights.IMAGENET1K_V1", 69.78, 89.53),
    _torchvision("resnet18", "ResNet18_Weights.IMAGENET1K_V1", 69.76, 89.08),
    _torchvision("resnet34", "ResNet34_Weights.IMAGENET1K_V1", 73.31, 91.42),
    _torchvision("resnet50", "ResNet50_Weights.IMAGENET1K_V1", 76.13, 92.86),
    _torchvision("resnet101", "ResNet101_Weights.IMAGENET1K_V1", 77.37, 93.55),
    _torchvision("resnet152", "ResNet152_Weights.IMAGENET1K_V1", 78.31, 94.05),
    _torchvision("densenet121", "DenseNet121_Weights.IMAGENET1K_V1", 74.43, 91.97),
    _torchvision("densenet169", "DenseNet169_Weights.IMAGENET1K_V1", 75.60, 92.81),
    _torchvision("densenet201", "DenseNet201_Weights.IMAGENET1K_V1", 76.90, 93.37),
)

# Registry names of one network (cnnjax.models: `vgg11` is `vgg.VGGA`, ...).
SAME_NETWORK = {"vgg_a": "vgg11", "vgg_b": "vgg13", "vgg_d": "vgg16", "vgg_e": "vgg19"}
SAME_NETWORK.update({torchvision: paper for paper, torchvision in list(SAME_NETWORK.items())})


def names_of(model: str) -> frozenset[str]:
  """`model` and the other registry names of the same network."""
  return frozenset({model, SAME_NETWORK.get(model, model)})
