"""Killed, preempted, failing and diverging runs: nothing lost, nothing silently wrong.

The kill tests run the real CLI in subprocesses (tests/fault_driver.py injects
SIGKILL, SIGTERM, Ctrl-C or a full disk at named stages of a save, and says
where it did; each test checks that) and compare
the resumed workdir with an uninterrupted run: parameters, optimizer state
and BatchNorm statistics bitwise, metrics.jsonl and the examples of every step.
"""

import json
import os
import re
import signal
import subprocess
import sys

import jax
import numpy as np
import optax
import pytest
from helpers import CTRL_C_REACHES_IT, LENET_DIGITS, ROOT

from cnnjax import cli
from cnnjax import config as config_lib
from cnnjax.data import pipeline as pipeline_lib
from cnnjax.training import parallel, steps, train
from cnnjax.training.stopping import DIVERGED_STATUS, INTERRUPTED_STATUS, PREEMPTED_STATUS, Diverged
from cnnjax.workdir import metrics as metrics_lib
from cnnjax.workdir.checkpoint import Checkpointer

OVERRIDES = {"batch_size": 16, "num_train_steps": 8, "log_every_steps": 2, "eval_every_steps": 4,
             "checkpoint_every_steps": 2, "keep_checkpoints": 2, "log_example_ids": True,
             "dataset.num_shards": 4}  # Fewer shards, a quicker start (as tiny_config).
RUN_TIMEOUT_S = 300


def _overrides(digits_dir, **changes):
  values = {**OVERRIDES, "dataset.data_dir": digits_dir, **changes}
  return [(key, str(value)) for key, value in values.items()]


def _config(digits_dir, **changes):
  return config_lib.from_command_line(LENET_DIGITS, _overrides(digits_dir, **changes))


def run_cli(workdir, digits_dir, faults="", **changes) -> subprocess.CompletedProcess:
  """`cnnjax train` in a fresh process, with `faults` injected (see tests/fault_driver.py)."""
  env = {**os.environ, "PYTHONPATH": str(ROOT), "CNNJAX_FAULTS": faults, "JAX_PLATFORMS": "cpu"}
  command = [sys.executable, str(ROOT / "tests" / "fault_driver.py"), "train",
             "--config", LENET_DIGITS, "--workdir", str(workdir)]
  command += [f"--config.{key}={value}" for key, value in _overrides(digits_dir, **changes)]
  return subprocess.run(command, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
                        **CTRL_C_REACHES_IT)


def final_state(workdir, plan, step):
  """The checkpoint of `step` as host arrays."""
  template = jax.device_get(steps.create_train_state(
      jax.random.key(0), plan.model, plan.optimizer, plan.image_shape))
  checkpointer = Checkpointer(workdir / "checkpoints", keep=10)
  state = checkpointer.restore(step, template)
  checkpointer.close()
  return state


def steps_on_disk(workdir) -> list[str]:
  return sorted(path.name for path in (workdir / "checkpoints").iterdir())


def example_ids(workdir) -> dict[int, list[str]]:
  records = metrics_lib.read_jsonl(workdir / "example_ids" / "process_0.jsonl")
  steps_seen = [record["step"] for record in records]
  assert len(steps_seen) == len(set(steps_seen)), f"a step recorded twice: {steps_seen}"
  return {record["step"]: record["ids"] for record in records}


def without_timing(records):
  return [{key: value for key, value in record.items() if key != "train/images_per_sec"}
          for record in records]


def assert_same_run(workdir, reference, plan):
  """Bitwise the same final state, the same metrics and the same examples per step."""
  a, b = final_state(reference, plan, 8), final_state(workdir, plan, 8)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_array_equal(x, y)
  assert without_timing(metrics_lib.read(workdir)) == without_timing(metrics_lib.read(reference))
  ids, reference_ids = example_ids(workdir), example_ids(reference)
  assert ids == reference_ids
  every_id = [value for step in sorted(ids) for value in ids[step]]
  assert len(every_id) == len(set(every_id)) == 8 * 16  # Within one epoch: none twice.


@pytest.fixture(scope="module")
def straight(digits_dir, tmp_path_factory):
  """An uninterrupted run of the same config (in this process)."""
  workdir = tmp_path_factory.mktemp("straight")
  plan = train.plan(_config(digits_dir))
  train.train_and_evaluate(plan, workdir)
  return workdir, plan


