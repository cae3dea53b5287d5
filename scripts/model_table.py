"""Prints every registered model's parameters and forward multiply-accumulates
(MACs) at its native input size, batch 1, as a markdown table.

MACs are counted on the traced forward pass (jax.make_jaxpr: nothing is
computed): a convolution costs its output elements times kernel height, width
and input channels per group; a dense layer its output elements times its
input features. Pooling, normalisation and activations are left out, as in
torchvision's GFLOPS column (which counts MACs). The published column holds
torchvision's figures (params / GMACs) or the papers' where torchvision has no
such model.

  python scripts/model_table.py
"""

import math

import jax
import jax.numpy as jnp
from jax.extend import core

from cnnjax.models import NATIVE_INPUT_CHANNELS, NATIVE_INPUT_SIZE, create_model, list_models

# torchvision's published params / GMACs; "paper:" where only the paper has a figure.
PUBLISHED = {
    "lenet5": "paper: ~60k params",
    "alexnet": "paper: ~60M params",
    "alexnet_owt": "61,100,840 / 0.714",
    "vgg_a": "paper: 133M", "vgg_a_lrn": "paper: 133M", "vgg_b": "paper: 133M",
    "vgg_c": "paper: 134M", "vgg_d": "paper: 138M", "vgg_e": "paper: 144M",
    "vgg11": "132,863,336 / 7.61", "vgg13": "133,047,848 / 11.31",
    "vgg16": "138,357,544 / 15.47", "vgg19": "143,667,240 / 19.63 (paper: 19.6 GMACs)",
    "vgg11_bn": "132,868,840 / 7.61", "vgg13_bn": "133,053,736 / 11.31",
    "vgg16_bn": "138,365,992 / 15.47", "vgg19_bn": "143,678,248 / 19.63",
    "googlenet": "paper: ~6.8M without aux heads (Table 1), 1.5 GMACs (§1)",
    "googlenet_bn": "6,624,904 / 1.50 (without aux heads)",
    "resnet18": "11,689,512 / 1.81 (paper: 1.8)", "resnet34": "21,797,672 / 3.66 (paper: 3.6)",
    "resnet50": "25,557,032 / 4.09 (paper: 3.8)", "resnet101": "44,549,160 / 7.80 (paper: 7.6)",
    "resnet152": "60,192,808 / 11.51 (paper: 11.3)",
    "resnet20": "paper: 0.27M", "resnet32": "paper: 0.46M", "resnet44": "paper: 0.66M",
    "resnet56": "paper: 0.85M", "resnet110": "paper: 1.7M",
    "densenet121": "7,978,856 / 2.83", "densenet169": "14,149,480 / 3.36",
    "densenet201": "20,013,928 / 4.29", "densenet161": "28,681,000 / 7.73",
    "densenet_bc100": "paper: 0.8M",
}


def macs(jaxpr: core.Jaxpr) -> int:
  total = 0
  for eqn in jaxpr.eqns:
    out = eqn.outvars[0].aval.shape
    if eqn.primitive.name == "conv_general_dilated":
      kernel = eqn.invars[1].aval.shape
      spec = eqn.params["dimension_numbers"].rhs_spec  # (out, in, *spatial) positions.
      total += math.prod(out) * math.prod(kernel[d] for d in spec[1:])
    elif eqn.primitive.name == "dot_general":
      (contracting, _), _ = eqn.params["dimension_numbers"]
      total += math.prod(out) * math.prod(eqn.invars[0].aval.shape[d] for d in contracting)
    for param in eqn.params.values():  # Calls: pjit, custom_jvp, ...
      for sub in param if isinstance(param, (tuple, list)) else (param,):
        if isinstance(sub, core.ClosedJaxpr):
          total += macs(sub.jaxpr)
        elif isinstance(sub, core.Jaxpr):
          total += macs(sub)
  return total


def human(count: int) -> str:
  return f"{count / 1e9:.3f} G" if count >= 1e8 else f"{count / 1e6:.2f} M"


def main() -> None:
  print("| model | input | params | MACs | published (params / GMACs) |")
  print("| --- | --- | ---: | ---: | --- |")
  for name in list_models():
    size, channels = NATIVE_INPUT_SIZE[name], NATIVE_INPUT_CHANNELS[name]
    classes = 10 if size <= 32 else 1000  # MNIST and CIFAR-10 nets (24: its crops); ImageNet.
    model = create_model(name, num_classes=classes)
    images = jax.ShapeDtypeStruct((1, size, size, channels), jnp.float32)
    variables = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), images)
    params = sum(leaf.size for leaf in jax.tree.leaves(variables["params"]))
    forward = jax.make_jaxpr(lambda v, x: model.apply(v, x, train=False))(variables, images)
    print(f"| {name} | {size}x{size}x{channels} | {params:,} | {human(macs(forward.jaxpr))} "
          f"| {PUBLISHED.get(name, '')} |", flush=True)


if __name__ == "__main__":
  main()
