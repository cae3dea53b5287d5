"""A folder of images (cnnjax.data.folders) prepared once as a TFDS dataset.

Why a TFDS dataset of cnnjax's writing, not TFDS's own `ImageFolder`: that
one reads and decodes the files themselves on every epoch, with no prepared
form; a TFDS dataset in sharded TFRecord files is read like every other
dataset cnnjax trains on, so the data order (tfds.even_splits over
`dataset.num_shards`, cnnjax.data.pipeline) is the same on any number of
devices and processes, and large folders read at the speed of ImageNet.

Preparing:
1. Every image is decoded once, in parallel threads, exactly as training
   decodes it (cnnjax.data.preprocess.decode_pixels). A file that does not
   decode is a UserError naming it and why, before anything is written;
   with `dataset.skip_undecodable` it is left out, and every run says how
   many were. The train split's pixel mean and standard deviation come from
   the same pass, exact and free (cnnjax.data.statistics caches them).
2. The files' bytes are written unchanged (no re-encoding: JPEGs stay the
   same JPEGs) with their labels and relative paths (`file_name`) through
   TFDS's writer, which shuffles them by a hash of the path: the stored order
   depends on the set of files alone.

The copy lives in the data dir (`dataset.data_dir`, else TFDS's), not in
the folder, which may be read-only:
DATA_DIR/cnnjax_image_folder/<name>-<path hash>-<fingerprint>/1.0.0/. The
fingerprint (cnnjax.data.folders.Listing) hashes every image's path, size
and modification time, so a folder with images added, removed, replaced or
rewritten is prepared again on its next use, and the copy of its earlier
contents removed (a run still reading that copy may then stop, naming the
missing file and keeping its checkpoints; run again, it resumes on the new
contents). Checking costs one
directory listing per folder and one `stat` per image on every start:
0.66-0.70 s of CPU for 105,000 images in 100 classes (1.0-1.2 s wall on the
2 shared cores at load 9, metadata in the page cache); by proportion about
9 s of CPU for ImageNet's 1.33 million, more on a network file system. An
image whose bytes change while its size and modification time stay (a copy
that restores old timestamps) goes unnoticed. Several processes starting at
once prepare the folder once (a cnnjax.locks.FileLock).
"""

import concurrent.futures
import contextlib
import dataclasses
import io
import json
import os
import pathlib
import shutil
import sys
import time

import tensorflow as tf
import tensorflow_datasets as tfds

from cnnjax import locks
from cnnjax.data import folders, statistics
from cnnjax.errors import UserError

BUILDER_NAME = "cnnjax_image_folder"
VERSION = "1.0.0"
METADATA_FILE = "cnnjax_folder.json"  # Beside TFDS's files, written with them.


@dataclasses.dataclass(frozen=True)
class Checked:
  """What decoding every image found."""

  kept: dict[str, tuple[folders.ImageFile, ...]]  # By split.
  undecodable: tuple[tuple[str, str], ...]  # (path, reason).
  sizes: tuple[int, int, int, int]  # Least and largest height, least and largest width.
  train: statistics.Statistics


@dataclasses.dataclass(eq=False)
class FolderConfig(tfds.core.BuilderConfig):
  """A folder's listing and what checking it found, for writing it."""

  # Out of the repr, which TFDS logs: a large folder's listing is megabytes.
  listing: folders.Listing | None = dataclasses.field(default=None, repr=False)
  checked: Checked | None = dataclasses.field(default=None, repr=False)


class CnnjaxImageFolder(tfds.core.GeneratorBasedBuilder):
  """A folder of images in class sub-folders, as a TFDS dataset."""

  VERSION = tfds.core.Version(VERSION)

  def _info(self) -> tfds.core.DatasetInfo:
    config = self.builder_config
    low_height, high_height, low_width, high_width = config.checked.sizes
    fixed = low_height == high_height and low_width == high_width
    return self.dataset_info_from_configs(
        description=f"The images of {config.listing.folder.path}, by class folder.",
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(
                shape=(low_height, low_width, 3) if fixed else (None, None, 3)),
            "label": tfds.features.ClassLabel(names=config.listing.folder.classes),
            "file_name": tfds.features.Text(),  # Inside the split's folder: CLASS/NAME.jpg.
        }),
        supervised_keys=("image", "label"),
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download: the images are on disk.
    return {split: self._generate_examples(split, files)
            for split, files in self.builder_config.checked.kept.items()}

  def _generate_examples(self, split: str, files):
    split_path = pathlib.Path(self.builder_config.listing.folder.path, split)
    for file in files:
      yield file.relative, {"image": (split_path / file.relative).read_bytes(),
                            "label": file.label, "file_name": file.relative}


