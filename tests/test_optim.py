"""Optimizers and schedules against values computed by hand."""

import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import tiny_config

from cnnjax import config as config_lib
from cnnjax.errors import UserError
from cnnjax.training import optim, steps, train

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


def test_constant_warmup_as_resnet110_then_the_schedule():
  """ResNet §4.2: ResNet-110 trains at 0.01 for its first ~400 iterations, then at 0.1."""
  schedule = _schedule(name="multistep", boundaries_epochs=(5,), warmup_epochs=1,
                       warmup_kind="constant", warmup_factor=0.1)
  np.testing.assert_allclose([float(schedule(s)) for s in (0, 9, 10, 49, 50)],
                             [0.01, 0.01, 0.1, 0.1, 0.01], rtol=1e-6)


def test_the_rate_scales_linearly_with_the_batch_from_its_base():
  optimizer = config_lib.base_config().optimizer
  optimizer.update(learning_rate=0.1, base_batch_size=256)
  assert optim.scaled_learning_rate(optimizer, 256) == pytest.approx(0.1)
  assert optim.scaled_learning_rate(optimizer, 1024) == pytest.approx(0.4)
  optimizer.base_batch_size = 0  # No base: the rate as given, whatever the batch.
  assert optim.scaled_learning_rate(optimizer, 1024) == pytest.approx(0.1)


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


def test_a_plateau_following_evaluations_counts_its_patience_in_them():
  config = config_lib.base_config()
  config.schedule.update(name="plateau", plateau_metric="eval/top1_error",
                         plateau_patience_epochs=2, decay_factor=0.1)
  config.optimizer.update(name="sgd", momentum=0.0)
  # Two evaluations an epoch: a patience of 2 epochs is 4 evaluations.
  steps_per_epoch, eval_every = 10, 5
  tx = optim.create_optimizer(config, optax.constant_schedule(0.1), steps_per_epoch, eval_every)
  state = tx.init(PARAMS)
  for loss in [1.0, 5.0, 9.0]:  # The train step's value is not what it follows.
    updates, state = tx.update(GRADS, state, PARAMS, value=jnp.array(loss))
  assert float(optim.plateau_scale(state)) == 1.0
  np.testing.assert_allclose(updates["conv"]["kernel"], -0.1 * GRADS["conv"]["kernel"])
  scales = []
  for error in [0.5, 0.4, 0.4, 0.45, 0.4, 0.41, 0.3, 0.3, 0.3, 0.3, 0.3]:
    plateau = optim.observe_evaluation(config.schedule, steps_per_epoch, eval_every,
                                       optim.plateau_state(state), error)
    state = optim.with_plateau_state(state, plateau)
    scales.append(float(optim.plateau_scale(state)))
  # 0.4 at the second evaluation, then four without improvement; 0.3, then four more.
  assert scales == pytest.approx([1, 1, 1, 1, 1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.01])
  updates, _ = tx.update(GRADS, state, PARAMS, value=jnp.array(0.0))
  np.testing.assert_allclose(updates["conv"]["kernel"], -0.001 * GRADS["conv"]["kernel"], rtol=1e-6)


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


# --- cuda-convnet's per-layer weight decay and bias learning rate -------------

LAYERS = {"conv1": {"kernel": jnp.array([1.0, -2.0]), "bias": jnp.array([0.5])},
          "fc2": {"kernel": jnp.array([[0.3], [0.7]]), "bias": jnp.array([-0.1])}}
LAYER_GRADS = {"conv1": {"kernel": jnp.array([0.1, 0.2]), "bias": jnp.array([0.3])},
               "fc2": {"kernel": jnp.array([[-0.4], [0.5]]), "bias": jnp.array([0.2])}}


def _train(config, steps_taken, learning_rate=0.1):
  """The parameters after `steps_taken` updates with the fixed LAYER_GRADS."""
  tx = optim.create_optimizer(config, optax.constant_schedule(learning_rate), steps_per_epoch=10)
  state, params = tx.init(LAYERS), LAYERS
  for _ in range(steps_taken):
    updates, state = tx.update(LAYER_GRADS, state, params, value=jnp.array(1.0))
    params = optax.apply_updates(params, updates)
  return params


def test_weight_decay_by_layer_overrides_the_default_on_matching_kernels():
  config = _config(name="sgd", momentum=0.0, weight_decay=0.01,
                   weight_decay_by_layer=(("fc", 0.5),))
  params = _train(config, steps_taken=1)
  # conv1: w - lr (g + 0.01 w); fc2: w - lr (g + 0.5 w); biases: b - lr g.
  np.testing.assert_allclose(params["conv1"]["kernel"], [1 - 0.1 * (0.1 + 0.01),
                                                         -2 - 0.1 * (0.2 - 0.02)], rtol=1e-6)
  np.testing.assert_allclose(params["fc2"]["kernel"], [[0.3 - 0.1 * (-0.4 + 0.15)],
                                                       [0.7 - 0.1 * (0.5 + 0.35)]], rtol=1e-6)
  np.testing.assert_allclose(params["fc2"]["bias"], [-0.1 - 0.1 * 0.2], rtol=1e-6)


def test_the_first_matching_pattern_decides():
  config = _config(name="sgd", momentum=0.0, weight_decay_by_layer=(("fc2", 0.0), ("2|1", 1.0)))
  params = _train(config, steps_taken=1)
  np.testing.assert_allclose(params["fc2"]["kernel"], [[0.34], [0.65]], rtol=1e-6)  # No decay.
  np.testing.assert_allclose(params["conv1"]["kernel"], [1 - 0.1 * 1.1, -2 - 0.1 * -1.8],
                             rtol=1e-6)


