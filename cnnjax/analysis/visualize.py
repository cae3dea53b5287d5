"""What a trained network computes, as arrays: its first-layer filters, the
feature maps of its layers and their dead or redundant channels, occlusion
sensitivity (Zeiler & Fergus 2014) and gradient saliency (Simonyan et al.
2014). cnnjax.analysis.pictures draws them; cnnjax.analysis.inspect is the
command line.

Every function takes a network as `apply(images) -> logits` or a loaded
cnnjax.analysis.run.Run, and images as the network takes them (normalised).
"""

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from cnnjax.errors import UserError

Apply = Callable[[jax.Array], jax.Array]


# ---------------------------------------------------------------------------
# Filters.


@dataclasses.dataclass(frozen=True)
class Filters:
  """A convolution's kernels, [kernel_h, kernel_w, in_channels, out_channels],
  and how its output channels split into towers (AlexNet's two GPUs, §3.2)."""

  name: str
  kernel: np.ndarray
  towers: int = 1


def first_kernel(params: dict, channels: int) -> tuple[str, object]:
  """(path, leaf) of the convolution kernel ([h, w, in, out]) that reads the
  `channels`-channel image: LeNet-5's C1, AlexNet's conv1, ResNet's stem.
  Found by its input channels, not by its place in `params`, whose keys JAX
  sorts (DenseNet's block1 sorts before its conv0)."""
  kernels = [("/".join(str(getattr(key, "key", key)) for key in path), leaf)
             for path, leaf in jax.tree_util.tree_leaves_with_path(params)
             if len(leaf.shape) == 4 and path and str(getattr(path[-1], "key", "")) == "kernel"]
  reading = [(name, leaf) for name, leaf in kernels if leaf.shape[2] == channels]
  if not reading:
    raise UserError(f"this network has no convolution reading the {channels}-channel image "
                    "to draw")
  return reading[0]


def first_convolution(params: dict, channels: int, towers: int = 1) -> Filters:
  name, kernel = first_kernel(params, channels)
  return Filters(name, np.asarray(kernel, np.float32), towers)


