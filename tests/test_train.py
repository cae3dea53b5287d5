"""End to end: train, write the workdir, resume, evaluate."""

import json

import jax
import numpy as np
import pytest
from helpers import tiny_config

from cnnjax import metrics as metrics_lib
from cnnjax import ownership, results, steps, train
from cnnjax.checkpoint import Checkpointer
from cnnjax.errors import UserError

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
  steps_per_epoch = plan.steps_per_epoch
  assert all(r["epoch"] == r["step"] / steps_per_epoch for r in records)

  run = results.read(tmp_path)
  assert run["status"] == "complete" and run["step"] == run["total_steps"] == 6
  assert run["final_eval"] == [r for r in records if "eval/loss" in r][-1]
  assert run["best_eval"]["eval/top1_error"] == min(
      r["eval/top1_error"] for r in records if "eval/loss" in r)
  assert run["final_train"] == [r for r in records if "train/loss" in r][-1]
  assert run["parameters"] == 60_850 and run["global_batch"] == 16
  assert run["train_time_s"] > 0 and run["images_per_sec"] > 0
  assert not (tmp_path / ownership.OWNER_FILE).exists()  # Let go at the end.


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


def test_a_finished_run_does_nothing_more_and_a_shorter_one_changes_nothing(
    digits_dir, tmp_path, capsys):
  plan = train.plan(tiny_config(digits_dir))
  final = train.train_and_evaluate(plan, tmp_path)
  files = {name: (tmp_path / name).read_text()
           for name in ("metrics.jsonl", "config.json", "results.json")}
  assert train.train_and_evaluate(plan, tmp_path) == final
  assert "training is complete: step 6 of 6" in capsys.readouterr().out

  shorter = train.plan(tiny_config(digits_dir, num_train_steps=4))
  with pytest.raises(UserError, match="already at step 6, past the 4 steps this config asks "
                                      "for; nothing was changed"):
    train.train_and_evaluate(shorter, tmp_path)
  assert {name: (tmp_path / name).read_text() for name in files} == files


def test_evaluate_checkpoint_matches_the_final_eval(digits_dir, tmp_path):
  plan = train.plan(tiny_config(digits_dir))
  final = train.train_and_evaluate(plan, tmp_path)
  step, metrics = train.evaluate_checkpoint(plan, tmp_path)
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


def test_the_device_count_changes_nothing_and_a_run_resumes_on_other_devices(
    digits_dir, tmp_path):
  """The same losses on 1 and 4 devices, to float summation order; and a run
  stopped on 4 devices and resumed on 2 ends where the 4-device run ends."""
  settings = dict(log_every_steps=1, eval_every_steps=4, checkpoint_every_steps=4,
                  schedule__name="constant", dataset__train_preprocess="pad_crop_flip")
  config = tiny_config(digits_dir, num_train_steps=8, **settings)
  losses = lambda workdir: [r["train/loss"] for r in metrics_lib.read(workdir) if "train/loss" in r]
  four = train.plan(config)
  train.train_and_evaluate(four, tmp_path / "four")
  train.train_and_evaluate(train.plan(config, devices=jax.devices()[:1]), tmp_path / "one")
  np.testing.assert_allclose(losses(tmp_path / "one"), losses(tmp_path / "four"), rtol=1e-5)
  assert len(losses(tmp_path / "four")) == 8

  first_half = tiny_config(digits_dir, num_train_steps=4, **settings)
  train.train_and_evaluate(train.plan(first_half), tmp_path / "elastic")
  train.train_and_evaluate(train.plan(config, devices=jax.devices()[:2]), tmp_path / "elastic")
  np.testing.assert_allclose(losses(tmp_path / "elastic"), losses(tmp_path / "four"), rtol=1e-5)
  a, b = _params_at(tmp_path / "four", 8, four), _params_at(tmp_path / "elastic", 8, four)
  for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params), strict=True):
    np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-6)