def assert_fault(result, action: str, stage: str, step: int, on_disk: list[str]) -> None:
  """The driver acted at `stage` of `step`, with `on_disk` in checkpoints/ (see
  tests/fault_driver.py): the fault landed at the moment the test means."""
  line = f"fault: {action} at {stage} of step {step}; on disk: {on_disk}"
  assert line in result.stdout.splitlines(), result.stdout[-2000:]


def test_killed_at_every_stage_of_a_save_resumes_exactly(digits_dir, tmp_path, straight):
  reference, plan = straight
  workdir = tmp_path / "run"
  # Each run resumes where the previous one was killed.
  # 1. SIGKILL with step 2 written in its temporary directory, not yet renamed into place.
  result = run_cli(workdir, digits_dir, "kill@finalized:2")
  assert result.returncode == -signal.SIGKILL
  assert_fault(result, "kill", "finalized", 2, ["2.orbax-checkpoint-tmp"])
  assert steps_on_disk(workdir) == ["2.orbax-checkpoint-tmp"]
  # 2. Restarts from scratch, removing that; SIGKILL amid the array writes of step 4.
  result = run_cli(workdir, digits_dir, "kill@writing:4")
  assert result.returncode == -signal.SIGKILL
  assert_fault(result, "kill", "writing", 4, ["2", "4.orbax-checkpoint-tmp"])
  assert "removed incomplete checkpoint" in result.stdout and "2.orbax-checkpoint-tmp" in result.stdout
  assert "resuming" not in result.stdout
  assert steps_on_disk(workdir) == ["2", "4.orbax-checkpoint-tmp"]
  # 3. Resumes at 2; SIGKILL once step 4 is in place, before anything else is saved.
  result = run_cli(workdir, digits_dir, "kill@committed:4")
  assert result.returncode == -signal.SIGKILL
  assert_fault(result, "kill", "committed", 4, ["2", "4"])
  assert "removed incomplete checkpoint" in result.stdout and "4.orbax-checkpoint-tmp" in result.stdout
  assert "resuming from the checkpoint at step 2 of 8" in result.stdout
  assert steps_on_disk(workdir) == ["2", "4"]
  # 4. Resumes at 4; SIGTERM during step 5: saves step 5, exits "preempted".
  result = run_cli(workdir, digits_dir, "term@cnnjax.workdir.metrics:ExampleIdLog.write#1")
  assert result.returncode == PREEMPTED_STATUS, result.stderr[-2000:]
  assert "fault: term at call 1 of cnnjax.workdir.metrics:ExampleIdLog.write" in result.stdout
  assert "preempted: saved the checkpoint of step 5 of 8" in result.stderr
  assert Checkpointer(workdir / "checkpoints", keep=2).latest_step() == 5
  # 4b. Resumes at 5; Ctrl-C during step 6 asks for a save; a second Ctrl-C amid
  #     its array writes aborts at once: exit 130, step 6 never a checkpoint
  #     (at most its temporary directory, which the next run removes).
  result = run_cli(workdir, digits_dir,
                   "int@cnnjax.workdir.metrics:ExampleIdLog.write#1,int@writing:6")
  assert result.returncode == INTERRUPTED_STATUS, result.stderr[-2000:]
  assert "fault: int at writing of step 6; on disk: " in result.stdout
  assert "interrupted again: stopped at once without saving" in result.stderr
  assert Checkpointer(workdir / "checkpoints", keep=2, read_only=True).latest_step() == 5
  assert set(steps_on_disk(workdir)) - {"6.orbax-checkpoint-tmp", "deleted"} == {"4", "5"}
  half_written = "6.orbax-checkpoint-tmp" in steps_on_disk(workdir)
  # 5. Resumes at 5; SIGKILL as cnnjax, after the last save, is about to remove the
  #    first step orbax moved out of sight for deletion (which one depends on the
  #    eval metrics), before the results are written.
  result = run_cli(workdir, digits_dir, "kill@deleting#1")
  assert result.returncode == -signal.SIGKILL
  fault = re.search(r"^fault: kill at deleting of step (\d+); on disk: (.*)$", result.stdout,
                    re.MULTILINE)
  assert fault, result.stdout[-2000:]
  moved = fault[1]
  assert {"6", "8", "deleted"} <= set(steps_on_disk(workdir)) and moved not in steps_on_disk(workdir)
  assert "resuming from the checkpoint at step 5 of 8" in result.stdout
  assert ("removed incomplete checkpoint" in result.stdout) == half_written
  assert moved in os.listdir(workdir / "checkpoints" / "deleted")
  assert not (workdir / "results.json").exists()
  # 6. Removes the half-deleted steps, resumes and finishes.
  result = run_cli(workdir, digits_dir)
  assert result.returncode == 0, result.stderr[-2000:]
  assert f"deleted/{moved} (its deletion was interrupted)" in result.stdout
  assert_same_run(workdir, reference, plan)


