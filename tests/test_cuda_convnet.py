"""cuda-convnet's CIFAR-10 networks and recipes against their layer and
parameter files: where the normalisations sit, the per-layer initialisation
and weight costs, the schedules, the ablation switches and their errors.
Parameter counts and layer shapes are in test_models.py with every
registered model."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow_datasets as tfds
from helpers import ROOT
from test_models import run

from cnnjax import config as config_lib
from cnnjax.errors import UserError
from cnnjax.models import create_model, layers
from cnnjax.training import optim, train


def images(size: int, scale: float = 100.0) -> jax.Array:
  """Pixels in ±100, as cuda-convnet's mean-subtracted 0-255 inputs, so the normalisations bite."""
  return scale * jax.random.normal(jax.random.key(0), (2, size, size, 3))


def normalised_inputs(monkeypatch, model, x, norm_function: str):
  """The inputs of every call of `layers.<norm_function>` in one forward pass,
  and every module's output, from one compiled function."""
  original = getattr(layers, norm_function)

  def forward(key):
    calls = []
    monkeypatch.setattr(layers, norm_function,
                        lambda x, **kw: calls.append(x) or original(x, **kw))
    variables = model.init(key, x, train=False)
    calls.clear()
    _, state = model.apply(variables, x, train=False, capture_intermediates=True, mutable=True)
    outputs = {name: value["__call__"][0] for name, value in state["intermediates"].items()
               if name != "__call__"}
    return calls, outputs | {"logits": state["intermediates"]["__call__"][0]}

  return run(forward, jax.random.key(1))


def test_18pct_normalises_within_maps_after_pool1_and_pool2(monkeypatch):
  model = create_model("cifar_convnet_18pct", num_classes=10)
  calls, outputs = normalised_inputs(monkeypatch, model, images(12), "within_map_response_norm")
  assert len(calls) == 2  # layers-18pct.cfg: rnorm1 reads pool1, rnorm2 reads pool2.
  np.testing.assert_array_equal(calls[0], outputs["pool1"])
  np.testing.assert_array_equal(calls[1], outputs["pool2"])


def test_11pct_normalises_across_maps_after_pool1_and_before_pool2(monkeypatch):
  model = create_model("cifar_convnet_11pct", num_classes=10)
  calls, outputs = normalised_inputs(monkeypatch, model, images(8), "local_response_norm")
  assert len(calls) == 2  # layers-conv-local-11pct.cfg: rnorm1 reads pool1, rnorm2 conv2.
  np.testing.assert_array_equal(calls[0], outputs["pool1"])
  np.testing.assert_array_equal(calls[1], jax.nn.relu(outputs["conv2"]))


def test_first_11pct_version_is_13pct_with_lrn_before_both_pools(monkeypatch):
  """svn r540's file: the 13pct net with size-5 cmrnorm after conv1 and conv2."""
  model = create_model("cifar_convnet_13pct", num_classes=10, norm="cross_map",
                       norm_after=("conv1", "conv2"), norm_size=5)
  calls, outputs = normalised_inputs(monkeypatch, model, images(8), "local_response_norm")
  np.testing.assert_array_equal(calls[0], jax.nn.relu(outputs["conv1"]))
  np.testing.assert_array_equal(calls[1], jax.nn.relu(outputs["conv2"]))


@pytest.mark.parametrize("name,norm,function,size", [
    ("cifar_convnet_80sec", "within_map", "within_map_response_norm", 12),
    ("cifar_convnet_13pct", "cross_map", "local_response_norm", 8)])
def test_norm_switch_adds_the_sibling_files_normalisation(name, norm, function, size,
                                                          monkeypatch):
  """80sec + norm=within_map has 18pct's rnorm; 13pct + norm=cross_map 11pct's cmrnorm."""
  plain = create_model(name, num_classes=10)
  calls, plain_outputs = normalised_inputs(monkeypatch, plain, images(size), function)
  assert not calls
  calls, outputs = normalised_inputs(monkeypatch, plain.clone(norm=norm), images(size), function)
  assert len(calls) == 2
  np.testing.assert_array_equal(calls[0], outputs["pool1"])
  # Same parameters (the normalisations have none), other logits; slightly
  # other: at initialisation the activations are small (conv1's std is 1e-4).
  np.testing.assert_array_equal(outputs["conv1"], plain_outputs["conv1"])
  assert not np.array_equal(outputs["logits"], plain_outputs["logits"])


@pytest.mark.parametrize("name,size,stddevs", [
    # initW of each weight layer in the layer files, in order.
    ("cifar_convnet_80sec", 12, {"conv1": 1e-4, "conv2": 0.01, "conv3": 0.01, "fc4": 0.1,
                                 "fc5": 0.1}),
    ("cifar_convnet_18pct", 12, {"conv1": 1e-4, "conv2": 0.01, "conv3": 0.01, "fc4": 0.01}),
    ("cifar_convnet_11pct", 12, {"conv1": 1e-4, "conv2": 0.01, "local3": 0.04, "local4": 0.04,
                                 "fc5": 0.01}),
])
def test_per_layer_gaussian_initialisation_with_zero_biases(name, size, stddevs):
  model = create_model(name, num_classes=10)
  params = run(lambda key: model.init(key, jnp.zeros((1, size, size, 3)), train=False),
               jax.random.key(0))["params"]
  assert set(params) == set(stddevs)
  for layer, stddev in stddevs.items():
    kernel = np.asarray(params[layer]["kernel"])
    assert abs(kernel.mean()) < 0.1 * stddev
    assert kernel.std() == pytest.approx(stddev, rel=0.1), layer
    np.testing.assert_array_equal(params[layer]["bias"], 0.0)


