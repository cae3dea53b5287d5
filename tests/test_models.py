"""Every registered model: structure and parameters at native resolution
(under jax.eval_shape, no FLOPs), one real SGD step at the smallest input it
accepts, and the switches that make the ablations.

The real train step runs on each registered model with its depth table cut to
two blocks per stage and 64-unit hidden dense layers (`tiny`): the same code
paths as the full network (the first, downsampling block of a stage and a
repeated one), while the full networks are checked structurally. Compiling
the full DenseNet-201 step alone takes over a minute on 2 CPU cores. Models
that shrink to the same network (resnet50, resnet101, resnet152) take one step.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import linen as nn

from cnnjax.errors import UserError
from cnnjax.models import (
  MODELS,
  NATIVE_INPUT_CHANNELS,
  NATIVE_INPUT_SIZE,
  create_model,
  evaluates_densely,
  list_models,
  model_defaults,
  model_options,
)

# (classes, parameters). torchvision's published counts where the architecture
# is the same; otherwise the paper's layers counted exactly (see the docstrings).
EXPECTED_PARAMS = {
    "lenet5": (10, 60_850),
    "lenet5_modern": (10, 61_706),
    "alexnet": (1000, 60_965_224),
    "alexnet_owt": (1000, 61_100_840),  # torchvision alexnet.
    "vgg_a": (1000, 132_863_336),  # = torchvision vgg11.
    "vgg_a_lrn": (1000, 132_863_336),
    "vgg_b": (1000, 133_047_848),
    "vgg_c": (1000, 133_638_952),
    "vgg_d": (1000, 138_357_544),
    "vgg_e": (1000, 143_667_240),
    "vgg11_bn": (1000, 132_868_840),
    "vgg13_bn": (1000, 133_053_736),
    "vgg16_bn": (1000, 138_365_992),
    "vgg19_bn": (1000, 143_678_248),
    "googlenet": (1000, 6_998_552 + 6_379_728),  # Main network + the two auxiliary heads.
    "googlenet_bn": (1000, 6_624_904 + 6_379_984),  # torchvision googlenet(aux_logits=True).
    "resnet18": (1000, 11_689_512),
    "resnet34": (1000, 21_797_672),
    "resnet50": (1000, 25_557_032),
    "resnet101": (1000, 44_549_160),
    "resnet152": (1000, 60_192_808),
    "plain18": (1000, 11_689_512 - 173_824),  # Less the three projection shortcuts.
    "plain34": (1000, 21_797_672 - 173_824),
    "resnet20": (10, 269_722),  # Table 6: 0.27M.
    "resnet32": (10, 464_154),  # 0.46M.
    "resnet44": (10, 658_586),  # 0.66M.
    "resnet56": (10, 853_018),  # 0.85M.
    "resnet110": (10, 1_727_962),  # 1.7M.
    "densenet121": (1000, 7_978_856),
    "densenet169": (1000, 14_149_480),
    "densenet201": (1000, 20_013_928),
    "densenet161": (1000, 28_681_000),
    "densenet_bc100": (10, 769_162),  # Table 2: 0.8M.
    # cuda-convnet's layer files (cnnjax/models/cuda_convnet.py); weights + biases:
    # conv1 5·5·3·32+32 = 2,432; conv2 5·5·32·32+32 = 25,632; conv3 5·5·32·64+64 =
    # 51,264; fc64 on 4·4·64 maps 1,024·64+64 = 65,600; fc10 64·10+10 = 650.
    "cifar_convnet_80sec": (10, 145_578),
    # The same convolutions (79,328) and fc10 on 4·4·64: 1,024·10+10 = 10,250.
    "cifar_convnet_18pct": (10, 89_578),
    # At 24x24: conv1 5·5·3·64+64 = 4,864; conv2 5·5·64·64+64 = 102,464; local3
    # on 6x6 positions, each with its own 3·3·64→32 kernel and 32 biases:
    # 36·(576·32+32) = 664,704; local4 36·(288·32+32) = 332,928; fc10
    # 6·6·32·10+10 = 11,530.
    "cifar_convnet_13pct": (10, 1_116_490),
    # local3 of 64 maps: 36·(576·64+64) = 1,329,408; local4 36·(576·32+32) = 664,704.
    "cifar_convnet_11pct": (10, 4_864 + 102_464 + 1_329_408 + 664_704 + 11_530),
}
# Names registered for another's network (torchvision's names for the paper's
# letters): tested as that network, and checked to be it.
ALIASES = {"vgg11": "vgg_a", "vgg13": "vgg_b", "vgg16": "vgg_d", "vgg19": "vgg_e"}
NETWORKS = [name for name in list_models() if name not in ALIASES]  # Each network once.
BATCH = 2


@functools.cache
def fast_compile() -> dict:
  """XLA CPU options that halve compile time, for code that runs once; an
  option this jaxlib doesn't know is left out rather than failing the tests."""
  options = {}
  for option, value in {"xla_backend_optimization_level": 0,
                        "xla_cpu_use_fusion_emitters": False}.items():
    try:
      jax.jit(lambda x: x + 1).lower(1.0).compile(compiler_options={option: value})
      options[option] = value
    except jax.errors.JaxRuntimeError:
      pass
  return options


