"""`cnnjax sweep` without training: the ablation vocabulary, planning and its
errors, the summary and verdicts read from hand-written run workdirs (the
documented results.json and metrics.jsonl formats), the plot, the lock and the
launch loop with stand-in processes. The real trainings are in
test_sweep_end_to_end.py."""

import csv
import json
import math
import os
import pathlib
import signal
import statistics
import subprocess
import sys
import threading
import time

import ml_collections
import numpy as np
import pytest
from helpers import LENET_DIGITS, ROOT, hold, markdown_rows, read_line
from sweep_fakes import make_run, reaching_at, write_reaching, write_run

from cnnjax import cli
from cnnjax.errors import UserError
from cnnjax.sweep import local as sweep_runs
from cnnjax.sweep import results as sweep_results
from cnnjax.sweep import summary as sweep_summary
from cnnjax.sweep.spec import Claim, Run, Sweep, Variant, command_line_text, plan_runs
from cnnjax.workdir import run_log

ABLATION = str(ROOT / "tests" / "sweep_lenet_digits.py")


# --- The vocabulary -----------------------------------------------------------

@pytest.mark.parametrize("value, text", [
    (True, "true"), (False, "false"), (3, "3"), (0.1, "0.1"), (1e-4, "0.0001"),
    ("relu", "relu"), ("1", "'1'"), ("true", "'true'"), ((1, 2), "(1, 2)"),
    (("a", "b"), "('a', 'b')"), ((), "()"),
])
def test_values_round_trip_through_the_command_line(value, text):
  from cnnjax.config import parse_value

  assert command_line_text(value, "key") == text
  assert parse_value(text) == value and type(parse_value(text)) is type(value)


@pytest.mark.parametrize("value", [None, {"a": 1}, math.nan, "two\nlines", object()])
def test_values_that_cannot_be_written_are_refused(value):
  with pytest.raises(UserError, match="key=.* cannot be given on a command line"):
    command_line_text(value, "key")


@pytest.mark.parametrize("make, message", [
    (lambda: Variant("../up"), "cannot be a directory name"),
    (lambda: Variant("a b"), "cannot be a directory name"),
    (lambda: Variant(""), "cannot be a directory name"),
    (lambda: Variant("x" * 65), "cannot be a directory name"),
    (lambda: Variant("v", {"seed": 1}), "seeds are the sweep's"),
    (lambda: Variant("v", {"model.activation": {"a": 1}}), "model.activation={'a': 1} cannot be"),
    (lambda: Sweep([Variant("a")]), "at least two variants"),
    (lambda: Sweep([Variant("a"), Variant("a")]), "repeated: a"),
    (lambda: Sweep([Variant("a"), Variant("b")], target_train_error=25),
     "target_train_error=25 must be in"),
    (lambda: Claim("t", "c", "speed", "a", "b"), "unknown metric 'speed'"),
    (lambda: Claim("t", "c", "final eval/top1_error", "a", "a"), "with itself"),
    (lambda: Claim("t", "c", "final eval/top1_error", "a", "b", ratio=2, difference=0.1),
     "both a ratio and a difference"),
    (lambda: Claim("t", "c", "train-test gap", "a", "b", ratio=2), "a ratio must be positive"),
    (lambda: Sweep([Variant("a"), Variant("b")],
                   [Claim("t", "c", "final eval/top1_error", "a", "z")]), "no variant 'z'"),
    (lambda: Sweep([Variant("a"), Variant("b")], [Claim("t", "c", "epochs_to_target", "a", "b")]),
     "set the sweep's target_train_error"),
])
def test_the_vocabulary_refuses_what_cannot_run(make, message):
  with pytest.raises(UserError, match=message):
    make()


def test_the_sweep_module_imports_neither_jax_nor_tensorflow():
  """So `cnnjax sweep --help` and argument errors answer at once."""
  probe = ("import sys, cnnjax.cli, cnnjax.sweep, cnnjax.sweep.summary, cnnjax.sweep.local; "
           "print(sorted(m for m in ('jax', 'tensorflow', 'matplotlib') if m in sys.modules))")
  out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT,
                       check=True, timeout=120).stdout
  assert out.strip() == "[]"


# --- Planning and the command line ---------------------------------------------

