"""torchvision's weights as cnnjax variables, read from a safetensors file
with NumPy alone: no torch, no pickle.

The file is read by the safetensors package (its NumPy API), which checks the
header, the dtypes and that the offsets cover the data exactly; anything it
refuses (a truncated file, a PyTorch .pth, a zip) is a one-line UserError
naming the file. Floating-point tensors come back as float32 (bfloat16 and
float16 widen exactly); dtypes torchvision's weights never hold (float8,
complex, ...) are refused by name.

`torchvision_variables` maps torchvision's parameter names (its `state_dict`
keys, e.g. "layer1.0.conv1.weight") onto a model's Flax variables:
- Conv2d weight [O, I, kh, kw] → kernel [kh, kw, I, O] (HWIO);
- Linear weight [out, in] → kernel [in, out]; the first Linear after a
  flatten (AlexNet's and VGG's FC6, GoogLeNet's auxiliary FC1) reads
  torchvision's NCHW maps flattened as c·H·W + h·W + w, ours NHWC as
  h·W·C + w·C + c, so its rows are reordered;
- BatchNorm2d weight, bias, running_mean, running_var → params scale, bias and
  batch_stats mean, var (both use the biased variance to normalise and
  eps 1e-5, googlenet_bn 1e-3); `num_batches_tracked` is ignored.
Every key must be used and every variable filled, with equal shapes; a
missing or unexpected key, or a shape mismatch, is a UserError naming the
first and counting the others. The one exception is googlenet_bn's auxiliary
heads: torchvision's own loader treats them as optional (its published
weights carry untrained ones), so a file without a head's keys at all keeps
that head's fresh initialisation, and says so.
"""

import functools
import pathlib
import re
from typing import Callable

import numpy as np
import safetensors

from cnnjax.errors import UserError

# The safetensors dtypes read: floats (as float32) and BatchNorm's integer step counter.
FLOAT_DTYPES = frozenset({"F64", "F32", "F16", "BF16"})
OTHER_DTYPES = frozenset({"I64", "I32", "I16", "I8", "U8", "BOOL"})
IGNORED_SUFFIX = ".num_batches_tracked"  # BatchNorm's step counter: no cnnjax variable.


def read_safetensors(path: pathlib.Path) -> dict[str, np.ndarray]:
  """Every tensor of the safetensors file at `path`, floats as float32.

  A file that is not safetensors, truncated or inconsistent, or holds a
  dtype other than FLOAT_DTYPES and OTHER_DTYPES, is a UserError naming it
  and what is wrong.
  """
  # bfloat16 as a NumPy dtype, which safetensors' NumPy API needs to read BF16
  # tensors; imported here, since its extension takes a second or more to load
  # and the command line imports this module for its --help.
  import ml_dtypes  # noqa: F401

  def fail(why: str) -> UserError:
    return UserError(f"--from {path} is not a usable safetensors file: {why}")

  try:
    with safetensors.safe_open(path, framework="numpy") as file:
      dtypes = {name: file.get_slice(name).get_dtype() for name in file.keys()}
      for name, dtype in dtypes.items():
        if dtype not in FLOAT_DTYPES | OTHER_DTYPES:
          raise fail(f"tensor {name!r} is {dtype}, not a dtype of torchvision's weights "
                     f"({', '.join(sorted(FLOAT_DTYPES))})")
      return {name: file.get_tensor(name).astype(np.float32) if dtype in FLOAT_DTYPES
              else file.get_tensor(name) for name, dtype in dtypes.items()}
  except safetensors.SafetensorError as error:
    raise fail(f"{str(error).removeprefix('Error while deserializing header: ')} (truncated, or "
               "another format such as a PyTorch .pth or a zip? convert it with "
               "safetensors.torch.save_file)") from None
  except OSError as error:
    raise UserError(f"cannot read --from {path}: {error.strerror or error}") from None


# --- Our module paths → torchvision's module names, per family. -------------
# Each takes our module's path (e.g. ("stage1_block2", "bn1")) and returns
# torchvision's module name ("layer1.1.bn1").

def _resnet_name(path: tuple[str, ...]) -> str:
  top = {"conv_init": "conv1", "bn_init": "bn1", "head": "fc"}
  if path[0] in top:
    return top[path[0]]
  stage, block = re.fullmatch(r"stage(\d+)_block(\d+)", path[0]).groups()
  layer = {"conv_proj": "downsample.0", "bn_proj": "downsample.1"}.get(path[1], path[1])
  return f"layer{stage}.{int(block) - 1}.{layer}"