def run(function, *args):
  """`function(*args)`, compiled once without optimisation."""
  return jax.jit(function).lower(*args).compile(compiler_options=fast_compile())(*args)


def cross_entropy(logits, labels):
  return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def count(tree) -> int:
  return sum(leaf.size for leaf in jax.tree.leaves(tree))


def images(size: int, channels: int = 3, scale: float = 1.0) -> jax.Array:
  return scale * jax.random.normal(jax.random.key(0), (BATCH, size, size, channels))


@functools.cache
def native(name: str):
  """(logits, variables with every module's output) at native size, as shapes."""
  classes, _ = EXPECTED_PARAMS[name]
  model = create_model(name, num_classes=classes)
  x = images(NATIVE_INPUT_SIZE[name], NATIVE_INPUT_CHANNELS[name])
  return jax.eval_shape(lambda: model.init_with_output(
      jax.random.key(0), x, train=False, capture_intermediates=True, mutable=True))


def tiny(name: str, **overrides):
  """The registered model with two blocks per stage and narrow hidden dense layers."""
  model = create_model(name, num_classes=10, **overrides)
  shrink = {"dense_features": 64}
  for table in ("stage_sizes", "block_config"):
    if hasattr(model, table):
      shrink[table] = (2,) * len(getattr(model, table))
  return model.clone(**{k: v for k, v in shrink.items() if hasattr(model, k)})


def test_every_model_has_an_expected_parameter_count_and_native_size():
  assert sorted(EXPECTED_PARAMS) == NETWORKS
  assert sorted(NATIVE_INPUT_SIZE) == sorted(NATIVE_INPUT_CHANNELS) == list_models()


@pytest.mark.parametrize("name", NETWORKS)
def test_native_structure_and_parameter_count(name):
  classes, expected = EXPECTED_PARAMS[name]
  logits, variables = native(name)
  assert logits.shape == (BATCH, classes)
  assert count(variables["params"]) == expected
  assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(variables["params"]))


def test_aliases_are_the_same_model_and_every_network_registered_twice_is_one():
  for alias, name in ALIASES.items():
    assert MODELS[alias] is MODELS[name]
  twice = {name for name in NETWORKS for other in NETWORKS
           if name != other and MODELS[name] is MODELS[other]}
  assert not twice, f"registered twice but not in ALIASES: {sorted(twice)}"


def distinct_tiny_models() -> list[str]:
  """The networks whose tiny variant differs from every earlier one's
  (resnet101 and resnet152 shrink to resnet50's network)."""
  seen, names = [], []
  for name in NETWORKS:
    if tiny(name) not in seen:
      seen.append(tiny(name))
      names.append(name)
  return names


# Tiny models built of exactly the layers of another one in the list, only
# more of them or wider: their step is traced (shapes, dtypes, the whole
# graph) but not run, which the other's run already covers numerically.
MORE_OF_THE_SAME = {"vgg_b": "vgg_a", "vgg_d": "vgg_a", "vgg_e": "vgg_a",
                    "vgg13_bn": "vgg11_bn", "vgg16_bn": "vgg11_bn", "vgg19_bn": "vgg11_bn",
                    "densenet161": "densenet121"}


