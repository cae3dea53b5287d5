"""`cnnjax report`: finished runs beside the papers' and torchvision's numbers.

  cnnjax report DIR... [--format md|csv|json]
  cnnjax report --claims DIR... [--format md|csv|json]   (cnnjax.report.claims)

Each DIR is a workdir of `cnnjax train` (its config.json, metrics.jsonl,
results.json, and eval/<step>.json from `cnnjax eval`) or a sweep's DIR (its
sweep.json; every (variant, seed) run in it is reported). One row per run and
evaluation mode found in its metrics (`eval`, `eval_10crop`, `eval_ema`, ...)
and per evaluation `cnnjax eval` recorded: our top-1/top-5 error at the end of
the run (or its latest, while it is unfinished) and the best top-1 error it
logged, the published numbers that match (cnnjax.report.papers), the differences
(ours minus published, in points), epochs and training time; in CSV and JSON
also what produced the numbers (cnnjax.workdir.provenance.COLUMNS: versions,
devices, XLA_FLAGS, kernels, host, and the environment changes of a run
resumed elsewhere). A run with no
published counterpart (the embedded datasets, a smoke run) still has its row,
with the published columns empty; an unfinished run is shown with its status.
The experiment column is the workdir as given (DIR/<variant>/seed<k> for a
sweep's run): config.json does not record which experiment file made it.

Which published row a (run, mode) meets: the same network (model name, or an
alias of it in papers.SAME_NETWORK), dataset and evaluation split; the same
evaluation scheme (the metric prefix `eval_NAME` names it, and the plain
`eval` is the single view unless dataset.eval_preprocess says otherwise:
`ten_crop` is eval_10crop, `dense(Q)` eval_dense, `dense(Q1, Q2, ...)`
eval_dense_multiscale); and every condition the row states, read from the
run's config, its recipes read by cnnjax.data.recipes (the ops that run them):
  train_scale   the scales of dataset.train_preprocess (S: its resize_shorter's arguments)
  test_scales   the scales of the mode's recipe (Q: its resize_shorter's or dense's)
  augmentation  whether dataset.train_preprocess has an op drawing at random
  options       config.model.KEY
A condition the config does not show (a recipe without a scale op) does not
match: no published number rather than the wrong one. A recipe that cannot be
read (an op this cnnjax does not know) stops the report with one line naming
the run and the recipe, rather than be taken for un-augmented or unscaled.

A DIR that is neither a workdir nor a sweep, or holds a damaged file, stops
the report with one line naming it (exit status 2) and nothing is printed:
a table that silently left out a run would read as complete. Remove the DIR
from the command line, or repair it (rerunning the same `cnnjax train`
rewrites a finished run's results.json).

Reads only; imports neither JAX nor TensorFlow, so it answers at once.
"""

import dataclasses
import json
import pathlib
import re

from cnnjax import tables
from cnnjax.data import recipes
from cnnjax.data.datasets import dataset_spec
from cnnjax.errors import UserError
from cnnjax.report import papers
from cnnjax.workdir import provenance
from cnnjax.workdir.records import METRICS_FILE, finite_number, read_records
from cnnjax.workdir.run_log import LOG_FILE, STOPPED_STATUSES, last_attempt

FORMATS = ("md", "csv", "json")
CONFIG_FILE, RESULTS_FILE, SWEEP_FILE = "config.json", "results.json", "sweep.json"
EVAL_DIR = "eval"
_METRIC = re.compile(r"(eval(?:_\w+?)?)/top1_error")
EMA_SUFFIX = "_ema"


