"""`cnnjax summary` and `cnnjax plot`: their flags and what they do.

Importing this module imports neither JAX nor matplotlib: the flags are
checked first, and a mistake is a one-line UserError at once.

  cnnjax summary MODEL [--image-size N] [--channels C] [--num-classes K]
                       [--config.model.KEY=VALUE ...] [--format table|json|csv]
  cnnjax summary --all [--format table|json|csv]
  cnnjax plot WORKDIR... --out DIR [--x step|epoch]
"""

import argparse
import pathlib
import sys

from cnnjax import tables
from cnnjax.errors import UserError

FORMATS = ("table", "json", "csv")
MODEL_PREFIX = "model."


def add_summary_arguments(command: argparse.ArgumentParser) -> None:
  command.add_argument("model", nargs="?", metavar="MODEL",
                       help="a registered model (`cnnjax models` lists them)")
  command.add_argument("--all", action="store_true",
                       help="one row per registered model: totals at its native input beside "
                            "the published counts")
  command.add_argument("--image-size", type=int, metavar="N",
                       help="input side (default: the model's native size)")
  command.add_argument("--channels", type=int, metavar="C",
                       help="input channels (default: 1 for LeNet-5, 3 for the others)")
  command.add_argument("--num-classes", type=int, metavar="K",
                       help="classes (default: 10 for the MNIST/CIFAR nets, 1000 for ImageNet's)")
  command.add_argument("--format", choices=FORMATS, default="table",
                       help="a text table (default), or its rows as JSON or CSV")


def add_plot_arguments(command: argparse.ArgumentParser) -> None:
  command.add_argument("workdirs", nargs="+", type=pathlib.Path, metavar="DIR",
                       help="workdirs of `cnnjax train` runs, sweep directories (one curve per "
                            "variant) or a sweep's variant directories (its seeds as their mean "
                            "and a band from min to max), each curve in its own colour")
  command.add_argument("--out", required=True, type=pathlib.Path, metavar="DIR",
                       help="where curves.png goes (created if missing; not inside a workdir)")
  command.add_argument("--x", choices=("step", "epoch"), default="step",
                       help="the horizontal axis (default: step)")
  command.add_argument("--metric", metavar="KEY",
                       help="one key of metrics.jsonl to draw alone, e.g. train/loss or "
                            "eval/top5_error (default: loss, top-1 error and learning rate)")
  command.add_argument("--log-y", action="store_true",
                       help="a logarithmic vertical axis (where every value is positive)")
  command.add_argument("--smooth", type=float, default=0.0, metavar="W",
                       help="TensorBoard's smoothing weight in [0, 1), e.g. 0.6, over the raw "
                            "curve drawn faint (default: 0, none)")


def _model_overrides(overrides: list[tuple[str, str]]) -> list[tuple[str, str]]:
  for key, _ in overrides:
    if not key.startswith(MODEL_PREFIX) or key == "model.name":
      raise UserError(f"cnnjax summary takes only model options as overrides "
                      f"(--config.model.KEY=VALUE), not --config.{key}; name the model as MODEL")
  return overrides


def summary(args, overrides) -> int:
  """Prints the layer table of one model, or the totals of every model."""
  if args.all == bool(args.model):
    raise UserError("give one MODEL or --all (see `cnnjax summary --help`)")
  for flag, value in (("--image-size", args.image_size), ("--channels", args.channels),
                      ("--num-classes", args.num_classes)):
    if args.all and value is not None:
      raise UserError(f"{flag} is for one MODEL; --all summarises each model at its native input")
    if value is not None and value < 1:
      raise UserError(f"{flag} must be at least 1, got {value}")
  if args.all:
    if overrides:
      raise UserError("--config.model.KEY=VALUE is for one MODEL; --all takes no overrides")
    return _summary_all(args.format)
  spec = _model_spec(args, _model_overrides(overrides))
  from cnnjax.analysis import summary as summary_lib

  table = summary_lib.summarize(spec)
  rows = [row.as_dict() for row in table.rows]
  if args.format == "json":
    _write(tables.as_json(rows))
  elif args.format == "csv":
    _write(tables.as_csv(rows, summary_lib.COLUMNS))
  else:
    print(f"{spec.name} at {spec.image_size}x{spec.image_size}x{spec.channels}, "
          f"{spec.num_classes} classes, batch of one")
    for row in rows:
      row["name"] = row["name"].rpartition("/")[2]
    _write(tables.text(rows, _text_columns(summary_lib.COLUMNS),
                       indent=[row.depth for row in table.rows]))
  for module, count in table.unused_params.items():
    print(f"cnnjax: note: {module} holds {count:,} parameters and does not run at inference "
          "(not in the table)", file=sys.stderr)
  return 0


