"""Every transformation a researcher applies to a network gives, on the CPU
with cnnjax's kernels (oneDNN where it builds), the numbers XLA's own kernels
give (the same program through cnnjax.kernels.with_xla_primitives), for the
small member of each family: grad, jvp, jacfwd and jacrev, Hessian-vector
products, grad of grad, per-example gradients (vmap of grad) and jax.export.

Each family's transformations are compiled together, once per test process
for cnnjax's kernels and once for XLA's, and compared one test each. The
members are the registered networks narrowed where the registry allows it
(VGG's and AlexNet's widths, ResNet's and DenseNet's depths): the same layers
and code. GoogLeNet is its stem and one Inception module, built from its own
classes: its nine modules under all seven transformations took 90 s to
compile on 2 cores, and the full network's gradient is run in test_models.
"""

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import linen as nn

from small_members import GoogLeNetStem

from cnnjax import kernels
from cnnjax.models import create_model

BATCH = 2


# Family: (the network, its input side, channels).
FAMILIES: dict[str, tuple[Any, int, int]] = {
    "lenet5": (create_model("lenet5", num_classes=10), 32, 1),
    "lenet5_modern": (create_model("lenet5_modern", num_classes=10), 32, 1),
    "alexnet": (create_model("alexnet", num_classes=10, features=(16, 32, 32, 32, 32),
                             dense_features=16), 67, 3),
    "vgg11": (create_model("vgg11", num_classes=10, dense_features=16, stages=(
        (8, (3,)), (8, (3,)), (16, (3, 3)), (16, (3, 3)), (16, (3, 3)))), 32, 3),
    "googlenet": (GoogLeNetStem(num_classes=10), 32, 3),
    "resnet20": (create_model("resnet20", num_classes=10, stage_sizes=(1, 1, 1)), 8, 3),
    "densenet_bc100": (create_model("densenet_bc100", num_classes=10, block_config=(1, 1, 1)),
                       8, 3),
    "cifar_convnet_18pct": (create_model("cifar_convnet_18pct", num_classes=10), 12, 3),
}


def _inputs(family: str):
  model, size, channels = FAMILIES[family]
  x = jax.random.normal(jax.random.key(0), (BATCH, size, size, channels))
  variables = jax.jit(lambda key: model.init(key, x, train=False))(jax.random.key(1))
  directions = jax.random.normal(jax.random.key(2), (3, *x.shape))
  return variables, x, jnp.arange(BATCH), directions


def _transformations(model, variables, x, labels, directions) -> dict[str, Any]:
  """Each transformation of the network's loss (or logits) at (params, x)."""
  params, state = variables["params"], {k: v for k, v in variables.items() if k != "params"}
  logits = lambda params, x: model.apply({"params": params, **state}, x, train=False)
  loss = lambda params, x, labels: optax.softmax_cross_entropy_with_integer_labels(
      logits(params, x), labels).mean()
  along = lambda u: logits(params, x + jnp.tensordot(u, directions, 1))  # 3 directions of x.
  per_example = lambda params, x, label: loss(params, x[None], label[None])
  return {
      "grad": jax.grad(loss)(params, x, labels),
      "jvp": jax.jvp(lambda p: loss(p, x, labels), (params,), (params,))[1],
      "jacfwd": jax.jacfwd(along)(jnp.zeros(3)),
      "jacrev": jax.jacrev(along)(jnp.zeros(3)),
      "hessian_vector": jax.jvp(lambda p: jax.grad(loss)(p, x, labels), (params,), (params,))[1],
      # The gradient of an input-gradient penalty, as in gradient regularisation.
      "grad_of_grad": jax.grad(lambda p: jnp.sum(jax.grad(loss, 1)(p, x, labels) ** 2))(params),
      "per_example_grad": jax.vmap(jax.grad(per_example), (None, 0, 0))(params, x, labels),
  }


TRANSFORMATIONS = ("grad", "jvp", "jacfwd", "jacrev", "hessian_vector", "grad_of_grad",
                   "per_example_grad")


@functools.cache
def _results(family: str):
  """Every transformation with cnnjax's kernels and with XLA's."""
  model = FAMILIES[family][0]
  transform = functools.partial(_transformations, model)
  inputs = _inputs(family)
  return jax.jit(transform)(*inputs), jax.jit(kernels.with_xla_primitives(transform))(*inputs)


def _assert_close(ours, xla):
  for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(xla), strict=True):
    scale = float(np.max(np.abs(b))) if np.size(b) else 0.0
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * scale + 1e-7)


@pytest.mark.parametrize("family, transformation",
                         [(family, name) for family in FAMILIES for name in TRANSFORMATIONS])
def test_a_transformation_gives_xlas_numbers(family, transformation):
  ours, xla = _results(family)
  _assert_close(ours[transformation], xla[transformation])


@pytest.mark.parametrize("family", FAMILIES)
def test_an_exported_gradient_gives_xlas_numbers_without_custom_calls(family):
  model = FAMILIES[family][0]
  variables, x, labels, _ = _inputs(family)

  def loss(variables, x):
    return optax.softmax_cross_entropy_with_integer_labels(
        model.apply(variables, x, train=False), labels).mean()

  exported = jax.export.export(jax.jit(jax.value_and_grad(loss)))(variables, x)
  assert "stablehlo.custom_call" not in exported.mlir_module()
  restored = jax.export.deserialize(exported.serialize())
  xla = jax.jit(kernels.with_xla_primitives(jax.value_and_grad(loss)))(variables, x)
  _assert_close(restored.call(variables, x), xla)
