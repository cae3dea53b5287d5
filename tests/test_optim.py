"""Optimizers and schedules against values computed by hand."""

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from cnnjax import config as config_lib
from cnnjax import optim, steps
from cnnjax.errors import UserError

PARAMS = {"conv": {"kernel": jnp.array([1.0, -2.0]), "bias": jnp.array([0.5])}}
GRADS = {"conv": {"kernel": jnp.array([0.1, 0.2]), "bias": jnp.array([0.3])}}


def _config(**optimizer):
  config = config_lib.base_config()
  config.optimizer.update(optimizer)
  return config


def _updates(config, steps_taken=2, learning_rate=0.1):
  schedule = optax.constant_schedule(learning_rate)
  tx = optim.create_optimizer(config, schedule, steps_per_epoch=10)
  state, params, history = tx.init(PARAMS), PARAMS, []
  for _ in range(steps_taken):
    updates, state = tx.update(GRADS, state, params, value=jnp.array(1.0))
    params = optax.apply_updates(params, updates)
    history.append(updates)
  return history


def test_sgd_momentum_with_coupled_l2_on_kernels_only():
  config = _config(name="sgd", momentum=0.9, weight_decay=0.01)
  first, second = _updates(config)
  # Step 1: g + λw = [0.1 + 0.01, 0.2 - 0.02]; v = that; update = -0.1 v.
  np.testing.assert_allclose(first["conv"]["kernel"], [-0.011, -0.018], rtol=1e-6)
  np.testing.assert_allclose(first["conv"]["bias"], [-0.03], rtol=1e-6)  # No decay on biases.
  # Step 2: w = [0.989, -2.018]; g + λw = [0.10989, 0.17982]; v = 0.9 v1 + that.
  np.testing.assert_allclose(second["conv"]["kernel"],
                             [-0.1 * (0.9 * 0.11 + 0.10989), -0.1 * (0.9 * 0.18 + 0.17982)],
                             rtol=1e-6)


def test_nesterov_momentum():
  config = _config(name="sgd", momentum=0.9, nesterov=True)
  first, second = _updates(config)
  # Nesterov: update = -lr (g + μ v) with v = μ v_prev + g.
  np.testing.assert_allclose(first["conv"]["bias"], [-0.1 * (0.3 + 0.9 * 0.3)], rtol=1e-6)
  np.testing.assert_allclose(second["conv"]["bias"], [-0.1 * (0.3 + 0.9 * (0.9 * 0.3 + 0.3))],
                             rtol=1e-6)


def test_adam_first_step_is_minus_learning_rate_times_sign():
  (first,) = _updates(_config(name="adam", eps=0.0), steps_taken=1)
  np.testing.assert_allclose(first["conv"]["kernel"], [-0.1, -0.1], rtol=1e-5)


def test_adamw_decays_kernels_after_the_adam_direction():
  (first,) = _updates(_config(name="adamw", eps=0.0, weight_decay=0.01), steps_taken=1)
  # -lr (sign(g) + λw): [-0.1 (1 + 0.01), -0.1 (1 - 0.02)]; biases not decayed.
  np.testing.assert_allclose(first["conv"]["kernel"], [-0.101, -0.098], rtol=1e-5)
  np.testing.assert_allclose(first["conv"]["bias"], [-0.1], rtol=1e-5)


def test_rmsprop():
  (first,) = _updates(_config(name="rmsprop", momentum=0.0, rms_decay=0.9, eps=0.0),
                      steps_taken=1)
  # ν = 0.1 g²; update = -lr g / sqrt(ν) = -lr / sqrt(0.1) sign(g).
  np.testing.assert_allclose(first["conv"]["bias"], [-0.1 / np.sqrt(0.1)], rtol=1e-5)


def test_gradient_clipping_by_global_norm():
  (first,) = _updates(_config(name="sgd", momentum=0.0, grad_clip_norm=0.1), steps_taken=1)
  norm = np.sqrt(0.1**2 + 0.2**2 + 0.3**2)
  np.testing.assert_allclose(first["conv"]["bias"], [-0.1 * 0.3 * 0.1 / norm], rtol=1e-6)