def test_runs_are_ordinary_train_commands_seed_by_seed(tmp_path):
  from cnnjax.sweep.spec import load_sweep

  sweep = load_sweep(ABLATION)
  runs = plan_runs(ABLATION, sweep, 2, [("optimizer.momentum", "0.5")], tmp_path)
  assert [run.name for run in runs] == ["relu seed 0", "tanh seed 0", "relu seed 1",
                                        "tanh seed 1"]
  tanh = runs[3]
  assert tanh.workdir == tmp_path / "tanh" / "seed1"
  assert tanh.command[1:] == [
      "-m", "cnnjax", "train", "--config", ABLATION, "--workdir", str(tmp_path / "tanh" / "seed1"),
      "--config.seed=1", "--config.model.activation=tanh", "--config.optimizer.momentum=0.5"]
  assert (tanh.config.seed, tanh.config.model.activation, tanh.config.optimizer.momentum) == (
      1, "tanh", 0.5)
  assert tanh.stored_config["model"]["activation"] == "tanh"


def _ablation_file(tmp_path, body: str) -> str:
  path = tmp_path / "ablation.py"
  path.write_text(f"from cnnjax import config as config_lib\n"
                  f"from cnnjax.sweep import Claim, Sweep, Variant\n"
                  f"def get_config(arg=None):\n  return config_lib.load({LENET_DIGITS!r})\n{body}")
  return str(path)


@pytest.mark.parametrize("arguments, message", [
    (["--seeds", "0"], "--seeds must be a positive integer or auto, got '0'"),
    (["--seeds", "two"], "--seeds must be a positive integer or auto, got 'two'"),
    (["--seeds", "3", "--max-seeds", "5"], "--max-seeds goes with --seeds auto"),
    (["--seeds", "auto", "--max-seeds", "1"],
     "--max-seeds must be an integer of at least 2, got '1'"),
    (["--jobs", "-1"], "--jobs must be a positive integer, got '-1'"),
    (["--config.model.activation=relu"], "--config.model.activation is what the sweep varies"),
    (["--config.seed=3"], "config.seed is the sweep's"),
    (["--config.no_such_key=1"], "unknown config key 'config.no_such_key'"),
    (["--config.batch_size=lots"], "config.batch_size must be int, got 'lots'"),
    (["--config.dataset.image_size=16"], "variant 'relu': lenet5 needs inputs of at least 32x32"),
])
def test_bad_input_is_one_line_exit_2_and_creates_nothing(arguments, message, tmp_path, capsys,
                                                          digits_dir):
  workdir = tmp_path / "sweep"
  code = cli.main(["sweep", "--config", ABLATION, "--workdir", str(workdir), *arguments,
                   f"--config.dataset.data_dir={digits_dir}"])
  error = capsys.readouterr().err.strip()
  assert code == 2
  assert len(error.splitlines()) == 1 and error.startswith("cnnjax: error: ")
  assert message in error
  assert not workdir.exists()


@pytest.mark.parametrize("body, message", [
    ("", "has no get_sweep(arg=None) function"),
    ("def get_sweep(arg=None):\n  return 1 / 0\n",
     "ablation.py' failed: ZeroDivisionError: division by zero (line 6)"),
    ("def get_sweep(arg=None):\n  return [Variant('a')]\n", "returned list, not a"),
    ("def get_sweep(arg=None):\n  return Sweep([Variant('a'), Variant('a')])\n",
     "ablation.py: variant names must be unique; repeated: a"),
    ("def get_sweep(arg=None):\n  return Sweep([Variant('ok'), Variant('no/pe')])\n",
     "'no/pe' cannot be a directory name"),
    ("def get_sweep(arg=None):\n  return Sweep([Variant('a', {'model.nope': 1}), "
     "Variant('b')])\n", "variant 'a': unknown config key 'config.model.nope'"),
])
def test_bad_ablation_files_are_one_line_exit_2(body, message, tmp_path, capsys):
  code = cli.main(["sweep", "--config", _ablation_file(tmp_path, body),
                   "--workdir", str(tmp_path / "sweep")])
  error = capsys.readouterr().err.strip()
  assert code == 2 and len(error.splitlines()) == 1 and message in error


def test_a_second_sweep_on_the_same_directory_is_refused_naming_the_owner(tmp_path, capsys):
  holder = hold(tmp_path, "sweep")
  try:
    code = cli.main(["sweep", "--config", ABLATION, "--workdir", str(tmp_path)])
    assert code == 2
    assert f"in use by `cnnjax sweep` (process {holder.pid} on " in capsys.readouterr().err
  finally:
    holder.kill()
    holder.wait(timeout=30)


@pytest.mark.parametrize("cpus, jobs, groups", [
    ([0, 1], 1, [[0, 1]]), ([0, 1], 2, [[0], [1]]), ([0, 1], 3, [[0], [1], [0]]),
    ([0, 1, 2, 3, 4], 2, [[0, 1, 2], [3, 4]]), ([4, 6, 8, 9], 4, [[4], [6], [8], [9]]),
])
def test_cores_are_split_into_near_equal_groups(cpus, jobs, groups):
  assert sweep_runs.cpu_groups(cpus, jobs) == groups