def _densenet_name(path: tuple[str, ...]) -> str:
  top = {"conv_init": "features.conv0", "bn_init": "features.norm0",
         "bn_final": "features.norm5", "head": "classifier"}
  if path[0] in top:
    return top[path[0]]
  if match := re.fullmatch(r"transition(\d+)_(bn|conv)", path[0]):
    block, kind = match.groups()
    return f"features.transition{block}.{'norm' if kind == 'bn' else 'conv'}"
  block, layer = re.fullmatch(r"block(\d+)_layer(\d+)", path[0]).groups()
  return f"features.denseblock{block}.denselayer{layer}.{path[1].replace('bn', 'norm')}"


def _alexnet_name(path: tuple[str, ...]) -> str:
  # torchvision's nn.Sequential indices: features = conv, relu, pool, conv,
  # relu, pool, conv, relu, conv, relu, conv, relu, pool; classifier =
  # dropout, linear, relu, dropout, linear, relu, linear.
  return {"conv1": "features.0", "conv2": "features.3", "conv3": "features.6",
          "conv4": "features.8", "conv5": "features.10", "fc6": "classifier.1",
          "fc7": "classifier.4", "fc8": "classifier.6"}[path[0]]


def _vgg_name(model, path: tuple[str, ...]) -> str:
  """torchvision's `features` indices: conv[, bn], relu per convolution, a
  max pool closing each stage; classifier = linear, relu, dropout, ×2, linear."""
  if path[0] in ("fc6", "fc7", "fc8"):
    return f"classifier.{ {'fc6': 0, 'fc7': 3, 'fc8': 6}[path[0]] }"
  batch_norm = model.norm == "batchnorm"
  index = 0
  for stage, (_, kernels) in enumerate(model.stages):
    for conv in range(len(kernels)):
      if path[0] == f"conv{stage + 1}_{conv + 1}":
        return f"features.{index + (path[1] == 'bn')}"
      index += 3 if batch_norm else 2
    index += 1
  raise KeyError(path)


_GOOGLENET_BRANCHES = {"1x1": "branch1", "3x3_reduce": "branch2.0", "3x3": "branch2.1",
                       "5x5_reduce": "branch3.0", "5x5": "branch3.1", "pool_proj": "branch4.1"}


def _googlenet_name(path: tuple[str, ...]) -> str:
  """torchvision's GoogLeNet: BasicConv2d = (conv, bn); conv1 7x7, conv2 1x1,
  conv3 3x3; branch4.0 is the max pool; aux1 after 4a, aux2 after 4d."""
  head, *rest = path
  if head.startswith("inception"):
    return ".".join([head, _GOOGLENET_BRANCHES[rest[0]], *rest[1:]])
  if head.startswith("aux"):
    return ".".join([{"aux4a": "aux1", "aux4d": "aux2"}[head], *rest])
  return ".".join([{"conv2_reduce": "conv2", "conv2": "conv3"}.get(head, head), *rest])


# torchvision's DenseNet files name a dense layer's modules "norm.1", "conv.2"
# (from before PyTorch 0.4 forbade dots in module names); its loader renames
# them to "norm1", "conv2" (torchvision/models/densenet.py, _load_state_dict),
# and so does `legacy_names`, so the published files import as they are.
_LEGACY_DENSE_LAYER = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\."
    r"([12]\.(?:weight|bias|running_mean|running_var|num_batches_tracked))$")


