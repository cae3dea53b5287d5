"""`cnnjax sweep`: an ablation as variants x seeds of ordinary training runs,
with a tuning stage where the paper tuned each variant, ending in a table,
training curves and a verdict with a confidence interval on each claim.

  cnnjax sweep --config experiments/ablations/NAME.py[:ARG] --workdir DIR
               [--seeds N | --seeds auto [--max-seeds N]] [--jobs K]
               [--launcher local|slurm [--slurm.partition P --slurm.time T
               --slurm.gpus-per-run K --slurm.cpus-per-run C --slurm.max-running M]]
               [--config.KEY=VALUE ...] [--summarize]
  cnnjax sweep --status DIR

The flags and the composition: the plan (cnnjax.sweep.spec), the stages
(cnnjax.sweep.stages), the local launcher (cnnjax.sweep.local) and the
summary (cnnjax.sweep.summary); `--launcher slurm` submits to SLURM instead
(cnnjax.sweep.slurm), and `--status` lists the runs' states. Importing this
module imports neither JAX nor TensorFlow.
"""

import argparse
import pathlib

from cnnjax.errors import UserError
from cnnjax.sweep.spec import DEFAULT_SEEDS, load_sweep

AUTO = "auto"


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--config", metavar="PATH[:ARG]",
                      help="ablation file: an experiment file that also defines get_sweep(arg) "
                           "(required unless --status)")
  parser.add_argument("--workdir", type=pathlib.Path, metavar="DIR",
                      help="where DIR/<variant>/seed<k>/ runs, DIR/tuning/ trials, "
                           "summary.{md,csv}, claims.csv, curves.png and sweep.json go")
  parser.add_argument("--seeds", default=str(DEFAULT_SEEDS), metavar="N|auto",
                      help=f"runs seeds 0..N-1 of every variant (default {DEFAULT_SEEDS}); "
                           "auto: in rounds (3, then doubling) until every claim is settled "
                           "or --max-seeds is reached")
  parser.add_argument("--max-seeds", metavar="N",
                      help="with --seeds auto: the most seeds per variant (default 10)")
  parser.add_argument("--jobs", metavar="K",
                      help="trainings at once, each on its share of the CPU cores (default: "
                           "one per core, one on a machine with GPUs or TPUs)")
  parser.add_argument("--devices-per-run", metavar="K",
                      help="trainings at once on a machine of G GPUs or TPU chips: G/K, each "
                           "seeing only its own K (CUDA_VISIBLE_DEVICES, TPU_VISIBLE_CHIPS); "
                           "without either, K cores and K CPU devices each (default: one "
                           "training at a time with every accelerator, or --jobs)")
  parser.add_argument("--summarize", action="store_true",
                      help="only rebuild the summary from the runs that exist; train nothing")
  parser.add_argument("--status", type=pathlib.Path, metavar="DIR",
                      help="list each run of the sweep in DIR: pending, running, finished, "
                           "failed or interrupted, its SLURM job and the last line it printed")
  parser.add_argument("--launcher", choices=("local", "slurm"), default="local",
                      help="local: train the runs here, waiting for them (default); slurm: "
                           "submit them as one SLURM job array and return (run the same "
                           "command again to submit what is unfinished and the next stage)")
  slurm = parser.add_argument_group("SLURM", "with --launcher slurm: each run's array task")
  slurm.add_argument("--slurm.partition", dest="slurm_partition", metavar="P",
                     help="the partition (default: the cluster's)")
  slurm.add_argument("--slurm.time", dest="slurm_time", metavar="T",
                     help="each run's time limit, as sbatch --time (HH:MM:SS, D-HH:MM:SS); "
                          "warned 120 s ahead, a run saves and requeues itself")
  slurm.add_argument("--slurm.gpus-per-run", dest="slurm_gpus_per_run", metavar="K",
                     help="GPUs of each run (default 0)")
  slurm.add_argument("--slurm.cpus-per-run", dest="slurm_cpus_per_run", metavar="C",
                     help="CPU cores of each run (default: the cluster's)")
  slurm.add_argument("--slurm.max-running", dest="slurm_max_running", metavar="M",
                     help="runs of the array running at once (default: as many as fit)")


def _positive_int(text: str, flag: str, least: int = 1) -> int:
  try:
    value = int(text)
  except (TypeError, ValueError):
    value = least - 1
  if value < least:
    what = "a positive integer" if least == 1 else f"an integer of at least {least}"
    raise UserError(f"{flag} must be {what}, got {text!r}")
  return value


