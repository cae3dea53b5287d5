"""`cnnjax bench`: how fast cnnjax trains each model, on the machine at hand.

  cnnjax bench --model NAME|all [--image-size N] [--channels C] [--num-classes K]
               [--batch-size B] [--steps S] [--repeats R] [--dtype float32|bfloat16]
               [--format table|json] [--peak-tflops X] [--config.model.KEY=VALUE ...]
               [--data DATASET [--recipe RECIPE] [--config.dataset.KEY=VALUE ...]]

Times the compiled training step exactly as `cnnjax train` builds it, on
synthetic data already on the devices (cnnjax.bench.timing says what is
measured and how). `--model all` runs every registered model at its native
input (`--model A,B,...` the models named), each in a process of its own (so
that each one's peak memory is its own and a failure stops only that model),
with a line per model on stderr.

With `--data DATASET` (a dataset name as config.dataset.name takes it:
digits, shapes, shapes/jpeg, a TFDS name, folder:PATH) the step is also
timed fed by the real input pipeline training reads, with `--recipe` as
config.dataset.train_preprocess (default the base config's) and
`--config.dataset.KEY=VALUE` as training takes them: images/s end to
end beside the step alone and the pipeline alone, and which of the two
limits the run (cnnjax.bench.end_to_end). That path imports TensorFlow.

JSON (`--format json`, on stdout): a list with one object per model, holding
at least model, image_size, batch_size, dtype, images_per_sec, step_ms,
compile_s, flops_per_image, achieved_tflops, mfu, peak_memory_bytes (None
where the backend does not report it), plus the range over repeats, the peak
the MFU is relative to, and the platform, devices, processor and JAX version.

This module imports neither JAX nor TensorFlow, so flag mistakes are reported
at once; without --data the whole bench path is free of TensorFlow, so it
runs where only jax, flax, optax and orbax-checkpoint are installed.
"""

import argparse
import json
import subprocess
import sys

from cnnjax import tables
from cnnjax.errors import UserError

DTYPES = ("float32", "bfloat16")
DEFAULT_REPEATS = 3
# Per device; the comparison cases (ResNet-18 at 32x32 batch 128,
# ResNet-50 at 224 batch 32) on one device.
SMALL_INPUT = 32  # MNIST- and CIFAR-sized networks, whose batches are larger.
DEFAULT_PER_DEVICE_BATCH = {"small": 128, "large": 32}
FLAG_OF_DATASET_KEY = {"dataset.name": "--data", "dataset.train_preprocess": "--recipe",
                       "dataset.image_size": "--image-size"}
# Settings passed on to each model's process by `--model all`.
ZOO_FLAGS = ("num_classes", "batch_size", "steps", "repeats", "dtype")


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--model", required=True, metavar="NAME|all",
                      help="a registered model (`cnnjax models`), `all` for every one at its "
                           "native input, or several as NAME,NAME,...")
  parser.add_argument("--image-size", "--image_size", dest="image_size", metavar="N",
                      help="side of the square input (default: the model's native input)")
  parser.add_argument("--channels", metavar="C",
                      help="input channels (default: the model's native input's)")
  parser.add_argument("--num-classes", "--num_classes", dest="num_classes", metavar="K",
                      help=f"default: 10 for networks designed for inputs of {SMALL_INPUT} "
                           "pixels or less, 1000 for the others")
  parser.add_argument("--batch-size", "--batch_size", dest="batch_size", metavar="B",
                      help="global, over all local devices (default per device: "
                           f"{DEFAULT_PER_DEVICE_BATCH['small']} for inputs of {SMALL_INPUT} "
                           f"pixels or less, {DEFAULT_PER_DEVICE_BATCH['large']} above)")
  parser.add_argument("--steps", metavar="S",
                      help="steps per timing (default: as many as take about 2 s)")
  parser.add_argument("--repeats", default=str(DEFAULT_REPEATS), metavar="R",
                      help=f"timings, reported as median and range (default {DEFAULT_REPEATS})")
  parser.add_argument("--dtype", choices=DTYPES, default="float32",
                      help="compute dtype; bfloat16 is config.half_precision (parameters stay "
                           "float32)")
  parser.add_argument("--format", choices=("table", "json"), default="table",
                      help="a line per model, or one JSON object per model with the machine "
                           "and versions (default: table)")
  parser.add_argument("--peak-tflops", "--peak_tflops", dest="peak_tflops", metavar="X",
                      help="one device's peak TFLOP/s for the MFU (on the CPU backend the "
                           "processor's); default: measured by a large matmul of --dtype")
  parser.add_argument("--data", metavar="DATASET",
                      help="also time the step fed by training's input pipeline on this "
                           "dataset (e.g. digits, shapes/jpeg), and the pipeline alone")
  parser.add_argument("--recipe", metavar="RECIPE",
                      help="with --data: the training augmentation, a registered name or ops "
                           "joined by | (default: the base config's train_preprocess)")


