"""Writes the embedded `shapes` as a folder of photographs would be: images
in class sub-folders, JPEG and PNG, of varying size (cnnjax.data.shapes.write_folder),
the offline stand-in for `folder:PATH` (experiments/finetune_folder.py).

  PYTHONPATH=$PWD python scripts/shapes_folder.py photos --train 100 --val 20 --test 50

photos/train/CLASS/N.jpg|png, photos/val/..., photos/test/... for the ten
classes (disc, ring, ..., L, ...), that many images per class in each split.
"""

import argparse

from cnnjax.data import shapes
from cnnjax.data.shapes_render import Nuisances


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("path", help="the folder to write (its splits must not exist yet)")
  parser.add_argument("--train", type=int, default=100, help="images per class in train/")
  parser.add_argument("--val", type=int, default=20, help="images per class in val/ (0: none)")
  parser.add_argument("--test", type=int, default=0, help="images per class in test/ (0: none)")
  parser.add_argument("--clean", action="store_true",
                      help="shapes/clean's nuisances instead of shapes/hard's")
  args = parser.parse_args()
  counts = {split: count for split, count in
            (("train", args.train), ("val", args.val), ("test", args.test)) if count}
  nuisances: Nuisances = shapes.CLEAN if args.clean else shapes.HARD
  shapes.write_folder(args.path, counts, nuisances)
  print(f"wrote {args.path}: " + ", ".join(f"{split}/ {count} per class"
                                           for split, count in counts.items()))


if __name__ == "__main__":
  main()