@pytest.mark.parametrize("name", distinct_tiny_models())
def test_one_sgd_step_at_the_smallest_input(name):
  model = tiny(name)
  x, labels = images(model.min_input_size(), NATIVE_INPUT_CHANNELS[name]), jnp.array([0, 1])

  def init_and_step(key):
    variables = model.init(key, x, train=False)
    params = variables["params"]
    state = {k: v for k, v in variables.items() if k != "params"}

    def loss_fn(params):
      logits, updates = model.apply(
          {"params": params, **state}, x, train=True, mutable=["batch_stats", "intermediates"],
          rngs={"dropout": jax.random.key(1)})
      loss = cross_entropy(logits, labels)
      for aux_logits in updates.get("intermediates", {}).get("aux_logits", ()):
        loss += 0.3 * cross_entropy(aux_logits, labels)  # GoogLeNet §5.
      return loss, (logits, updates)

    (loss, (logits, updates)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    optimizer = optax.sgd(0.01)
    steps, _ = optimizer.update(grads, optimizer.init(params), params)
    return variables, optax.apply_updates(params, steps), loss, logits, updates

  if name in MORE_OF_THE_SAME:
    assert MORE_OF_THE_SAME[name] in distinct_tiny_models()
    _, new_params, loss, logits, _ = jax.eval_shape(init_and_step, jax.random.key(0))
    assert logits.shape == (BATCH, 10) and loss.dtype == jnp.float32
    return
  variables, new_params, loss, logits, updates = run(init_and_step, jax.random.key(0))
  assert logits.shape == (BATCH, 10)
  assert np.isfinite(float(loss))
  changed = jax.tree.map(lambda old, new: bool(jnp.any(old != new)), variables["params"],
                         new_params)
  assert all(jax.tree.leaves(changed)), f"parameters that did not train: {changed}"
  if "batch_stats" in variables:  # Every running mean and variance moved.
    assert all(jax.tree.leaves(jax.tree.map(lambda old, new: bool(jnp.any(old != new)),
                                            variables["batch_stats"], updates["batch_stats"])))


@pytest.mark.parametrize("name", distinct_tiny_models())
def test_half_precision_computes_in_bfloat16_and_keeps_float32_params(name):
  model = tiny(name, dtype=jnp.bfloat16)
  x = images(model.min_input_size(), NATIVE_INPUT_CHANNELS[name])
  logits, variables = jax.eval_shape(lambda: model.init_with_output(
      jax.random.key(0), x, train=False, capture_intermediates=True, mutable=True))
  assert logits.dtype == jnp.bfloat16
  dtypes = lambda tree: {leaf.dtype for leaf in jax.tree.leaves(tree)}
  assert dtypes(variables["intermediates"]) == {jnp.dtype(jnp.bfloat16)}  # Every layer's output.
  assert dtypes(variables["params"]) == {jnp.dtype(jnp.float32)}


# XLA's products, and cnnjax's convolutions (cnnjax.kernels), which are XLA's
# on a GPU or TPU with the same operands.
PRODUCTS = ("conv_general_dilated", "dot_general", "cnnjax_conv", "cnnjax_conv_input_grad",
            "cnnjax_conv_kernel_grad")


def _matmul_operand_dtypes(jaxpr) -> set[str]:
  """The operand dtypes of every convolution and matrix product in `jaxpr`,
  nested calls (jit, custom_vjp, remat) included."""
  found = set()
  for eqn in jaxpr.eqns:
    if eqn.primitive.name in PRODUCTS:
      found |= {str(var.aval.dtype) for var in eqn.invars}
    for value in eqn.params.values():
      for inner in value if isinstance(value, (tuple, list)) else (value,):
        inner = getattr(inner, "jaxpr", inner)
        if hasattr(inner, "eqns"):
          found |= _matmul_operand_dtypes(inner)
  return found


# One model of each family's module code (the others differ in sizes only).
FAMILY_MEMBERS = ("lenet5", "alexnet", "cifar_convnet_11pct", "vgg11_bn", "googlenet",
                  "googlenet_bn", "resnet18", "resnet50", "resnet20", "densenet_bc100")


@pytest.mark.parametrize("name", FAMILY_MEMBERS)
def test_half_precision_gradients_have_no_float32_convolution_or_matmul(name):
  """On a GPU or TPU a float32 operand would silently run the slow path: the
  training step's forward and backward products all take bfloat16."""
  model = tiny(name, dtype=jnp.bfloat16)
  x = images(model.min_input_size(), NATIVE_INPUT_CHANNELS[name]).astype(jnp.bfloat16)
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), x, train=False))

  def loss(params, state):
    logits, updates = model.apply({**state, "params": params}, x, train=True,
                                  rngs={"dropout": jax.random.key(1)},
                                  mutable=["batch_stats", "intermediates"])
    aux = jax.tree.leaves(updates.get("intermediates", {}))
    return sum(jnp.sum(out.astype(jnp.float32)) for out in [logits, *aux])

  state = {key: value for key, value in variables.items() if key != "params"}
  program = jax.make_jaxpr(jax.grad(loss))(variables["params"], state)
  assert _matmul_operand_dtypes(program.jaxpr) == {"bfloat16"}


