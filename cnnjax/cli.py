"""The `cnnjax` command.

  cnnjax train --config PATH[:ARG] --workdir DIR [--config.KEY=VALUE ...]
  cnnjax eval  --config PATH[:ARG] --workdir DIR [--config.KEY=VALUE ...]

One of several processes adds `--coordinator_address HOST:PORT
--num_processes N --process_id I` (or sets CNNJAX_COORDINATOR_ADDRESS,
CNNJAX_NUM_PROCESSES, CNNJAX_PROCESS_ID); under SLURM, Open MPI and on Cloud
TPU pod slices they are found automatically.

A user error (bad key, type or value, unknown model or dataset, missing data)
prints one line on stderr and exits with status 2, before any compilation and
without touching what the workdir already holds. A run that stops early
(preempted: 75, diverged: 3, a failed checkpoint save: 1) prints why on one
line; see cnnjax.stopping. A process of a multi-process run that crashes
exits at once, so that its peers fail too instead of waiting.
"""

import argparse
import pathlib
import signal
import sys
import traceback

from cnnjax.errors import UserError
from cnnjax import stopping, sweep
from cnnjax.stopping import StopRun

USAGE_ERROR = 2
OVERRIDE_PREFIX = "--config."


def _parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog="cnnjax", description="Train and evaluate classic CNNs with JAX.",
      epilog="Override any config key with --config.KEY=VALUE, e.g. "
             "--config.optimizer.learning_rate=0.05 --config.model.activation=relu")
  commands = parser.add_subparsers(dest="command", required=True)
  for name, help_text in (("train", "train, resuming from the workdir's latest checkpoint"),
                          ("eval", "evaluate the workdir's latest checkpoint")):
    command = commands.add_parser(name, help=help_text)
    command.add_argument("--config", required=True, metavar="PATH[:ARG]",
                         help="experiment file, e.g. experiments/lenet5_digits.py")
    command.add_argument("--workdir", required=True, type=pathlib.Path,
                         help="where config.json, metrics.jsonl, tensorboard/ and checkpoints/ go")
    command.add_argument("--allow_config_change", action="store_true",
                         help="use this workdir although its config.json is another experiment "
                              "(the old config is kept as config.STEP.json)")
    processes = command.add_argument_group(
        "several processes", "one of several processes (not needed under SLURM, Open MPI or on a "
        "Cloud TPU pod slice); each defaults to its CNNJAX_* environment variable")
    processes.add_argument("--coordinator_address", metavar="HOST:PORT",
                           help="process 0's address and a free port on it")
    processes.add_argument("--num_processes", type=int, metavar="N")
    processes.add_argument("--process_id", type=int, metavar="I", help="0 .. N-1")
  sweep.add_arguments(commands.add_parser(
      "sweep", help="an ablation: variants x seeds of training runs, a table, curves, verdicts"))
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
  if args.command == "sweep":
    return sweep.run(args, overrides)
  # Imported here so `cnnjax --help` and config errors are instant.
  from cnnjax import config as config_lib
  from cnnjax import parallel, train

  cluster = parallel.explicit_cluster(args.coordinator_address, args.num_processes,
                                      args.process_id)
  config = config_lib.from_command_line(args.config, overrides)
  parallel.initialize(cluster)  # Before `plan`, which counts the devices of all processes.
  plan = train.plan(config)
  if args.command == "train":
    train.train_and_evaluate(plan, args.workdir, allow_config_change=args.allow_config_change)
  else:
    step, metrics = train.evaluate_latest(plan, args.workdir,
                                          allow_config_change=args.allow_config_change)
    if parallel.is_primary():
      print(f"step {step}: " + ", ".join(f"{key}={value:.4f}" for key, value in metrics.items()))
  return 0


def main(argv: list[str] | None = None) -> int:
  # From the start, so that a SIGTERM while starting is a preemption (exit 75)
  # like any other, not a death by signal.
  signal.signal(signal.SIGTERM, stopping.request_preemption)
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
  except Exception:
    if not _distributed():
      raise
    traceback.print_exc()
    from cnnjax import parallel

    parallel.exit_now(1)


def _distributed() -> bool:
  """Whether this process joined others (never imports JAX just to ask)."""
  return "cnnjax.parallel" in sys.modules and sys.modules["cnnjax.parallel"].is_distributed()
