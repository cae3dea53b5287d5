"""`cnnjax filters`, `activations`, `occlusion` and `saliency`: their flags and
what they do. Each reads a trained workdir (its latest checkpoint, or
--step) and its experiment's test images, writes PNG files into --out (never
into the workdir) and prints where. Importing this module imports neither
JAX nor matplotlib: flag mistakes are one line at once.

  cnnjax filters     --workdir DIR --out DIR [--step N]
  cnnjax activations --workdir DIR --out DIR [--layers A,B] [--images N] [--first I]
                     [--probe-images M]
  cnnjax occlusion   --workdir DIR --out DIR [--images N] [--first I] [--patch P] [--stride S]
  cnnjax saliency    --workdir DIR --out DIR [--images N] [--first I] [--class true|predicted]
  cnnjax probe       --workdir DIR --out DIR [--layers A,B] [--images N] [--max-shift K]
                     [--mode wrap|pad|both] [--transforms shift,scale,...] [--format table|json]
"""

import argparse
import json
import pathlib
import sys

from cnnjax.analysis import commands
from cnnjax.errors import UserError


def _common(command: argparse.ArgumentParser, images: bool = True) -> None:
  command.add_argument("--workdir", required=True, type=pathlib.Path, metavar="DIR",
                       help="a trained workdir (`cnnjax train`); it is only read")
  command.add_argument("--out", required=True, type=pathlib.Path, metavar="DIR",
                       help="where the PNG files go (created if missing; not inside the workdir)")
  command.add_argument("--step", type=int, metavar="N",
                       help="the checkpoint of step N (default: the latest)")
  if images:
    command.add_argument("--images", type=int, default=4, metavar="N",
                         help="how many test images, one PNG each (default: 4)")
    command.add_argument("--first", type=int, default=0, metavar="I",
                         help="the first test image's position in the eval split (default: 0)")


def add_filters_arguments(command: argparse.ArgumentParser) -> None:
  _common(command, images=False)


def add_activations_arguments(command: argparse.ArgumentParser) -> None:
  _common(command)
  command.add_argument("--layers", metavar="A,B",
                       help="module paths whose feature maps to draw and report, e.g. C1,S2 "
                            "(default: the network's top-level layers and blocks)")
  command.add_argument("--probe-images", type=int, default=256, metavar="M",
                       help="test images over which dead channels and correlations are counted "
                            "(default: 256)")


def add_occlusion_arguments(command: argparse.ArgumentParser) -> None:
  _common(command)
  command.add_argument("--patch", type=int, default=None, metavar="P",
                       help="side of the grey square in pixels (default: a quarter of the image)")
  command.add_argument("--stride", type=int, default=None, metavar="S",
                       help="pixels between positions of the square (default: 1 up to 64x64 "
                            "images, else a quarter of the patch)")


def add_saliency_arguments(command: argparse.ArgumentParser) -> None:
  _common(command)
  command.add_argument("--class", dest="target", choices=("true", "predicted"), default="true",
                       help="whose score is differentiated: the true class or the predicted one")


def add_probe_arguments(command: argparse.ArgumentParser) -> None:
  _common(command)
  command.set_defaults(images=256)
  command.add_argument("--layers", metavar="A,B",
                       help="module paths whose equivariance to measure (default: the network's "
                            "top-level layers and blocks)")
  command.add_argument("--max-shift", type=int, default=None, metavar="K",
                       help="largest shift in pixels (default: an eighth of the image)")
  command.add_argument("--mode", choices=("wrap", "pad", "both"), default="both",
                       help="pixels shifted out come back on the other side (wrap) or zeros "
                            "come in (pad); default: both")
  command.add_argument("--transforms", metavar="T,U",
                       help="of shift, scale, rotation, colour, occlusion (default: shift, and "
                            "all of them on the shapes datasets)")
  command.add_argument("--format", choices=("table", "json"), default="table",
                       help="the printed result: a table (default) or JSON rows")