def seeds_policy(seeds: str, max_seeds: str | None):
  """--seeds and --max-seeds as a cnnjax.sweep.stages.Seeds."""
  from cnnjax.sweep import stages

  if seeds != AUTO:
    if max_seeds is not None:
      raise UserError("--max-seeds goes with --seeds auto; drop it, or pass --seeds auto")
    try:
      return stages.Seeds(fixed=_positive_int(seeds, "--seeds"))
    except UserError:
      raise UserError(f"--seeds must be a positive integer or auto, got {seeds!r}") from None
  if max_seeds is None:
    return stages.Seeds()
  # A verdict needs 2 seeds of each variant.
  return stages.Seeds(maximum=_positive_int(max_seeds, "--max-seeds", least=2))


def run(args: argparse.Namespace, overrides: list[tuple[str, str]]) -> int:
  """`cnnjax sweep`: validates everything, then advances the sweep through its
  stages, training what is not finished; returns the exit status (see
  cnnjax.sweep.local)."""
  from cnnjax.sweep import local, stages, summary
  from cnnjax.sweep.spec import check_runs
  from cnnjax.workdir import ownership

  if args.status is not None:
    if args.config or args.workdir:
      raise UserError("--status DIR takes no --config or --workdir: it reads the sweep in DIR")
    from cnnjax.sweep import slurm

    return slurm.print_status(args.status)
  for flag, value in (("--config", args.config), ("--workdir", args.workdir)):
    if value is None:
      raise UserError(f"{flag} is required (or --status DIR to list a sweep's runs)")
  slurm_options = _slurm_options(args)
  seeds = seeds_policy(args.seeds, args.max_seeds)
  jobs = None if args.jobs is None else _positive_int(args.jobs, "--jobs")
  devices_per_run = (None if args.devices_per_run is None else
                     _positive_int(args.devices_per_run, "--devices-per-run"))
  if jobs and devices_per_run:
    raise UserError("--jobs and --devices-per-run both say how many trainings run at once; "
                    "give one")
  if devices_per_run and slurm_options is not None:
    raise UserError("--devices-per-run is for --launcher local; with SLURM, "
                    "--slurm.gpus-per-run K")
  if devices_per_run:  # One this machine cannot give fails here, before DIR exists.
    local.device_slots(devices_per_run, local.usable_cpus(), local.visible_gpus(),
                       local.tpu_chips())
  if args.workdir.exists() and not args.workdir.is_dir():
    raise UserError(f"--workdir {args.workdir} is a file, not a directory")
  setup = stages.Setup(args.config, load_sweep(args.config), seeds, overrides, args.workdir)
  candidates = setup.check()  # Every config resolved: mistakes stop here, before DIR exists.
  state = stages.derive(setup)
  if args.summarize:
    if not args.workdir.is_dir():
      raise UserError(f"--workdir {args.workdir} does not exist: there is no sweep to summarize")
    state.summary.wall_time_s = stages.wall_time(args.workdir)
    summary.write(state.summary, args.workdir)
    print(f"summary of {args.workdir} rebuilt: {args.workdir / 'summary.md'}")
    return 0
  if state.stage != stages.DONE:
    check_runs(candidates)  # Each model built abstractly, before DIR is touched.
  args.workdir.mkdir(parents=True, exist_ok=True)
  if slurm_options is not None:
    from cnnjax.sweep import slurm

    with ownership.own(args.workdir, "sweep"):
      return stages.advance(setup, slurm.SlurmLauncher(args.workdir, slurm_options))
  with ownership.own(args.workdir, "sweep"), local.noting_signals() as signals:
    return stages.advance(setup, local.LocalLauncher(args.workdir, jobs, signals,
                                                     devices_per_run))


def _slurm_options(args: argparse.Namespace):
  """The --slurm.* flags as cnnjax.sweep.slurm.Options; None for the local launcher."""
  given = {key: value for key, value in vars(args).items()
           if key.startswith("slurm_") and value is not None}
  if args.launcher != "slurm":
    if given:
      flags = ", ".join("--slurm." + key[len("slurm_"):].replace("_", "-") for key in given)
      raise UserError(f"{flags} {'go' if len(given) > 1 else 'goes'} with --launcher slurm")
    return None
  if args.jobs is not None:
    raise UserError("--jobs is for --launcher local; with SLURM, --slurm.max-running M")
  from cnnjax.sweep import slurm

  for client in ("sbatch", "squeue", "scontrol"):  # Before anything is resolved or built.
    slurm.client(client)
  slurm.queue()  # The scheduler answers, or one line says why, before DIR is touched.
  numbers = {key: _positive_int(given[f"slurm_{key}"], "--slurm." + key.replace("_", "-"),
                                least=0 if key == "gpus_per_run" else 1)
             for key in ("gpus_per_run", "cpus_per_run", "max_running") if f"slurm_{key}" in given}
  return slurm.Options(partition=given.get("slurm_partition"), time=given.get("slurm_time"),
                       **numbers)