@pytest.mark.parametrize("name", [n for n in NETWORKS
                                  if create_model(n, num_classes=10).min_input_size() > 1])
def test_too_small_inputs_name_the_minimum(name):
  model = tiny(name)
  minimum = model.min_input_size()
  with pytest.raises(UserError, match=f"at least {minimum}x{minimum}, got {minimum - 1}x"):
    jax.eval_shape(lambda: model.init(jax.random.key(0), images(minimum - 1), train=False))


@pytest.mark.parametrize("name,path,shape", [
    # AlexNet §3.5 / Fig. 2: 55x55x96 after conv1, 6x6x256 before FC6.
    ("alexnet", "conv1", (55, 55, 96)),
    ("alexnet", "pool5", (6, 6, 256)),
    ("alexnet_owt", "conv1", (55, 55, 64)),
    ("alexnet_owt", "pool5", (6, 6, 256)),
    ("vgg_d", "pool5", (7, 7, 512)),
    ("vgg_c", "conv3_3", (56, 56, 256)),
    # GoogLeNet Table 1.
    ("googlenet", "conv1", (112, 112, 64)),
    ("googlenet", "inception3a", (28, 28, 256)),
    ("googlenet", "inception4e", (14, 14, 832)),
    ("googlenet", "inception5b", (7, 7, 1024)),
    ("googlenet_bn", "inception3a", (28, 28, 256)),
    ("googlenet_bn", "inception5b", (7, 7, 1024)),
    # ResNet Table 1: 112x112 after conv1, 56x56 after the pool, 7x7 at the end.
    ("resnet18", "conv_init", (112, 112, 64)),
    ("resnet18", "stage1_block1", (56, 56, 64)),
    ("resnet18", "stage4_block2", (7, 7, 512)),
    ("resnet50", "stage1_block1", (56, 56, 256)),
    ("resnet50", "stage4_block3", (7, 7, 2048)),
    # torchvision's bottleneck strides the 3x3 convolution, not the first 1x1.
    ("resnet50", "stage2_block1/conv1", (56, 56, 128)),
    ("resnet50", "stage2_block1/conv2", (28, 28, 128)),
    ("resnet20", "stage3_block3", (8, 8, 64)),
    ("densenet121", "block4_layer16", (7, 7, 1024)),
    # 24 maps, +16x12 = 216 → 108, +192 = 300 → 150, +192 = 342.
    ("densenet_bc100", "block3_layer16", (8, 8, 342)),
    # cuda-convnet pools round up: 32 → 16 → 8 → 4 (VALID pooling: 15, 7, 3).
    ("cifar_convnet_80sec", "conv1", (32, 32, 32)),
    ("cifar_convnet_80sec", "pool1", (16, 16, 32)),
    ("cifar_convnet_80sec", "pool2", (8, 8, 32)),
    ("cifar_convnet_80sec", "pool3", (4, 4, 64)),
    ("cifar_convnet_80sec", "fc4", (64,)),
    ("cifar_convnet_18pct", "pool3", (4, 4, 64)),
    ("cifar_convnet_13pct", "pool1", (12, 12, 64)),  # 24 → 12 → 6.
    ("cifar_convnet_13pct", "local3", (6, 6, 32)),
    ("cifar_convnet_13pct", "local4", (6, 6, 32)),
    ("cifar_convnet_11pct", "local3", (6, 6, 64)),
])
def test_layer_output_shapes_match_the_papers(name, path, shape):
  intermediates = native(name)[1]["intermediates"]
  for part in path.split("/"):
    intermediates = intermediates[part]
  assert intermediates["__call__"][0].shape == (BATCH, *shape)


# --- Switches -----------------------------------------------------------------


def params_of(model, size):
  return jax.eval_shape(lambda: model.init(jax.random.key(0), images(size), train=False))


def shared_outputs(models, size, *, train=False, seeds=None, scale=1.0):
  """The logits of each of `models` with the parameters `models[0]` draws,
  on one batch; in training with dropout key `seeds[i]` for `models[i]`."""
  x = images(size, scale=scale)
  seeds = seeds or [1] * len(models)

  def compute(key):
    variables = models[0].init(key, x, train=False)
    logits = []
    for model, seed in zip(models, seeds):
      rngs = {"dropout": jax.random.key(seed)}
      if train:
        logits.append(model.apply(variables, x, train=True, rngs=rngs,
                                  mutable=["batch_stats", "intermediates"])[0])
      else:
        logits.append(model.apply(variables, x, train=False, rngs=rngs))
    return logits

  return [np.asarray(logits) for logits in run(compute, jax.random.key(0))]