def _checked(args, overrides) -> pathlib.Path:
  """The output directory, created; every flag checked first."""
  if overrides:
    raise UserError(f"cnnjax {args.command} takes no --config overrides; the workdir's "
                    "config.json describes the network")
  for flag in ("images", "probe_images", "patch", "stride", "max_shift"):
    value = getattr(args, flag, None)
    if value is not None and value < 1:
      raise UserError(f"--{flag.replace('_', '-')} must be at least 1, got {value}")
  if getattr(args, "first", 0) < 0:
    raise UserError(f"--first must be at least 0, got {args.first}")
  if not args.workdir.is_dir():
    raise UserError(f"--workdir {args.workdir} is not a directory; pass the workdir of a "
                    "`cnnjax train` run")
  return commands.output_directory(args.out, [args.workdir])


def _load(args):
  from cnnjax.analysis import run as run_lib

  return run_lib.load(args.workdir, args.step)


def _examples(args, run):
  from cnnjax.analysis import run as run_lib

  return run_lib.examples(run, args.images, args.first)


def _wrote(path: pathlib.Path, what: str = "") -> None:
  print(f"wrote {path}" + (f": {what}" if what else ""), flush=True)


def filters(args, overrides) -> int:
  """The first convolution's kernels as an image grid; AlexNet's two towers in
  two blocks of rows."""
  out = _checked(args, overrides)
  run = _load(args)
  from cnnjax.analysis import pictures, visualize

  towers = int(run.config.model.get("groups", 1)) if run.config.model.name == "alexnet" else 1
  found = visualize.first_convolution(run.variables["params"], run.image_shape[-1], towers)
  grid = visualize.filter_grid(found)
  kh, kw, channels, count = found.kernel.shape
  title = (f"{run.config.model.name} {found.name}: {count} kernels {kh}x{kw}x{channels}, "
           f"step {run.step}" + (f", {towers} towers" if towers > 1 else ""))
  _wrote(pictures.draw_filters(grid, title, out / "filters.png"), title)
  return 0


def activations(args, overrides) -> int:
  """Feature maps of chosen layers for chosen images, and each layer's dead,
  constant and correlated channels over --probe-images test images."""
  out = _checked(args, overrides)
  layers = [name.strip() for name in args.layers.split(",")] if args.layers else None
  run = _load(args)
  from cnnjax import tables
  from cnnjax.analysis import pictures, visualize
  from cnnjax.analysis import run as run_lib

  shown = _examples(args, run)
  maps = visualize.feature_maps(run, shown.images)
  chosen = visualize.choose(maps, layers)
  skipped = [] if layers else visualize.left_out(maps, chosen)
  if skipped:
    sizes = ", ".join(f"{name} ({'x'.join(map(str, maps[name].shape[1:3]))})" for name in skipped)
    print(f"left out by default, their maps being single values: {sizes}; --layers names them")
  for index in range(len(shown.labels)):
    position = args.first + index
    title = (f"{run.config.model.name}, test image {position} (label {shown.labels[index]}), "
             f"step {run.step}")
    _wrote(pictures.draw_feature_maps(shown.display[index],
                                      {name: maps[name][index] for name in chosen}, title,
                                      out / f"activations_{position}.png"))
  try:
    probe = run_lib.examples(run, args.probe_images)
  except UserError as error:
    raise UserError(f"--probe-images {args.probe_images}: {error}") from None
  probe_maps = visualize.feature_maps(run, probe.images)
  reports = [visualize.channel_report(name, probe_maps[name]).as_dict() for name in chosen]
  print(f"channels over {len(probe.labels)} test images: dead = never above 0 (after a ReLU, "
        "never fires), constant = one value everywhere, correlation = mean |r| between live "
        "channels")
  columns = ("layer", "channels", "dead", "constant", "mean_abs_correlation")
  sys.stdout.write(tables.text(reports, columns))
  path = out / "channels.json"
  path.write_text(json.dumps({"workdir": str(args.workdir), "step": run.step,
                              "images": len(probe.labels), "layers": reports}, indent=1) + "\n")
  _wrote(path)
  return 0