def legacy_names(tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """`tensors` with torchvision's old DenseNet names ("norm.1") made current ("norm1")."""
  renamed = {}
  for key, value in tensors.items():
    match = _LEGACY_DENSE_LAYER.match(key)
    renamed[match.group(1) + match.group(2) if match else key] = value
  return renamed


@functools.cache
def _families() -> dict[str, tuple[Callable, dict[str, int]]]:
  """Model name → (naming function of (model, path), {layer after a flatten:
  the side of the square maps it reads})."""
  resnet = (lambda model, path: _resnet_name(path), {})
  densenet = (lambda model, path: _densenet_name(path), {})
  vgg = (_vgg_name, {"fc6": 7})
  families = {"alexnet_owt": (lambda model, path: _alexnet_name(path), {"fc6": 6}),
              # torchvision's InceptionAux pools to 4x4 before its conv and fc1.
              "googlenet_bn": (lambda model, path: _googlenet_name(path), {"fc1": 4})}
  families |= {f"resnet{depth}": resnet for depth in (18, 34, 50, 101, 152)}
  families |= {f"densenet{depth}": densenet for depth in (121, 161, 169, 201)}
  families |= {f"vgg{depth}{bn}": vgg for depth in (11, 13, 16, 19) for bn in ("", "_bn")}
  return families


def supported_models() -> list[str]:
  """The zoo models that are torchvision's architectures."""
  return sorted(_families())


def check_supported(model_name: str) -> None:
  if model_name not in _families():
    raise UserError(f"--model {model_name!r} has no torchvision counterpart to import weights "
                    f"from; choose one of: {', '.join(supported_models())}")


def _converter(kind: str, flattened_side: int | None) -> Callable[[np.ndarray], np.ndarray]:
  """torchvision's array of a variable of `kind` in our layout."""
  if kind == "conv":  # [O, I, kh, kw] → [kh, kw, I, O].
    return lambda w: w.transpose(2, 3, 1, 0)
  if kind == "linear" and flattened_side:  # Rows c·H·W + h·W + w → h·W·C + w·C + c.
    side = flattened_side

    def reorder(w):
      out, inputs = w.shape
      return (w.reshape(out, inputs // (side * side), side, side).transpose(2, 3, 1, 0)
              .reshape(inputs, out))

    return reorder
  if kind == "linear":  # [out, in] → [in, out].
    return lambda w: w.T
  return lambda w: w


def _torch_shape(kind: str, shape: tuple[int, ...]) -> list[int]:
  """The torchvision shape of our variable of `shape`."""
  if kind == "conv":
    return [shape[3], shape[2], shape[0], shape[1]]
  return list(shape[::-1]) if kind == "linear" else list(shape)


def _expected(model_name: str, model, variables: dict) -> dict[str, tuple]:
  """torchvision key → (our flattened variable path, kind, side of the maps
  flattened before it, our shape) for every variable."""
  from flax import traverse_util

  name_of, flattened = _families()[model_name]
  expected = {}
  for path, value in traverse_util.flatten_dict(variables).items():
    _, *module, leaf = path
    torch_module = name_of(model, tuple(module))
    if leaf == "kernel":
      kind = "conv" if len(value.shape) == 4 else "linear"
      torch_leaf = "weight"
    else:
      kind = "vector"
      torch_leaf = {"scale": "weight", "bias": "bias", "mean": "running_mean",
                    "var": "running_var"}[leaf]
    expected[f"{torch_module}.{torch_leaf}"] = (path, kind, flattened.get(module[-1]),
                                                 tuple(value.shape))
  return expected


def check_fits(model_name: str, model, variables: dict, tensors: dict[str, np.ndarray],
               source: str) -> tuple[dict[str, tuple], list[str]]:
  """What `torchvision_variables` will take from `tensors`, torchvision key →
  (our variable path, kind, flattened side), after checking that the keys
  and shapes fit `variables` exactly (arrays or jax.ShapeDtypeStructs: this
  needs no values); and notes on the variables it will keep. A UserError
  naming the first missing or unexpected key or mismatched shape otherwise.
  """
  check_supported(model_name)
  tensors = legacy_names(tensors)
  expected = _expected(model_name, model, variables)
  notes = []
  if model_name == "googlenet_bn":
    for head in ("aux1", "aux2"):
      keys = [key for key in expected if key.startswith(head + ".")]
      if not any(key in tensors for key in keys):
        notes.append(f"{source} has no {head} (torchvision's auxiliary head): it keeps its "
                     "fresh initialisation, to be trained")
        for key in keys:
          del expected[key]
  ignored = {key for key in tensors if key.endswith(IGNORED_SUFFIX)
             and key.removesuffix(IGNORED_SUFFIX) + ".running_mean" in expected}
  missing = [key for key in expected if key not in tensors]
  unexpected = [key for key in tensors if key not in expected and key not in ignored]
  mismatches = [f"{key!r} is {list(tensors[key].shape)} where {model_name} needs "
                f"{_torch_shape(kind, shape)}"
                for key, (path, kind, _, shape) in expected.items()
                if key in tensors and list(tensors[key].shape) != _torch_shape(kind, shape)]
  problem = (f"the key {missing[0]!r} is missing{_others(missing)}" if missing else
             f"the key {unexpected[0]!r} is unexpected{_others(unexpected)}" if unexpected else
             f"{mismatches[0]}{_others(mismatches)}" if mismatches else None)
  if problem:
    raise UserError(f"--from {source} does not fit --model {model_name}: {problem}; is it the "
                    "weights of another model, or not torchvision's names?")
  return expected, notes


def torchvision_variables(model_name: str, model, variables: dict,
                          tensors: dict[str, np.ndarray], source: str) -> tuple[dict, list[str]]:
  """`variables` (a model's `params` and `batch_stats`, as NumPy) with every
  value replaced by torchvision's tensor of the same layer, and notes on
  what was kept (see `check_fits`, whose UserErrors it raises). `source`
  names the file in errors.
  """
  from flax import traverse_util

  expected, notes = check_fits(model_name, model, variables, tensors, source)
  tensors = legacy_names(tensors)
  flat = traverse_util.flatten_dict(variables)
  converted = {path: np.ascontiguousarray(_converter(kind, side)(tensors[key]),
                                          dtype=flat[path].dtype)
               for key, (path, kind, side, _) in expected.items()}
  return traverse_util.unflatten_dict({**flat, **converted}), notes


def _others(items: list) -> str:
  return f" (and {len(items) - 1} other{'s' if len(items) > 2 else ''})" if len(items) > 1 else ""
