"""`results.json`: what a finished run achieved, in one small file.

Written by `cnnjax train` when a run reaches its last step, so tools
(`cnnjax sweep`, `cnnjax report`, a user's script) read one object instead of
reparsing `metrics.jsonl`:

  status           "complete"
  step, total_steps, steps_per_epoch, global_batch, epochs
  final_eval       the last evaluation: step, epoch, eval/loss, eval/top1_error, eval/top5_error
  best_eval        the evaluation with the lowest eval/top1_error (the earliest of equals),
                   whose checkpoint training keeps (`cnnjax eval --best` evaluates it)
  evaluations      every evaluation mode's own final and best (by its own top-1 error),
                   keyed by metric prefix: {"eval": {"final": {step, epoch, eval/loss,
                   eval/top1_error, eval/top5_error}, "best": {...}}, "eval_10crop": ...,
                   "eval_ema": ...} (config.extra_evals, config.ema_decay)
  final_train      the last training record: step, epoch, train/loss, train/top1_error, ...
  train_time_s     wall-clock seconds of training, summed over the segments of a resumed
                   run (up to the checkpoint each one resumed from), evaluation included
  images_per_sec   training throughput in steady state: compilation, evaluation and
                   saving excluded
  parameters       trainable parameters of the model
  provenance       what produced it: versions, devices, flags, host (cnnjax.workdir.provenance)
  environment_changes  what changed between the run's segments when it was resumed
                   elsewhere: ["at step N: KEY OLD -> NEW", ...]

JAX-free: it only reads and writes JSON.
"""

import json
import os
import pathlib

from cnnjax.workdir import metrics as metrics_lib

RESULTS_FILE = "results.json"


def _last(records: list[dict], key: str) -> dict | None:
  return next((record for record in reversed(records) if key in record), None)


def summarize(records: list[dict], *, step: int, total_steps: int, steps_per_epoch: int,
              global_batch: int, train_time_s: float, images_per_sec: float,
              parameters: int) -> dict:
  """The results of a run whose `metrics.jsonl` holds `records`."""
  evals = [record for record in records if "eval/top1_error" in record]
  best = min(evals, key=lambda record: (record["eval/top1_error"], record["step"]), default=None)
  return {
      "status": "complete",
      "step": step,
      "total_steps": total_steps,
      "steps_per_epoch": steps_per_epoch,
      "global_batch": global_batch,
      "epochs": step / steps_per_epoch,
      "final_eval": _last(records, "eval/top1_error"),
      "best_eval": best,
      "evaluations": evaluation_modes(records),
      "final_train": _last(records, "train/loss"),
      "train_time_s": train_time_s,
      "images_per_sec": images_per_sec,
      "parameters": parameters,
  }


def evaluation_modes(records: list[dict]) -> dict:
  """{prefix: {"final": ..., "best": ...}} for each prefix of `PREFIX/top1_error`
  in `records` ("eval", "eval_10crop", "eval_ema", ...), in order of first
  appearance; each record cut to its step, epoch and that prefix's metrics."""
  prefixes = dict.fromkeys(key[:-len("/top1_error")] for record in records for key in record
                           if key.endswith("/top1_error") and key.startswith("eval"))
  modes = {}
  for prefix in prefixes:
    key = f"{prefix}/top1_error"
    evals = [record for record in records if key in record]
    cut = lambda record: {name: value for name, value in record.items()
                          if name in ("step", "epoch") or name.startswith(prefix + "/")}
    best = min(evals, key=lambda record: (record[key], record["step"]))
    modes[prefix] = {"final": cut(evals[-1]), "best": cut(best)}
  return modes


def write(workdir: pathlib.Path, results: dict) -> None:
  """Writes `results.json` beside the run, atomically (write, then rename)."""
  path = workdir / RESULTS_FILE
  temporary = path.with_suffix(".json.tmp")
  temporary.write_text(json.dumps(results, indent=2) + "\n")
  os.replace(temporary, path)


def forget(workdir: pathlib.Path) -> None:
  """Removes `results.json`: the workdir's run is training again."""
  (pathlib.Path(workdir) / RESULTS_FILE).unlink(missing_ok=True)


def read(workdir: pathlib.Path) -> dict | None:
  """The workdir's results, or None when it has none (or an unreadable file)."""
  try:
    results = json.loads((pathlib.Path(workdir) / RESULTS_FILE).read_text())
  except (OSError, ValueError):
    return None
  return results if isinstance(results, dict) else None


def from_workdir(workdir: pathlib.Path, **run) -> dict:
  """`summarize` over the workdir's own metrics.jsonl."""
  return summarize(metrics_lib.read(workdir), **run)


def _percent(value) -> str:
  return f"{100 * value:.2f}%" if isinstance(value, (int, float)) else str(value)


def _duration(seconds: float) -> str:
  minutes, seconds = divmod(round(seconds), 60)
  hours, minutes = divmod(minutes, 60)
  return f"{hours}:{minutes:02d}:{seconds:02d}"


def summary_line(results: dict, workdir: pathlib.Path) -> str:
  """One line for the end of a run: its errors, length, time and where it is."""
  final, best = results.get("final_eval"), results.get("best_eval")
  errors = "no evaluation"
  if final:
    errors = f"eval top-1 error {_percent(final['eval/top1_error'])} (final)"
    if best and best["eval/top1_error"] < final["eval/top1_error"]:
      errors += f", best {_percent(best['eval/top1_error'])} at step {best['step']}"
  return (f"done: {errors}; {results['step']} steps ({results['epochs']:.3g} epochs) in "
          f"{_duration(results['train_time_s'])}, {results['images_per_sec']:.0f} images/s; "
          f"{pathlib.Path(workdir) / RESULTS_FILE}")


EVAL_DIR = "eval"


def record_evaluation(workdir: pathlib.Path, step: int, evaluation: dict) -> pathlib.Path:
  """Adds `evaluation` (its split, preprocessing, metrics, ...) to
  `DIR/eval/<step>.json`, replacing an earlier one of the same split,
  preprocessing and extra evaluations; training's own files are never
  touched. Returns the path."""
  path = pathlib.Path(workdir) / EVAL_DIR / f"{step}.json"
  path.parent.mkdir(exist_ok=True)
  try:
    evaluations = json.loads(path.read_text())["evaluations"]
  except (OSError, ValueError, KeyError, TypeError):
    evaluations = []
  same = lambda other: all(other.get(key) == evaluation.get(key)
                           for key in ("split", "preprocess", "extra_evals"))
  evaluations = [other for other in evaluations if not same(other)] + [evaluation]
  temporary = path.with_suffix(".json.tmp")
  temporary.write_text(json.dumps({"step": step, "evaluations": evaluations}, indent=2) + "\n")
  os.replace(temporary, path)
  return path