@dataclasses.dataclass
class Run:
  """One workdir as its files show it."""

  label: str  # The DIR as given, or DIR/<variant>/seed<k> for a sweep's run.
  status: str  # complete, unfinished, stopped, failed (exit N), no training logged, not started
  config: dict = dataclasses.field(default_factory=dict)
  results: dict | None = None
  records: list = dataclasses.field(default_factory=list)
  evaluations: list = dataclasses.field(default_factory=list)  # (step, evaluation dict)
  # What trained it (results.json's, or the latest start's while unfinished); see
  # cnnjax.workdir.provenance.
  provenance: dict = dataclasses.field(default_factory=dict)
  environment_changes: list = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Row:
  """One (run, evaluation mode): ours, the published numbers, the differences.
  Errors in percent."""

  experiment: str
  model: str
  dataset: str
  mode: str  # The metric prefix: eval, eval_10crop, eval_ema, ...
  status: str
  measured: str  # "final", "latest" (unfinished run) or "cnnjax eval (...)".
  step: int | None = None
  epochs: float | None = None
  train_time_s: float | None = None
  top1_error: float | None = None
  top5_error: float | None = None
  best_top1_error: float | None = None
  best_step: int | None = None
  eval_recipe: str = ""
  paper: papers.Published | None = None
  torchvision: papers.Published | None = None
  unmatched: list = dataclasses.field(default_factory=list)  # See near_misses.
  provenance: dict = dataclasses.field(default_factory=dict)  # What produced the numbers.
  environment_changes: list = dataclasses.field(default_factory=list)

  def difference(self, published: papers.Published | None, which: str) -> float | None:
    ours, theirs = getattr(self, which), published and getattr(published, which)
    return None if ours is None or theirs is None else ours - theirs


# --- Reading workdirs and sweeps ------------------------------------------------

def json_object(path: pathlib.Path, what: str) -> dict | None:
  """The JSON object in `path`, None if there is no file, a UserError if it is damaged."""
  try:
    text = path.read_text()
  except FileNotFoundError:
    return None
  except OSError as error:
    raise UserError(f"{path} is unreadable ({error.strerror}); {what}") from None
  try:
    value = json.loads(text)
  except ValueError as error:
    raise UserError(f"{path} is damaged ({error}); {what}") from None
  if not isinstance(value, dict):
    raise UserError(f"{path} is not a JSON object; {what}")
  return value


def _evaluations(workdir: pathlib.Path) -> list[tuple[int, dict]]:
  """What `cnnjax eval` recorded in eval/<step>.json, by step."""
  found = []
  for path in sorted((workdir / EVAL_DIR).glob("*.json"), key=lambda p: (len(p.stem), p.stem)):
    if not path.stem.isdigit():
      continue
    stored = json_object(path, "remove it, or rerun `cnnjax eval` (it rewrites the file)")
    evaluations = stored.get("evaluations")
    if not isinstance(evaluations, list) or not all(
        isinstance(item, dict) and isinstance(item.get("metrics"), dict) for item in evaluations):
      raise UserError(f"{path} has no list of evaluations; remove it, or rerun `cnnjax eval`")
    found += [(int(path.stem), evaluation) for evaluation in evaluations]
  return found


def _status(workdir: pathlib.Path, results: dict | None, records: list[dict]) -> str:
  if results and results.get("status") == "complete" and results.get("step") == results.get(
      "total_steps"):
    return "complete"
  exit_status, _, signalled = last_attempt(workdir / LOG_FILE)  # A sweep's run has a train.log.
  if exit_status and (exit_status in STOPPED_STATUSES or signalled):
    return "stopped"
  if exit_status:
    return f"failed (exit {exit_status})"
  # Imported weights (`cnnjax import-weights`), or a training yet to log its first step.
  return "unfinished" if records else "no training logged"


def read_workdir(workdir: pathlib.Path, label: str) -> Run:
  """The run in `workdir`, or a UserError naming what is wrong with it."""
  config = json_object(workdir / CONFIG_FILE, "restore it (`cnnjax train` and `cnnjax eval` "
                        "need it too), or leave this workdir out")
  if config is None:
    raise UserError(f"{workdir} is neither a workdir (no {CONFIG_FILE}) nor a sweep (no "
                    f"{SWEEP_FILE}); pass the --workdir of `cnnjax train` or `cnnjax sweep`")
  results = json_object(workdir / RESULTS_FILE, "rerun the same `cnnjax train` command, which "
                         "rewrites a finished run's results.json, or remove the file")
  if results is not None and not isinstance(results.get("final_eval", {}) or {}, dict):
    raise UserError(f"{workdir / RESULTS_FILE} is damaged (final_eval is not an object); rerun "
                    "the same `cnnjax train` command, which rewrites it")
  records = read_records(workdir / METRICS_FILE, missing_ok=True)
  segments = provenance.segments(workdir)
  trained_in = (results or {}).get("provenance") or (segments[-1]["environment"] if segments
                                                     else {})
  return Run(label, _status(workdir, results, records), config, results, records,
             _evaluations(workdir), trained_in if isinstance(trained_in, dict) else {},
             provenance.changes_during_run(workdir))


