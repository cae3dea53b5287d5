"""Checkpoints: the latest N plus the best by eval top-1 error, restored exactly."""

import numpy as np

from cnnjax.workdir.checkpoint import Checkpointer


def _state(value: float):
  return {"params": {"kernel": np.full((2, 3), value, np.float32)},
          "step": np.array(int(value), np.int32)}


def test_keeps_the_latest_n_plus_the_best(tmp_path):
  checkpointer = Checkpointer(tmp_path, keep=2)
  errors = {1: 0.5, 2: 0.2, 3: 0.4, 4: 0.3, 5: 0.45}
  for step, error in errors.items():
    checkpointer.save(step, _state(step), {"eval/top1_error": error, "eval/loss": 1.0})
  checkpointer.save(6, _state(6))  # No fresh eval: kept only while among the latest.
  checkpointer.wait()
  assert checkpointer.all_steps() == [2, 5, 6]
  assert checkpointer.latest_step() == 6 and checkpointer.best_step() == 2
  checkpointer.close()

  # A resumed run still knows the best: the metrics are on disk with each step.
  resumed = Checkpointer(tmp_path, keep=2)
  for step in (7, 8):
    resumed.save(step, _state(step), {"eval/top1_error": 0.35, "eval/loss": 1.0})
  resumed.wait()
  assert resumed.all_steps() == [2, 7, 8] and resumed.best_step() == 2
  resumed.close()


def test_the_best_kept_is_the_earliest_of_equals(tmp_path):
  # orbax's BestN kept the latest of equals, deleting the step results.json names.
  checkpointer = Checkpointer(tmp_path, keep=1)
  for step, error in {1: 0.5, 2: 0.2, 3: 0.2, 4: 0.3, 5: 0.2, 6: 0.4}.items():
    checkpointer.save(step, _state(step), {"eval/top1_error": error, "eval/loss": 1.0})
  checkpointer.wait()
  assert checkpointer.all_steps() == [2, 6]
  assert checkpointer.best_step() == 2 and checkpointer.best_error() == 0.2
  checkpointer.close()


def test_restore_returns_what_was_saved(tmp_path):
  checkpointer = Checkpointer(tmp_path, keep=2)
  checkpointer.save(7, _state(7.5))
  checkpointer.wait()
  restored = Checkpointer(tmp_path, keep=2).restore(7, _state(0))
  np.testing.assert_array_equal(restored["params"]["kernel"], np.full((2, 3), 7.5))
  assert int(restored["step"]) == 7
  checkpointer.close()
