"""The `cnnjax` command: one table of subcommands, each a thin flag layer over
one function in cnnjax.commands (or a tool's command module, such as
cnnjax.sweep.command).

  cnnjax train  --config PATH[:ARG] --workdir DIR [--config.KEY=VALUE ...]
  cnnjax eval   --workdir DIR [--step N | --best] [--config.KEY=VALUE ...]
  cnnjax config --config PATH[:ARG] [--config.KEY=VALUE ...]
  cnnjax models [NAME ...]
  cnnjax data   NAME [--config.dataset.KEY=VALUE ...] [--format text|json]
  cnnjax sweep  --config PATH[:ARG] --workdir DIR [--seeds N] [--jobs K] [--summarize]
  cnnjax summary MODEL [--image-size N] [--format table|json|csv] | --all
  cnnjax plot   WORKDIR... --out DIR [--x step|epoch]
  cnnjax filters | activations | occlusion | saliency | probe --workdir DIR --out DIR [...]
  cnnjax report DIR... [--format md|csv|json]
  cnnjax bench  --model NAME|all [--batch-size B] [--dtype D] [--format table|json] [...]
  cnnjax bench-input --recipe RECIPE [--image-size N] [--batch-size B] [--seconds S]
  cnnjax import-weights --model NAME --from FILE.safetensors --workdir DIR [--config PATH[:ARG]]

One of several processes adds `--coordinator_address HOST:PORT
--num_processes N --process_id I` (or sets CNNJAX_COORDINATOR_ADDRESS,
CNNJAX_NUM_PROCESSES, CNNJAX_PROCESS_ID); under SLURM, Open MPI and on Cloud
TPU pod slices they are found automatically.

A user error (bad flag, key, type or value, unknown model or dataset,
missing data, a workdir in use) prints one line on stderr and exits with
status 2, without touching what the workdir already holds; argument and
config mistakes are found before JAX or TensorFlow is imported. A run that
stops early prints why on one line and exits with its status (see
cnnjax.training.stopping). A process of a multi-process run that crashes exits at
once, so that its peers fail too instead of waiting.
"""

import argparse
import dataclasses
import pathlib
import signal
import sys
import traceback
from typing import Callable

from absl import logging as absl_logging

from cnnjax.analysis import commands as analysis
from cnnjax.analysis import visual_commands as visual
from cnnjax.bench import command as bench
from cnnjax.bench import input_pipeline as bench_input
from cnnjax.data import command as data_command
from cnnjax.errors import USAGE_ERROR_STATUS, StopRun, UserError
from cnnjax.pretrained import import_weights
from cnnjax.report import compare as report
from cnnjax.sweep import command as sweep
from cnnjax.training import stopping

USAGE_ERROR = USAGE_ERROR_STATUS
OVERRIDE_PREFIX = "--config."
OVERRIDES_HELP = ("Any config key can be overridden with --config.KEY=VALUE, e.g. "
                  "--config.optimizer.learning_rate=0.05 --config.model.activation=relu; "
                  "`cnnjax config --config PATH` lists every key with its value.")


class _Parser(argparse.ArgumentParser):
  """argparse whose mistakes are one-line UserErrors, like every other."""

  def error(self, message):
    raise UserError(f"{message} (see `{self.prog} --help`)")


def _add_config(command, required=True, help_text="experiment file, e.g. "
                "experiments/lenet5_digits.py, or FILE.py:ARG for a variant") -> None:
  command.add_argument("--config", required=required, metavar="PATH[:ARG]", help=help_text)


def _add_processes(command) -> None:
  processes = command.add_argument_group(
      "several processes", "one of several processes (not needed under SLURM, Open MPI or on a "
      "Cloud TPU pod slice); each defaults to its CNNJAX_* environment variable")
  processes.add_argument("--coordinator_address", metavar="HOST:PORT",
                         help="process 0's address and a free port on it")
  processes.add_argument("--num_processes", type=int, metavar="N")
  processes.add_argument("--process_id", type=int, metavar="I", help="0 .. N-1")


def _train_arguments(command) -> None:
  _add_config(command)
  command.add_argument("--workdir", required=True, type=pathlib.Path, metavar="DIR",
                       help="where config.json, metrics.jsonl, tensorboard/, checkpoints/ and "
                            "results.json go; running again resumes")
  command.add_argument("--allow_config_change", action="store_true",
                       help="train this workdir although its config.json is another experiment "
                            "(the old config is kept as config.STEP.json)")
  _add_processes(command)


def _eval_arguments(command) -> None:
  command.add_argument("--workdir", required=True, type=pathlib.Path, metavar="DIR",
                       help="a trained workdir; its config.json gives the network")
  _add_config(command, required=False, help_text="optional: an experiment file, which must "
              "describe the workdir's network (default: the workdir's config.json)")
  which = command.add_mutually_exclusive_group()
  which.add_argument("--step", type=int, metavar="N", help="the checkpoint of step N")
  which.add_argument("--best", action="store_true",
                     help="the checkpoint with the lowest eval top-1 error")
  _add_processes(command)