GPUS = [str(gpu) for gpu in range(8)]


@pytest.mark.parametrize("per_run, cpus, gpus, chips, expected", [
    (2, [0, 1, 2, 3], GPUS, [], [([0], "0,1"), ([1], "2,3"), ([2], "4,5"), ([3], "6,7")]),
    (3, [0, 1], GPUS, [], [([0], "0,1,2"), ([1], "3,4,5")]),  # 6 of 8 used: 8 // 3 at once.
    (8, [0, 1], GPUS, [], [([0, 1], ",".join(GPUS))]),
    (2, [0, 1], ["3", "5", "6", "7"], [], [([0], "3,5"), ([1], "6,7")]),  # Already restricted.
])
def test_each_training_sees_its_own_gpus(per_run, cpus, gpus, chips, expected):
  slots = sweep_runs.device_slots(per_run, cpus, gpus, chips)
  assert [(slot.cpus, slot.environment) for slot in slots] == [
      (cores, {"CUDA_VISIBLE_DEVICES": devices}) for cores, devices in expected]


def test_visible_gpus_come_from_cuda_visible_devices_when_it_is_set():
  assert sweep_runs.visible_gpus({"CUDA_VISIBLE_DEVICES": "3, 5,6"}) == ["3", "5", "6"]


def test_each_training_sees_its_own_tpu_chip_and_cpu_devices():
  slots = sweep_runs.device_slots(1, [0, 1], [], ["0", "1", "2", "3"])
  assert [slot.environment["TPU_VISIBLE_CHIPS"] for slot in slots] == ["0", "1", "2", "3"]
  assert len({slot.environment["TPU_PROCESS_PORT"] for slot in slots}) == 4
  assert all(slot.environment["TPU_CHIPS_PER_PROCESS_BOUNDS"] == "1,1,1" for slot in slots)
  slots = sweep_runs.device_slots(2, [0, 1, 2, 3, 4], [], [], {"XLA_FLAGS": "--a "
                                  "--xla_force_host_platform_device_count=4"})
  assert [(slot.cpus, slot.environment) for slot in slots] == [
      ([0, 1], {"XLA_FLAGS": "--a --xla_force_host_platform_device_count=2"}),
      ([2, 3], {"XLA_FLAGS": "--a --xla_force_host_platform_device_count=2"})]


@pytest.mark.parametrize("per_run, gpus, chips, message", [
    (9, GPUS, [], "--devices-per-run 9: this machine has 8 GPUs"),
    (2, [], ["0", "1"], "only 1 chip per training"),
    (3, [], [], "--devices-per-run 3: this machine has 2 CPU cores"),
])
def test_devices_per_run_the_machine_cannot_give_is_a_user_error(per_run, gpus, chips, message):
  with pytest.raises(UserError, match=message):
    sweep_runs.device_slots(per_run, [0, 1], gpus, chips)


SHOW_DEVICES = ("import os; print('gpus', os.environ['CUDA_VISIBLE_DEVICES'], 'cpus', "
                "sorted(os.sched_getaffinity(0)))")


def test_the_device_sets_reach_the_trainings(tmp_path):
  """Two trainings at once with one GPU each (no GPU needed: each prints what it was given)."""
  runs = [ShowDevicesRun(f"r{index}", 0, "x.py", tmp_path / f"r{index}", (),
                         ml_collections.ConfigDict()) for index in range(2)]
  slots = sweep_runs.device_slots(1, sorted(os.sched_getaffinity(0)), ["4", "6"], [])
  progress = Lines()
  sweep_runs._train(list(runs), slots, dict(os.environ), [], progress, lambda _: None, None)
  printed = {run_log.last_attempt(run.workdir / "train.log")[1] for run in runs}
  assert printed == {f"gpus {gpu} cpus {slot.cpus}" for gpu, slot in zip("46", slots)}
  assert any("with CUDA_VISIBLE_DEVICES=4" in line for line in progress.lines)


# --- Reading runs back ---------------------------------------------------------

def _log(run: Run, text: str) -> None:
  run.workdir.mkdir(parents=True, exist_ok=True)
  (run.workdir / "train.log").write_text(text)


