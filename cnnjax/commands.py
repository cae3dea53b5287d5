"""What each `cnnjax` subcommand does, behind cnnjax.cli's flags.

Each function takes the parsed arguments and the `--config.KEY=VALUE` pairs
and returns the exit status. They import JAX and TensorFlow only once the
arguments and the config have been checked, so mistakes are reported at once,
and they say what they are doing while nothing else would show.
"""

import contextlib
import json
import pathlib
import sys

from cnnjax import config as config_lib
from cnnjax import tables
from cnnjax.errors import UserError
from cnnjax.training import cluster as cluster_lib
from cnnjax.training import supervisor
from cnnjax.workdir import ownership, results


def _say(text: str) -> None:
  from cnnjax.training import parallel

  if parallel.is_primary():
    print(text, flush=True)


def _hold_before_jax(stack: contextlib.ExitStack, cluster, workdir: pathlib.Path, command: str,
                     shared: bool = False) -> None:
  """A process alone (no cluster given or launched) holds `workdir` now,
  before JAX is imported, so that a busy workdir is refused at once; the
  hold is re-entrant, taken again by parallel.own_workdir. The processes of
  a multi-process run hold it through process 0, once JAX has joined them."""
  launch = None if cluster else cluster_lib.launched_processes()
  if cluster is None and (launch is None or launch.num_processes < 2):
    stack.enter_context(ownership.own(workdir, command, shared))


def train(args, overrides) -> int:
  cluster = cluster_lib.explicit_cluster(args.coordinator_address, args.num_processes,
                                         args.process_id)
  config = config_lib.from_command_line(args.config, overrides)
  from cnnjax.workdir import metrics as metrics_lib

  metrics_lib.progress_mode()  # A bad CNNJAX_PROGRESS is refused before any work.
  processes = cluster or cluster_lib.launched_processes()
  if supervisor.supervised():
    supervisor.follow_lifeline()
  elif processes and processes.num_processes > 1 and args.own_command_line:
    return supervisor.supervise(cluster.process_id if cluster else None,
                                processes.num_processes)
  with contextlib.ExitStack() as stack:
    _hold_before_jax(stack, cluster, args.workdir, "train")
    from cnnjax.training import parallel

    parallel.initialize(cluster)  # Before anything asks JAX about devices.
    with parallel.own_workdir(args.workdir):
      if _already_complete(config, args.workdir):
        return 0
      from cnnjax.training import train as train_lib

      # Everything that needs no data, a fine-tuning source's weights
      # included, is refused before this line.
      checked = train_lib.check(config, workdir=args.workdir)
      _say(f"preparing {config.dataset.name} and the input pipeline")
      plan = train_lib.plan(config, checked=checked)
      train_lib.train_and_evaluate(plan, args.workdir,
                                   allow_config_change=args.allow_config_change)
  return 0


def _already_complete(config, workdir: pathlib.Path) -> bool:
  """Says so, without building a dataset, when the workdir holds this very
  experiment finished (its results.json and an identical config.json)."""
  from cnnjax.workdir import config_file as workdir_lib

  finished = results.read(workdir)
  stored = workdir_lib.read_config(workdir) if finished else None
  if not stored or workdir_lib.differences(stored, config):
    return False
  kept = _kept_steps(workdir)
  if finished.get("step") != finished.get("total_steps") or max(kept, default=-1) != finished["step"]:
    return False  # Not what the checkpoints say: let training look properly.
  _say(f"training is complete: step {finished['step']} of {finished['total_steps']} in {workdir}")
  _say(results.summary_line(finished, workdir))
  return True


def _kept_steps(workdir: pathlib.Path) -> list[int]:
  """The steps whose checkpoint directories are in place (orbax renames a step
  into its plain number only once it is complete), read without JAX."""
  return sorted(int(path.name) for path in (workdir / "checkpoints").glob("[0-9]*")
                if path.name.isdigit() and path.is_dir())


def _refuse_missing_step(workdir: pathlib.Path, step: int | None) -> None:
  """No checkpoint, or not the one asked for: said before JAX is imported, in
  the words of cnnjax.workdir.checkpoint.choose, which has the last word."""
  kept = _kept_steps(workdir)
  where = workdir / "checkpoints"
  if not kept:
    raise UserError(f"no checkpoint in {where}; run `cnnjax train` with this --workdir first")
  if step is not None and step not in kept:
    raise UserError(f"no checkpoint of step {step} in {where}; kept: "
                    f"{', '.join(map(str, kept))}")