def filter_grid(filters: Filters, columns: int | None = None, gap: int = 1) -> np.ndarray:
  """The kernels as one image [H, W, 3] (or [H, W] for one input channel) in
  [0, 1]: each kernel scaled by its own largest |weight| around 0.5 grey, so
  that its pattern, not its norm, shows; kernel k of tower t sits in tower
  t's block of rows, row-major. A kernel of more than 3 input channels shows
  its mean over them. Gaps are white."""
  kernel = filters.kernel
  if kernel.shape[2] not in (1, 3):
    kernel = kernel.mean(axis=2, keepdims=True)
  kh, kw, channels, count = kernel.shape
  scale = np.abs(kernel).max(axis=(0, 1, 2), keepdims=True)
  tiles = 0.5 + 0.5 * kernel / np.where(scale > 0, scale, 1.0)
  per_tower = count // filters.towers
  columns = columns or min(per_tower, max(1, int(np.ceil(np.sqrt(per_tower * 2)))))
  rows_per_tower = -(-per_tower // columns)
  height = filters.towers * rows_per_tower * (kh + gap) + (filters.towers - 1) * 2 * gap - gap
  grid = np.ones((height, columns * (kw + gap) - gap, channels), np.float32)
  for index in range(count):
    tower, within = divmod(index, per_tower)
    row, column = divmod(within, columns)
    top = (tower * rows_per_tower + row) * (kh + gap) + tower * 2 * gap
    left = column * (kw + gap)
    grid[top:top + kh, left:left + kw] = tiles[..., index]
  return grid[..., 0] if channels == 1 else grid


# ---------------------------------------------------------------------------
# Feature maps.


def feature_maps(run, images: np.ndarray) -> dict[str, np.ndarray]:
  """Every module's output that is a feature map [N, H, W, C], by module path
  ("layer1/0/conv1"), in the order the forward pass computed them."""
  _, state = run.apply(jnp.asarray(images), capture_intermediates=True,
                       mutable=["intermediates"])
  maps = {}

  def visit(tree, path):
    for key, value in tree.items():
      if key == "__call__":
        output = value[0]
        if path and hasattr(output, "ndim") and output.ndim == 4:
          maps["/".join(path)] = np.asarray(output, np.float32)
      else:
        visit(value, path + (key,))

  visit(state["intermediates"], ())
  return maps


def left_out(maps: dict[str, np.ndarray], chosen: list[str]) -> list[str]:
  """The network's own layers and blocks that `choose` left out by default
  (their maps are 1x1: a classifier, a global pool)."""
  return [name for name in maps if "/" not in name and name not in chosen]


def choose(maps: dict[str, np.ndarray], wanted: list[str] | None) -> list[str]:
  """`wanted`, each checked (an unknown name is a UserError listing the names
  there are), or by default the maps of the network's own layers and blocks,
  not of their parts, that are still maps (larger than 1x1)."""
  names = list(maps)
  if not wanted:
    return [name for name in names
            if "/" not in name and maps[name].shape[1] * maps[name].shape[2] > 1]
  for name in wanted:
    if name not in names:
      raise UserError(f"--layers: no feature map named {name!r}; this network has "
                      f"{', '.join(names)}")
  return wanted


@dataclasses.dataclass(frozen=True)
class ChannelReport:
  """A layer's channels over a set of images."""

  layer: str
  channels: int
  dead: int  # Never above zero anywhere: after a ReLU, they never fire.
  constant: int  # The same value everywhere: they carry nothing, whatever follows.
  mean_abs_correlation: float  # Mean |Pearson r| between two distinct live channels.

  def as_dict(self) -> dict:
    return dataclasses.asdict(self)


def channel_report(layer: str, maps: np.ndarray) -> ChannelReport:
  """Dead and constant channels of `maps` [N, H, W, C], and how redundant the
  rest are: the correlation of two channels over every position of every
  image, |r| averaged over all pairs of distinct non-constant channels (nan
  when fewer than two are left)."""
  values = maps.reshape(-1, maps.shape[-1]).astype(np.float64)
  dead = int(np.sum(values.max(axis=0) <= 0))
  spread = values.std(axis=0)
  live = spread > 1e-7 * max(1.0, float(np.abs(values).max()))
  constant = int(np.sum(~live))
  if live.sum() < 2:
    return ChannelReport(layer, values.shape[1], dead, constant, float("nan"))
  correlation = np.corrcoef(values[:, live], rowvar=False)
  pairs = ~np.eye(len(correlation), dtype=bool)
  return ChannelReport(layer, values.shape[1], dead, constant,
                       float(np.abs(correlation[pairs]).mean()))


# ---------------------------------------------------------------------------
# Occlusion sensitivity (Zeiler & Fergus 2014, §4.2).


def occlusion_positions(size: int, patch: int, stride: int) -> list[int]:
  """Where a patch's top (or left) edge goes along an axis of `size`: every
  `stride` pixels from 0, and flush with the far edge so every pixel is
  covered at least once."""
  if not 1 <= patch <= size:
    raise UserError(f"--patch {patch} must be between 1 and the image size {size}")
  if stride < 1:
    raise UserError(f"--stride must be at least 1, got {stride}")
  positions = list(range(0, size - patch + 1, stride))
  if positions[-1] != size - patch:
    positions.append(size - patch)
  return positions


def occlusion_map(apply: Apply, image: np.ndarray, label: int, patch: int, stride: int,
                  fill: float = 0.0, chunk: int = 256) -> np.ndarray:
  """The probability of class `label` with a `patch` x `patch` square of value
  `fill` over the image at each position: [rows, columns], the square's top
  left corner at occlusion_positions(...). `fill` 0 is the dataset's mean
  colour in a standardised input (Zeiler & Fergus's grey square)."""
  height, width = image.shape[:2]
  tops, lefts = occlusion_positions(height, patch, stride), occlusion_positions(width, patch,
                                                                                 stride)
  corners = np.array([(top, left) for top in tops for left in lefts])
  rows, columns = np.arange(height)[:, None], np.arange(width)[None, :]

  @jax.jit
  def probabilities(corner_batch):
    def occluded(corner):
      inside = ((rows >= corner[0]) & (rows < corner[0] + patch) &
                (columns >= corner[1]) & (columns < corner[1] + patch))
      return jnp.where(inside[..., None], fill, image)

    logits = apply(jax.vmap(occluded)(corner_batch))
    return jax.nn.softmax(logits.astype(jnp.float32))[:, label]

  chunks = [np.asarray(probabilities(jnp.asarray(_padded(corners[start:start + chunk], chunk))))
            for start in range(0, len(corners), chunk)]
  return np.concatenate(chunks)[:len(corners)].reshape(len(tops), len(lefts))


def _padded(corners: np.ndarray, size: int) -> np.ndarray:
  """`corners` repeated up to `size` rows: one compiled shape for every chunk."""
  return np.concatenate([corners, np.repeat(corners[-1:], size - len(corners), 0)])


def coverage_map(values: np.ndarray, size: tuple[int, int], patch: int,
                 stride: int) -> np.ndarray:
  """An occlusion map spread back over the image's pixels: each pixel gets the
  mean of the values of the patch positions that covered it ([H, W])."""
  total, count = np.zeros(size), np.zeros(size)
  for i, top in enumerate(occlusion_positions(size[0], patch, stride)):
    for j, left in enumerate(occlusion_positions(size[1], patch, stride)):
      total[top:top + patch, left:left + patch] += values[i, j]
      count[top:top + patch, left:left + patch] += 1
  return total / count


# ---------------------------------------------------------------------------
# Saliency (Simonyan, Vedaldi & Zisserman 2014, §3.1).


def saliency_map(apply: Apply, image: np.ndarray, label: int) -> np.ndarray:
  """|d score_label / d image|, the largest over the colour channels ([H, W]):
  the unnormalised class score (the logit, before the softmax, as §3.1
  prescribes), differentiated at this image."""
  score = lambda x: apply(x[None])[0, label].astype(jnp.float32)
  gradient = jax.grad(score)(jnp.asarray(image, jnp.float32))
  return np.asarray(jnp.abs(gradient).max(axis=-1))