def test_decoupled_weight_decay_by_layer():
  config = _config(name="adamw", eps=0.0, weight_decay_by_layer=(("conv", 0.1),))
  params = _train(config, steps_taken=1)
  # Adam's first step is sign(g); conv1's kernel adds 0.1 w; fc2 has no decay.
  np.testing.assert_allclose(params["conv1"]["kernel"], [1 - 0.1 * (1 + 0.1),
                                                         -2 - 0.1 * (1 - 0.2)], rtol=1e-5)
  np.testing.assert_allclose(params["fc2"]["kernel"], [[0.4], [0.6]], rtol=1e-5)


def test_a_decay_pattern_that_matches_no_kernel_is_a_user_error():
  config = _config(weight_decay_by_layer=(("fc", 0.1), ("local", 0.1)))
  tx = optim.create_optimizer(config, optax.constant_schedule(0.1), steps_per_epoch=10)
  with pytest.raises(UserError, match=r"weight_decay_by_layer: pattern 'local' matches no kernel"
                                      r" of this model; its kernels are conv1/kernel, fc2/kernel"):
    tx.init(LAYERS)
  with pytest.raises(UserError, match="pattern 'bias' matches no kernel"):  # Kernels only.
    optim.create_optimizer(_config(weight_decay_by_layer=(("bias", 0.1),)),
                           optax.constant_schedule(0.1), steps_per_epoch=10).init(LAYERS)


def test_plan_rejects_a_decay_pattern_that_matches_no_layer(digits_dir):
  config = tiny_config(digits_dir, optimizer__weight_decay_by_layer="(('C1', 0.1), ('local', 0.1))")
  with pytest.raises(UserError, match="pattern 'local' matches no kernel of this model; its "
                                      "kernels are C1/kernel, C3/kernel"):
    train.plan(config)


@pytest.mark.parametrize("value", ["('fc', 0.1)", "(('fc', -1.0),)", "(('fc[', 0.1),)",
                                   "(('fc', 0.1, 2),)"])
def test_malformed_layer_decays_are_rejected_by_validate(value):
  config = config_lib.base_config()
  config.model.name, config.dataset.name = "lenet5", "digits"
  config_lib.override(config, "optimizer.weight_decay_by_layer", value)
  with pytest.raises(UserError, match="config.optimizer.weight_decay_by_layer="):
    config_lib.validate(config)


def test_bias_learning_rate_scale_with_momentum():
  config = _config(name="sgd", momentum=0.9, bias_learning_rate_scale=2.0)
  plain = _train(_config(name="sgd", momentum=0.9), steps_taken=2)
  scaled = _train(config, steps_taken=2)
  # Biases: v1 = g, v2 = 0.9 g + g; b2 = b - 2 lr (g + 1.9 g) = b - 0.2 x 2.9 g.
  np.testing.assert_allclose(scaled["conv1"]["bias"], [0.5 - 0.2 * 2.9 * 0.3], rtol=1e-6)
  np.testing.assert_allclose(plain["conv1"]["bias"], [0.5 - 0.1 * 2.9 * 0.3], rtol=1e-6)
  np.testing.assert_array_equal(scaled["fc2"]["kernel"], plain["fc2"]["kernel"])


def cuda_convnet_updates(params, grads, steps, eps_w, eps_b, momentum, weight_costs):
  """cuda-convnet's rule (weights.cuh Weights::update, layer.cu bpropWeights):
  inc = mom inc + (eps / numCases) Σ ∂log p - wc eps W = mom inc - eps (g + wc W),
  g the gradient of the mean loss; W += inc. Biases: epsB and no wc."""
  params = {layer: {key: np.asarray(value, np.float64) for key, value in p.items()}
            for layer, p in params.items()}
  incs = {layer: {key: np.zeros_like(value) for key, value in p.items()}
          for layer, p in params.items()}
  for _ in range(steps):
    for layer, p in params.items():
      g_w, g_b = np.asarray(grads[layer]["kernel"]), np.asarray(grads[layer]["bias"])
      incs[layer]["kernel"] = (momentum * incs[layer]["kernel"]
                               - eps_w * (g_w + weight_costs[layer] * p["kernel"]))
      incs[layer]["bias"] = momentum * incs[layer]["bias"] - eps_b * g_b
      p["kernel"] = p["kernel"] + incs[layer]["kernel"]
      p["bias"] = p["bias"] + incs[layer]["bias"]
  return params


def test_cuda_convnet_update_rule_in_cnnjax_terms():
  """layer-params files' epsW = 0.001, epsB = 0.002, mom 0.9, per-layer wc
  (here larger, so the decay shows) are learning_rate = epsW,
  bias_learning_rate_scale = epsB / epsW, weight_decay_by_layer = wc."""
  config = _config(name="sgd", momentum=0.9, weight_decay=0.0, bias_learning_rate_scale=2.0,
                   weight_decay_by_layer=(("conv", 0.25), ("fc", 0.5)))
  got = _train(config, steps_taken=3, learning_rate=0.1)
  want = cuda_convnet_updates(LAYERS, LAYER_GRADS, 3, eps_w=0.1, eps_b=0.2, momentum=0.9,
                              weight_costs={"conv1": 0.25, "fc2": 0.5})
  for layer in want:
    for key in want[layer]:
      np.testing.assert_allclose(got[layer][key], want[layer][key], rtol=1e-5)
