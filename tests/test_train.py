"""End to end: train, write the workdir, resume, evaluate."""

import json

import jax
import numpy as np
import pytest
from helpers import tiny_config

from cnnjax import metrics as metrics_lib
from cnnjax import steps, train
from cnnjax.checkpoint import Checkpointer

REQUIRED_METRICS = {"train/loss", "train/top1_error", "train/learning_rate",
                    "train/images_per_sec", "eval/loss", "eval/top1_error", "eval/top5_error"}


def _params_at(workdir, step, plan):
  """The parameters of the checkpoint at `step`."""
  checkpointer = Checkpointer(workdir / "checkpoints", keep=10)
  template = jax.device_get(steps.create_train_state(
      jax.random.key(0), plan.model, plan.optimizer, plan.image_shape))
  state = checkpointer.restore(step, template)
  checkpointer.close()
  return state


def test_train_writes_the_workdir_contract(digits_dir, tmp_path):
  plan = train.plan(tiny_config(digits_dir))
  final = train.train_and_evaluate(plan, tmp_path)

  assert json.loads((tmp_path / "config.json").read_text())["model"]["name"] == "lenet5"
  assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
  assert Checkpointer(tmp_path / "checkpoints", keep=3).all_steps() == [3, 6]
  records = metrics_lib.read(tmp_path)
  assert REQUIRED_METRICS <= set().union(*records)
  assert [r["step"] for r in records if "train/loss" in r] == [2, 4, 6]
  assert [r["step"] for r in records if "eval/loss" in r] == [3, 6]
  assert 0 <= final["eval/top1_error"] <= final["eval/top5_error"] + 1


def test_resume_matches_an_uninterrupted_run(digits_dir, tmp_path):
  straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
  config = tiny_config(digits_dir, schedule__name="constant", optimizer__weight_decay=1e-3)
  train.train_and_evaluate(train.plan(config), straight)
  first_half = tiny_config(digits_dir, schedule__name="constant", optimizer__weight_decay=1e-3,
                           num_train_steps=3)
  train.train_and_evaluate(train.plan(first_half), interrupted)
  train.train_and_evaluate(train.plan(config), interrupted)  # Resumes at step 3.

  plan = train.plan(config)
  a, b = _params_at(straight, 6, plan), _params_at(interrupted, 6, plan)
  for x, y in zip(jax.tree.leaves((a.params, a.opt_state)),
                  jax.tree.leaves((b.params, b.opt_state))):
    np.testing.assert_array_equal(x, y)
  final_eval = lambda workdir: [r for r in metrics_lib.read(workdir) if "eval/loss" in r][-1]
  assert final_eval(straight) == final_eval(interrupted)


def test_a_finished_run_does_nothing_more(digits_dir, tmp_path, capsys):
  plan = train.plan(tiny_config(digits_dir))
  train.train_and_evaluate(plan, tmp_path)
  before = (tmp_path / "metrics.jsonl").read_text()
  assert train.train_and_evaluate(plan, tmp_path) == {}
  assert "training is complete: step 6 of 6" in capsys.readouterr().out
  assert (tmp_path / "metrics.jsonl").read_text() == before


def test_evaluate_latest_matches_the_final_eval(digits_dir, tmp_path):
  plan = train.plan(tiny_config(digits_dir))
  final = train.train_and_evaluate(plan, tmp_path)
  step, metrics = train.evaluate_latest(plan, tmp_path)
  assert step == 6
  assert metrics == pytest.approx(final)


def test_half_precision_computes_in_bfloat16_and_keeps_float32_parameters(digits_dir, tmp_path):
  plan = train.plan(tiny_config(digits_dir, half_precision=True, num_train_steps=2,
                                eval_every_steps=2, checkpoint_every_steps=2))
  assert plan.model.dtype == jax.numpy.bfloat16
  final = train.train_and_evaluate(plan, tmp_path)
  assert np.isfinite(final["eval/loss"])
  state = _params_at(tmp_path, 2, plan)
  assert {leaf.dtype for leaf in jax.tree.leaves(state.params)} == {np.dtype("float32")}