def test_the_status_of_each_run_comes_from_its_files(tmp_path):
  finished, stale, failed, stopped, killed, started, missing, short, silent = (
      make_run(tmp_path, name, 0) for name in ("finished", "stale", "failed", "stopped", "killed",
                                               "started", "missing", "short", "silent"))
  write_run(finished, [0.9, 0.5], [0.4])
  write_run(stale, [0.9, 0.5], [0.4], config={"seed": 0, "name": "other"})
  _log(failed, f"{run_log.LOG_START} ...\ntrain: 10%\rtrain: 20%\r\ncnnjax: training "
               f"diverged at step 4\n{run_log.LOG_EXIT} 3 after 9.0 s\n")
  _log(stopped, f"{run_log.LOG_START} ...\ncnnjax: preempted: saved step 4\n"
                f"{run_log.LOG_EXIT} 75 after 9.0 s\n")
  _log(killed, f"{run_log.LOG_START} ...\n{run_log.LOG_EXIT} -15 after 0.1 s, "
               f"{run_log.STOPPED_BY_SWEEP} on SIGTERM\n")  # Before its handler was set.
  _log(started, f"{run_log.LOG_START} ...\nold\n{run_log.LOG_EXIT} 1 after 1 s\n"
                f"{run_log.LOG_START} ...\nresuming from the checkpoint at step 4\n")
  write_run(short, [0.9, 0.5], [0.4])
  results = json.loads((short.workdir / "results.json").read_text())
  (short.workdir / "results.json").write_text(json.dumps({**results, "total_steps": 10}))
  write_run(silent, [0.9], [0.5], results=False)
  _log(silent, f"{run_log.LOG_START} ...\n{run_log.LOG_EXIT} 0 after 5 s\n")

  read = lambda run, **kw: sweep_results.read_run(run, 0.6, **kw)
  assert read(finished).status == "finished"
  assert read(finished, running=True).status == "running"
  assert read(stale).status == "stale"
  assert (read(failed).status, read(failed).exit_status, read(failed).reason) == (
      "failed", 3, "cnnjax: training diverged at step 4")
  assert (read(stopped).status, read(stopped).exit_status) == ("stopped", 75)
  assert (read(killed).status, read(killed).exit_status) == ("stopped", -15)
  assert (read(started).status, read(started).reason) == (
      "incomplete", "resuming from the checkpoint at step 4")
  assert read(short).status == "incomplete"  # Its results are not of its last step.
  assert read(missing).status == "missing"
  assert (read(silent).status, read(silent).reason) == ("failed",
                                                        "exited 0 without writing results.json")


def test_epochs_to_target_is_the_first_training_record_at_or_below_it():
  records = [{"step": 2, "epoch": 0.2, "train/top1_error": 0.9},
             {"step": 2, "epoch": 0.2, "eval/top1_error": 0.1},  # Eval records do not count.
             {"step": 4, "epoch": 0.4, "train/top1_error": "nan"},
             {"step": 6, "epoch": 0.6, "train/top1_error": 0.25},
             {"step": 8, "epoch": 0.8, "train/top1_error": 0.1}]
  assert sweep_results.epochs_to_target(records, 0.25) == 0.6
  assert sweep_results.epochs_to_target(records, 0.3) == 0.6
  assert sweep_results.epochs_to_target(records, 0.05) is None


# --- Verdicts -------------------------------------------------------------------