REBUILD_SWEEP = "rerun `cnnjax sweep ... --summarize` to rebuild it"


def sweep_entries(directory: pathlib.Path, key: str, fields: dict[str, type]
                  ) -> tuple[dict, list[dict]]:
  """The sweep.json in `directory` and its list `key` of objects, each with
  `fields` of the given types; a UserError naming the file if it is damaged
  or does not list them so."""
  path = directory / SWEEP_FILE
  sweep = json_object(path, REBUILD_SWEEP)
  entries = sweep.get(key) if sweep is not None else None
  if not isinstance(entries, list) or not all(
      isinstance(entry, dict) and all(isinstance(entry.get(field), kind)
                                      for field, kind in fields.items()) for entry in entries):
    raise UserError(f"{path} lists no {key} as `cnnjax sweep` writes them; {REBUILD_SWEEP}")
  return sweep, entries


def read_sweep(directory: pathlib.Path, label: str) -> list[Run]:
  """Every (variant, seed) run that the sweep in `directory` planned, in its order."""
  _, planned = sweep_entries(directory, "runs", {"variant": str, "seed": int})
  runs = []
  for run in planned:
    # The run's place in DIR, not the path it was started with (relative to another cwd, maybe).
    workdir = directory / run["variant"] / f"seed{run['seed']}"
    name = f"{label.rstrip('/')}/{run['variant']}/seed{run['seed']}"
    if (workdir / CONFIG_FILE).exists():
      runs.append(read_workdir(workdir, name))
    else:
      runs.append(Run(name, "not started"))
  return runs


def read_directories(paths: list[pathlib.Path]) -> list[Run]:
  runs = []
  for path in paths:
    if not path.is_dir():
      raise UserError(f"{path} is not a directory; pass the --workdir of `cnnjax train` or "
                      "`cnnjax sweep`")
    if (path / SWEEP_FILE).exists():
      runs += read_sweep(path, str(path))
    else:
      runs.append(read_workdir(path, str(path)))
  return runs


# --- What a run's config shows ---------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Shown:
  """What a run's config shows about one of its evaluations: what a
  published row is matched on (see the module docstring)."""

  config: dict
  mode: str  # The metric prefix: eval, eval_10crop, eval_ema, ...
  split: str
  recipe: str  # The evaluation's recipe as the config writes it ("" if it names none).
  scheme: str  # The papers.MODES name of how the evaluation cuts the image.
  train_scale: tuple[int, ...] | None
  test_scales: tuple[int, ...] | None
  augmentation: bool


def read_recipe(config: dict, key: str, text: str, label: str) -> tuple[recipes.Op, ...]:
  """The ops of the run's recipe `key` (`text`), read as training reads them;
  a UserError naming the run (`label`) and the recipe if they cannot be."""
  dataset = config.get("dataset", {})
  try:
    size = dataset.get("image_size") or dataset_spec(str(dataset.get("name"))).image_size
    return recipes.parse(text, size, key)
  except UserError as error:
    raise UserError(f"{label}: cannot read a recipe of its config.json ({error}); was it "
                    "trained by another version of cnnjax? Leave the run out") from None


def scheme(prefix: str, ops: tuple[recipes.Op, ...]) -> str:
  """The papers.MODES name of how `prefix`'s evaluation cuts the image."""
  if prefix != "eval":
    return prefix
  for op in ops:
    if op.name == "ten_crop":
      return "eval_10crop"
    if op.name == "dense":
      return "eval_dense_multiscale" if len(op.args) > 1 else "eval_dense"
  return "eval"


def eval_recipe(config: dict, prefix: str) -> tuple[str, str]:
  """The config key and recipe of the evaluation written as `prefix`/...
  (config.extra_evals for eval_NAME; dataset.eval_preprocess for eval; the
  same for their _ema); an empty recipe where the config names none."""
  prefix = _without_ema(prefix)
  if prefix == "eval":
    return "eval_preprocess", str(config.get("dataset", {}).get("eval_preprocess", ""))
  for entry in config.get("extra_evals", ()) or ():
    if isinstance(entry, (list, tuple)) and len(entry) == 2 and f"eval_{entry[0]}" == prefix:
      return f"extra_evals[{entry[0]!r}]", str(entry[1])
  return "", ""


