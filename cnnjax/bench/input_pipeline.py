"""`cnnjax bench-input`: how fast the input pipeline alone feeds a model.

  cnnjax bench-input --recipe RECIPE [--image-size N] [--batch-size B] [--seconds S]
                     [--channels C] [--files F] [--format table|json]

Times cnnjax's tf.data training path without a model: JPEG decoding (the
accurate DCT, as in training), the recipe's augmentation (a registered name
such as `random_area_crop_flip`, or ops such as "resize_shorter(256, 480) |
random_crop(224) | flip | pca_lighting(0.1)", cnnjax.data.recipes), per-image
seeds, standardisation and batching, with tf.data's map running one call per
core this process may use, and prefetch. The images are JPEG files of
ImageNet's typical size that it makes itself (shorter side 300-500 pixels,
aspect 3/4-4/3, quality 90: smooth random shapes of colour with texture,
which compress about as photographs do), decoded anew for every use.

Reports images/s (median and range over --seconds split in 5 timings), per
core (images/s over the cores this process may use), and per CPU-second
(images over the processor time the process used: what one fully busy core
delivers), with the processor. Flag and recipe mistakes are one line before
TensorFlow is imported.
"""

import argparse
import json
import os
import statistics
import time

from cnnjax.errors import UserError

TIMINGS = 5
WARMUP_BATCHES = 3
SHORTER_SIDE = (300, 500)  # ImageNet's photographs are mostly 500 pixels on the longer side.
JPEG_QUALITY = 90


def add_arguments(command: argparse.ArgumentParser) -> None:
  command.add_argument("--recipe", required=True, metavar="RECIPE",
                       help="a registered recipe name or ops joined by |, e.g. "
                            "\"resize_shorter(256, 480) | random_crop(224) | flip\"")
  command.add_argument("--image-size", type=int, default=224, metavar="N",
                       help="the model's input side, for ops that default to it (default: 224)")
  command.add_argument("--channels", type=int, default=3, choices=(1, 3),
                       help="decoded as grey (1) or RGB (3) (default: 3)")
  command.add_argument("--batch-size", type=int, default=256, metavar="B",
                       help="images per batch, as the pipeline batches them (default: 256)")
  command.add_argument("--seconds", type=float, default=20.0, metavar="S",
                       help="how long to time, after warm-up (default: 20)")
  command.add_argument("--files", type=int, default=200, metavar="F",
                       help="distinct JPEG files made and cycled through (default: 200)")
  command.add_argument("--format", choices=("table", "json"), default="table",
                       help="one line, or a JSON object with the machine and versions "
                            "(default: table)")


def run(args, overrides) -> int:
  if overrides:
    raise UserError("cnnjax bench-input takes no --config overrides")
  for flag, value in (("--image-size", args.image_size), ("--batch-size", args.batch_size),
                      ("--files", args.files)):
    if value < 1:
      raise UserError(f"{flag} must be at least 1, got {value}")
  if args.seconds <= 0:
    raise UserError(f"--seconds must be positive, got {args.seconds}")
  from cnnjax.data import recipes

  text = (recipes.NAMED[args.recipe](args.image_size) if args.recipe in recipes.NAMED
          else args.recipe)
  try:
    ops = recipes.parse(text, args.image_size, "train_preprocess")
    # The generated files vary in size (a crop must fit the resize before it).
    recipes.check_fits(ops, None, None, args.channels, args.image_size, "train_preprocess",
                       text, "the generated JPEG files")
  except UserError as error:
    raise UserError(str(error).replace("config.dataset.train_preprocess", "--recipe")
                    .replace("config.dataset.image_size", "--image-size")) from None
  result = measure(ops, args)
  if args.format == "json":
    print(json.dumps(result, indent=1))
  else:
    print(f"{result['recipe']}: {result['images_per_sec']:,.0f} images/s "
          f"({result['images_per_sec_min']:,.0f}-{result['images_per_sec_max']:,.0f}), "
          f"{result['images_per_sec_per_core']:,.0f} per core over {result['cores']} cores, "
          f"{result['images_per_cpu_second']:,.0f} per CPU-second "
          f"(the process kept {result['cpu_utilisation']:.0%} of the cores busy); "
          f"{result['output_shape']} images, batch {args.batch_size}; {result['processor']}")
  return 0