def initial_params(model, size):
  return run(lambda key: model.init(key, images(size), train=False)["params"], jax.random.key(0))


@pytest.mark.parametrize("name,size", [
    ("lenet5", 32), ("alexnet", 67), ("vgg_a", 32), ("resnet20", 8), ("densenet_bc100", 8),
    ("googlenet", 79), ("cifar_convnet_80sec", 12), ("cifar_convnet_11pct", 6)])
def test_activation_changes_outputs(name, size):
  relu, tanh = shared_outputs([tiny(name, activation="relu"), tiny(name, activation="tanh")], size)
  assert relu.shape == tanh.shape == (BATCH, 10) and not np.allclose(relu, tanh)


@pytest.mark.parametrize("name,option", [
    ("alexnet", "norm"), ("alexnet", "pooling"), ("alexnet", "activation"),
    ("alexnet", "initialization"), ("alexnet", "lrn_convention"), ("vgg11", "norm"),
    ("vgg11", "pooling"), ("googlenet", "norm"), ("resnet18", "shortcut"), ("resnet18", "stem"),
    ("densenet121", "stem"), ("lenet5", "pooling"), ("densenet_bc100", "activation"),
    ("cifar_convnet_18pct", "norm"), ("cifar_convnet_13pct", "activation")])
def test_unknown_switch_values_are_user_errors(name, option):
  model = create_model(name, num_classes=10, **{option: "bogus"})
  size = max(model.min_input_size(), 32)
  with pytest.raises(UserError, match=f"unknown {option} 'bogus'; choose one of"):
    jax.eval_shape(lambda: model.init(jax.random.key(0), images(size), train=False))


@pytest.mark.parametrize("name,option", [
    ("resnet18", "groups"), ("alexnet", "shortcut"), ("vgg16", "aux_classifiers"),
    ("googlenet", "pooling"), ("densenet121", "norm"), ("lenet5", "dropout_rate")])
def test_switches_a_model_does_not_have_are_rejected(name, option):
  with pytest.raises(UserError, match=f"model '{name}' has no option '{option}'; its options are"):
    create_model(name, num_classes=10, **{option: 1})


@pytest.mark.parametrize("name", NETWORKS)
def test_every_switch_is_a_config_value(name):
  """Configs list each model's defaults and override them from the command
  line, so every option but the trainer's (and ResNet's block class, fixed by
  the variant) must be a plain value."""
  trainer_options = {"num_classes", "dtype", "axis_name", "block_cls"}
  assert set(model_defaults(name)) == set(model_options(name)) - trainer_options


def test_alexnet_groups_halve_conv2_conv4_conv5():
  split = params_of(create_model("alexnet", num_classes=10), 227)["params"]
  tower = params_of(create_model("alexnet", num_classes=10, groups=1), 227)["params"]
  for layer in ("conv1", "conv2", "conv3", "conv4", "conv5"):
    halved = layer in ("conv2", "conv4", "conv5")
    assert count(split[layer]["conv"]["kernel"]) * (2 if halved else 1) == count(
        tower[layer]["conv"]["kernel"])
  assert count(tower) == 62_378_344 + 4096 * 10 + 10 - 4_097_000


def test_alexnet_norm_switch():
  lrn = create_model("alexnet", num_classes=10, dense_features=64)
  assert set(params_of(lrn, 67)) == {"params"}
  assert params_of(lrn.clone(norm="none"), 67) == params_of(lrn, 67)
  batchnorm = params_of(lrn.clone(norm="batchnorm"), 67)
  assert "batch_stats" in batchnorm and "bias" not in batchnorm["params"]["conv1"]["conv"]
  # Pixels in ±100, as the paper's mean-subtracted 0–255 inputs, so LRN bites.
  paper, none, caffe = shared_outputs(
      [lrn, lrn.clone(norm="none"), lrn.clone(lrn_convention="caffe")], 67, scale=100.0)
  assert not np.allclose(paper, none) and not np.allclose(paper, caffe)


