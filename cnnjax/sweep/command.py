"""`cnnjax sweep`: an ablation as variants x seeds of ordinary training runs,
ending in a table, training curves and a verdict on each of the paper's claims.

  cnnjax sweep --config experiments/ablations/NAME.py[:ARG] --workdir DIR
               [--seeds N] [--jobs K] [--config.KEY=VALUE ...] [--summarize]

The flags and the composition: the plan (cnnjax.sweep.spec), the launcher
(cnnjax.sweep.local) and the summary (cnnjax.sweep.summary). Importing this
module imports neither JAX nor TensorFlow.
"""

import argparse
import pathlib

from cnnjax.errors import UserError
from cnnjax.sweep.spec import DEFAULT_SEEDS, load_sweep, plan_runs


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--config", required=True, metavar="PATH[:ARG]",
                      help="ablation file: an experiment file that also defines get_sweep(arg)")
  parser.add_argument("--workdir", required=True, type=pathlib.Path, metavar="DIR",
                      help="where DIR/<variant>/seed<k>/ runs, summary.{csv,md}, curves.png and "
                           "sweep.json go")
  parser.add_argument("--seeds", default=str(DEFAULT_SEEDS), metavar="N",
                      help=f"runs seeds 0..N-1 of every variant (default {DEFAULT_SEEDS})")
  parser.add_argument("--jobs", metavar="K",
                      help="trainings at once, each on its share of the CPU cores (default: "
                           "one per core, one on a machine with GPUs or TPUs)")
  parser.add_argument("--summarize", action="store_true",
                      help="only rebuild the summary from the runs that exist; train nothing")


def _positive_int(text: str, flag: str) -> int:
  try:
    value = int(text)
  except (TypeError, ValueError):
    value = 0
  if value < 1:
    raise UserError(f"{flag} must be a positive integer, got {text!r}")
  return value


def run(args: argparse.Namespace, overrides: list[tuple[str, str]]) -> int:
  """`cnnjax sweep`: validates everything, then trains what is not finished and
  summarizes; returns the exit status (see cnnjax.sweep.local)."""
  from cnnjax.sweep import local, summary

  seeds = _positive_int(args.seeds, "--seeds")
  jobs = None if args.jobs is None else _positive_int(args.jobs, "--jobs")
  if args.workdir.exists() and not args.workdir.is_dir():
    raise UserError(f"--workdir {args.workdir} is a file, not a directory")
  sweep = load_sweep(args.config)
  runs = plan_runs(args.config, sweep, seeds, overrides, args.workdir)
  if args.summarize:
    if not args.workdir.is_dir():
      raise UserError(f"--workdir {args.workdir} does not exist: there is no sweep to summarize")
    summary.write(summary.summarize(sweep, runs, args.config), args.workdir)
    print(f"summary of {args.workdir} rebuilt: {args.workdir / 'summary.md'}")
    return 0
  return local.train_all(sweep, runs, args.config, args.workdir, jobs)
