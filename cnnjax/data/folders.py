"""`folder:PATH`: a folder of images in class sub-folders, as torchvision's
ImageFolder reads one.

  PATH/train/CLASS/**/IMAGE           the training images of class CLASS
  PATH/val/CLASS/**/IMAGE             held out: val/, validation/ or test/ (any
                                      of them; each is a split of that name)

- Classes are the sub-folders of train/, numbered in the sorted order of
  their names (Python's `sorted`, by code point), the rule of torchvision's
  ImageFolder, so labels agree with models trained there. A held-out folder
  has the same class folders; one may lack a class, never add one.
- An image is a file, at any depth of a class folder (symbolic links
  followed), whose name ends, in any case, in an extension TensorFlow
  decodes: IMAGE_EXTENSIONS (JPEG, PNG, GIF (its first frame), BMP, WebP,
  JPEG XL). Files and folders whose names start with "." are ignored (unlike
  ImageFolder, which makes a class of `.ipynb_checkpoints/`), and so are
  files with other extensions (counted, and said once). Files of image
  formats TensorFlow cannot decode (TIFF, PPM, HEIC, ...) count as
  undecodable: named, or skipped with `dataset.skip_undecodable`.
- Every image becomes RGB: grey ones repeat their channel, an alpha channel
  is dropped (not blended), CMYK JPEGs are converted by libjpeg, 16-bit PNGs
  scaled to 8 bits (tf.io.decode_image with channels=3).

This module is free of TensorFlow: it checks the folder's shape (the errors
below, one line each, before anything is prepared) and lists its images.
cnnjax.data.folder_builder prepares them as a TFDS dataset.
"""

import dataclasses
import hashlib
import os
import re

from cnnjax.data.datasets import FOLDER_PREFIX, DatasetSpec
from cnnjax.errors import UserError

TRAIN = "train"
HELD_OUT = ("val", "validation", "test")
# What tf.io.decode_image decodes (TensorFlow 2.21: "One of JPEG, JPEG XL, PNG, GIF, BMP, WebP").
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".jpe", ".png", ".gif", ".bmp", ".webp", ".jxl")
# Images TensorFlow cannot decode: undecodable, never silently left out.
UNDECODABLE_EXTENSIONS = {".tif": "TIFF", ".tiff": "TIFF", ".ppm": "PPM", ".pgm": "PGM",
                          ".pbm": "PBM", ".pnm": "PNM", ".heic": "HEIC", ".heif": "HEIF",
                          ".avif": "AVIF", ".jp2": "JPEG 2000", ".ico": "ICO", ".psd": "PSD"}
LAYOUT = ("PATH must hold train/CLASS/IMAGE... and val/ (or validation/ or test/) with the same "
          "classes")


@dataclasses.dataclass(frozen=True)
class Folder:
  """A folder's classes and splits, checked."""

  path: str  # Absolute.
  classes: tuple[str, ...]  # Index = label.
  splits: tuple[str, ...]  # "train", then the held-out folders present.

  @property
  def spec(self) -> DatasetSpec:
    braces = self.path.replace("{", "{{").replace("}", "}}")  # how_to_get is a format string.
    return DatasetSpec(num_classes=len(self.classes), image_size=None, channels=3, mean=None,
                       std=None,
                       how_to_get=f"cnnjax prepares it again from {braces} when next used")

  @property
  def name(self) -> str:
    return FOLDER_PREFIX + self.path


@dataclasses.dataclass(frozen=True)
class ImageFile:
  """One image of a split, as the fingerprint sees it."""

  relative: str  # Inside the split's folder: "CLASS/..../NAME.jpg".
  label: int
  size: int
  mtime_ns: int


@dataclasses.dataclass(frozen=True)
class Listing:
  """Every image of the folder, and what was left out."""

  folder: Folder
  files: dict[str, tuple[ImageFile, ...]]  # By split.
  ignored: int  # Files that are not images (by extension), or outside class folders.

  @property
  def fingerprint(self) -> str:
    """A hash of the classes and of every image's path, size and modification
    time: any image added, removed, replaced or rewritten changes it."""
    digest = hashlib.sha256("\0".join(self.folder.classes).encode())
    for split, files in sorted(self.files.items()):
      for file in files:
        digest.update(f"\n{split}/{file.relative}\0{file.size}\0{file.mtime_ns}".encode())
    return digest.hexdigest()[:16]


def _visible(name: str) -> bool:
  return not name.startswith(".")