def synthetic_jpegs(count: int, channels: int, seed: int = 0) -> list[bytes]:
  """`count` JPEG files of ImageNet's typical size (see the module docstring)."""
  import numpy as np
  import tensorflow as tf

  random = np.random.default_rng(seed)
  files = []
  for _ in range(count):
    shorter = int(random.integers(*SHORTER_SIDE, endpoint=True))
    longer = int(shorter * random.uniform(1.0, 4 / 3))
    height, width = (shorter, longer) if random.random() < 0.5 else (longer, shorter)
    # Colour fields at a few scales (objects, parts) and fine grain (texture).
    image = np.zeros((height, width, channels), np.float32)
    for cells, weight in ((4, 0.5), (16, 0.3), (64, 0.15)):
      coarse = random.uniform(0, 1, (cells, cells, channels)).astype(np.float32)
      image += weight * tf.image.resize(coarse, (height, width), "bicubic").numpy()
    image += random.normal(0, 0.03, image.shape).astype(np.float32)
    pixels = tf.constant(np.clip(image * 255, 0, 255).astype(np.uint8))
    files.append(tf.io.encode_jpeg(pixels, quality=JPEG_QUALITY).numpy())
  return files


def measure(ops, args) -> dict:
  """Times the pipeline for args.seconds after warm-up; the figures as a dict."""
  import numpy as np
  import tensorflow as tf

  from cnnjax.bench import timing as bench_timing
  from cnnjax.data import pipeline, preprocess, recipes

  files = synthetic_jpegs(args.files, args.channels)
  augment = preprocess.recipe(ops, args.channels)
  # As training's standardisation, with ImageNet's statistics.
  mean, std = [0.485, 0.456, 0.406][:args.channels], [0.229, 0.224, 0.225][:args.channels]

  def prepare(index, encoded):
    seed = tf.random.experimental.stateless_fold_in(tf.constant([0, 1], tf.int64), index)
    image = augment({"image": encoded, "label": tf.constant(0)}, seed)["image"]
    return preprocess.standardized(image, mean, std)

  # One map call per core and one more: tf.data's AUTOTUNE ran this map one
  # call at a time on 2 cores (50% busy, 822 against 1,927 images/s for a
  # centre crop); the extra call covers one waiting on the batching (ResNet's
  # recipe on 2 cores: 297 images/s per core with 2 calls, 326 with 3, 316 with 4).
  cores = len(os.sched_getaffinity(0))
  dataset = (tf.data.Dataset.from_tensor_slices(files).repeat().enumerate()
             .map(tf.autograph.experimental.do_not_convert(lambda i, f: prepare(i, f)),
                  num_parallel_calls=cores + 1, deterministic=False)
             .batch(args.batch_size, drop_remainder=True).prefetch(2)
             .with_options(pipeline.dataset_options()))
  batches = iter(dataset)
  for _ in range(WARMUP_BATCHES):
    shape = next(batches).shape
  rates, images, cpu_started, started = [], 0, time.process_time(), time.perf_counter()
  for _ in range(TIMINGS):
    count, timing_started = 0, time.perf_counter()
    while time.perf_counter() - timing_started < args.seconds / TIMINGS:
      next(batches)
      count += args.batch_size
    rates.append(count / (time.perf_counter() - timing_started))
    images += count
  wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
  rate = statistics.median(rates)
  return {"recipe": recipes.canonical(ops), "output_shape": "x".join(map(str, shape[1:])),
          "batch_size": args.batch_size, "images_per_sec": rate,
          "images_per_sec_min": min(rates), "images_per_sec_max": max(rates),
          "cores": cores, "images_per_sec_per_core": rate / cores,
          "images_per_cpu_second": images / cpu, "cpu_utilisation": cpu / wall / cores,
          "files": args.files, "mean_file_bytes": float(np.mean([len(f) for f in files])),
          "processor": bench_timing.host_cpu(), "tensorflow": tf.__version__}
