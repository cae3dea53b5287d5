"""End to end: train, write the workdir, resume, evaluate."""

import json
import shutil

import jax
import numpy as np
import pytest
from helpers import tiny_config

from cnnjax.errors import UserError
from cnnjax.training import train
from cnnjax.workdir import metrics as metrics_lib
from cnnjax.workdir import ownership, results
from cnnjax.workdir.checkpoint import Checkpointer

REQUIRED_METRICS = {"train/loss", "train/top1_error", "train/learning_rate",
                    "train/images_per_sec", "eval/loss", "eval/top1_error", "eval/top5_error"}


def _params_at(workdir, step, plan):
  """The parameters of the checkpoint at `step`."""
  checkpointer = Checkpointer(workdir / "checkpoints", keep=10)
  state = checkpointer.restore(step, train.fresh_state(plan))
  checkpointer.close()
  return state


@pytest.fixture
def default_run(learned_digits):
  """The digits run that tests/test_learning.py shows learns (60 steps of 32)."""
  return learned_digits


def test_train_writes_the_workdir_contract(default_run):
  workdir, plan, final = default_run
  assert json.loads((workdir / "config.json").read_text())["model"]["name"] == "lenet5"
  assert list((workdir / "tensorboard").glob("events.out.tfevents.*"))
  assert Checkpointer(workdir / "checkpoints", keep=3).all_steps() == [30, 60]
  records = metrics_lib.read(workdir)
  assert REQUIRED_METRICS <= set().union(*records)
  assert [r["step"] for r in records if "train/loss" in r] == [20, 40, 60]
  assert [r["step"] for r in records if "eval/loss" in r] == [30, 60]
  # What it learnt is tests/test_learning.py's; here the errors' order: top-5 below top-1.
  assert 0 <= final["eval/top5_error"] < final["eval/top1_error"]
  steps_per_epoch = plan.steps_per_epoch
  assert all(r["epoch"] == r["step"] / steps_per_epoch for r in records)

  run = results.read(workdir)
  assert run["status"] == "complete" and run["step"] == run["total_steps"] == 60
  assert run["final_eval"] == [r for r in records if "eval/loss" in r][-1]
  assert run["best_eval"]["eval/top1_error"] == min(
      r["eval/top1_error"] for r in records if "eval/loss" in r)
  assert run["final_train"] == [r for r in records if "train/loss" in r][-1]
  assert run["parameters"] == 60_850 and run["global_batch"] == 32
  assert run["train_time_s"] > 0 and run["images_per_sec"] > 0
  assert not (workdir / ownership.OWNER_FILE).exists()  # Let go at the end.


def test_a_finished_run_does_nothing_more_and_a_shorter_one_changes_nothing(
    digits_dir, default_run, tmp_path, capsys):
  finished, plan, final = default_run
  workdir = tmp_path / "run"
  shutil.copytree(finished, workdir)
  files = {name: (workdir / name).read_text()
           for name in ("metrics.jsonl", "config.json", "results.json")}
  assert train.train_and_evaluate(plan, workdir) == final
  assert "training is complete: step 60 of 60" in capsys.readouterr().out

  shorter_config = plan.config.copy_and_resolve_references()
  shorter_config.num_train_steps = 4
  shorter = train.plan(shorter_config)
  with pytest.raises(UserError, match="already at step 60, past the 4 steps this config asks "
                                      "for; nothing was changed"):
    train.train_and_evaluate(shorter, workdir)
  assert {name: (workdir / name).read_text() for name in files} == files


def test_evaluate_checkpoint_matches_the_final_eval(default_run):
  workdir, plan, final = default_run
  step, metrics = train.evaluate_checkpoint(plan, workdir)
  assert step == 60
  assert metrics == pytest.approx(final)


def test_the_best_evaluation_is_kept_when_it_is_not_the_last(digits_dir, tmp_path):
  # A constant rate too large for LeNet-5: the first evaluation (step 1) is the
  # best of six; checkpoints are due only at the last step and only one is kept.
  config = tiny_config(digits_dir, optimizer__learning_rate=0.6, schedule__name="constant",
                       eval_every_steps=1, checkpoint_every_steps=6, keep_checkpoints=1)
  plan = train.plan(config)
  train.train_and_evaluate(plan, tmp_path)
  best = results.read(tmp_path)["best_eval"]
  assert best["step"] < 6, "the premise: this run's best evaluation is not its last"
  checkpointer = Checkpointer(tmp_path / "checkpoints", keep=1)
  assert checkpointer.all_steps() == [best["step"], 6]
  assert checkpointer.best_step() == best["step"]
  checkpointer.close()
  step, metrics = train.evaluate_checkpoint(plan, tmp_path, best=True)
  assert step == best["step"]
  assert metrics["eval/top1_error"] == pytest.approx(best["eval/top1_error"])
  assert metrics["eval/loss"] == pytest.approx(best["eval/loss"], rel=1e-5)


