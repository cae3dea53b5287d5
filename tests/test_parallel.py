"""Data parallelism: the same global batch gives the same training on 1 and 4
devices, because gradients, BatchNorm statistics and metrics are averaged over
all devices."""

import jax
import numpy as np
import pytest

from cnnjax import config as config_lib
from cnnjax.errors import UserError
from cnnjax.models import create_model
from cnnjax.training import optim, parallel, steps

GLOBAL_BATCH = 16
STEPS = 3


def _train(model, device_count: int):
  config = config_lib.base_config()
  config.optimizer.weight_decay = 1e-3
  schedule = optim.create_schedule(config.schedule, 0.01, steps_per_epoch=10, total_steps=10)
  tx = optim.create_optimizer(config, schedule, steps_per_epoch=10)
  state = jax.device_get(steps.create_train_state(jax.random.key(0), model, tx, (16, 16, 1)))
  devices = jax.devices()[:device_count]
  train_fn = parallel.map_train_step(steps.bind_train_step(config, model, tx, schedule), devices)
  state = parallel.replicate(state, devices)
  rng = parallel.replicate(jax.random.PRNGKey(0), devices)
  data = np.random.RandomState(0)
  for _ in range(STEPS):
    batch = {"image": data.normal(size=(GLOBAL_BATCH, 16, 16, 1)).astype(np.float32),
             "label": data.randint(0, 10, GLOBAL_BATCH).astype(np.int32)}
    batch = jax.tree.map(lambda x: x.reshape((device_count, -1) + x.shape[1:]), batch)
    state, metrics = train_fn(state, batch, rng)
  return parallel.unreplicate(state), parallel.unreplicate(metrics)


def _assert_trees_close(a, b):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_allclose(x, y, rtol=2e-5, atol=2e-6)


def test_one_and_four_devices_train_identically_and_per_device_batch_norm_would_not():
  # tanh, not ReLU: where a pre-activation lies within rounding of ReLU's kink,
  # another summation order flips its gradient by a step, not by rounding
  # (this data with oneDNN's convolutions on 4 devices: a momentum moved by
  # 1.2e-3 where every other seed tried agreed to 5e-7).
  model = create_model("resnet20", num_classes=10, stage_sizes=(1, 1, 1), axis_name=steps.AXIS,
                       activation="tanh")
  one, one_metrics = _train(model, 1)
  four, four_metrics = _train(model, 4)
  assert int(one.step) == int(four.step) == STEPS
  _assert_trees_close(one.params, four.params)
  _assert_trees_close(one.batch_stats, four.batch_stats)
  _assert_trees_close(one.opt_state, four.opt_state)
  _assert_trees_close(one_metrics, four_metrics)
  # Without the device axis each device normalises by its own 4 examples'
  # statistics: the check above has teeth.
  per_device, _ = _train(model.clone(axis_name=None), 4)
  with pytest.raises(AssertionError):
    _assert_trees_close(one.params, per_device.params)


def test_split_batch_names_both_numbers():
  assert parallel.split_batch(16) == parallel.BatchSplit(16, 16, 4)
  with pytest.raises(UserError, match="batch_size=18 does not divide evenly over 4 devices"):
    parallel.split_batch(18)