def test_local_layers_are_untied():
  params = jax.eval_shape(lambda: create_model("cifar_convnet_13pct", num_classes=10).init(
      jax.random.key(0), jnp.zeros((1, 24, 24, 3)), train=False))["params"]
  # One 3x3x64 → 32 kernel and 32 biases per position of local3's 6x6 output.
  assert params["local3"]["kernel"].shape == (6, 6, 3 * 3 * 64, 32)
  assert params["local3"]["bias"].shape == (6, 6, 32)


def test_other_input_sizes_work_where_the_arithmetic_allows():
  model = create_model("cifar_convnet_13pct", num_classes=10)
  assert model.min_input_size() == 6  # 6 → 3 → 2: each pool's first 3x3 window fits.
  logits = jax.eval_shape(lambda: model.init_with_output(
      jax.random.key(0), jnp.zeros((1, 32, 32, 1)), train=False)[0])
  assert logits.shape == (1, 10)
  two_by_two = create_model("cifar_convnet_80sec", num_classes=10, overlapping_pooling=False)
  assert two_by_two.min_input_size() == 5  # 2x2 windows: 5 → 3 → 2 → 1.
  with pytest.raises(UserError, match="at least 12x12, got 11x11"):
    jax.eval_shape(lambda: create_model("cifar_convnet_80sec", num_classes=10).init(
        jax.random.key(0), jnp.zeros((1, 11, 11, 3)), train=False))


def test_pooling_switches():
  model = create_model("cifar_convnet_80sec", num_classes=10)
  x = images(32, scale=1.0)  # 32 → 16 → 8 → 4 with 3x3 and 2x2 windows alike.

  def outputs(key):
    variables = model.init(key, x, train=False)
    return [m.apply(variables, x, train=False) for m in (
        model, model.clone(overlapping_pooling=False), model.clone(pooling=("max", "max", "max")))]

  overlapping, two_by_two, all_max = run(outputs, jax.random.key(1))
  assert not np.allclose(overlapping, two_by_two) and not np.allclose(overlapping, all_max)


@pytest.mark.parametrize("overrides,message", [
    (dict(pooling=("max", "avg")), "config.model.pooling has 2 entries for 3 convolutions"),
    (dict(init_stddevs=(0.01,) * 4), "config.model.init_stddevs has 4 values for 5 weight"),
    (dict(norm_after=("pool1", "pool4")), r"unknown norm_after 'pool4'; choose one of: conv1"),
    (dict(norm="within_map", norm_after=()), "config.model.norm_after is empty"),
    (dict(pooling=("max", "min", "avg")), "unknown pooling 'min'"),
])
def test_inconsistent_options_are_user_errors(overrides, message):
  model = create_model("cifar_convnet_80sec", num_classes=10, **overrides)
  with pytest.raises(UserError, match=message):
    jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)), train=False))


EXPERIMENT = str(ROOT / "experiments" / "cuda_convnet_cifar10.py")


@pytest.mark.parametrize("variant,decays", [
    # The parameter files' wc per layer.
    ("80sec", {"conv1": 0.004, "conv2": 0.004, "conv3": 0.004, "fc4": 0.03, "fc5": 0.03}),
    ("18pct", {"conv1": 0.004, "conv2": 0.004, "conv3": 0.004, "fc4": 1.0}),
    ("13pct", {"conv1": 0.0, "conv2": 0.0, "local3": 0.004, "local4": 0.004, "fc5": 0.004}),
    ("11pct", {"conv1": 0.0, "conv2": 0.0, "local3": 0.004, "local4": 0.004, "fc5": 0.01}),
])
def test_recipes_plan_on_cifar10_with_the_files_weight_costs(variant, decays):
  config = config_lib.from_command_line(f"{EXPERIMENT}:{variant}", [])
  with tfds.testing.mock_data(num_examples=config.batch_size):
    plan = train.plan(config)
  params = jax.eval_shape(plan.model.init, jax.random.key(0),
                          jnp.zeros((1, *plan.image_shape)), train=False)["params"]
  got = optim.layer_weight_decays(config.optimizer, params)
  assert {layer: got[layer]["kernel"] for layer in got} == decays
  assert all(got[layer]["bias"] == 0 for layer in got)
  assert plan.image_shape == ((24, 24, 3) if variant in ("13pct", "11pct") else (32, 32, 3))
  last = round(config.schedule.boundaries_epochs[-1] * plan.steps_per_epoch)
  assert float(plan.schedule(0)) == pytest.approx(1e-3)  # epsW.
  drops = len(config.schedule.boundaries_epochs)  # 80sec: one ÷10; the others two.
  assert float(plan.schedule(last)) == pytest.approx(1e-3 / 10**drops)
  assert config.optimizer.bias_learning_rate_scale == 2.0  # epsB / epsW.


def test_unknown_recipe_is_a_user_error():
  with pytest.raises(UserError, match="unknown cuda-convnet variant '12pct'; choose one of 80sec"):
    config_lib.load(f"{EXPERIMENT}:12pct")