def shown(config: dict, mode: str, split: str, label: str, evaluated: dict | None = None
          ) -> Shown:
  """What `config` shows about its evaluation `mode` on `split`; the
  evaluation's recipe is read from `evaluated` (what `cnnjax eval` was
  told) or else the config. A UserError if a recipe cannot be read."""
  train_recipe = str(config.get("dataset", {}).get("train_preprocess", ""))
  train_ops = read_recipe(config, "train_preprocess", train_recipe, label)
  key, recipe = eval_recipe(evaluated or config, mode)
  ops = read_recipe(config, key, recipe, label) if recipe else ()
  return Shown(config, mode, split, recipe, scheme(_without_ema(mode), ops),
               recipes.scales(train_ops), recipes.scales(ops), recipes.augmented(train_ops))


def matches(row: papers.Published, run: Shown) -> bool:
  """Whether the published `row` is about this run's evaluation (see the module docstring)."""
  return _same_evaluation(row, run) and not _unmet(row, run)


def _without_ema(mode: str) -> str:
  return mode[:-len(EMA_SUFFIX)] if mode.endswith(EMA_SUFFIX) else mode


def _same_evaluation(row: papers.Published, run: Shown) -> bool:
  """The same network, data, split and evaluation scheme."""
  return (row.model in papers.names_of(run.config.get("model", {}).get("name", "")) and
          row.dataset == run.config.get("dataset", {}).get("name") and row.split == run.split
          and row.mode == run.scheme)


def _unmet(row: papers.Published, run: Shown) -> list[str]:
  """The row's conditions the run does not meet, as "name: the row's / the run's"."""
  model = run.config.get("model", {})
  conditions = {"train_scale": (row.train_scale, run.train_scale),
                "test_scales": (row.test_scales, run.test_scales),
                "augmentation": (row.augmentation, run.augmentation),
                **{f"model.{key}": (value, model.get(key)) for key, value in row.options}}
  return [f"{name} {wanted!r} (the run's: {found!r})"
          for name, (wanted, found) in conditions.items()
          if wanted is not None and wanted != found]


def published_for(run: Shown) -> dict[str, papers.Published | None]:
  """The paper's and torchvision's row for this evaluation, None where there is none."""
  found = {papers.PAPER: None, papers.TORCHVISION: None}
  for row in papers.PUBLISHED:
    if found[row.source] is None and matches(row, run):
      found[row.source] = row
  return found


def near_misses(run: Shown, sources) -> list[str]:
  """The rows of `sources` about this very evaluation that a condition kept
  out, with the conditions the run does not meet: a strict match does not
  hide a published number silently."""
  return [f"{row.citation}: needs {', '.join(unmet)}" for row in papers.PUBLISHED
          if row.source in sources and _same_evaluation(row, run)
          and (unmet := _unmet(row, run))]


# --- Rows ----------------------------------------------------------------------

def _percent(value) -> float | None:
  number = finite_number(value)
  return None if number is None else 100 * number


def _modes(records: list[dict]) -> list[str]:
  """The evaluation prefixes in `records`, in order of first appearance."""
  found = []
  for record in records:
    for key in record:
      match = _METRIC.fullmatch(key)
      if match and match.group(1) not in found:
        found.append(match.group(1))
  return found


def _row(run: Run, evaluation: Shown, measured: str, **values) -> Row:
  config = run.config
  found = published_for(evaluation)
  missing = [source for source, row in found.items() if row is None]
  return Row(run.label, config.get("model", {}).get("name", ""),
             config.get("dataset", {}).get("name", ""), evaluation.mode, run.status, measured,
             eval_recipe=evaluation.recipe, paper=found[papers.PAPER],
             torchvision=found[papers.TORCHVISION],
             unmatched=near_misses(evaluation, missing), **values)