def test_half_precision_computes_in_bfloat16_and_keeps_float32_parameters(digits_dir, tmp_path):
  plan = train.plan(tiny_config(digits_dir, half_precision=True, num_train_steps=2,
                                eval_every_steps=2, checkpoint_every_steps=2))
  assert plan.model.dtype == jax.numpy.bfloat16
  final = train.train_and_evaluate(plan, tmp_path)
  assert np.isfinite(final["eval/loss"])
  state = _params_at(tmp_path, 2, plan)
  assert {leaf.dtype for leaf in jax.tree.leaves(state.params)} == {np.dtype("float32")}


def test_a_resumed_run_is_the_uninterrupted_one_on_any_device_count(digits_dir, tmp_path):
  """Stopped at step 4 and resumed on the same 4 devices: bitwise the run
  that was never stopped. The same run on 1 device gives the same losses, to
  float summation order, and the one stopped on 4 devices and resumed on 2
  ends where the 4-device run ends."""
  settings = dict(log_every_steps=1, eval_every_steps=4, checkpoint_every_steps=4,
                  schedule__name="constant", optimizer__weight_decay=1e-3,
                  dataset__train_preprocess="pad_crop_flip")
  config = tiny_config(digits_dir, num_train_steps=8, **settings)
  losses = lambda workdir: [r["train/loss"] for r in metrics_lib.read(workdir) if "train/loss" in r]
  four = train.plan(config)
  train.train_and_evaluate(four, tmp_path / "four")
  assert len(losses(tmp_path / "four")) == 8

  first_half = tiny_config(digits_dir, num_train_steps=4, **settings)
  train.train_and_evaluate(train.plan(first_half), tmp_path / "resumed")
  shutil.copytree(tmp_path / "resumed", tmp_path / "elastic")
  train.train_and_evaluate(train.plan(config), tmp_path / "resumed")  # Resumes at step 4.
  a, b = _params_at(tmp_path / "four", 8, four), _params_at(tmp_path / "resumed", 8, four)
  for x, y in zip(jax.tree.leaves((a.params, a.opt_state)),
                  jax.tree.leaves((b.params, b.opt_state)), strict=True):
    np.testing.assert_array_equal(x, y)
  final_eval = lambda workdir: [r for r in metrics_lib.read(workdir) if "eval/loss" in r][-1]
  assert final_eval(tmp_path / "resumed") == final_eval(tmp_path / "four")

  train.train_and_evaluate(train.plan(config, devices=jax.devices()[:1]), tmp_path / "one")
  np.testing.assert_allclose(losses(tmp_path / "one"), losses(tmp_path / "four"), rtol=1e-5)
  train.train_and_evaluate(train.plan(config, devices=jax.devices()[:2]), tmp_path / "elastic")
  np.testing.assert_allclose(losses(tmp_path / "elastic"), losses(tmp_path / "four"), rtol=1e-5)
  c = _params_at(tmp_path / "elastic", 8, four)
  for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(c.params), strict=True):
    np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-6)


def plateau_rates(learning_rate: float, errors: list[float], factor: float) -> list[float]:
  """The reference: the rate of each step after the first when every
  evaluation's error is watched with a patience of one evaluation (a
  reduction whenever it fails to improve by optax's relative 1e-4)."""
  best, scale, rates = float("inf"), 1.0, []
  for error in errors:
    if error < (1 - 1e-4) * best:
      best = error
    else:
      scale *= factor
    rates.append(learning_rate * scale)
  return rates