def test_a_failed_background_save_stops_the_run_within_one_interval(digits_dir, tmp_path):
  # Step 2's files are written when the disk fills, after save() has returned.
  result = run_cli(tmp_path, digits_dir, "fail@finalized:2")
  assert result.returncode == 1
  assert_fault(result, "fail", "finalized", 2, ["2.orbax-checkpoint-tmp"])
  last_line = result.stderr.strip().splitlines()[-1]
  assert last_line.startswith("cnnjax: saving a checkpoint failed"), last_line
  assert "No space left on device" in last_line
  assert max(record["step"] for record in metrics_lib.read(tmp_path)) <= 4  # Save interval: 2.
  assert steps_on_disk(tmp_path) == ["2.orbax-checkpoint-tmp"]  # Not a checkpoint.


def _poison_batch(monkeypatch, step: int):
  """Makes the batch of `step` (1-based) hold a NaN pixel, as a corrupt image would."""
  original = pipeline_lib.InputPipeline.train_batches

  def train_batches(self, process_batch, start_step=0):
    for index, batch in enumerate(original(self, process_batch, start_step), start_step + 1):
      if index == step:
        batch["image"] = batch["image"].copy()
        batch["image"][0, 0, 0, 0, 0] = np.nan
      yield batch

  monkeypatch.setattr(pipeline_lib.InputPipeline, "train_batches", train_batches)


def test_a_nan_stops_the_run_naming_the_step_and_saves_nothing_of_it(
    digits_dir, tmp_path, monkeypatch, capsys):
  _poison_batch(monkeypatch, step=3)
  argv = ["train", "--config", LENET_DIGITS, "--workdir", str(tmp_path)]
  argv += [f"--config.{key}={value}" for key, value in _overrides(digits_dir)]
  assert cli.main(argv) == DIVERGED_STATUS
  message = capsys.readouterr().err.strip().splitlines()[-1]
  assert message.startswith("cnnjax: training diverged at step 3: non-finite (NaN or Inf) loss, "
                            "gradients and parameters; nothing from that step on was saved"), message
  assert "learning_rate" in message and "grad_clip_norm" in message
  assert steps_on_disk(tmp_path) == ["2"]
  assert max(record["step"] for record in metrics_lib.read(tmp_path)) == 2
  state = final_state(tmp_path, train.plan(_config(digits_dir)), 2)
  assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(state))


def test_the_skip_policy_drops_the_bad_update_and_stops_after_too_many(
    digits_dir, tmp_path, monkeypatch):
  _poison_batch(monkeypatch, step=3)
  plan = train.plan(_config(digits_dir, **{"nonfinite.policy": "skip"}))
  train.train_and_evaluate(plan, tmp_path / "one")
  records = [r for r in metrics_lib.read(tmp_path / "one") if "train/loss" in r]
  assert [r["train/skipped_updates"] for r in records] == [0, 1, 0, 0]
  state = final_state(tmp_path / "one", plan, 8)
  assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(state))

  plan = train.plan(_config(digits_dir, num_train_steps=4, **{
      "nonfinite.policy": "skip", "nonfinite.max_consecutive_skips": 0}))
  with pytest.raises(Diverged, match="at step 3: 1 updates in a row skipped"):
    train.train_and_evaluate(plan, tmp_path / "none_allowed")