def prepared(folder: folders.Folder, data_dir: str, skip_undecodable: bool) -> pathlib.Path:
  """The directory of `folder`'s prepared copy, made now if the folder
  changed since (or was never prepared); says how many undecodable images
  are left out, or raises a UserError naming one unless `skip_undecodable`."""
  root = pathlib.Path(data_dir or tfds.core.constants.DATA_DIR, BUILDER_NAME)
  listing = folders.listing(folder)
  name = f"{folders.prepared_name(folder)}-{listing.fingerprint}"
  version_dir = root / name / VERSION
  if not _is_complete(version_dir):
    try:
      root.mkdir(parents=True, exist_ok=True)
      with locks.FileLock(root / f".{folders.prepared_name(folder)}.lock",
                          waiting=f"waiting for another process preparing {folder.name} in {root}"):
        if not _is_complete(version_dir):
          _prepare(listing, root, name, skip_undecodable)
    except OSError as error:  # The data dir read-only or full, or a file gone meanwhile.
      where = f": {error.filename}" if error.filename else ""
      raise UserError(f"cannot prepare {folder.name} in {root} ({error.strerror}{where}); "
                      "config.dataset.data_dir sets where it goes") from None
  _report_skipped(folder, version_dir, skip_undecodable)
  return version_dir


def _is_complete(version_dir: pathlib.Path) -> bool:
  """TFDS writes a copy in a temporary directory and renames it when whole."""
  return (version_dir / METADATA_FILE).is_file() and (version_dir / "dataset_info.json").is_file()


def _prepare(listing: folders.Listing, root: pathlib.Path, name: str,
             skip_undecodable: bool) -> None:
  folder = listing.folder
  count = sum(map(len, listing.files.values()))
  print(f"preparing {folder.name} in {root / name}: {count} images of {len(folder.classes)} "
        "classes (once; again when the folder changes)", flush=True)
  if listing.ignored:
    print(f"  ignored {listing.ignored} files that are not images (names not ending in "
          f"{', '.join(folders.IMAGE_EXTENSIONS)}) or not in a class folder", flush=True)
  start = time.monotonic()
  checked = check(listing)
  print(f"  decoded {count} images in {time.monotonic() - start:.1f} s", flush=True)
  if checked.undecodable and not skip_undecodable:
    raise UserError(_undecodable_message(folder, checked.undecodable))
  for split, files in checked.kept.items():
    if not files:
      raise UserError(f"{folder.path}/{split} has no image that decodes; "
                      + _undecodable_message(folder, checked.undecodable))
  start = time.monotonic()
  builder = CnnjaxImageFolder(config=FolderConfig(name=name, listing=listing, checked=checked),
                              data_dir=str(root.parent))
  tfds.display_progress_bar(False)
  try:
    with contextlib.redirect_stdout(io.StringIO()):
      builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
          try_download_gcs=False))
  finally:
    tfds.display_progress_bar(True)
  version_dir = pathlib.Path(builder.data_dir)
  statistics.store(statistics.cache_file(str(version_dir), folders.TRAIN, 3), folders.TRAIN,
                   checked.train)
  metadata = {"source": folder.path, "fingerprint": listing.fingerprint,
              "ignored": listing.ignored, "sizes": checked.sizes,
              "undecodable": [list(item) for item in checked.undecodable]}
  (version_dir / METADATA_FILE).write_text(json.dumps(metadata, indent=2))  # Last: complete.
  print(f"  written in {time.monotonic() - start:.1f} s", flush=True)
  for earlier in root.glob(f"{folders.prepared_name(folder)}-*"):
    if earlier.name != name:
      shutil.rmtree(earlier, ignore_errors=True)
      print(f"  removed {earlier}, prepared from the folder's earlier contents", flush=True)