def test_alexnet_pooling_switches():
  model = create_model("alexnet", num_classes=10, dense_features=64)
  base = count(params_of(model, 67))
  convolved = params_of(model.clone(pooling="conv"), 67)["params"]
  assert {"pool1", "pool2", "pool5"} <= set(convolved) and count(convolved) > base
  non_overlapping = model.clone(overlapping_pooling=False)
  overlapping, average, two_by_two = shared_outputs(
      [model, model.clone(pooling="avg"), non_overlapping], 67)
  assert not np.allclose(overlapping, average) and not np.allclose(overlapping, two_by_two)
  # §3.4's comparison: 2x2/2 pooling gives the same sizes, 6x6 before FC6 at 227.
  _, captured = jax.eval_shape(lambda: non_overlapping.init_with_output(
      jax.random.key(0), images(227), train=False, capture_intermediates=True, mutable=True))
  assert captured["intermediates"]["pool5"]["__call__"][0].shape == (BATCH, 6, 6, 256)


def test_alexnet_paper_initialisation():
  variables = initial_params(create_model("alexnet", num_classes=10, dense_features=64), 67)
  for layer in ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"):
    params = variables[layer].get("conv", variables[layer])
    expected_bias = 1.0 if layer in ("conv2", "conv4", "conv5", "fc6", "fc7") else 0.0
    np.testing.assert_array_equal(params["bias"], expected_bias)  # §5.
  assert abs(float(jnp.std(variables["conv3"]["conv"]["kernel"])) - 0.01) < 1e-3


def test_dropout_is_random_in_training_only():
  model = create_model("alexnet", num_classes=10, dense_features=64)
  no_dropout = model.clone(dropout_rate=0.0)
  first, second, third, fourth = shared_outputs([model, model, no_dropout, no_dropout], 67,
                                                train=True, seeds=[1, 2, 1, 2])
  assert not np.allclose(first, second)
  np.testing.assert_allclose(third, fourth)
  evaluated = shared_outputs([model, model], 67, seeds=[1, 2])
  np.testing.assert_allclose(*evaluated)


def test_vgg_norm_switch_and_1x1_convolutions():
  model = create_model("vgg_a", num_classes=10, dense_features=64)
  assert params_of(model.clone(norm="lrn"), 32) == params_of(model, 32)
  batchnorm = params_of(model.clone(norm="batchnorm"), 32)
  assert "batch_stats" in batchnorm and "bias" in batchnorm["params"]["conv1_1"]["conv"]
  plain, lrn = shared_outputs([model, model.clone(norm="lrn")], 32, scale=100.0)
  assert not np.allclose(plain, lrn)
  c = params_of(create_model("vgg_c", num_classes=10, dense_features=64), 32)["params"]
  assert c["conv3_3"]["conv"]["kernel"].shape == (1, 1, 256, 256)  # Table 1, configuration C.
  assert c["conv3_2"]["conv"]["kernel"].shape == (3, 3, 256, 256)


@pytest.mark.parametrize("name", ["googlenet", "googlenet_bn"])
def test_googlenet_sows_two_aux_logits_in_training_only(name):
  model = create_model(name, num_classes=10)

  def sown(model, train):
    def init_and_apply():
      variables = model.init(jax.random.key(0), images(96), train=False)
      _, state = model.apply(variables, images(96), train=train,
                             mutable=["batch_stats", "intermediates"],
                             rngs={"dropout": jax.random.key(1)})
      return variables["params"], state
    return jax.eval_shape(init_and_apply)

  params, state = sown(model, train=True)
  assert {"aux4a", "aux4d"} <= set(params)
  assert [a.shape for a in state["intermediates"]["aux_logits"]] == [(BATCH, 10)] * 2
  assert "intermediates" not in sown(model, train=False)[1]
  params, state = sown(model.clone(aux_classifiers=False), train=True)
  assert not any(k.startswith("aux") for k in params) and "intermediates" not in state


def test_googlenet_bn_matches_torchvision_without_aux_heads():
  no_aux = lambda name: create_model(name, num_classes=1000, aux_classifiers=False)
  assert count(params_of(no_aux("googlenet_bn"), 224)["params"]) == 6_624_904
  assert count(params_of(no_aux("googlenet"), 224)["params"]) == 6_998_552
  bn = params_of(no_aux("googlenet_bn"), 224)
  conv = bn["params"]["inception3a"]["5x5"]["conv"]
  assert conv["kernel"].shape[:2] == (3, 3) and "bias" not in conv and "batch_stats" in bn


@pytest.mark.parametrize("name, epsilon", [("googlenet_bn", 1e-3), ("resnet18", 1e-5)])
def test_batch_norm_epsilon_is_the_reference_implementations(name, epsilon):
  """TF-slim's 1e-3 for torchvision's googlenet, PyTorch's 1e-5 elsewhere, so
  published running statistics give the published outputs."""
  model = create_model(name, num_classes=10)
  epsilons = set()

  def record(next_fun, args, kwargs, context):
    if isinstance(context.module, nn.BatchNorm):
      epsilons.add(context.module.epsilon)
    return next_fun(*args, **kwargs)

  with nn.intercept_methods(record):
    jax.eval_shape(functools.partial(model.init, train=False), jax.random.key(0),
                   jnp.zeros((1, 224, 224, 3)))
  assert epsilons == {epsilon}