def _positive(text: str | None, flag: str, kind=int):
  """`text` as a positive `kind`, None if absent, or a UserError naming `flag`."""
  if text is None:
    return None
  try:
    value = kind(text)
  except ValueError:
    value = 0
  if not value > 0:  # Also refuses NaN.
    raise UserError(f"{flag} must be a positive {'integer' if kind is int else 'number'}, "
                    f"got {text!r}")
  return value


def _settings(args: argparse.Namespace) -> dict:
  return {"image_size": _positive(args.image_size, "--image-size"),
          "channels": _positive(args.channels, "--channels"),
          "num_classes": _positive(args.num_classes, "--num-classes"),
          "batch_size": _positive(args.batch_size, "--batch-size"),
          "steps": _positive(args.steps, "--steps"),
          "repeats": _positive(args.repeats, "--repeats"),
          "dtype": args.dtype,
          "peak_tflops": _positive(args.peak_tflops, "--peak-tflops", float)}


def dataset_config(dataset: str, recipe: str | None, overrides=()):
  """config.dataset as `cnnjax train` would have it: the base config's, with
  `dataset`, `recipe` (default: the base config's) and the
  ("dataset.KEY", "VALUE") `overrides`; a UserError naming the flag for a
  bad dataset name or recipe. Free of JAX and TensorFlow, so `cnnjax bench`
  checks its flags first."""
  from cnnjax import config as config_lib
  from cnnjax.data import datasets

  config = config_lib.base_config()
  config.dataset.name = datasets.canonical_name(dataset)
  if recipe is not None:
    config.dataset.train_preprocess = recipe
  config.lock()
  for key, text in overrides:
    config_lib.override(config, key, text)
  try:
    config_lib.validate_dataset(config.dataset)
  except UserError as error:
    raise UserError(str(error).replace("config.dataset.train_preprocess", "--recipe")
                    .replace("config.dataset.name", "--data")) from None
  return config.dataset


def _split_overrides(overrides: list[tuple[str, str]], data: str | None
                     ) -> tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]:
  """The `--config.model.KEY=VALUE` pairs and, with --data, the
  `--config.dataset.KEY=VALUE` ones; any other key is refused."""
  model, dataset = [], []
  for key, text in overrides:
    if key == "model.name":
      raise UserError("cnnjax bench takes the model from --model, not --config.model.name")
    if key in ("dataset.name", "dataset.train_preprocess", "dataset.image_size"):
      raise UserError(f"cnnjax bench takes --config.{key} from "
                      f"{FLAG_OF_DATASET_KEY[key]}")
    if key.startswith("model."):
      model.append((key, text))
    elif key.startswith("dataset.") and data is not None:
      dataset.append((key, text))
    else:
      raise UserError(f"cnnjax bench takes only --config.model.KEY overrides (and "
                      f"--config.dataset.KEY with --data), not --config.{key}: it times the "
                      "base config's update (SGD with momentum); see --batch-size and --dtype")
  return tuple(model), tuple(dataset)