def _subfolders(path: str) -> list[str]:
  with os.scandir(path) as entries:
    return sorted(entry.name for entry in entries
                  if _visible(entry.name) and entry.is_dir(follow_symlinks=True))


def is_image(name: str) -> bool:
  """Whether a file is taken as an image (decodable or not), by its extension."""
  extension = os.path.splitext(name)[1].lower()
  return _visible(name) and (extension in IMAGE_EXTENSIONS or extension in UNDECODABLE_EXTENSIONS)


def _files(directory: str, prefix: str = ""):
  """(path relative to `directory`, os.DirEntry) of every visible file under
  it, at any depth, in sorted order, following symbolic links."""
  with os.scandir(directory) as scanned:
    entries = sorted((entry for entry in scanned if _visible(entry.name)),
                     key=lambda entry: entry.name)
  for entry in entries:
    if entry.is_dir(follow_symlinks=True):
      yield from _files(entry.path, f"{prefix}{entry.name}/")
    else:
      yield f"{prefix}{entry.name}", entry


def _has_image(path: str) -> bool:
  return any(is_image(entry.name) for _, entry in _files(path))


def scan(path: str) -> Folder:
  """The folder at `path`, its shape checked without reading any image; a
  UserError naming the first problem."""
  path = os.path.abspath(path)
  where = f"(config.dataset.name={FOLDER_PREFIX}{path})"
  if not os.path.isdir(path):
    raise UserError(f"folder {path} does not exist {where}" if not os.path.exists(path) else
                    f"{path} is a file, not a folder {where}")
  present = _subfolders(path)
  if TRAIN not in present:
    raise UserError(f"folder {path} has no train/ folder {where}; {LAYOUT}")
  held_out = tuple(split for split in HELD_OUT if split in present)
  if not held_out:
    raise UserError(f"folder {path} has no val/, validation/ or test/ folder beside train/ "
                    f"{where}: cnnjax evaluates on one; {LAYOUT}")
  classes = tuple(_subfolders(os.path.join(path, TRAIN)))
  if not classes or not any(_has_image(os.path.join(path, TRAIN, c)) for c in classes):
    raise UserError(f"folder {path} has no images in train/ {where}: an image is a file in a "
                    f"class folder ending in {', '.join(IMAGE_EXTENSIONS)} (any case); {LAYOUT}")
  for split in (TRAIN, *held_out):
    split_classes = _subfolders(os.path.join(path, split))
    if not split_classes:
      raise UserError(f"{os.path.join(path, split)} has no class folders {where}; {LAYOUT}")
    for name in split_classes:
      if name not in classes:
        raise UserError(f"class folder {os.path.join(path, split, name)} is not a class of "
                        f"train/ {where}; a held-out folder has train/'s classes only")
      if not _has_image(os.path.join(path, split, name)):
        raise UserError(f"class folder {os.path.join(path, split, name)} has no images {where}; "
                        f"add some or remove the folder (images end in "
                        f"{', '.join(IMAGE_EXTENSIONS)})")
  return Folder(path, classes, (TRAIN, *held_out))


def listing(folder: Folder) -> Listing:
  """Every image of `folder` with its size and modification time: one
  directory listing per folder and one `stat` per file (no file is read)."""
  files, ignored = {}, 0
  for split in folder.splits:
    split_path = os.path.join(folder.path, split)
    found = []
    for label, name in enumerate(folder.classes):
      if not os.path.isdir(os.path.join(split_path, name)):
        continue  # A held-out folder may lack a class.
      for relative, entry in _files(os.path.join(split_path, name), f"{name}/"):
        if not is_image(entry.name):
          ignored += 1
          continue
        stat = entry.stat()
        found.append(ImageFile(relative, label, stat.st_size, stat.st_mtime_ns))
    with os.scandir(split_path) as entries:  # Files beside the class folders.
      ignored += sum(1 for entry in entries if _visible(entry.name) and entry.is_file())
    files[split] = tuple(found)
  return Listing(folder, files, ignored)


def prepared_name(folder: Folder) -> str:
  """The folder's prepared copies' name, its own: the folder's name and a
  hash of its absolute path ("photos-3fa9c2e1")."""
  slug = re.sub(r"[^A-Za-z0-9_]+", "_", os.path.basename(folder.path)).strip("_") or "folder"
  return f"{slug[:40]}-{hashlib.sha256(folder.path.encode()).hexdigest()[:8]}"
