"""A torchvision network trained here, by PyTorch, on the embedded `shapes`
scenes, saved as torchvision saves weights (its state_dict in a safetensors
file): the offline stand-in for torchvision's ImageNet weights, to run
`cnnjax import-weights` and experiments/finetune_folder.py end to end where
those cannot be downloaded.

  pip install torch torchvision safetensors
  PYTHONPATH=$PWD python scripts/torchvision_shapes_weights.py resnet18_shapes.safetensors

Trains torchvision's `resnet18` (10 classes) on `--per-class` x 10 scenes of
shapes/hard's nuisances (or shapes/clean's, `--clean`) drawn at `--size`
pixels square (cnnjax.data.shapes.generate: the train split's seed, so a
folder's train/ written by scripts/shapes_folder.py holds the same scenes at
other sizes; its val/ and test/ are others), normalised with that dataset's
mean and standard deviation (cnnjax's table), mirrored half the time; SGD
with momentum 0.9, weight decay 5e-4, the rate decayed by a cosine; batch
128. Prints the error on 1,000 scenes of the test split's seed. Import with
those statistics and that size:

  cnnjax import-weights --model resnet18 --from resnet18_shapes.safetensors \
      --workdir runs/resnet18_shapes --config.dataset.name=shapes/hard \
      --config.dataset.image_size=64
"""

import argparse
import time

import numpy as np
import torch
import torchvision
from safetensors.torch import save_file

from cnnjax.data import shapes
from cnnjax.data.datasets import DATASETS


def scenes(split: str, per_class: int, size: int, clean: bool) -> tuple[torch.Tensor, torch.Tensor]:
  """NCHW float images, normalised, and their labels."""
  sizes = shapes.ImageSizes(shorter=(size, size), max_ratio=1.0)
  images, labels = [], []
  nuisances = shapes.CLEAN if clean else shapes.HARD
  for block, block_labels in shapes.generate(nuisances, split, per_class, sizes=sizes):
    images += block
    labels += list(block_labels)
  spec = DATASETS["shapes/clean" if clean else "shapes/hard"]
  mean, std = np.float32(spec.mean), np.float32(spec.std)
  pixels = (np.stack(images).astype(np.float32) / 255 - mean) / std
  return torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous(), torch.tensor(labels)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("out", help="the safetensors file to write")
  parser.add_argument("--per-class", type=int, default=1000)
  parser.add_argument("--epochs", type=int, default=4)
  parser.add_argument("--size", type=int, default=64, help="the images' side")
  parser.add_argument("--clean", action="store_true",
                      help="shapes/clean's nuisances (and statistics) instead of shapes/hard's")
  parser.add_argument("--learning-rate", type=float, default=0.1)
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args()
  torch.manual_seed(args.seed)
  start = time.monotonic()
  images, labels = scenes("train", args.per_class, args.size, args.clean)
  test_images, test_labels = scenes("test", 100, args.size, args.clean)
  print(f"drew {len(images)} + {len(test_images)} scenes in {time.monotonic() - start:.0f} s",
        flush=True)
  model = torchvision.models.resnet18(num_classes=10)
  batch = 128
  steps = args.epochs * (len(images) // batch)
  optimizer = torch.optim.SGD(model.parameters(), lr=args.learning_rate, momentum=0.9,
                              weight_decay=5e-4)
  schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
  start = time.monotonic()
  for epoch in range(args.epochs):
    model.train()
    order = torch.randperm(len(images))
    for step in range(len(images) // batch):
      chosen = order[step * batch:(step + 1) * batch]
      flip = torch.rand(len(chosen)) < 0.5
      inputs = images[chosen]
      inputs[flip] = inputs[flip].flip(-1)
      loss = torch.nn.functional.cross_entropy(model(inputs), labels[chosen])
      optimizer.zero_grad()
      loss.backward()
      optimizer.step()
      schedule.step()
    model.eval()
    with torch.no_grad():
      predicted = torch.cat([model(part).argmax(1) for part in test_images.split(250)])
    error = (predicted != test_labels).float().mean().item()
    print(f"epoch {epoch + 1}: loss {loss.item():.3f}, test error {error:.2%} "
          f"({time.monotonic() - start:.0f} s)", flush=True)
  save_file(model.state_dict(), args.out)
  print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