def run(args: argparse.Namespace, overrides: list[tuple[str, str]]) -> int:
  """`cnnjax bench`; returns the exit status."""
  settings = _settings(args)
  model_overrides, dataset_overrides = _split_overrides(overrides, args.data)
  if args.recipe is not None and args.data is None:
    raise UserError("--recipe is the augmentation of --data's pipeline; give --data DATASET")
  if args.model == "all" or "," in args.model:
    if settings["image_size"] or settings["channels"] or model_overrides or args.data:
      raise UserError("--model all (or A,B,...) runs each model at its native input and "
                      "options; --image-size, --channels, --data and --config.model.KEY need "
                      "one --model NAME")
    return _run_zoo(_zoo_names(args.model), settings, args.format)
  dataset = (None if args.data is None
             else dataset_config(args.data, args.recipe, dataset_overrides))
  case = make_case(args.model, settings, model_overrides)
  if dataset is None:
    from cnnjax.bench import timing as bench_timing

    row = bench_timing.measure(case, settings["peak_tflops"], say=_progress)
  else:
    from cnnjax.bench import end_to_end

    row = end_to_end.measure(case, dataset, settings["peak_tflops"], say=_progress)
    _progress(f"{row['model']} on {row['data']}: {row['end_to_end_images_per_sec']:,.1f} "
              f"images/s end to end, {row['input_images_per_sec']:,.1f} the input alone; "
              f"limited by the {row['limited_by']}")
  _progress(f"{row['model']}: {_rate(row)}")
  print(json.dumps([row], indent=2) if args.format == "json" else table([row]))
  return 0


def make_case(name: str, settings: dict, model_overrides=()):
  """The case of `name` with the defaults filled in; a UserError for an
  unknown model or a batch the devices do not divide (before any compiling)."""
  from cnnjax import models
  from cnnjax.bench.timing import Case, check_devices

  if name not in models.MODELS:
    raise UserError(f"unknown --model {name!r}; registered models: "
                    f"{', '.join(models.list_models())}, or all")
  native = models.NATIVE_INPUT_SIZE[name]
  size = settings["image_size"] or native
  batch_size = settings["batch_size"]
  if batch_size is None:
    import jax  # The default batch depends on the device count.

    per_device = DEFAULT_PER_DEVICE_BATCH["small" if size <= SMALL_INPUT else "large"]
    batch_size = per_device * jax.local_device_count()
  check_devices(batch_size)
  return Case(model=name, image_size=size,
              channels=settings["channels"] or models.NATIVE_INPUT_CHANNELS[name],
              # As `cnnjax models` counts: MNIST/CIFAR networks 10, ImageNet ones 1000.
              num_classes=settings["num_classes"] or (10 if native <= SMALL_INPUT else 1000),
              batch_size=batch_size, dtype=settings["dtype"], steps=settings["steps"],
              repeats=settings["repeats"], model_overrides=model_overrides)


def _zoo_names(text: str) -> list[str]:
  """`all` as every registered model, or NAME,NAME,... (a UserError naming
  any that is not registered, before anything is timed)."""
  from cnnjax import models  # Flax, but no device: the models' processes need them all.

  if text == "all":
    return models.list_models()
  names = [name.strip() for name in text.split(",") if name.strip()]
  unknown = [name for name in names if name not in models.MODELS]
  if unknown:
    raise UserError(f"unknown --model {', '.join(unknown)}; registered models: "
                    f"{', '.join(models.list_models())}")
  return names