def test_resnet_shortcut_options():
  def projections(shortcut):
    params = params_of(create_model("resnet18", num_classes=10, shortcut=shortcut), 32)["params"]
    return sorted(block for block, layers in params.items() if "conv_proj" in layers), count(params)

  b_blocks, b_count = projections("B")
  assert b_blocks == ["stage2_block1", "stage3_block1", "stage4_block1"]
  c_blocks, c_count = projections("C")
  assert len(c_blocks) == 8 and c_count > b_count
  assert projections("A") == ([], b_count - 173_824) == projections("none")
  residual, plain = shared_outputs([create_model("resnet20", num_classes=10),
                                    create_model("resnet20", num_classes=10, shortcut="none")], 8)
  assert not np.allclose(residual, plain)


@pytest.mark.parametrize("name,last", [("resnet20", "bn2"), ("resnet50", "bn3")])
def test_zero_init_residual_zeroes_the_last_scale_of_every_block(name, last):
  model = tiny(name, zero_init_residual=True)
  params = initial_params(model, 8)
  blocks = [layers for block, layers in params.items() if "_block" in block]
  assert blocks and all(not np.any(layers[last]["scale"]) for layers in blocks)
  assert np.all(params[next(b for b in params if "_block" in b)]["bn1"]["scale"] == 1)


def test_resnet_cifar_stem_keeps_the_resolution():
  model = create_model("resnet18", num_classes=10, stem="cifar")
  _, captured = jax.eval_shape(lambda: model.init_with_output(
      jax.random.key(0), images(32), train=False, capture_intermediates=True, mutable=True))
  assert captured["intermediates"]["stage1_block1"]["__call__"][0].shape == (BATCH, 32, 32, 64)


def test_densenet_bottleneck_and_compression():
  model = create_model("densenet_bc100", num_classes=10)
  params = params_of(model, 32)["params"]
  assert params["block1_layer1"]["conv1"]["kernel"].shape == (1, 1, 24, 48)  # 4k maps.
  # 24 + 16 * 12 = 216 maps, compressed to 108 by the first transition.
  assert params["transition1_conv"]["kernel"].shape == (1, 1, 216, 108)
  plain = params_of(model.clone(bottleneck=False, compression=1.0), 32)["params"]
  assert "conv1" not in plain["block1_layer1"]
  assert plain["transition1_conv"]["kernel"].shape == (1, 1, 216, 216)


@pytest.mark.parametrize("c3_connections", ["full", "paper"])
def test_lenet5_with_relu_starts_with_a_signal_only_with_he_initialization(c3_connections):
  """LeNet-5's ±2.4/F_in (Appendix C) suits its scaled tanh; under ReLU and max
  pooling it all but silences the network, which He's N(0, 2/F_in) does not."""
  images = jax.random.normal(jax.random.key(1), (32, 32, 32, 1))

  def logit_std(initialization):
    model = create_model("lenet5", num_classes=10, activation="relu", pooling="max",
                         c3_connections=c3_connections, initialization=initialization)
    init_and_apply = lambda x: model.apply(model.init(jax.random.key(0), x, train=False), x,
                                           train=False)
    return float(jnp.std(run(init_and_apply, images)))

  assert logit_std("paper") < 0.01 < 0.3 < logit_std("he")
  assert dict(model_defaults("lenet5_modern"))["initialization"] == "he"


# Dense (fully convolutional) evaluation, VGG §3.2, on VGG- and AlexNet-shaped
# nets of a few maps: (model, training input, a larger input, the window FC6 reads).
DENSE_NETS = {
    "vgg_a": (dict(stages=((4, (3,)),) * 5, dense_features=8), 224, 288, 7),
    "alexnet": (dict(features=(4, 4, 4, 4, 4), dense_features=8, initialization="pytorch"),
                227, 291, 6),
}


@functools.cache
def dense_net(name: str):
  options, train_size, larger, window = DENSE_NETS[name]
  model = create_model(name, num_classes=5, **options)
  variables = run(functools.partial(model.init, train=False), jax.random.key(0),
                  images(train_size))
  return model, variables, train_size, larger, window


def forward(model, variables, x, **options):
  return run(functools.partial(model.apply, train=False, **options), variables, x)


