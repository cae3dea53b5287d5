"""Invariance and equivariance, measured on a trained network.

Shifts. The test images are translated by k pixels down and right at once
(k = 0..K), either with wrap-around (`wrap`: jnp.roll) or with zeros shifted
in (`pad`: 0 is the dataset's mean after standardisation, the value the
convolutions pad with). For the output, `consistency` is the fraction of
images whose predicted class is the unshifted image's, `accuracy` the
fraction classified right.

Equivariance of a layer whose units are `jump` pixels apart (the product of
the strides before it) with receptive field `field`: a shift by k = s x jump
pixels should shift its maps by s units. Its error at k is

    || f(T_k x)[u + s] - f(x)[u] || / || f(x)[u] ||

over the units u whose receptive field lies inside the part of the image
that stays in view, [0, size - 1 - k] along each axis (the rest see wrapped
pixels, shifted-in zeros, or pixels that left the image, and differ for
reasons that are not the network's), and over all channels and images. It
is 0 to rounding for any stack of convolutions and poolings when jump
divides k. When it does not, no shift of the maps matches: the error given is
the smaller of those for s = floor(k / jump) and s + 1, which is how much
striding breaks equivariance (Azulay & Weiss 2019; Zhang 2019). A layer with
no unit far enough from the border at that k has none (nan).

Other transforms, for the `shapes` datasets, where a class is a shape and
nothing else (cnnjax/data/shapes.py): `scale` (zoom about the centre by a
factor), `rotation` (about the centre, degrees), `colour` (a hue rotation:
the pixels turned about the grey axis of the normalised colour space,
degrees), `occlusion` (a centred square of zeros, side as a fraction of the
image); consistency and accuracy as functions of the magnitude.
"""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from cnnjax.analysis import visualize

TRANSFORMS = ("shift", "scale", "rotation", "colour", "occlusion")
MAGNITUDES = {
    "scale": (0.6, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5),
    "rotation": (0, 15, 30, 45, 90, 135, 180),
    "colour": (0, 30, 60, 90, 120, 180),
    "occlusion": (0.0, 0.1, 0.2, 0.3, 0.4, 0.5),
}


@dataclasses.dataclass(frozen=True)
class Row:
  """One number of the probe: `layer` is a module path or "output"."""

  transform: str
  mode: str  # wrap or pad for shifts; "" otherwise.
  magnitude: float
  layer: str
  metric: str  # equivariance_error, consistency or accuracy.
  value: float

  def as_dict(self) -> dict:
    return dataclasses.asdict(self)


def shift(images: jax.Array, k: int, mode: str) -> jax.Array:
  """`images` [N, H, W, C] moved k pixels down and right."""
  if k == 0:
    return images
  if mode == "wrap":
    return jnp.roll(images, (k, k), axis=(1, 2))
  padded = jnp.pad(images, ((0, 0), (k, 0), (k, 0), (0, 0)))
  return padded[:, :images.shape[1], :images.shape[2]]


def _affine(images: jax.Array, matrix: np.ndarray) -> jax.Array:
  """Each output pixel p reads the input at matrix @ (p - centre) + centre,
  bilinearly, zeros outside."""
  _, height, width, _ = images.shape
  centre = np.array([(height - 1) / 2, (width - 1) / 2])
  rows, columns = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
  source = np.einsum("ij,jhw->ihw", matrix, np.stack([rows, columns]) - centre[:, None, None])
  source = source + centre[:, None, None]

  def one(image):
    return jnp.stack([jax.scipy.ndimage.map_coordinates(image[..., c], list(source), order=1,
                                                        mode="constant", cval=0.0)
                      for c in range(image.shape[-1])], -1)

  return jax.vmap(one)(images)


def scale(images: jax.Array, factor: float) -> jax.Array:
  """Zoomed about the centre: `factor` > 1 enlarges the shape."""
  return images if factor == 1 else _affine(images, np.eye(2) / factor)


def rotate(images: jax.Array, degrees: float) -> jax.Array:
  """Turned about the centre by `degrees`."""
  if degrees % 360 == 0:
    return images
  angle = math.radians(degrees)
  matrix = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
  return _affine(images, matrix)