# A graph, traced once: each thread's call runs TensorFlow's ops without the GIL.
_measure = tf.function(lambda encoded: statistics.measure(encoded, 3),
                       input_signature=[tf.TensorSpec([], tf.string)])


def _measure_file(path: str):
  """(height, width, sums, squares) of an image file, or the reason it does not decode."""
  extension = os.path.splitext(path)[1].lower()
  if extension in folders.UNDECODABLE_EXTENSIONS:
    return f"TensorFlow does not decode {folders.UNDECODABLE_EXTENSIONS[extension]} images"
  try:
    with open(path, "rb") as file:
      encoded = file.read()
    (height, width), sums, squares = _measure(tf.constant(encoded))
  except OSError as error:
    return error.strerror
  except tf.errors.OpError as error:  # TF's reason, without its op and graph names.
    return error.message.strip().splitlines()[0].split("}} ")[-1].split(" [Op:")[0].strip()
  return int(height), int(width), sums.numpy(), squares.numpy()


def check(listing: folders.Listing) -> Checked:
  """Decodes every image of `listing` (as many threads as cores)."""
  jobs = [(split, file) for split, files in listing.files.items() for file in files]
  paths = [os.path.join(listing.folder.path, split, file.relative) for split, file in jobs]
  workers = len(os.sched_getaffinity(0))
  with _libjpeg_quiet(), concurrent.futures.ThreadPoolExecutor(workers) as pool:
    results = list(pool.map(_measure_file, paths))
  kept = {split: [] for split in listing.files}
  undecodable, heights, widths = [], [], []
  train = statistics.Sums(3)
  for (split, file), path, result in zip(jobs, paths, results):
    if isinstance(result, str):
      undecodable.append((path, result))
      continue
    kept[split].append(file)
    heights.append(result[0])
    widths.append(result[1])
    if split == folders.TRAIN:
      train.add(*result)
  sizes = (min(heights, default=0), max(heights, default=0), min(widths, default=0),
           max(widths, default=0))
  return Checked({split: tuple(files) for split, files in kept.items()}, tuple(undecodable),
                 sizes, train.statistics(exact=True) if train.images else None)


@contextlib.contextmanager
def _libjpeg_quiet():
  """libjpeg writes its own complaint about a damaged JPEG ("Improper call
  to JPEG library in state 201") straight to the process's stderr; cnnjax
  names the file in one line instead. Silences file descriptor 2 meanwhile."""
  sys.stderr.flush()
  saved = os.dup(2)
  try:
    with open(os.devnull, "w") as null:
      os.dup2(null.fileno(), 2)
      yield
  finally:
    os.dup2(saved, 2)
    os.close(saved)


def _undecodable_message(folder: folders.Folder, undecodable) -> str:
  path, reason = undecodable[0]
  more = (f" (and {len(undecodable) - 1} more undecodable image"
          f"{'s' if len(undecodable) > 2 else ''})" if len(undecodable) > 1 else "")
  return (f"cannot decode {path}: {reason}{more}; replace or remove it, or set "
          f"config.dataset.skip_undecodable=True to train without the {len(undecodable)} "
          f"undecodable file{'s' if len(undecodable) > 1 else ''} of {folder.name}")


def metadata(version_dir: pathlib.Path) -> dict:
  return json.loads((version_dir / METADATA_FILE).read_text())


def _report_skipped(folder: folders.Folder, version_dir: pathlib.Path,
                    skip_undecodable: bool) -> None:
  undecodable = [tuple(item) for item in metadata(version_dir)["undecodable"]]
  if not undecodable:
    return
  if not skip_undecodable:
    raise UserError(_undecodable_message(folder, undecodable))
  path, reason = undecodable[0]
  print(f"left out {len(undecodable)} undecodable file{'s' if len(undecodable) > 1 else ''} of "
        f"{folder.name} (config.dataset.skip_undecodable), e.g. {path}: {reason}", flush=True)


def open_folder(folder: folders.Folder, data_dir: str,
                skip_undecodable: bool) -> tfds.core.DatasetBuilder:
  """The prepared TFDS builder of `folder` (cnnjax.data.pipeline.open_builder's)."""
  return tfds.builder_from_directory(str(prepared(folder, data_dir, skip_undecodable)))