def _config_arguments(command) -> None:
  _add_config(command)


def _models_arguments(command) -> None:
  command.add_argument("names", nargs="*", metavar="NAME", help="models to show (default: all)")
  command.add_argument("--format", choices=("table", "json"), default="table")


@dataclasses.dataclass(frozen=True)
class Command:
  help: str
  usage: str
  add_arguments: Callable[[argparse.ArgumentParser], None]
  run: str  # "module:function", imported only when the command runs.


COMMANDS = {
    "train": Command("train, resuming from the workdir's latest checkpoint",
                     "cnnjax train --config PATH[:ARG] --workdir DIR [--config.KEY=VALUE ...]",
                     _train_arguments, "cnnjax.commands:train"),
    "eval": Command("evaluate a checkpoint of a workdir as it was trained",
                    "cnnjax eval --workdir DIR [--step N | --best] [--config.KEY=VALUE ...]",
                    _eval_arguments, "cnnjax.commands:evaluate"),
    "config": Command("print the resolved, validated config without running it",
                      "cnnjax config --config PATH[:ARG] [--config.KEY=VALUE ...]",
                      _config_arguments, "cnnjax.commands:show_config"),
    "models": Command("list the registered models: input, parameters, options",
                      "cnnjax models [NAME ...] [--format table|json]",
                      _models_arguments, "cnnjax.commands:list_models"),
    "data": Command("what cnnjax will train on: classes, splits, image shape, mean and std, "
                    "where it is prepared (a table dataset, any TFDS dataset, folder:PATH)",
                    "cnnjax data NAME [--config.dataset.KEY=VALUE ...] [--format text|json]",
                    data_command.add_arguments, "cnnjax.data.command:run"),
    "sweep": Command("an ablation: variants x seeds of training runs, a table, curves, verdicts",
                     "cnnjax sweep --config PATH[:ARG] --workdir DIR [--seeds N] [--jobs K] "
                     "[--config.KEY=VALUE ...] [--summarize]",
                     sweep.add_arguments, "cnnjax.sweep.command:run"),
    "summary": Command("a model's layer table: shapes, units, parameters, connections, "
                       "multiply-accumulates, receptive fields",
                       "cnnjax summary MODEL [--image-size N] [--channels C] [--num-classes K] "
                       "[--config.model.KEY=VALUE ...] [--format table|json|csv] | --all",
                       analysis.add_summary_arguments, "cnnjax.analysis.commands:summary"),
    "plot": Command("training and evaluation curves of workdirs, as one PNG",
                    "cnnjax plot WORKDIR... --out DIR [--x step|epoch]",
                    analysis.add_plot_arguments, "cnnjax.analysis.commands:plot"),
    "filters": Command("a trained network's first-layer kernels as an image grid (PNG)",
                       "cnnjax filters --workdir DIR --out DIR [--step N]",
                       visual.add_filters_arguments, "cnnjax.analysis.visual_commands:filters"),
    "activations": Command("feature maps of test images (PNG), and each layer's dead, constant "
                           "and correlated channels",
                           "cnnjax activations --workdir DIR --out DIR [--layers A,B] "
                           "[--images N] [--first I] [--probe-images M] [--step N]",
                           visual.add_activations_arguments,
                           "cnnjax.analysis.visual_commands:activations"),
    "occlusion": Command("occlusion sensitivity: the true class's probability with a grey "
                         "square over each position (PNG; Zeiler & Fergus 2014)",
                         "cnnjax occlusion --workdir DIR --out DIR [--images N] [--first I] "
                         "[--patch P] [--stride S] [--step N]",
                         visual.add_occlusion_arguments,
                         "cnnjax.analysis.visual_commands:occlusion"),
    "saliency": Command("saliency maps: the gradient of a class score with respect to the "
                        "image (PNG; Simonyan et al. 2014)",
                        "cnnjax saliency --workdir DIR --out DIR [--images N] [--first I] "
                        "[--class true|predicted] [--step N]",
                        visual.add_saliency_arguments, "cnnjax.analysis.visual_commands:saliency"),
    "probe": Command("invariance and equivariance of a trained network: its maps and answers "
                     "under shifts (and scale, rotation, colour, occlusion on shapes)",
                     "cnnjax probe --workdir DIR --out DIR [--layers A,B] [--images N] "
                     "[--max-shift K] [--mode wrap|pad|both] [--transforms T,U] "
                     "[--format table|json] [--step N]",
                     visual.add_probe_arguments, "cnnjax.analysis.visual_commands:probe"),
    "report": Command("finished runs and sweeps beside the papers' and torchvision's published "
                      "errors, one row per run and evaluation mode",
                      "cnnjax report DIR... [--format md|csv|json]",
                      report.add_arguments, "cnnjax.report.compare:run"),
    "bench": Command("time the compiled training step of a model, or of every model, on "
                     "synthetic data: images/s, compile time, FLOPs, MFU, memory",
                     "cnnjax bench --model NAME|all [--image-size N] [--channels C] "
                     "[--num-classes K] [--batch-size B] [--steps S] [--repeats R] "
                     "[--dtype float32|bfloat16] [--format table|json] [--peak-tflops X] "
                     "[--config.model.KEY=VALUE ...]",
                     bench.add_arguments, "cnnjax.bench.command:run"),
    "bench-input": Command("time the input pipeline alone (JPEG decoding, a recipe's "
                           "augmentation, batching) on generated ImageNet-sized JPEG files",
                           "cnnjax bench-input --recipe RECIPE [--image-size N] "
                           "[--batch-size B] [--seconds S] [--format table|json]",
                           bench_input.add_arguments, "cnnjax.bench.input_pipeline:run"),
    "import-weights": Command("torchvision's weights (safetensors, torchvision's names) as a new "
                              "workdir, for `cnnjax eval` and fine-tuning with `cnnjax train`",
                              "cnnjax import-weights --model NAME --from FILE.safetensors "
                              "--workdir DIR [--config PATH[:ARG]] [--config.KEY=VALUE ...]",
                              import_weights.add_arguments,
                              "cnnjax.pretrained.import_weights:run"),
}