_NUMBERS = frozenset(("units", "weights", "biases", "params", "connections", "macs",
                      "receptive_field", "jump", "training_only_params", "registry_params",
                      "published_params", "xla_macs", "published_gmacs"))


def _text_columns(columns: tuple[str, ...]) -> list:
  """Counts right-aligned, shapes and names left, whatever the first row holds."""
  return [tables.Column(column, align=tables.RIGHT if column in _NUMBERS else tables.LEFT)
          for column in columns]


def _write(text: str) -> None:
  sys.stdout.write(text)
  sys.stdout.flush()


def _model_spec(args, overrides):
  """The model, its options and input, every value checked (imports the registry)."""
  import ml_collections

  from cnnjax import config as config_lib
  from cnnjax import models
  from cnnjax.analysis import summary as summary_lib

  defaults = models.model_defaults(args.model)  # An unknown name is a UserError here.
  config = ml_collections.ConfigDict({"model": {"name": args.model, **defaults}})
  for key, text in overrides:
    config_lib.override(config, key, text)
  options = {key: value for key, value in config.model.items() if key != "name"}
  size, channels, classes = summary_lib.default_input(args.model)
  spec = summary_lib.Model(args.model, args.image_size or size, args.channels or channels,
                           args.num_classes or classes, options)
  minimum = models.create_model(spec.name, num_classes=spec.num_classes, **options).min_input_size()
  if spec.image_size < minimum:
    raise UserError(f"--image-size {spec.image_size} is too small for {spec.name}, which needs "
                    f"at least {minimum}x{minimum} with these options")
  return spec


def _summary_all(output_format: str) -> int:
  from cnnjax import models
  from cnnjax.analysis import zoo

  names = models.list_models()
  print(f"cnnjax: tracing {len(names)} models at their native inputs", file=sys.stderr, flush=True)
  rows = [zoo.zoo_row(name) for name in names]
  if output_format == "json":
    _write(tables.as_json(rows))
  elif output_format == "csv":
    _write(tables.as_csv(rows, zoo.COLUMNS))
  else:
    print("every registered model at its native input, batch of one; published: torchvision's "
          "metadata or the paper (GMACs: billions of multiply-accumulates)")
    _write(tables.text(rows, _text_columns(zoo.COLUMNS)))
  return 0


def output_directory(out: pathlib.Path, workdirs: list[pathlib.Path]) -> pathlib.Path:
  """--out DIR, created, resolved; a UserError if it is inside one of the
  workdirs (the analysis commands never write into a workdir) or cannot be made."""
  resolved = out.resolve()
  for workdir in workdirs:
    if resolved == workdir.resolve() or workdir.resolve() in resolved.parents:
      raise UserError(f"--out {out} is inside the workdir {workdir}; these commands never "
                      "write into a workdir, choose another DIR")
  try:
    resolved.mkdir(parents=True, exist_ok=True)
  except OSError as error:
    raise UserError(f"--out {out}: cannot create it ({error.strerror})") from None
  return resolved


def plot(args, overrides) -> int:
  """Writes DIR/curves.png: loss, top-1 error and learning rate (or --metric)
  of each run, variant or sweep."""
  if overrides:
    raise UserError("cnnjax plot takes no --config overrides")
  if not 0 <= args.smooth < 1:
    raise UserError(f"--smooth must be in [0, 1) (TensorBoard's weight), got {args.smooth:g}")
  from cnnjax.analysis import curves

  groups = [group for path in args.workdirs for group in curves.read_groups(path, args.x)]
  if args.metric:
    curves.check_metric(groups, args.metric)
  out = output_directory(args.out, args.workdirs)
  from cnnjax.analysis import plot as plot_lib

  path = plot_lib.plot_curves(groups, args.x, out / "curves.png", metric=args.metric,
                              log_y=args.log_y, smooth=args.smooth)
  print(f"wrote {path}")
  return 0