def rows_of(run: Run) -> list[Row]:
  """The run's rows: one per evaluation mode it logged, one per `cnnjax eval` record."""
  if not run.config:
    return [Row(run.label, "", "", "", run.status, "")]
  results = run.results or {}
  complete = run.status == "complete"
  epochs = finite_number(results.get("epochs")) if complete else None
  train_time = finite_number(results.get("train_time_s")) if complete else None
  if epochs is None and run.records:
    epochs = finite_number(run.records[-1].get("epoch"))
  split = run.config.get("dataset", {}).get("eval_split", "")
  rows = []
  records = run.records or [results.get("final_eval") or {}]
  for mode in _modes(records):
    logged = [r for r in records if finite_number(r.get(f"{mode}/top1_error")) is not None]
    if not logged:
      continue
    last = logged[-1]
    best = min(logged, key=lambda r: (finite_number(r[f"{mode}/top1_error"]), r.get("step", 0)))
    rows.append(_row(run, shown(run.config, mode, split, run.label),
                     "final" if complete else "latest", step=last.get("step"), epochs=epochs,
                     train_time_s=train_time, top1_error=_percent(last[f"{mode}/top1_error"]),
                     top5_error=_percent(last.get(f"{mode}/top5_error")),
                     best_top1_error=_percent(best[f"{mode}/top1_error"]),
                     best_step=best.get("step"), provenance=run.provenance,
                     environment_changes=run.environment_changes))
  for step, evaluation in run.evaluations:
    metrics = evaluation["metrics"]
    # The recipes as evaluated: `cnnjax eval` may have been told other ones.
    evaluated = {"dataset": {"eval_preprocess": evaluation.get(
                     "preprocess", run.config.get("dataset", {}).get("eval_preprocess", ""))},
                 "extra_evals": evaluation.get("extra_evals", run.config.get("extra_evals", ()))}
    for mode in _modes([metrics]):
      checkpoint = evaluation.get("checkpoint", "")
      rows.append(_row(run, shown(run.config, mode, str(evaluation.get("split", split)),
                                  run.label, evaluated),
                       f"cnnjax eval ({checkpoint} checkpoint)", step=step,
                       top1_error=_percent(metrics.get(f"{mode}/top1_error")),
                       top5_error=_percent(metrics.get(f"{mode}/top5_error")),
                       provenance=evaluation.get("provenance") or {}))
  if not rows:  # What it will be evaluated as, beside the published numbers to expect.
    extra = [f"eval_{entry[0]}" for entry in run.config.get("extra_evals", ()) or ()
             if isinstance(entry, (list, tuple)) and len(entry) == 2]
    for mode in ["eval", *extra]:
      rows.append(_row(run, shown(run.config, mode, split, run.label), "no evaluation yet",
                       epochs=epochs, train_time_s=train_time, provenance=run.provenance,
                       environment_changes=run.environment_changes))
  return rows


def report_rows(paths: list[pathlib.Path]) -> list[Row]:
  return [row for run in read_directories(paths) for row in rows_of(run)]


# --- Rendering -----------------------------------------------------------------

def _number(value: float | None, digits: int = 2, sign: bool = False) -> str:
  if value is None:
    return ""
  return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def _pair(top1: float | None, top5: float | None, sign: bool = False) -> str:
  if top1 is None and top5 is None:
    return ""
  return f"{_number(top1, sign=sign) or '–'} / {_number(top5, sign=sign) or '–'}"


def duration(seconds: float | None) -> str:
  """H:MM:SS, "" for None."""
  if seconds is None:
    return ""
  minutes, seconds = divmod(round(seconds), 60)
  hours, minutes = divmod(minutes, 60)
  return f"{hours}:{minutes:02d}:{seconds:02d}"


def _measured(row: Row) -> str:
  if row.step is None:
    return row.measured
  return f"{row.measured}, step {row.step}"


MARKDOWN_COLUMNS = (
    tables.Column("experiment"), tables.Column("model"), tables.Column("dataset"),
    tables.Column("evaluation"), tables.Column("status"), tables.Column("measured"),
    *(tables.Column(key, align=tables.RIGHT) for key in (
        "epochs", "train time", "error % (top-1 / top-5)", "best top-1", "paper", "Δ paper",
        "torchvision", "Δ torchvision")))