def _parser() -> argparse.ArgumentParser:
  parser = _Parser(prog="cnnjax", description="Train, evaluate and study classic CNNs with JAX.",
                   epilog=OVERRIDES_HELP)
  commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser,
                                   metavar="COMMAND")
  for name, command in COMMANDS.items():
    sub = commands.add_parser(name, help=command.help, description=command.help,
                              usage=command.usage, epilog=OVERRIDES_HELP)
    command.add_arguments(sub)
  return parser


def _split_overrides(argv: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
  """Separates `--config.KEY=VALUE` (or `--config.KEY VALUE`) from the other arguments."""
  rest, overrides = [], []
  args = iter(argv)
  for arg in args:
    if not arg.startswith(OVERRIDE_PREFIX):
      rest.append(arg)
      continue
    key, has_value, value = arg[len(OVERRIDE_PREFIX):].partition("=")
    if not has_value:
      value = next(args, None)
      if value is None:
        raise UserError(f"{arg} needs a value: {arg}=VALUE")
    overrides.append((key, value))
  return rest, overrides


def run(argv: list[str]) -> int:
  rest, overrides = _split_overrides(argv)
  args = _parser().parse_args(rest)
  module, _, function = COMMANDS[args.command].run.partition(":")
  command = getattr(__import__(module, fromlist=[function]), function)
  return command(args, overrides)


def main(argv: list[str] | None = None) -> int:
  # From the start, so that a SIGTERM while starting is a preemption (exit 75)
  # like any other, not a death by signal. Ctrl-C interrupts at once until
  # training begins (cnnjax.training.guards then saves a step instead); a process
  # started with SIGINT ignored (a script's background job) keeps ignoring it.
  previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, stopping.request_stop)}
  if signal.getsignal(signal.SIGINT) != signal.SIG_IGN:
    previous[signal.SIGINT] = signal.signal(signal.SIGINT, stopping.interrupt_while_starting)
  # TFDS's and orbax's absl notes (a read-only directory, a dataset folder
  # being built) are not the user's business; cnnjax says what matters.
  absl_logging.set_verbosity(absl_logging.ERROR)
  try:
    return run(sys.argv[1:] if argv is None else argv)
  except UserError as error:
    # With several processes all make the same mistake and leave together, at
    # JAX's shutdown barrier (bounded by parallel.SHUTDOWN_TIMEOUT_SECONDS).
    print(f"cnnjax: error: {error}", file=sys.stderr)
    return USAGE_ERROR
  except StopRun as stop:
    print(f"cnnjax: {stop}", file=sys.stderr)
    return stop.exit_status
  except KeyboardInterrupt:
    print("\ncnnjax: interrupted while starting; nothing was saved", file=sys.stderr)
    return stopping.INTERRUPTED_STATUS
  except Exception:
    if not _distributed():
      raise
    traceback.print_exc()
    from cnnjax.training import parallel

    parallel.exit_now(1)
  finally:  # For a caller in the same process (a test, a notebook).
    for signum, handler in previous.items():
      signal.signal(signum, handler)
    stopping.clear_stop_request()


def _distributed() -> bool:
  """Whether this process joined others (never imports JAX just to ask)."""
  parallel = sys.modules.get("cnnjax.training.parallel")
  return parallel is not None and parallel.is_distributed()
