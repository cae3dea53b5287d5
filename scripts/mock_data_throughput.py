"""Trains an experiment for a few steps on random images of its dataset's
shapes (tfds.testing.mock_data: no copy of the dataset needed) and prints the
training throughput and the time the whole run would take at that rate,
evaluation left out.

  python scripts/mock_data_throughput.py experiments/cuda_convnet_cifar10.py:13pct --steps 40

The rate is the last of two log intervals, after compilation, on the devices
of the machine it runs on; the full run's length uses --train_examples, since
the mock split has only 1,280 images.
"""

import argparse
import json
import pathlib
import tempfile

import tensorflow_datasets as tfds

from cnnjax import config as config_lib
from cnnjax.training import train


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("spec", help="PATH[:ARG] of the experiment")
  parser.add_argument("--steps", type=int, default=40, help="training steps (even)")
  parser.add_argument("--train_examples", type=int, default=50_000,
                      help="the real training split's size (default: CIFAR-10's)")
  args = parser.parse_args()
  overrides = [("num_train_steps", str(args.steps)), ("log_every_steps", str(args.steps // 2)),
               ("eval_every_steps", str(args.steps)), ("checkpoint_every_steps", str(args.steps))]
  config = config_lib.from_command_line(args.spec, overrides)
  full_run = config_lib.from_command_line(args.spec, [])
  with tempfile.TemporaryDirectory() as workdir, tfds.testing.mock_data(num_examples=1280):
    train.train_and_evaluate(train.plan(config), pathlib.Path(workdir))
    lines = (pathlib.Path(workdir) / "metrics.jsonl").read_text().splitlines()
    rate = [json.loads(line) for line in lines if "train/images_per_sec" in line][-1][
        "train/images_per_sec"]
  steps_per_epoch = args.train_examples // full_run.batch_size
  images = round(full_run.num_epochs * steps_per_epoch) * full_run.batch_size
  print(f"{args.spec}: {rate:.0f} images/s; {full_run.num_epochs:g} epochs of "
        f"{steps_per_epoch} steps are {images:,} images, {images / rate / 3600:.1f} h")


if __name__ == "__main__":
  main()