def as_markdown(rows: list[Row]) -> str:
  """A markdown table (errors in %, top-1 / top-5) with the citations as footnotes."""
  citations: list[str] = []

  def cite(published: papers.Published | None) -> str:
    if published is None:
      return ""
    text = published.citation + (f"; {published.note}" if published.note else "")
    if text not in citations:
      citations.append(text)
    return (f"{_pair(published.top1_error, published.top5_error)} "
            f"[{citations.index(text) + 1}]")

  def cells(row: Row) -> dict:
    best = ("" if row.best_top1_error is None else
            f"{_number(row.best_top1_error)} (step {row.best_step})")
    return {"experiment": row.experiment, "model": row.model, "dataset": row.dataset,
            "evaluation": row.mode, "status": row.status, "measured": _measured(row),
            "epochs": "" if row.epochs is None else f"{row.epochs:.3g}",
            "train time": duration(row.train_time_s),
            "error % (top-1 / top-5)": _pair(row.top1_error, row.top5_error),
            "best top-1": best, "paper": cite(row.paper),
            "Δ paper": _pair(row.difference(row.paper, "top1_error"),
                             row.difference(row.paper, "top5_error"), sign=True),
            "torchvision": cite(row.torchvision),
            "Δ torchvision": _pair(row.difference(row.torchvision, "top1_error"),
                                   row.difference(row.torchvision, "top5_error"), sign=True)}

  lines = [tables.markdown([cells(row) for row in rows], MARKDOWN_COLUMNS).rstrip("\n"), "",
           "Errors in percent, ours at the step shown (final: the end of training; "
           "latest: an unfinished run's last evaluation); Δ = ours − published, in points."]
  if citations:
    lines += [""] + [f"[{index}] {text}" for index, text in enumerate(citations, 1)]
  unmatched = [f"- {row.experiment} {row.mode}: {miss}" for row in rows for miss in row.unmatched]
  if unmatched:
    lines += ["", "Published numbers about the same evaluation that a condition kept out:"]
    lines += unmatched
  return "\n".join(lines) + "\n"


CSV_COLUMNS = (
    "experiment", "model", "dataset", "evaluation", "eval_recipe", "status", "measured", "step",
    "epochs", "train_time_s", "top1_error", "top5_error", "best_top1_error", "best_step",
    "paper_top1_error", "paper_top5_error", "paper_diff_top1", "paper_diff_top5",
    "paper_citation", "paper_note", "torchvision_top1_error", "torchvision_top5_error",
    "torchvision_diff_top1", "torchvision_diff_top5", "torchvision_citation", "unmatched",
    *provenance.COLUMNS, "environment_changes")


def _rounded(value: float | None) -> float | None:
  """Without the binary noise of a difference (0.15, not 0.14999999999999858)."""
  return None if value is None else round(value, 6)


def as_dict(row: Row) -> dict:
  """The row with raw numbers (errors and differences in percent, to 6
  decimals), None where unknown."""
  values = {"experiment": row.experiment, "model": row.model, "dataset": row.dataset,
            "evaluation": row.mode, "eval_recipe": row.eval_recipe, "status": row.status,
            "measured": row.measured, "step": row.step, "epochs": row.epochs,
            "train_time_s": row.train_time_s, "top1_error": _rounded(row.top1_error),
            "top5_error": _rounded(row.top5_error),
            "best_top1_error": _rounded(row.best_top1_error), "best_step": row.best_step}
  for name, published in (("paper", row.paper), ("torchvision", row.torchvision)):
    values.update({
        f"{name}_top1_error": published and published.top1_error,
        f"{name}_top5_error": published and published.top5_error,
        f"{name}_diff_top1": _rounded(row.difference(published, "top1_error")),
        f"{name}_diff_top5": _rounded(row.difference(published, "top5_error")),
        f"{name}_citation": published and published.citation})
  values["paper_note"] = row.paper and row.paper.note
  values["unmatched"] = "; ".join(row.unmatched)
  recorded = provenance.flatten(row.provenance) if isinstance(row.provenance, dict) else {}
  values.update({column: recorded.get(column) for column in provenance.COLUMNS})
  values["environment_changes"] = "; ".join(row.environment_changes)
  return values


def as_csv(rows: list[Row]) -> str:
  return tables.as_csv([as_dict(row) for row in rows], CSV_COLUMNS)


def as_json(rows: list[Row]) -> str:
  return json.dumps([as_dict(row) for row in rows], indent=2) + "\n"