def sliding_window_head(variables, maps: np.ndarray, window: int) -> np.ndarray:
  """The reference: the usual FC6-FC7-FC8 head (NumPy) on every `window` x
  `window` window of the maps before FC6, flattened as the network flattens,
  the class scores averaged over the windows."""
  params = jax.tree.map(np.asarray, variables["params"])
  relu = lambda x: np.maximum(x, 0)
  scores = []
  for top in range(maps.shape[1] - window + 1):
    for left in range(maps.shape[2] - window + 1):
      x = maps[:, top:top + window, left:left + window].reshape(len(maps), -1)
      for name in ("fc6", "fc7"):
        x = relu(x @ params[name]["kernel"] + params[name]["bias"])
      scores.append(x @ params["fc8"]["kernel"] + params["fc8"]["bias"])
  return np.mean(scores, axis=0)


@pytest.mark.parametrize("name", sorted(DENSE_NETS))
def test_dense_evaluation_at_the_training_size_is_the_usual_forward_pass(name):
  model, variables, train_size, _, _ = dense_net(name)
  x = images(train_size)
  np.testing.assert_allclose(forward(model, variables, x, dense=True),
                             forward(model, variables, x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(DENSE_NETS))
def test_dense_evaluation_averages_the_head_over_every_window_of_the_maps(name):
  model, variables, _, larger, window = dense_net(name)
  x = images(larger)
  dense, captured = forward(model, variables, x, dense=True, mutable=["intermediates"],
                            capture_intermediates=lambda module, _: module.name == "pool5")
  maps = np.asarray(captured["intermediates"]["pool5"]["__call__"][0])
  assert maps.shape[1] > window  # Several positions, each a window of the training size's map.
  np.testing.assert_allclose(dense, sliding_window_head(variables, maps, window),
                             rtol=1e-4, atol=1e-5)
  # Without the switch the adaptive pool squeezes the larger maps instead: another result.
  assert not np.allclose(forward(model, variables, x), dense, atol=1e-4)


def test_global_average_pool_models_take_larger_inputs_with_the_same_parameters():
  """ResNet, DenseNet and GoogLeNet are fully convolutional already: a larger
  input gives the head's scores of the spatially averaged features, which is
  the average of the score map (the head is linear), with no switch."""
  for name in ("resnet18", "googlenet"):  # DenseNet closes as ResNet does (jnp.mean).
    model = create_model(name, num_classes=1000)
    assert not evaluates_densely(model)
    logits, variables = jax.eval_shape(
        functools.partial(model.init_with_output, train=False), jax.random.key(0),
        jax.ShapeDtypeStruct((1, 320, 256, 3), jnp.float32))
    shapes = lambda tree: jax.tree.map(lambda x: x.shape, tree)
    assert shapes(variables["params"]) == shapes(native(name)[1]["params"])
    assert logits.shape == (1, 1000)
  model = tiny("resnet20")
  variables = run(functools.partial(model.init, train=False), jax.random.key(0), images(8))
  logits, captured = forward(model, variables, images(16), mutable=["intermediates"],
                             capture_intermediates=lambda module, method: (
                                 module.name, method) == ("stage3_block2", "__call__"))
  last = np.asarray(captured["intermediates"]["stage3_block2"]["__call__"][0])
  head = jax.tree.map(np.asarray, variables["params"]["head"])
  score_map = last @ head["kernel"] + head["bias"]
  np.testing.assert_allclose(logits, score_map.mean(axis=(1, 2)), rtol=1e-4, atol=1e-5)


def test_the_names_the_command_line_checks_are_the_registry_and_need_no_jax():
  import subprocess
  import sys

  from cnnjax import models

  assert sorted(models.MODELS) == models.list_models()
  code = ("import sys\nfrom cnnjax import models\nmodels.check_name('lenet5')\n"
          "print(models.native_input('alexnet'), 'jax' in sys.modules)\n")
  done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  assert done.stdout.split() == ["227x227x3", "False"]


def test_the_list_of_every_model_traces_none(capsys, monkeypatch):
  from cnnjax import cli, models

  monkeypatch.setattr(models.registry, "describe", lambda name: pytest.fail(f"traced {name}"))
  assert cli.main(["models"]) == 0
  captured = capsys.readouterr()
  lines = captured.out.splitlines()
  assert lines[0].split()[:2] == ["model", "input"] and "parameters" not in lines[0]
  assert len(lines) == len(models.list_models()) + 2  # Heading, rule, one row per model.
  assert "`cnnjax models NAME ...` counts them" in captured.err