def occlusion(args, overrides) -> int:
  """Zeiler & Fergus's occlusion maps: the true class's probability with a grey
  square at each position."""
  out = _checked(args, overrides)
  run = _load(args)
  from cnnjax.analysis import pictures, visualize

  size = run.image_shape[0]
  patch = args.patch or max(1, size // 4)
  stride = args.stride or (1 if size <= 64 else max(1, patch // 4))
  visualize.occlusion_positions(size, patch, stride)  # A patch that does not fit fails here.
  shown = _examples(args, run)
  for index, (image, label) in enumerate(zip(shown.images, shown.labels)):
    probabilities = visualize.occlusion_map(run.apply, image, int(label), patch, stride)
    unoccluded = _probability(run, image, int(label))
    heat = visualize.coverage_map(probabilities, image.shape[:2], patch, stride)
    position = args.first + index
    title = (f"{run.config.model.name}, test image {position}, class {label}: "
             f"p = {unoccluded:.3f} unoccluded, {probabilities.min():.3f} at worst "
             f"({patch}x{patch} square, stride {stride})")
    _wrote(pictures.draw_heat_map(shown.display[index], heat, title,
                                  f"p(class {label}) with the square over each pixel",
                                  out / f"occlusion_{position}.png", vmin=0.0, vmax=1.0), title)
  return 0


def _probability(run, image, label: int) -> float:
  import jax

  logits = run.apply(image[None])
  return float(jax.nn.softmax(logits.astype("float32"))[0, label])


def saliency(args, overrides) -> int:
  """Simonyan et al.'s saliency maps: |gradient of the class score| per pixel."""
  out = _checked(args, overrides)
  run = _load(args)
  import numpy as np

  from cnnjax.analysis import pictures, visualize

  shown = _examples(args, run)
  predicted = np.argmax(np.asarray(run.apply(shown.images)), axis=-1)
  for index, image in enumerate(shown.images):
    label = int(shown.labels[index] if args.target == "true" else predicted[index])
    heat = visualize.saliency_map(run.apply, image, label)
    position = args.first + index
    title = (f"{run.config.model.name}, test image {position}: true {shown.labels[index]}, "
             f"predicted {predicted[index]}; gradient of the class-{label} score")
    _wrote(pictures.draw_heat_map(shown.display[index], heat, title,
                                  f"|d score_{label} / d pixel|, max over channels",
                                  out / f"saliency_{position}.png"), title)
  return 0


def probe(args, overrides) -> int:
  """How the network's maps and answers move when its test images move,
  turn, grow or change colour (cnnjax.analysis.probe)."""
  out = _checked(args, overrides)
  layers = [name.strip() for name in args.layers.split(",")] if args.layers else None
  transforms = None
  if args.transforms:
    from cnnjax.analysis import probe as probe_lib

    transforms = tuple(name.strip() for name in args.transforms.split(","))
    for name in transforms:
      if name not in probe_lib.TRANSFORMS:
        raise UserError(f"--transforms: no transform {name!r}; choose among "
                        f"{', '.join(probe_lib.TRANSFORMS)}")
  run = _load(args)
  from cnnjax import tables
  from cnnjax.analysis import pictures
  from cnnjax.analysis import probe as probe_lib

  size = run.image_shape[0]
  max_shift = args.max_shift or max(1, size // 8)
  if max_shift >= size:
    raise UserError(f"--max-shift {max_shift} must be smaller than the image size {size}")
  if transforms is None:
    transforms = (probe_lib.TRANSFORMS if run.config.dataset.name.startswith("shapes")
                  else ("shift",))
  if any(name == "colour" for name in transforms) and run.image_shape[-1] != 3:
    raise UserError("--transforms colour needs colour images; this run's have "
                    f"{run.image_shape[-1]} channel")
  modes = ("wrap", "pad") if args.mode == "both" else (args.mode,)
  shown = _examples(args, run)
  rows = [row.as_dict() for row in probe_lib.probe(run, shown.images, shown.labels, layers,
                                                    max_shift, modes, transforms)]
  path = out / "probe.json"
  path.write_text(json.dumps({"workdir": str(args.workdir), "step": run.step,
                              "images": len(shown.labels), "rows": rows}, indent=1) + "\n")
  if args.format == "json":
    sys.stdout.write(json.dumps(rows, indent=1) + "\n")
  else:
    print(f"{run.config.model.name} at step {run.step}, {len(shown.labels)} test images of "
          f"{run.config.dataset.name}")
    columns = ("transform", "mode", "magnitude", "layer", "metric", "value")
    sys.stdout.write(tables.text(rows, columns))
  title = (f"{run.config.model.name}, step {run.step}, {len(shown.labels)} test images of "
           f"{run.config.dataset.name}")
  _wrote(path)
  _wrote(pictures.draw_probe(rows, title, out / "probe.png"))
  return 0