def hue_rotation(degrees: float) -> np.ndarray:
  """The 3x3 rotation by `degrees` about the grey axis (1, 1, 1) / sqrt(3)
  (Rodrigues' formula): brightness kept, hues turned; 120 degrees permutes
  red -> green -> blue."""
  axis = np.ones(3) / math.sqrt(3)
  cross = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
  angle = math.radians(degrees)
  return np.eye(3) + math.sin(angle) * cross + (1 - math.cos(angle)) * cross @ cross


def recolour(images: jax.Array, degrees: float) -> jax.Array:
  return images if degrees % 360 == 0 else images @ jnp.asarray(hue_rotation(degrees).T,
                                                                images.dtype)


def occlude(images: jax.Array, fraction: float) -> jax.Array:
  """A centred square of zeros whose side is `fraction` of the image's."""
  _, height, width, _ = images.shape
  side = int(round(fraction * min(height, width)))
  if side == 0:
    return images
  top, left = (height - side) // 2, (width - side) // 2
  return images.at[:, top:top + side, left:left + side].set(0.0)


APPLY = {"scale": scale, "rotation": rotate, "colour": recolour, "occlusion": occlude}


def field_and_jump(run) -> dict[str, tuple[int, int]]:
  """(receptive field, jump) along the height of every module's output, from
  `cnnjax summary`'s trace of this network."""
  from cnnjax.analysis import summary

  size, _, channels = run.image_shape
  options = {key: value for key, value in run.config.model.items() if key != "name"}
  spec = summary.Model(run.config.model.name, size, channels, run.model.num_classes, options)
  first = lambda value: value[0] if isinstance(value, (list, tuple)) else value
  return {row.name: (first(row.receptive_field), first(row.jump))
          for row in summary.summarize(spec).rows if row.name != "total"}


def equivariance_error(before: np.ndarray, after: np.ndarray, k: int, field: int, jump: int,
                       size: int) -> float:
  """The normalised error of the module docstring; `before` = f(x), `after` =
  f(T_k x), both [N, H, W, C]."""
  height = before.shape[1]
  offset = ((height - 1) * jump + field - size) / 2  # The field of unit 0 starts at -offset.
  units = [u for u in range(height) if u * jump - offset >= 0
           and u * jump - offset + field - 1 <= size - 1 - k]
  errors = []
  for s in sorted({k // jump, -(-k // jump)}):
    kept = [u for u in units if u + s < height]
    if not kept:
      continue
    index = np.array(kept)
    reference = before[:, index][:, :, index]
    moved = after[:, index + s][:, :, index + s]
    norm = np.linalg.norm(reference)
    errors.append(np.linalg.norm(moved - reference) / norm if norm > 0 else 0.0)
  return float(min(errors)) if errors else float("nan")


def _outputs(run, images: jax.Array, labels: np.ndarray, reference: np.ndarray):
  predicted = np.argmax(np.asarray(run.apply(images)), axis=-1)
  return float(np.mean(predicted == reference)), float(np.mean(predicted == labels))


def probe(run, images: np.ndarray, labels: np.ndarray, layers: list[str] | None,
          max_shift: int, modes: tuple[str, ...], transforms: tuple[str, ...]) -> list[Row]:
  """Every number of the probe, as rows (see the module docstring)."""
  images = jnp.asarray(images)
  size = images.shape[1]
  reference = np.argmax(np.asarray(run.apply(images)), axis=-1)
  rows = []
  if "shift" in transforms:
    maps = visualize.feature_maps(run, images)
    chosen = visualize.choose(maps, layers)
    fields = field_and_jump(run)
    for mode in modes:
      for k in range(max_shift + 1):
        moved = shift(images, k, mode)
        moved_maps = visualize.feature_maps(run, moved)
        for name in chosen:
          field, jump = fields.get(name, (1, max(1, round(size / maps[name].shape[1]))))
          rows.append(Row("shift", mode, k, name, "equivariance_error", equivariance_error(
              maps[name], moved_maps[name], k, field, jump, size)))
        consistency, accuracy = _outputs(run, moved, labels, reference)
        rows += [Row("shift", mode, k, "output", "consistency", consistency),
                 Row("shift", mode, k, "output", "accuracy", accuracy)]
  for name in transforms:
    if name == "shift":
      continue
    for magnitude in MAGNITUDES[name]:
      changed = APPLY[name](images, magnitude)
      consistency, accuracy = _outputs(run, changed, labels, reference)
      rows += [Row(name, "", magnitude, "output", "consistency", consistency),
               Row(name, "", magnitude, "output", "accuracy", accuracy)]
  return rows
