"""The golden architectures for the torchvision import test, and the weights
and inputs both sides regenerate from a seed with NumPy alone.

scripts/make_torchvision_golden.py (run where torch and torchvision are
installed) builds each torchvision network below, loads `golden_weights` into
it, and stores in tests/fixtures/torchvision/NAME.json the state dict's names
and shapes and the logits of `golden_inputs`; tests/test_pretrained.py
regenerates the same weights from those names and shapes, writes them as a
safetensors file, imports it with cnnjax.pretrained and compares the logits.
Only NumPy here: the test environment has no torch.
"""

import zlib

import numpy as np
import safetensors.numpy

SEED = 0
NUM_CLASSES = 10  # Small fixtures; the head's layout does not depend on it.
DENSE_FEATURES = 64  # AlexNet's and VGG's FC6/FC7, narrowed from 4096 (see GOLDEN).

# name → (torchvision builder, its keyword arguments, cnnjax model, cnnjax
# overrides, input [N, C, H, W], whether train mode is compared too).
# AlexNet's and VGG's FC6/FC7 are narrowed to DENSE_FEATURES on both sides
# (torchvision hard-codes 4096; the script swaps its Linear layers), which
# keeps the names, the layouts and FC6's flatten order under test while the
# weights stay a few MB. Inputs are as small as each network's adaptive
# pooling allows, and give unequal pooling bins where it has them: VGG's and
# AlexNet's last maps are 2x2 (pooled to 7x7 and 6x6). GoogLeNet runs at 224
# so that its auxiliary heads pool 14x14 maps (torchvision's bins at 0, 3, 7,
# 10); its train mode (batch statistics, dropout off) checks those heads.
GOLDEN = {
    "resnet18": ("resnet18", {}, "resnet18", {}, (2, 3, 64, 64), False),
    "vgg11_bn": ("vgg11_bn", {}, "vgg11_bn", {"dense_features": DENSE_FEATURES},
                 (2, 3, 64, 64), False),
    "densenet121": ("densenet121", {}, "densenet121", {}, (2, 3, 64, 64), False),
    "googlenet": ("googlenet", {"aux_logits": True, "init_weights": False, "dropout": 0.0,
                                "dropout_aux": 0.0, "transform_input": False},
                  "googlenet_bn", {"dropout_rate": 0.0, "aux_dropout_rate": 0.0},
                  (1, 3, 224, 224), True),
    "alexnet": ("alexnet", {}, "alexnet_owt", {"dense_features": DENSE_FEATURES},
                (2, 3, 96, 96), False),
}


# Every cnnjax model cnnjax.pretrained imports → torchvision's builder of the
# same network, whose state-dict names and shapes (at 1000 classes) the script
# stores in state_dict_shapes.json.gz.
COUNTERPARTS = {"alexnet_owt": "alexnet", "googlenet_bn": "googlenet"} | {
    name: name for name in (
        "vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn",
        "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
        "densenet121", "densenet161", "densenet169", "densenet201")}


def _generator(seed: int, name: str) -> np.random.Generator:
  return np.random.default_rng([seed, zlib.crc32(name.encode())])


def golden_tensor(seed: int, name: str, shape: tuple[int, ...]) -> np.ndarray:
  """The value of state-dict entry `name`, from the seed and the name alone.

  Kernels N(0, 2 / fan_in) (He's, so activations neither vanish nor explode
  through the depth); biases N(0, 0.1²); BatchNorm scales U(0.5, 1.5), running
  means N(0, 0.2²) and running variances U(0.5, 2): not the defaults (1, 0, 0,
  1), so a statistic loaded into the wrong slot changes the logits.
  """
  rng = _generator(seed, name)
  leaf = name.rpartition(".")[2]
  if leaf == "num_batches_tracked":
    return np.asarray(1000, np.int64)
  if leaf == "running_var":
    return rng.uniform(0.5, 2.0, shape).astype(np.float32)
  if leaf == "running_mean":
    return rng.normal(0.0, 0.2, shape).astype(np.float32)
  if leaf == "bias":
    return rng.normal(0.0, 0.1, shape).astype(np.float32)
  if len(shape) == 1:  # A BatchNorm weight (its scale).
    return rng.uniform(0.5, 1.5, shape).astype(np.float32)
  fan_in = int(np.prod(shape[1:]))
  return (rng.standard_normal(shape, np.float32) * np.float32(np.sqrt(2.0 / fan_in)))


def golden_weights(seed: int, shapes: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
  return {name: golden_tensor(seed, name, tuple(shape)) for name, shape in shapes.items()}


def golden_inputs(seed: int, shape: tuple[int, ...]) -> np.ndarray:
  """Images [N, C, H, W] (torchvision's layout), N(0, 1) like standardised pixels."""
  return _generator(seed, "input").standard_normal(shape, np.float32)


def write_safetensors(path, tensors: dict[str, np.ndarray]) -> None:
  """`tensors` as a safetensors file, written by the safetensors package."""
  safetensors.numpy.save_file(tensors, path)
