"""A real sweep through the command line: a tuning stage of two tiny LeNet-5
trainings (ReLU's learning rate), then four (ReLU at the chosen rate and
tanh, two seeds, two at a time), the outputs they lead to, a rerun that trains
nothing, and a diverging variant reported while the others stand."""

import csv
import json
import statistics
import subprocess
import sys

import pytest
from helpers import ROOT, markdown_rows

ABLATION = str(ROOT / "tests" / "sweep_lenet_digits.py")


def _sweep(workdir, digits_dir, *arguments, spec=ABLATION):
  return subprocess.run(
      [sys.executable, "-m", "cnnjax", "sweep", "--config", spec, "--workdir", str(workdir),
       "--jobs", "2", f"--config.dataset.data_dir={digits_dir}", *arguments],
      capture_output=True, text=True, cwd=ROOT, timeout=600)


# Longer than the suite's limit may be legitimate: three sweeps of up to 600 s each (_sweep).
@pytest.mark.timeout(1900)
def test_a_tiny_sweep_tunes_trains_summarizes_resumes_and_reports_failures(tmp_path,
                                                                          digits_dir):
  workdir = tmp_path / "sweep"
  first = _sweep(workdir, digits_dir, "--seeds", "2", spec=f"{ABLATION}:tuned")
  assert first.returncode == 0, first.stdout + first.stderr[-3000:]
  assert "tuning: 0 of 2 trials done; training 2" in first.stdout
  assert "seeds 0 to 1: 0 of 4 runs already finished; training 4" in first.stdout
  trials = [workdir / "tuning" / "relu" / f"learning_rate={rate}" / "seed1000"
            for rate in (0.02, 0.05)]
  assert all(json.loads((trial / "results.json").read_text())["status"] == "complete"
             for trial in trials)
  choice = json.loads((workdir / "tuning.json").read_text())["choices"]["relu"]
  rate = choice["values"]["optimizer.learning_rate"]
  assert rate in (0.02, 0.05) and choice["at_edge"] == ["optimizer.learning_rate"]

  runs = {(variant, seed): workdir / variant / f"seed{seed}"
          for variant in ("relu", "tanh") for seed in (0, 1)}
  results = {key: json.loads((run / "results.json").read_text()) for key, run in runs.items()}
  assert all(r["status"] == "complete" for r in results.values())
  for (variant, seed), run in runs.items():
    config = json.loads((run / "config.json").read_text())
    assert (config["seed"], config["model"]["activation"]) == (seed, variant)
    assert config["optimizer"]["learning_rate"] == (rate if variant == "relu" else 0.02)
    assert f"finished {variant} seed {seed} in" in first.stdout
    log = (run / "train.log").read_text()
    assert "[cnnjax sweep] exit 0 after" in log
    # Plain lines: progress and each evaluation on its own, no carriage returns.
    assert "\r" not in log and "\ntrain step " in log and "\nstep 8: eval/loss=" in log, log

  with (workdir / "summary.csv").open() as file:
    rows = {row["variant"]: row for row in csv.DictReader(file)}
  for variant in ("relu", "tanh"):
    errors = [results[variant, seed]["final_eval"]["eval/top1_error"] for seed in (0, 1)]
    assert rows[variant]["finished"] == "2"
    assert float(rows[variant]["final_eval_top1_error_mean"]) == pytest.approx(
        statistics.fmean(errors))
    assert float(rows[variant]["final_eval_top1_error_std"]) == pytest.approx(
        statistics.stdev(errors))
    assert int(rows[variant]["parameters"]) == results[variant, 0]["parameters"]
  data = json.loads((workdir / "sweep.json").read_text())
  assert {run["status"] for run in data["runs"]} == {"finished"}
  assert len(data["claims"]) == 2
  for claim in data["claims"]:  # Each verdict as its interval and the paper's size decide it.
    low, high = claim["effect_low"], claim["effect_high"]
    size = claim["ratio"] if claim["ratio"] is not None else claim["difference"] or 0.0
    assert claim["seeds_better"] == claim["seeds_worse"] == 2
    assert claim["verdict"] == ("reproduced" if low is not None and low > size else
                                "not reproduced" if high is not None and high < size else
                                "inconclusive"), claim
    if low is not None and high is not None:
      assert low <= claim["effect"] <= high
  markdown = (workdir / "summary.md").read_text()
  variants = markdown_rows(markdown.split("## Variants")[1])
  assert [(row["variant"], row["seeds finished"]) for row in variants] == [
      ("relu", "2 of 2"), ("tanh", "2 of 2")]
  assert markdown.count("Verdict: **") == 2
  assert (workdir / "curves.png").read_bytes()[:4] == b"\x89PNG"

  # Run again: everything is finished, nothing trains, the trials neither.
  runs.update({("trial", index): trial for index, trial in enumerate(trials)})
  metrics = {key: (run / "metrics.jsonl").read_bytes() for key, run in runs.items()}
  again = _sweep(workdir, digits_dir, "--seeds", "2", spec=f"{ABLATION}:tuned")
  assert again.returncode == 0, again.stderr[-3000:]
  assert "6 of 6 runs already finished: nothing to train" in again.stdout
  assert "started" not in again.stdout
  assert {key: (run / "metrics.jsonl").read_bytes() for key, run in runs.items()} == metrics

  # A variant that diverges fails (exit status 3, its reason reported); the
  # finished runs of seed 0 are not touched, and the sweep exits 1.
  failing = _sweep(workdir, digits_dir, "--seeds", "1", spec=f"{ABLATION}:tuned,diverge")
  assert failing.returncode == 1, failing.stdout + failing.stderr[-3000:]
  assert "seeds 0 to 0: 2 of 3 runs already finished; training 1" in failing.stdout
  assert "failed diverge seed 0 after" in failing.stdout
  assert "exit 3: cnnjax: training diverged at step" in failing.stdout
  markdown = (workdir / "summary.md").read_text()
  assert "- diverge seed 0: failed (exit 3): cnnjax: training diverged at step" in markdown
  variants = markdown_rows(markdown.split("## Variants")[1])
  finished = {row["variant"]: row["seeds finished"] for row in variants}
  assert (finished["relu"], finished["diverge"]) == ("1 of 1", "0 of 1 (1 failed)")
  assert {key: (run / "metrics.jsonl").read_bytes() for key, run in runs.items()} == metrics