def test_a_skipped_update_leaves_the_state_as_it_was_but_the_step(digits_dir):
  plan = train.plan(_config(digits_dir, **{"nonfinite.policy": "skip"}))
  step_fn = parallel.map_train_step(steps.bind_train_step(
      plan.config, plan.model, plan.optimizer, plan.schedule))
  state = jax.device_get(steps.create_train_state(
      jax.random.key(0), plan.model, plan.optimizer, plan.image_shape))
  batch = next(plan.pipeline.train_batches(plan.train_batch.process_batch))
  batch = {"image": batch["image"].copy(), "label": batch["label"]}
  batch["image"][1, 2] = np.inf
  new_state, metrics = step_fn(parallel.replicate(state), batch,
                               parallel.replicate(jax.random.PRNGKey(0)))
  new_state = parallel.unreplicate(new_state)
  assert int(new_state.step) == 1
  assert int(parallel.unreplicate(metrics)["nonfinite"]) == 0b111  # Loss, gradients, parameters.
  for x, y in zip(jax.tree.leaves((state.params, state.batch_stats, state.opt_state)),
                  jax.tree.leaves((new_state.params, new_state.batch_stats, new_state.opt_state)),
                  strict=True):
    np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("value, finite", [(1e30, True), (np.nan, False), (-np.inf, False),
                                           (1.0, True)])
def test_finiteness_is_of_the_elements_even_where_the_norm_overflows(value, finite):
  tree = {"a": np.ones((3, 2), np.float32), "b": np.array([0.5, value], np.float32)}
  norm = jax.jit(steps.global_norm)(tree)
  assert bool(jax.jit(steps._all_finite)(tree, norm)) is finite
  assert np.isfinite(norm) == (value == 1.0)  # 1e30 squared overflows: the leaves decide.


def test_the_global_norm_is_optax_s_to_rounding():
  rng = np.random.default_rng(0)
  tree = {"kernel": rng.standard_normal((3, 3, 8, 16), np.float32),
          "bias": rng.standard_normal((16,), np.float32), "scale": np.float32(2.5)}
  np.testing.assert_allclose(jax.jit(steps.global_norm)(tree), optax.tree.norm(tree), rtol=1e-6)
  tree["bias"][3] = np.inf
  assert np.isinf(jax.jit(steps.global_norm)(tree))


def test_the_same_config_and_seed_give_the_same_run(digits_dir, tmp_path, straight):
  reference, plan = straight
  train.train_and_evaluate(train.plan(_config(digits_dir)), tmp_path)
  assert_same_run(tmp_path, reference, plan)


# The main thread blocks SIGINT, as if inside a long C++ call: Python cannot
# run its handler there until the call returns, 60 s later.
_MAIN_CANNOT_HANDLE_IT = """
import os, signal, sys, threading, time
from cnnjax.training import stopping
signal.signal(signal.SIGINT, stopping.request_stop)
stop_watching = stopping.abort_on_second_interrupt()
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
def press(times):
  for _ in range(times):
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.5)
threading.Thread(target=press, args=(int(sys.argv[1]),)).start()
time.sleep(float(sys.argv[2]))
stop_watching()
print("went on, stop requested:", stopping.stop_requested())
"""


@pytest.mark.parametrize("presses, expected", [(2, INTERRUPTED_STATUS), (1, 0)])
def test_a_second_ctrl_c_aborts_while_the_main_thread_is_busy(presses, expected):
  command = [sys.executable, "-c", _MAIN_CANNOT_HANDLE_IT, str(presses), "60" if presses > 1 else "3"]
  result = subprocess.run(command, capture_output=True, text=True, timeout=50,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, **CTRL_C_REACHES_IT)
  assert result.returncode == expected, result.stderr[-2000:]
  if presses > 1:
    assert "interrupted again: stopped at once" in result.stderr
  else:
    assert f"stop requested: {int(signal.SIGINT)}" in result.stdout


def test_a_torn_last_line_is_dropped_on_resume(tmp_path):
  path = tmp_path / "metrics.jsonl"
  path.write_text('{"step": 2, "train/loss": 1.0}\n{"step": 4, "train/loss": 0.5}\n{"step": 6, "tr')
  metrics_lib.truncate_after(path, 6)
  assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [2, 4]


def test_only_a_training_checkpointer_removes_what_a_killed_save_left(tmp_path, capsys):
  state = {"kernel": np.ones((2, 3), np.float32)}
  checkpointer = Checkpointer(tmp_path, keep=2)
  checkpointer.save(1, state)
  checkpointer.close()
  leftover = tmp_path / "2.orbax-checkpoint-tmp"
  (leftover / "default").mkdir(parents=True)
  evaluator = Checkpointer(tmp_path, keep=2, read_only=True)  # As `cnnjax eval` opens it.
  assert leftover.exists() and evaluator.latest_step() == 1
  evaluator.close()
  Checkpointer(tmp_path, keep=2).close()
  assert not leftover.exists()
  assert f"removed incomplete checkpoint {leftover}" in capsys.readouterr().out
