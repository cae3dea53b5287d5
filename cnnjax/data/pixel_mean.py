"""The training set's mean image, for `dataset.normalization="subtract_pixel_mean"`.

AlexNet §2 subtracts "the mean activity over the training set from each
pixel" and ResNet §3.4 "the per-pixel mean": a mean image, not a mean per
channel. cnnjax computes it at the model's input size (size x size), the
average over the train split (`dataset.train_split`) of each image passed
through the evaluation recipe (`dataset.eval_preprocess`: for ImageNet,
shorter side to 256 and the centre 224 x 224), ten_crop taken as its centre
view. Every input, training crops included, then has the same mean image
subtracted pixel by pixel. The mean belongs to that recipe: evaluating a
workdir with another resize (`cnnjax eval --config.dataset.eval_preprocess`)
computes and subtracts another mean image. Caffe instead kept a 256 x 256
mean and subtracted from each crop the mean's window at the crop's offset
(data_transformer.cpp); one mean at the input size serves every recipe,
scale jittering included, where a crop's offset has no fixed meaning.

It is computed once, with a status line (one pass over the train split
decoding every image: about as long as an epoch's input pipeline), and
cached beside the prepared dataset as `pixel_mean-<key>.npz`, the key a
hash of (train split, evaluation recipe written out in full, size,
channels). Several processes starting at once compute it once: the others
wait on a lock file beside it, then read it. A dataset directory that
cannot be written to gets the mean computed in every run, which says so.
"""

import hashlib
import os
import pathlib
import time

import numpy as np
import tensorflow as tf

from cnnjax import locks
from cnnjax.data import preprocess

PROGRESS_EVERY = 100_000  # Examples between status lines on a long pass (ImageNet: 1.28M).


def cache_file(data_dir: str, split: str, recipe_text: str, size: int, channels: int
               ) -> pathlib.Path:
  key = hashlib.sha256(f"{split}|{recipe_text}|{size}|{channels}".encode()).hexdigest()[:16]
  return pathlib.Path(data_dir) / f"pixel_mean-{key}.npz"


def mean_image(examples: tf.data.Dataset, recipe: preprocess.Recipe, name: str, split: str,
               recipe_text: str, size: int, channels: int, data_dir: str) -> np.ndarray:
  """The mean image, float32 [size, size, channels], of `examples` (the
  encoded train split) through `recipe`: from the cache, or computed and cached."""
  path = cache_file(data_dir, split, recipe_text, size, channels)
  if path.exists():
    return _read(path)
  lock = locks.FileLock(path.with_name(f".{path.name}.lock"),
                        waiting=f"waiting for another process computing the mean image {path}")
  try:
    lock.acquire()
  except OSError as error:
    print(f"cannot cache the mean image in {path.parent} ({error.strerror}); computing it "
          "for this run only", flush=True)
    return _compute(examples, recipe, name, split, recipe_text, size)
  try:
    if path.exists():  # The other process computed it meanwhile.
      return _read(path)
    mean = _compute(examples, recipe, name, split, recipe_text, size)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial.npz")
    np.savez(partial, mean=mean, split=split, recipe=recipe_text)
    os.replace(partial, path)  # Readers see the whole file or none.
  finally:
    lock.release()
  return mean


def _read(path: pathlib.Path) -> np.ndarray:
  with np.load(path) as stored:
    return stored["mean"]


def _compute(examples: tf.data.Dataset, recipe: preprocess.Recipe, name: str, split: str,
             recipe_text: str, size: int) -> np.ndarray:
  print(f"computing the mean image of {name} {split!r} at {size}x{size} through "
        f"{recipe_text!r} (once)", flush=True)
  start = time.monotonic()
  no_seed = tf.zeros((2,), tf.int64)
  images = examples.map(
      tf.autograph.experimental.do_not_convert(lambda example: recipe(example, no_seed)["image"]),
      num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
  total, count, reported = None, 0, 0
  for batch in images.batch(256).prefetch(tf.data.AUTOTUNE).as_numpy_iterator():
    if batch.ndim == 5:  # [batch, views, size, size, channels]: every view counts.
      batch = batch.reshape((-1,) + batch.shape[2:])
    part = batch.sum(axis=0, dtype=np.float64)
    total = part if total is None else total + part
    count += len(batch)
    if count - reported >= PROGRESS_EVERY:
      reported = count
      print(f"  mean image: {count} images in {time.monotonic() - start:.0f} s", flush=True)
  print(f"mean image of {count} images computed in {time.monotonic() - start:.1f} s", flush=True)
  return (total / count).astype(np.float32)