def _schedule(**changes):
  config = config_lib.base_config().schedule
  config.update(changes)
  return optim.create_schedule(config, 0.1, steps_per_epoch=10, total_steps=100)


def test_multistep_divides_by_ten_at_epoch_boundaries():
  schedule = _schedule(name="multistep", boundaries_epochs=(3, 6))
  rates = [float(schedule(step)) for step in (0, 29, 30, 59, 60, 99)]
  np.testing.assert_allclose(rates, [0.1, 0.1, 0.01, 0.01, 0.001, 0.001], rtol=1e-6)


def test_exponential_staircase_as_googlenet():
  schedule = _schedule(name="exponential", decay_factor=0.96, decay_every_epochs=8)
  np.testing.assert_allclose([float(schedule(s)) for s in (0, 79, 80, 160)],
                             [0.1, 0.1, 0.096, 0.1 * 0.96**2], rtol=1e-6)


def test_cosine_with_linear_warmup():
  schedule = _schedule(name="cosine", warmup_epochs=1)
  np.testing.assert_allclose(float(schedule(5)), 0.05, rtol=1e-6)
  np.testing.assert_allclose(float(schedule(10)), 0.1, rtol=1e-6)
  # Half-way through the 90 decay steps: 0.1 * (1 + cos(pi / 2)) / 2.
  np.testing.assert_allclose(float(schedule(55)), 0.05, rtol=1e-5)
  np.testing.assert_allclose(float(schedule(100)), 0.0, atol=1e-7)


def test_plateau_divides_the_rate_when_the_epoch_loss_stalls():
  config = config_lib.base_config()
  config.schedule.update(name="plateau", plateau_patience_epochs=1, decay_factor=0.1)
  config.optimizer.update(name="sgd", momentum=0.0)
  schedule = optim.create_schedule(config.schedule, 0.1, steps_per_epoch=2, total_steps=20)
  tx = optim.create_optimizer(config, schedule, steps_per_epoch=2)
  state = tx.init(PARAMS)
  scales = []
  for loss in [1.0, 1.0, 0.5, 0.5, 0.5, 0.5]:  # Epoch means: 1.0, 0.5 (better), 0.5 (not).
    _, state = tx.update(GRADS, state, PARAMS, value=jnp.array(loss))
    scales.append(float(optim.plateau_scale(state)))
  # One epoch without improvement (the patience) divides the rate by 10.
  assert scales[:5] == [1.0] * 5 and scales[5] == pytest.approx(0.1)


def test_unknown_names_are_user_errors():
  with pytest.raises(UserError, match="config.optimizer.name 'lamb'"):
    optim.create_optimizer(_config(name="lamb"), optax.constant_schedule(0.1), 10)
  with pytest.raises(UserError, match="config.schedule.name 'linear'"):
    _schedule(name="linear")


def test_label_smoothing_and_top_k_errors():
  logits = jnp.array([[2.0, 1.0, 0.0], [0.0, 1.0, 2.0]])
  labels = jnp.array([0, 1])
  plain = steps.cross_entropy(logits, labels, 3)
  smoothed = steps.cross_entropy(logits, labels, 3, label_smoothing=0.3)
  log_p = logits - jnp.log(jnp.exp(logits).sum(-1, keepdims=True))
  np.testing.assert_allclose(plain, -log_p[jnp.arange(2), labels], rtol=1e-6)
  targets = jnp.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1]])  # 0.7 one-hot + 0.3 / 3.
  np.testing.assert_allclose(smoothed, -(targets * log_p).sum(-1), rtol=1e-6)
  top1, top5 = steps.top_k_errors(logits, labels)
  np.testing.assert_array_equal(top1, [0.0, 1.0])
  np.testing.assert_array_equal(top5, [0.0, 0.0])  # k = 3 classes: always a hit.