def _run_zoo(names: list[str], settings: dict, output_format: str) -> int:
  """The models of `names` at their native inputs, one process each; the
  peak measured by the first is given to the others. Exit status 1 if any
  failed; what was measured is printed even after Ctrl-C."""
  peak = settings["peak_tflops"]
  rows, failed = [], []
  try:
    for index, name in enumerate(names, 1):
      _progress(f"[{index}/{len(names)}] {name}")
      flags = [f"--{key.replace('_', '-')}={settings[key]}" for key in ZOO_FLAGS
               if settings[key] is not None]
      if peak:
        flags.append(f"--peak-tflops={peak!r}")
      child = subprocess.run([sys.executable, "-m", "cnnjax", "bench", "--model", name,
                              "--format", "json", *flags], stdout=subprocess.PIPE, text=True)
      if child.returncode:  # Its error is on stderr already.
        failed.append(name)
        continue
      row, = json.loads(child.stdout)
      rows.append(row)
      peak = peak or row["peak_tflops"]
  except KeyboardInterrupt:
    _progress(f"interrupted after {len(rows) + len(failed)} of {len(names)} models")
    failed.append("(interrupted)")
  if rows:
    print(json.dumps(rows, indent=2) if output_format == "json" else table(rows))
  if failed:
    _progress(f"failed: {', '.join(failed)}")
  return 1 if failed else 0


def _progress(text: str) -> None:
  print(f"bench: {text}", file=sys.stderr, flush=True)


def _rate(row: dict) -> str:
  return (f"{row['images_per_sec']:,.1f} images/s ({row['images_per_sec_min']:,.1f}–"
          f"{row['images_per_sec_max']:,.1f})")


TABLE_COLUMNS = (
    tables.Column("model"), tables.Column("input"), tables.Column("batch"),
    tables.Column("dtype"), tables.Column("images/s (min–max)", align=tables.RIGHT),
    tables.Column("ms/step", format=",.1f"), tables.Column("compile s", format=".1f"),
    tables.Column("GFLOP/image", format=".4g", missing="-"),
    tables.Column("TFLOP/s", format=".3g", missing="-"),
    tables.Column("MFU", format=lambda percent: f"{percent:.1f}%", missing="-", align=tables.RIGHT),
    tables.Column("peak memory", format=lambda mib: f"{mib:,.0f} MiB", missing="-",
                  align=tables.RIGHT))


END_TO_END_COLUMNS = (
    tables.Column("data"), tables.Column("end to end images/s", format=",.1f"),
    tables.Column("input alone images/s", format=",.1f"), tables.Column("limited by"))


def _table_row(row: dict) -> dict:
  """A measurement as the table shows it, keyed by the headings (None: not reported)."""
  size, flops, memory, mfu = (row["image_size"], row["flops_per_image"],
                              row["peak_memory_bytes"], row["mfu"])
  return {"model": row["model"], "input": f"{size}x{size}x{row['channels']}",
          "batch": row["batch_size"], "dtype": row["dtype"],
          "images/s (min–max)": _rate(row).replace(" images/s", ""), "ms/step": row["step_ms"],
          "compile s": row["compile_s"], "GFLOP/image": None if flops is None else flops / 1e9,
          "TFLOP/s": row["achieved_tflops"], "MFU": None if mfu is None else 100 * mfu,
          "peak memory": None if memory is None else memory / 2**20,
          "data": row.get("data"), "end to end images/s": row.get("end_to_end_images_per_sec"),
          "input alone images/s": row.get("input_images_per_sec"),
          "limited by": row.get("limited_by")}


def table(rows: list[dict]) -> str:
  """A markdown table, headed by what the figures were measured on."""
  first = rows[0]
  columns = TABLE_COLUMNS + (END_TO_END_COLUMNS if "data" in first else ())
  peak = (f"peak {first['peak_tflops']:.3g} TFLOP/s per device ({first['peak_source']}, "
          f"{first['dtype']} matmul)" if first["peak_source"] == "measured"
          else f"peak {first['peak_tflops']:.3g} TFLOP/s per device (given)")
  return (f"{first['device_count']} x {first['platform']} ({first['device_kind']}), "
          f"host CPU {first['host_cpu']}, JAX {first['jax_version']}; {peak}\n\n" +
          tables.markdown([_table_row(row) for row in rows], columns).rstrip("\n"))
