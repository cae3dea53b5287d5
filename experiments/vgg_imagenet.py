"""VGG on ImageNet (Simonyan, Zisserman 2015, "Very Deep Convolutional
Networks for Large-Scale Image Recognition", §2-4), one configuration and
training scale per argument:

  cnnjax train --config experiments/vgg_imagenet.py:d,jitter --workdir runs/vgg_d_jitter

Arguments (combine with commas): a configuration of Table 1 — a (default),
a_lrn, b, c, d, e; a training scale (§3.1) — 256 (default), 384, or jitter
(the shorter side uniform in [256, 512]); `smoke` — the same recipe for 4
steps on the embedded `shapes/jpeg` at 1/4 of the image sizes, about a
minute on CPU: `--config experiments/vgg_imagenet.py:a,smoke`.

ImageNet must be prepared by TFDS (`imagenet2012`); its labelled evaluation
split is `validation` (TFDS's `test` has no labels).

Expected top-1 / top-5 error (%) on the ILSVRC-2012 validation set, Table 3
(dense evaluation at one scale: Q = S, or Q = 384 for jittered S) as
`eval_dense/`, and Table 4 (dense, three scales: Q = {S-32, S, S+32}, or
{256, 384, 512} for jittered S) as `eval_dense_multiscale/`; `eval/` is one
centre crop (torchvision's way), for torchvision's weights:

| config | S=256 | S=384 | S=[256;512] (Q=384) | multi-scale, jittered | torchvision (centre crop) |
| --- | --- | --- | --- | --- | --- |
| a | 29.6 / 10.4 | | | | vgg11 30.98 / 11.37 |
| a_lrn | 29.7 / 10.5 | | | | |
| b | 28.7 / 9.9 | | | | vgg13 30.07 / 10.75 |
| c | 28.1 / 9.4 | 28.1 / 9.3 | 27.3 / 8.8 | | |
| d | 27.0 / 8.8 | 26.8 / 8.7 | 25.6 / 8.1 | 24.8 / 7.5 | vgg16 28.41 / 9.62 |
| e | 27.3 / 9.0 | 26.9 / 8.7 | 25.5 / 8.0 | 24.8 / 7.5 | vgg19 27.62 / 9.12 |

Hardware and time: the paper trained one net in 2-3 weeks on four Titan
Black GPUs, 74 epochs. Not run here: no ImageNet and no accelerator in this
change. D's step costs 3 x 15.5 GMACs per image; dense evaluation at three
scales costs about 2 x (1.3 + 2.9 + 5.2) = 19 forward passes at 224 per
image (every epoch; `--config.eval_every_steps` evaluates less often).

The paper's recipe (§3.1), and how it is set here:
- SGD, batch 256, momentum 0.9, weight decay 5e-4, dropout 0.5 on FC6 and
  FC7, lr 0.01 divided by 10 when the validation accuracy stops improving
  (three times), 74 epochs.
- 224x224 random crops of the image rescaled to training scale S, flipped
  and shifted in colour as AlexNet's (PCA lighting, std 0.1); the mean RGB
  value of the training set subtracted from each pixel (§2.1), 0-255 pixels.
- Initialisation: A from N(0, 0.01), biases 0; the deeper nets' first four
  convolutions and three dense layers from a trained A. The paper's footnote:
  "it is possible to initialise the weights without pre-training by using
  the random initialisation procedure of Glorot & Bengio"; cnnjax's VGG
  does that, biases zero (cnnjax/models/vgg.py).
- Test (§3.2): the network applied densely (its dense layers as
  convolutions) to the image rescaled to Q, the class score map averaged
  spatially and with the mirrored image's; several Q averaged (Table 4).

Departures, and why:
- Glorot initialisation for every configuration, A included, instead of
  N(0, 0.01) for A and initialising the deeper nets from A (the footnote's
  alternative; cnnjax cannot yet initialise from another run's layers).
- S = 384 and jittered S are trained from scratch for 74 epochs; the paper
  initialised them from the S = 256 (and S = 384) nets and fine-tuned at
  lr 1e-3 to save time.
- Dense evaluation takes the central QxQ square of the rescaled image (and
  its mirror), not the whole image: one shape per scale keeps batches
  rectangular.
- "Stops improving" is read as: no better validation top-1 error (centre
  crop, every epoch) for 5 epochs, our choice; the run stops at 74 epochs.
- The learning rate scales linearly with the batch (base 256).
"""

from cnnjax import experiment_setup as setup
from cnnjax.config import base_config

FILE = "experiments/vgg_imagenet.py"
CONFIGURATIONS = {"a": "vgg_a", "a_lrn": "vgg_a_lrn", "b": "vgg_b", "c": "vgg_c", "d": "vgg_d",
                  "e": "vgg_e"}
# Training scale: (S_min, S_max), the single test scale Q (Table 3) and the three of Table 4.
SCALES = {"256": ((256, 256), 256, (224, 256, 288)),
          "384": ((384, 384), 384, (352, 384, 416)),
          "jitter": ((256, 512), 384, (256, 384, 512))}
SMOKE_SCALE = 1 / 4  # 224 → 56: five 2x2 pools leave 1x1 maps.


def get_config(arg=None):
  given = setup.words(arg, FILE, {
      **{word: f"configuration {word.upper()} ({name})" for word, name in CONFIGURATIONS.items()},
      "256": "train at S = 256", "384": "train at S = 384",
      "jitter": "train at S uniform in [256, 512]",
      "smoke": "4 steps on the embedded shapes/jpeg at 1/4 size"})
  letter = setup.one_of(given, CONFIGURATIONS, FILE, default="a")
  scale = setup.one_of(given, SCALES, FILE, default="256")
  smoke = "smoke" in given
  px = setup.sizes(smoke, SMOKE_SCALE)
  (s_min, s_max), single_q, multi_q = SCALES[scale]

  config = base_config()
  config.model.name = CONFIGURATIONS[letter]
  setup.imagenet(config)
  config.dataset.image_size = px(224)
  shorter = f"{px(s_min)}" if s_min == s_max else f"{px(s_min)}, {px(s_max)}"
  config.dataset.train_preprocess = (f"resize_shorter({shorter}) | random_crop({px(224)}) | "
                                     "flip | pca_lighting(0.1)")
  config.dataset.eval_preprocess = f"resize_shorter({px(256)}) | center_crop({px(224)})"
  config.extra_evals = (
      ("dense", f"dense({px(single_q)})"),
      ("dense_multiscale", "dense({})".format(", ".join(str(px(q)) for q in multi_q))),
  )
  config.dataset.normalization = "subtract_mean"
  config.num_epochs = 74.0
  setup.sgd(config, learning_rate=0.01, batch_size=256, weight_decay=5e-4)
  setup.plateau_on_validation(config)
  if smoke:
    setup.smoke_imagenet(config)
  return config