def test_evaluation_modes_moving_averages_and_the_evaluation_plateau_resume_exactly(
    digits_dir, tmp_path):
  """One run evaluating at every step in two modes, each also with the
  moving average, its rate following eval/top1_error with a patience of one
  evaluation; and the same run stopped at step 3 and resumed."""
  settings = dict(extra_evals=(("padded", "pad"),), ema_decay=0.5, schedule__name="plateau",
                  schedule__plateau_metric="eval/top1_error", schedule__decay_factor=0.5,
                  schedule__plateau_patience_epochs=0.01,  # round(0.01 * 93 steps) → 1 evaluation.
                  dataset__eval_split="test[:64]", log_every_steps=1, eval_every_steps=1,
                  checkpoint_every_steps=1, keep_checkpoints=10)
  straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
  config = tiny_config(digits_dir, **settings)
  plan = train.plan(config)
  final = train.train_and_evaluate(plan, straight)

  prefixes = ["eval", "eval_ema", "eval_padded", "eval_padded_ema"]
  modes = {f"{prefix}/{metric}" for prefix in prefixes
           for metric in ("loss", "top1_error", "top5_error")}
  records = metrics_lib.read(straight)
  evals = [r for r in records if "eval/loss" in r]
  assert [r["step"] for r in evals] == list(range(1, 7)) and all(modes <= set(r) for r in evals)
  assert set(final) == modes
  assert final["eval_padded/loss"] != final["eval/loss"]  # Another preprocessing.
  run = results.read(straight)
  assert list(run["evaluations"]) == prefixes
  for prefix in prefixes:
    mode = run["evaluations"][prefix]
    keys = {"step", "epoch"} | {key for key in modes if key.startswith(prefix + "/")}
    assert set(mode["final"]) == keys and mode["final"]["step"] == 6
    assert mode["best"][f"{prefix}/top1_error"] == min(r[f"{prefix}/top1_error"] for r in evals)
  assert run["final_eval"] == evals[-1]  # The existing keys stay as they were.
  step, metrics = train.evaluate_checkpoint(plan, straight)
  assert step == 6 and metrics == pytest.approx(final)

  # ema ← d·ema + (1 - d)·new at every step, parameters and BatchNorm statistics alike.
  before, after = _params_at(straight, 5, plan), _params_at(straight, 6, plan)
  for average, old, new in zip(jax.tree.leaves(after.ema["params"]),
                               jax.tree.leaves(before.ema["params"]),
                               jax.tree.leaves(after.params), strict=True):
    np.testing.assert_allclose(average, 0.5 * old + 0.5 * new, rtol=1e-5, atol=1e-7)
  assert not np.allclose(jax.tree.leaves(after.ema["params"])[0],
                         jax.tree.leaves(after.params)[0])

  rates = lambda workdir: [r["train/learning_rate"] for r in metrics_lib.read(workdir)
                           if "train/learning_rate" in r]
  errors = [r["eval/top1_error"] for r in evals]
  assert rates(straight) == pytest.approx(
      [config.optimizer.learning_rate] + plateau_rates(config.optimizer.learning_rate,
                                                       errors[:-1], 0.5))
  assert len(set(rates(straight))) > 1  # The schedule did reduce the rate.

  train.train_and_evaluate(train.plan(tiny_config(digits_dir, num_train_steps=3, **settings)),
                           interrupted)
  train.train_and_evaluate(train.plan(config), interrupted)
  assert rates(straight) == rates(interrupted)
  a, b = _params_at(straight, 6, plan), _params_at(interrupted, 6, plan)
  for x, y in zip(jax.tree.leaves((a.params, a.ema, a.opt_state)),
                  jax.tree.leaves((b.params, b.ema, b.opt_state)), strict=True):
    np.testing.assert_array_equal(x, y)


def test_a_checkpoint_without_moving_averages_starts_them_at_its_parameters(
    digits_dir, tmp_path, capsys):
  state = train.fresh_state(train.plan(tiny_config(digits_dir)))
  assert state.ema is None  # config.ema_decay = 0: no averages, the checkpoints of before.
  checkpointer = Checkpointer(tmp_path, keep=3)
  checkpointer.save(3, state)
  checkpointer.wait()
  template = state.replace(ema=jax.tree.map(np.zeros_like, {"params": state.params,
                                                           "batch_stats": state.batch_stats}))
  restored = train.restore(checkpointer, 3, template)
  checkpointer.close()
  for average, param in zip(jax.tree.leaves(restored.ema["params"]),
                            jax.tree.leaves(state.params), strict=True):
    np.testing.assert_array_equal(average, param)
  assert "has no moving averages" in capsys.readouterr().err