def evaluate(args, overrides) -> int:
  """Evaluates a checkpoint with the network the workdir was trained as."""
  from cnnjax.workdir import config_file as workdir_lib

  cluster = cluster_lib.explicit_cluster(args.coordinator_address, args.num_processes,
                                         args.process_id)
  workdir_lib.check_eval_overrides(overrides)
  if not args.workdir.is_dir():
    raise UserError(f"--workdir {args.workdir} is not a directory; pass the workdir "
                               "of a `cnnjax train` run")
  # Held from here on: a busy workdir (before even the config is read, which
  # imports Flax), a missing checkpoint or step are refused from the workdir
  # and the checkpoints' index, before any data and before TensorFlow.
  with contextlib.ExitStack() as stack:
    _hold_before_jax(stack, cluster, args.workdir, "eval", shared=True)
    if (args.workdir / "config.json").exists():  # Else the config's reading says what is wrong.
      _refuse_missing_step(args.workdir, args.step)
    if args.config:
      config = config_lib.from_command_line(args.config, overrides)
      workdir_lib.check_eval_config(config, args.workdir)
    else:
      config = config_lib.from_workdir(args.workdir)
      for key, text in overrides:
        config_lib.override(config, key, text)
      config_lib.validate(config)
    from cnnjax.training import parallel

    parallel.initialize(cluster)
    with parallel.own_workdir(args.workdir, "eval", shared=True):
      from cnnjax.workdir import checkpoint

      step = checkpoint.choose_step(args.workdir, config.keep_checkpoints, args.step, args.best)
      _say(f"preparing {config.dataset.name}:{config.dataset.eval_split}")
      from cnnjax.training import train as train_lib

      plan = train_lib.plan(config)
      step, metrics = train_lib.evaluate_checkpoint(plan, args.workdir, step)
  from cnnjax.workdir import provenance

  if parallel.is_primary():
    print(f"step {step}: " + ", ".join(f"{key}={value:.4f}" for key, value in metrics.items()))
    evaluation = {"split": config.dataset.eval_split, "preprocess": config.dataset.eval_preprocess,
                  "extra_evals": [list(pair) for pair in config.extra_evals],
                  "checkpoint": "best" if args.best else "step" if args.step else "latest",
                  "half_precision": config.half_precision, "metrics": metrics,
                  "dataset": config.dataset.name,
                  "class_names": list(plan.pipeline.class_names),  # Label i is class_names[i].
                  "provenance": provenance.collect(plan.devices)}
    try:
      path = results.record_evaluation(args.workdir, step, evaluation)
      print(f"written to {path}")
    except OSError as error:  # A read-only workdir: the printed result is all there is.
      print(f"cnnjax: note: not written to {args.workdir}: {error.strerror}", file=sys.stderr)
  return 0


def show_config(args, overrides) -> int:
  """Prints the resolved config as JSON (what config.json would hold), after
  every check that needs no data."""
  config = config_lib.from_command_line(args.config, overrides)
  config_lib.check_model(config)
  from cnnjax.workdir import config_file as workdir_lib

  print(workdir_lib.as_json(config), end="")
  return 0


MODEL_COLUMNS = (tables.Column("name", "model"), "input", "parameters",
                 tables.Column("options", "options (--config.model.KEY=VALUE)"))


def list_models(args, overrides) -> int:
  """The registry: each model's native input, options and parameters.

  Counting parameters traces the model (`jax.eval_shape`): a second or more
  for each large one. So the table of every model, what a newcomer asks for
  first, comes from the registry's tables alone (its options need Flax, no
  tracing) and leaves the count to `cnnjax models NAME ...`; the JSON, for
  tools such as the docs' table, counts every model it lists.
  """
  del overrides
  from cnnjax import models

  names = args.names or models.list_models()
  for name in names:
    models.check_name(name)  # Unknown names are a UserError before any work.
  count = bool(args.names) or args.format == "json"
  if count and len(names) > 3:
    print(f"cnnjax: tracing {len(names)} models to count their parameters", file=sys.stderr,
          flush=True)
  rows = [models.describe(name) if count else
          {"name": name, "input": models.native_input(name),
           "options": models.model_defaults(name)} for name in names]
  if args.format == "table":
    columns = MODEL_COLUMNS if count else tuple(c for c in MODEL_COLUMNS if c != "parameters")
    sys.stdout.write(tables.text(
        [{**row, "options": ", ".join(f"{key}={value!r}" for key, value in row["options"].items())}
         for row in rows], columns))
    if not count:
      print("parameters: `cnnjax models NAME ...` counts them (it traces each model)",
            file=sys.stderr)
  if args.format == "json":
    print(json.dumps(rows, indent=2))
  return 0