def _summary(tmp_path, claim: Claim, better: list, worse: list, target=0.5):
  """Runs of `better` and `worse`, each seed given by the train error it logs
  at every record (constant curves: one number fixes epochs to target)."""
  runs = []
  for variant, seeds in ((claim.better, better), (claim.worse, worse)):
    for seed, train_errors in enumerate(seeds):
      run = make_run(tmp_path, variant, seed)
      write_run(run, train_errors, [train_errors[-1]] * (len(train_errors) // 5))
      runs.append(run)
  sweep = Sweep([Variant(claim.better), Variant(claim.worse)], [claim], target)
  return sweep_summary.summarize(sweep, runs, "ablation.py")


def _epochs_claim(**prediction) -> Claim:
  return Claim("faster", "paper", "epochs_to_target", "relu", "tanh", **prediction)


FAST, SLOW = (0.4, 0.6, 0.4), (2.8, 3.2, 3.0)


@pytest.mark.parametrize("better_epochs, worse_epochs, prediction, verdict", [
    # Ratio of geometric means 6.54x, 95% interval 3.85x to 11.12x (on log epochs).
    (FAST, SLOW, dict(ratio=3.0), "reproduced"),
    (FAST, SLOW, dict(ratio=6.0), "inconclusive"),
    (FAST, SLOW, dict(ratio=20.0), "not reproduced"),
    (FAST, (0.8, 1.2, 1.0), dict(ratio=6.0), "not reproduced"),  # 1.31x to 3.55x.
    (FAST, (0.6, 0.8, 0.4), dict(), "inconclusive"),  # -0.28 to +0.54 epochs: holds 0.
    (SLOW, FAST, dict(), "not reproduced"),  # -2.94 to -2.12 epochs: the opposite.
    (FAST, SLOW, dict(difference=2.0), "reproduced"),  # +2.12 to +2.94 epochs.
    ((0.4,), (2.8, 3.2), dict(), "inconclusive"),  # One seed.
    ((None, None, None), FAST, dict(ratio=6.0), "not reproduced"),  # At most 0.20x.
    ((None, 0.4, 0.4), FAST, dict(ratio=6.0), "inconclusive"),  # At most 12.68x: holds 6.
    ((0.4, 0.4, 0.4), (None, None, None), dict(ratio=6.0), "reproduced"),  # At least 10x.
    ((None, 0.4, 0.4), (None, 0.6, 0.4), dict(ratio=2.0), "inconclusive"),  # Open both ways.
])
def test_the_verdict_rule(tmp_path, better_epochs, worse_epochs, prediction, verdict):
  summary = _summary(tmp_path, _epochs_claim(**prediction),
                     [reaching_at(e) for e in better_epochs],
                     [reaching_at(e) for e in worse_epochs])
  assert summary.claims[0].verdict == verdict, summary.claims[0].reason


def test_a_variant_that_never_reached_the_target_bounds_the_effect_from_below(tmp_path):
  """tanh never reaches it in 4 epochs: counted as 4, relu (0.4, 0.6, 0.4)
  is at least 8.74x faster (geometric means), with an interval from 4.88x open
  above, which settles a prediction of 4x but not one of 6x; and more seeds
  cannot settle one of 20x while tanh misses."""
  never = reaching_at(None)
  for ratio, verdict in ((4.0, "reproduced"), (6.0, "inconclusive"), (20.0, "inconclusive")):
    summary = _summary(tmp_path, _epochs_claim(ratio=ratio), [reaching_at(e) for e in FAST],
                       [never] * 3)
    result = summary.claims[0]
    assert result.verdict == verdict, result.reason
    assert (result.effect, result.effect_low, result.effect_high) == (
        pytest.approx(8.7358, abs=1e-4), pytest.approx(4.8837, abs=1e-4), None)
    assert (result.censored_better, result.censored_worse) == (0, 3)
    assert "tanh did not reach 50.00% in 4 epochs (0 of 3 seeds)" in result.measured
    assert "relu at least 8.74x faster" in result.effect_text
    assert result.reason.endswith("tanh missed the target in 3 of 3 seeds: each such seed "
                                  "counts as the epochs it ran, so the interval is open above")
    if ratio == 6.0:
      assert result.seeds_to_settle == 6 and "about 6 seeds per variant would likely" in (
          result.reason)
    if ratio == 20.0:
      assert result.seeds_to_settle is None and "longer runs could" in result.reason


def test_a_negative_difference_is_a_margin_no_worse_than(tmp_path):
  """Strided within 0.5 points of pooling: holds for 10.0% vs 10.2%, not for 12% vs 10%."""
  claim = Claim("no loss", "paper", "final eval/top1_error", "strided", "pooling",
                difference=-0.005)
  for strided, verdict in (((0.100, 0.101, 0.102), "reproduced"),
                           ((0.119, 0.121, 0.120), "not reproduced")):
    summary = _summary(tmp_path, claim, [[0.5] * 4 + [e] for e in strided],
                       [[0.5] * 4 + [e] for e in (0.101, 0.103, 0.102)])
    assert summary.claims[0].verdict == verdict, summary.claims[0].reason


# --- Outputs ---------------------------------------------------------------------

def test_curves_of_runs_with_one_evaluation_draw_their_points(tmp_path, monkeypatch):
  """A smoke sweep evaluates each run once: a line of one point draws nothing,
  so a lone evaluation is a marker; the legend counts "1 seed"."""
  from cnnjax.sweep import plot as sweep_plot

  runs = []
  for variant, error in (("relu", 0.3), ("tanh", 0.5)):
    run = make_run(tmp_path, variant, 0)
    write_run(run, [error] * 5, [error])
    runs.append(run)
  claim = Claim("faster", "paper", "epochs_to_target", "relu", "tanh", ratio=2.0)
  summary = sweep_summary.summarize(Sweep([Variant("relu"), Variant("tanh")], [claim], 0.5), runs,
                                    "ablation.py")
  figures = []
  monkeypatch.setattr(sweep_plot.pyplot, "close", figures.append)
  sweep_plot.plot_curves(summary, tmp_path / "curves.png")
  train_axes, eval_axes = figures[0].axes
  drawn = [(line.get_label(), line.get_marker(), len(line.get_xdata()))
           for line in eval_axes.get_lines()]
  assert drawn == [("relu (1 seed)", "o", 1), ("tanh (1 seed)", "o", 1)]
  assert [line.get_marker() for line in train_axes.get_lines()][:2] == ["o", "o"]  # 5 points.


def test_outputs_agree_with_the_runs_and_keep_every_column(tmp_path):
  """relu reaches 0.5 at 0.4, 0.6, 0.4 epochs; tanh at 2.8, never (4 epochs
  run), 3.0: the ratio's interval is open above, its low end Welch's on the
  logs with tanh's miss counted as 4 (checked against SciPy's own Welch test)."""
  from scipy import stats

  claim = Claim("ReLU is faster", "AlexNet §3.1", "epochs_to_target", "relu", "tanh", ratio=2.0)
  summary = _summary(tmp_path, claim, [reaching_at(e) for e in (0.4, 0.6, 0.4)],
                     [reaching_at(2.8), reaching_at(None), reaching_at(3.0)])
  sweep_summary.write(summary, tmp_path)

  with (tmp_path / "summary.csv").open() as file:
    rows = list(csv.DictReader(file))
  assert tuple(rows[0]) == sweep_summary.CSV_FIELDS
  relu, tanh = rows
  assert float(relu["epochs_to_target_mean"]) == pytest.approx(1.4 / 3)
  assert float(relu["epochs_to_target_std"]) == pytest.approx(0.2 / math.sqrt(3))
  assert (tanh["epochs_to_target_reached"], tanh["epochs_to_target_std"]) == (
      "2", str(statistics.stdev([2.8, 3.0])))
  assert float(tanh["final_eval_top1_error_mean"]) == pytest.approx((0.4 + 0.9 + 0.4) / 3)
  assert (relu["finished"], relu["parameters"], relu["train_time_s_mean"], relu["tuned"]) == (
      "3", "61706", "12.5", "")

  welch = stats.ttest_ind(np.log([2.8, 4.0, 3.0]), np.log([0.4, 0.6, 0.4]), equal_var=False)
  low = math.exp(welch.confidence_interval(0.95).low)
  with (tmp_path / "claims.csv").open() as file:
    (row,) = csv.DictReader(file)
  assert tuple(row) == sweep_summary.CLAIM_FIELDS
  assert float(row["effect_low"]) == pytest.approx(low) and row["effect_high"] == ""
  assert float(row["effect"]) == pytest.approx((2.8 * 4.0 * 3.0 / (0.4 * 0.6 * 0.4)) ** (1 / 3))
  assert (row["level"], row["seeds_better"], row["seeds_worse"], row["censored_worse"],
          row["verdict"]) == ("0.95", "3", "3", "1", "reproduced")

  markdown = (tmp_path / "summary.md").read_text()
  _, tanh = markdown_rows(markdown)
  assert list(tanh.values())[:3] == ["tanh", "3 of 3", "56.67 ± 28.87%"]
  assert tanh["epochs to 50.00% train error"] == "2.90 ± 0.14 (2 of 3 reached)"
  assert (f"Effect: relu at least 7.05x faster (ratio of geometric means); 95% Welch's t "
          f"interval on log values: {low:.2f}x and above; 3 and 3 seeds.") in markdown
  assert (f"Verdict: **reproduced**: the 95% interval, {low:.2f}x and above, lies beyond the "
          "paper's 2.00x; tanh missed the target in 1 of 3 seeds") in markdown

  data = json.loads((tmp_path / "sweep.json").read_text())
  assert [run["status"] for run in data["runs"]] == ["finished"] * 6
  assert data["claims"][0]["verdict"] == "reproduced" and data["level"] == 0.95
  assert data["claims"][0]["effect_low"] == pytest.approx(low)
  assert data["variants"][1]["epochs_to_target_reached"] == 2
  assert data["compute"] == {"train_time_s": 75.0, "tuning_train_time_s": 0.0,
                             "wall_time_s": None}
  assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  assert not list(tmp_path.glob(".*.tmp"))


# --- The launch loop ----------------------------------------------------------------

# A stand-in for `cnnjax train`: prints, then waits to be stopped as the trainer
# is (SIGTERM: exit 75) or exits with the status it is given.
STAND_IN = """
import signal, sys, time
signal.signal(signal.SIGTERM, lambda *_: (print("preempted: saved", flush=True), sys.exit(75)))
print("working", flush=True)
status = int(sys.argv[1])
time.sleep(60 if status < 0 else 0.1)
print("cnnjax: error: stand-in failure" if status else "done", flush=True)
sys.exit(status)
"""


class StandInRun(Run):
  @property
  def command(self):
    return [sys.executable, "-c", STAND_IN, self.arguments[0][1]]


class ShowDevicesRun(Run):
  @property
  def command(self):
    return [sys.executable, "-c", SHOW_DEVICES]


class Lines:
  def __init__(self):
    self.lines = []

  def line(self, text):
    self.lines.append(text)

  def advance(self):
    pass


def test_a_failure_is_reported_and_the_others_still_run(tmp_path):
  runs = [StandInRun(name, 0, "x.py", tmp_path / name, (("status", status),),
                     ml_collections.ConfigDict())
          for name, status in (("ok", "0"), ("bad", "4"), ("also_ok", "0"))]
  progress = Lines()
  failed, stopped = sweep_runs._train(list(runs), [sweep_runs.Slot([0])], dict(os.environ), [],
                                      progress, lambda _: None, None)
  assert (failed, stopped) == (3, 0)  # "ok" wrote no results.json: failed too.
  assert "failed bad seed 0 after" in progress.lines[3]
  assert progress.lines[3].endswith("exit 4: cnnjax: error: stand-in failure")
  assert run_log.last_attempt(tmp_path / "bad" / "train.log") == (
      4, "cnnjax: error: stand-in failure", False)


def test_sigterm_is_forwarded_to_the_running_trainings_and_nothing_new_starts(tmp_path):
  runs = [StandInRun(f"wait{i}", 0, "x.py", tmp_path / f"wait{i}", (("status", "-1"),),
                     ml_collections.ConfigDict())
          for i in range(3)]
  progress = Lines()
  # Once both trainings have printed, the sweep itself gets SIGTERM.
  logs = [run.workdir / "train.log" for run in runs[:2]]
  def stop_when_working():
    # "working" on a line of its own: the log's first line, the command, holds the word too.
    # Bounded: SIGTERM comes anyway after a minute, and the assertions below say what was missing.
    deadline = time.monotonic() + 60
    while not all(log.exists() and "\nworking\n" in log.read_text() for log in logs):
      if time.monotonic() > deadline:
        break
      threading.Event().wait(0.1)
    os.kill(os.getpid(), signal.SIGTERM)
  threading.Thread(target=stop_when_working, daemon=True).start()
  before = signal.getsignal(signal.SIGTERM)
  with sweep_runs.noting_signals() as signals:
    failed, stopped = sweep_runs._train(list(runs), [sweep_runs.Slot([0])] * 2, dict(os.environ),
                                        signals, progress, lambda _: None, None)
  assert signals == [signal.SIGTERM]
  assert (failed, stopped) == (0, 2)
  assert not runs[2].workdir.exists()  # Never started.
  for log in logs:
    assert run_log.last_attempt(log) == (75, "preempted: saved", True)
  assert signal.getsignal(signal.SIGTERM) is before  # The previous handler is back.


def test_summarize_rebuilds_the_outputs_from_what_exists_even_while_a_sweep_runs(
    tmp_path, capsys):
  from cnnjax.sweep.spec import load_sweep

  workdir = tmp_path / "sweep"
  runs = plan_runs(ABLATION, load_sweep(ABLATION), 2, [], workdir)
  for run in runs[:3]:  # relu and tanh of seed 0, relu of seed 1.
    write_run(run, [0.9, 0.7, 0.5, 0.4, 0.3], [0.3])
  holder = hold(workdir, "sweep")  # A sweep holds DIR: summarizing is still allowed.
  try:
    assert cli.main(["sweep", "--config", ABLATION, "--workdir", str(workdir), "--seeds", "2",
                     "--summarize"]) == 0
  finally:
    holder.kill()
    holder.wait(timeout=30)
  assert "summary of" in capsys.readouterr().out
  data = json.loads((workdir / "sweep.json").read_text())
  assert [run["status"] for run in data["runs"]] == ["finished"] * 3 + ["missing"]
  assert [v["finished"] for v in data["variants"]] == [2, 1]
  assert data["runs"][0]["epochs_to_target"] == 0.4  # 0.7 at step 4, the first <= 0.8.
  assert "- tanh seed 1: missing" in (workdir / "summary.md").read_text()
  assert cli.main(["sweep", "--config", ABLATION, "--workdir", str(tmp_path / "none"),
                   "--summarize"]) == 2


def test_a_training_dies_with_its_sweep_however_the_sweep_dies(tmp_path):
  """SIGKILL of the sweep leaves no training running and owning its workdir."""
  sweep = ("import subprocess, sys, time\nfrom cnnjax.sweep import local as sweep_runs\n"
           "child = subprocess.Popen(sweep_runs.guarded([sys.executable, '-c', "
           "'import time; time.sleep(600)']))\n"
           "print(child.pid, flush=True)\ntime.sleep(600)\n")
  parent = subprocess.Popen([sys.executable, "-c", sweep], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
  try:
    child = int(read_line(parent))
    deadline = time.monotonic() + 30
    while "PDEATHSIG" in pathlib.Path(f"/proc/{child}/cmdline").read_text():
      assert time.monotonic() < deadline, "the guard never became the training"
      time.sleep(0.05)
  finally:
    parent.kill()
    parent.wait(timeout=30)
  deadline = time.monotonic() + 30
  while _alive(child):
    assert time.monotonic() < deadline, "the training outlived its sweep"
    time.sleep(0.1)


def _alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  with open(f"/proc/{pid}/stat") as stat:  # A zombie is dead, only not yet reaped.
    return stat.read().split(")")[-1].split()[0] != "Z"


def test_a_slurm_sweep_where_slurm_does_not_answer_is_one_line_and_creates_nothing(tmp_path):
  """SLURM's clients told to read a configuration that is not there: one line
  at once (the clients themselves take a minute to fail), before DIR exists."""
  env = {**os.environ, "SLURM_CONF": str(tmp_path / "no-such-slurm.conf")}
  done = subprocess.run([sys.executable, "-m", "cnnjax", "sweep", "--config",
                         str(ROOT / "tests" / "sweep_lenet_digits.py"), "--workdir",
                         str(tmp_path / "sweep"), "--launcher", "slurm"],
                        capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
  assert done.returncode == 2, done.stderr
  assert done.stderr.startswith("cnnjax: error: ") and len(done.stderr.splitlines()) == 1
  assert f"SLURM_CONF={tmp_path / 'no-such-slurm.conf'} is not a file" in done.stderr
  assert not (tmp_path / "sweep").exists()


def test_a_slurm_sweep_whose_squeue_fails_is_one_line_and_creates_nothing(tmp_path):
  """A scheduler that does not answer (here clients that fail as SLURM's do
  without a controller): squeue's own words in one line, before DIR exists."""
  clients = tmp_path / "bin"
  clients.mkdir()
  for name in ("sbatch", "scontrol", "squeue"):
    (clients / name).write_text("#!/bin/sh\necho 'squeue: error: Unable to contact slurm "
                                "controller (connect failure)' >&2\nexit 1\n")
    (clients / name).chmod(0o755)
  env = {**os.environ, "PATH": f"{clients}:{os.environ['PATH']}"}
  env.pop("SLURM_CONF", None)
  done = subprocess.run([sys.executable, "-m", "cnnjax", "sweep", "--config",
                         str(ROOT / "tests" / "sweep_lenet_digits.py"), "--workdir",
                         str(tmp_path / "sweep"), "--launcher", "slurm"],
                        capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
  assert done.returncode == 2, done.stderr
  assert done.stderr == ("cnnjax: error: SLURM's squeue failed (is this a machine that submits "
                         "SLURM jobs?): squeue: error: Unable to contact slurm controller "
                         "(connect failure)\n"), done.stderr
  assert not (tmp_path / "sweep").exists()


def test_a_run_that_ends_while_slurms_queue_is_read_is_not_submitted_again(tmp_path,
                                                                          monkeypatch):
  """The sweep reads its runs' workdirs, then squeue: a run that finished in
  between is in neither as pending, and was submitted again (seen once in the
  SLURM sweep test). The launcher reads the workdirs again after the queue."""
  from cnnjax.sweep import slurm

  ended, unstarted = make_run(tmp_path, "relu", 0), make_run(tmp_path, "relu", 1)
  write_reaching(ended, 1.0)  # Finished after the caller found it pending.
  monkeypatch.setattr(slurm, "active", lambda workdir: {})  # The queue no longer has it.
  submitted, said, running = [], [], []
  monkeypatch.setattr(slurm.SlurmLauncher, "_submit",
                      lambda self, runs: submitted.extend(runs) or "7")
  launcher = slurm.SlurmLauncher(tmp_path, slurm.Options(), say=said.append)
  launcher.launch([ended, unstarted], running.append)
  assert submitted == [unstarted]
  assert said[0] == "relu seed 0: ended while the sweep read the queue; not submitted again"
  assert running == [frozenset({"relu seed 1"})]


@pytest.mark.parametrize("flags, message", [
    (["--slurm.time", "1:00:00"], "--slurm.time goes with --launcher slurm"),
    (["--jobs", "2", "--devices-per-run", "1"], "--jobs and --devices-per-run both"),
    (["--status", "x"], "--status DIR takes no --config or --workdir"),
])
def test_launcher_flags_that_do_not_go_together_are_user_errors(flags, message, tmp_path,
                                                                 capsys):
  code = cli.main(["sweep", "--config", str(ROOT / "tests" / "sweep_lenet_digits.py"),
                   "--workdir", str(tmp_path / "sweep"), *flags])
  assert code == 2
  assert message in capsys.readouterr().err
  assert not (tmp_path / "sweep").exists()
