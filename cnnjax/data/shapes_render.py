"""Drawing the `shapes` dataset in NumPy: ten shapes as signed distance
functions, composited with their nuisances, vectorised over a block of images.

Each shape is defined in a local frame where it reaches to about radius 1
(the round ends of thick strokes a little further); a scene places that frame
in the image by a rotation, a uniform scale (the radius in pixels) and a
translation. These keep Euclidean distances exact (times the scale), so a
pixel's coverage is `clip(0.5 - d, 0, 1)` with `d` the signed distance in
pixels from the pixel centre to the shape's edge: about the share of the pixel
that a straight edge covers, i.e. anti-aliasing with one distance per pixel
instead of supersampling.

Layers, back to front: a two-colour background ramp, thin distractor
scratches (clutter), the shape, an occluding pole, then a linear
illumination ramp over everything and Gaussian pixel noise. Every random
draw of a block comes from one `np.random.Generator`, in a fixed order, so a
block is a function of its generator's seed.

Scenes are laid out in units of the 32x32 image's pixels. A `Frame` draws
them at other sizes and aspect ratios (`shapes/jpeg`): image i is
heights[i] x widths[i] pixels, its shorter side 32 units, so a unit is
min(height, width) / 32 pixels; the longer side spans more units, and the
shape may move further along it. Coverage is still anti-aliased per pixel
(distances in units times pixels per unit). A block is drawn on one canvas
as large as its largest image; each image is its top-left corner.
"""

import dataclasses
import math

import numpy as np

SIZE = 32  # Image side, pixels; in a Frame, the shorter side in units.
CLASSES = ("disc", "ring", "square", "triangle", "cross", "bar", "L", "arc", "star", "two_dots")
LUMINANCE = np.array([0.2126, 0.7152, 0.0722], np.float32)  # Rec. 709 weights of R, G, B.
ARC_HALF_ANGLE = math.radians(120.0)  # The arc spans 240 degrees: a ring with a 120-degree gap.


@dataclasses.dataclass(frozen=True)
class Nuisances:
  """The ranges a scene's nuisance factors are drawn from (uniformly, unless said)."""

  radius: tuple[float, float]  # Pixels to the local frame's unit: the shape's reach.
  shift: float  # Max |offset| of the shape's centre from the image centre, per axis, pixels;
  # also at most 16 - radius, so the shape stays inside the image.
  rotation: float  # Max |angle|, degrees (180: any orientation).
  stroke: tuple[float, float]  # Stroke width of the stroked shapes, fraction of the radius.
  contrast: float  # Min |luminance(shape) - luminance(background)|; colours otherwise any RGB.
  background_ramp: float  # Max change of each background channel from one side to the other.
  shading: float  # Max depth of the illumination ramp: gain falls from 1 to 1 - depth.
  clutter: int  # Max number of distractor scratches (0 to this many, behind the shape).
  occlusion: float  # Probability of an occluding band in front of the shape.
  noise: float  # Max standard deviation of the Gaussian pixel noise (pixels in [0, 1]).


# Shape geometry in the local frame (the shapes reach to about radius 1).
_SQUARE = 0.62 * np.array([(1, 1), (-1, 1), (-1, -1), (1, -1)], np.float32)
_TRIANGLE = 0.95 * np.stack([np.cos(np.deg2rad([90, 210, 330])),
                             np.sin(np.deg2rad([90, 210, 330]))], axis=1).astype(np.float32)
_STAR_ANGLES = np.deg2rad(90 + 36 * np.arange(10))
_STAR = (np.where(np.arange(10) % 2 == 0, 0.95, 0.4)[:, None] *
         np.stack([np.cos(_STAR_ANGLES), np.sin(_STAR_ANGLES)], axis=1)).astype(np.float32)


def _length(x, y):
  return np.sqrt(x * x + y * y)


def _segment(u, v, a, b):
  """Distance from (u, v) to the segment a-b."""
  ex, ey = b[0] - a[0], b[1] - a[1]
  wx, wy = u - a[0], v - a[1]
  t = np.clip((wx * ex + wy * ey) / (ex * ex + ey * ey), 0.0, 1.0)
  return _length(wx - t * ex, wy - t * ey)


def _polygon(u, v, vertices):
  """Signed distance to a simple polygon: distance to the nearest edge,
  negative inside (the even-odd crossing rule)."""
  distance = np.full(u.shape, np.inf, np.float32)
  inside = np.zeros(u.shape, bool)
  for a, b in zip(vertices, np.roll(vertices, 1, axis=0)):
    distance = np.minimum(distance, _segment(u, v, a, b))
    crosses = (v >= a[1]) != (v >= b[1])
    x_at_v = a[0] + (v - a[1]) * (b[0] - a[0]) / (b[1] - a[1] + 1e-12)
    inside ^= crosses & (u < x_at_v)
  return np.where(inside, -distance, distance)


def _arc(u, v, radius):
  """Distance to a circular arc of `radius`, centred on the +u axis, spanning
  +-ARC_HALF_ANGLE: to the circle within the span, to the nearer end outside."""
  v = np.abs(v)  # The arc is symmetric about the u axis.
  end_u, end_v = radius * np.cos(ARC_HALF_ANGLE), radius * np.sin(ARC_HALF_ANGLE)
  within = np.arctan2(v, u) <= ARC_HALF_ANGLE
  return np.where(within, np.abs(_length(u, v) - radius), _length(u - end_u, v - end_v))


def _stroked(distance, stroke):
  return distance - stroke / 2


# Signed distance of each class in the local frame; `stroke` is per image,
# broadcast against the (n, H, W) coordinates.
SHAPE_DISTANCES = {
    "disc": lambda u, v, stroke: _length(u, v) - 0.75,
    "ring": lambda u, v, stroke: _stroked(np.abs(_length(u, v) - (0.75 - stroke / 2)), stroke),
    "square": lambda u, v, stroke: _polygon(u, v, _SQUARE),
    "triangle": lambda u, v, stroke: _polygon(u, v, _TRIANGLE),
    "cross": lambda u, v, stroke: _stroked(np.minimum(_segment(u, v, (-0.85, 0), (0.85, 0)),
                                                      _segment(u, v, (0, -0.85), (0, 0.85))),
                                           stroke),
    "bar": lambda u, v, stroke: _stroked(_segment(u, v, (-0.9, 0), (0.9, 0)), stroke),
    "L": lambda u, v, stroke: _stroked(np.minimum(_segment(u, v, (-0.4, 0.8), (-0.4, -0.4)),
                                                  _segment(u, v, (-0.4, -0.4), (0.8, -0.4))),
                                       stroke),
    "arc": lambda u, v, stroke: _stroked(_arc(u, v, 0.75 - stroke / 2), stroke),
    "star": lambda u, v, stroke: _polygon(u, v, _STAR),
    "two_dots": lambda u, v, stroke: np.minimum(_length(u - 0.55, v), _length(u + 0.55, v)) - 0.3,
}
assert tuple(SHAPE_DISTANCES) == CLASSES


@dataclasses.dataclass(frozen=True)
class Frame:
  """The pixel sizes of a block's images: image i is heights[i] x widths[i]."""

  heights: np.ndarray
  widths: np.ndarray

  @classmethod
  def square(cls, count: int) -> "Frame":
    """`count` images of SIZE x SIZE pixels, a pixel per unit."""
    return cls(np.full(count, SIZE), np.full(count, SIZE))

  @property
  def pixels_per_unit(self) -> np.ndarray:
    return np.minimum(self.heights, self.widths).astype(np.float32) / SIZE

  @property
  def extent(self) -> np.ndarray:
    """(n, 2): each image's width and height, in units."""
    sides = np.stack([self.widths, self.heights], axis=1).astype(np.float32)
    return sides / self.pixels_per_unit[:, None]


def _frame(scenes) -> Frame:
  return Frame(scenes["height"], scenes["width"])


def _pixel_grid(frame: Frame):
  """Pixel centres of the canvas in each image's units: x (n, 1, W), y (n, H, 1)."""
  per_unit = frame.pixels_per_unit[:, None, None]
  x = (np.arange(frame.widths.max(), dtype=np.float32) + 0.5)[None, None, :] / per_unit
  y = (np.arange(frame.heights.max(), dtype=np.float32) + 0.5)[None, :, None] / per_unit
  return x, y


def _coverage(distance_in_pixels):
  return np.clip(0.5 - distance_in_pixels, 0.0, 1.0)


def _local_frame(centre, radius, angle, frame):
  """Pixel centres in each image's local frame: (n, H, W) arrays u, v."""
  x, y = _pixel_grid(frame)
  dx = x - centre[:, 0, None, None]
  dy = y - centre[:, 1, None, None]
  cos, sin = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]
  scale = radius[:, None, None]
  return (dx * cos + dy * sin) / scale, (-dx * sin + dy * cos) / scale


def shape_coverage(labels, centre, radius, angle, stroke, frame: Frame | None = None
                   ) -> np.ndarray:
  """Anti-aliased coverage in [0, 1], (n, H, W), of shape `labels[i]` reaching
  `radius[i]` units from `centre[i]` (x, y units), rotated by `angle[i]`
  radians, its strokes `stroke[i]` radii wide; in `frame` (default: 32x32
  images, where a unit is a pixel)."""
  frame = frame or Frame.square(len(labels))
  u, v = _local_frame(centre, radius, angle, frame)
  coverage = np.zeros(u.shape, np.float32)
  for label, distance in enumerate(SHAPE_DISTANCES.values()):
    chosen = np.flatnonzero(labels == label)
    if chosen.size:
      local = distance(u[chosen], v[chosen], stroke[chosen, None, None])
      pixels_per_radius = radius[chosen, None, None] * frame.pixels_per_unit[chosen, None, None]
      coverage[chosen] = _coverage(local * pixels_per_radius)
  return coverage


def _random_colours(rng, count):
  return rng.uniform(0.0, 1.0, (count, 3)).astype(np.float32)


def _contrasting_colours(rng, background, contrast):
  """Any RGB colour whose luminance differs from the background's by at least
  `contrast`: redrawn until it does (a fixed sequence of draws for a given rng)."""
  colours = _random_colours(rng, len(background))
  low = np.abs((colours - background) @ LUMINANCE) < contrast
  while low.any():
    colours[low] = _random_colours(rng, int(low.sum()))
    low = np.abs((colours - background) @ LUMINANCE) < contrast
  return colours


def sample_scenes(labels, rng: np.random.Generator, nuisances: Nuisances,
                  frame: Frame | None = None) -> dict[str, np.ndarray]:
  """Every random factor of the scenes of `labels`, drawn from `rng` in a
  fixed order, in units (pixels of the 32x32 image); `frame` gives the
  images' sizes in pixels (default: 32x32)."""
  n = len(labels)
  frame = frame or Frame.square(n)
  f32 = lambda a: np.asarray(a, np.float32)
  uniform = lambda low, high, shape=(): f32(rng.uniform(low, high, (n,) + shape))
  radius = uniform(*nuisances.radius)
  half = frame.extent / 2
  shift = np.minimum(nuisances.shift, half - radius[:, None])  # Stay inside the frame.
  centre = half + uniform(-1.0, 1.0, (2,)) * shift
  background = _random_colours(rng, n)
  scenes = dict(
      height=frame.heights, width=frame.widths,
      labels=np.asarray(labels), radius=radius, centre=centre,
      angle=uniform(-1.0, 1.0) * math.radians(nuisances.rotation),
      stroke=uniform(*nuisances.stroke),
      background=background,
      background_far=np.clip(background + uniform(-1.0, 1.0, (3,)) * nuisances.background_ramp,
                             0.0, 1.0),
      background_direction=uniform(0.0, 2 * np.pi),
      colour=_contrasting_colours(rng, background, nuisances.contrast),
      shading=uniform(0.0, nuisances.shading),
      shading_direction=uniform(0.0, 2 * np.pi),
      noise=uniform(0.0, nuisances.noise),
  )
  slots = max(nuisances.clutter, 1)  # One slot, never used, keeps the arrays' shapes simple.
  scenes.update(
      clutter_count=rng.integers(0, nuisances.clutter + 1, n),
      clutter_start=uniform(0.0, 1.0, (slots, 2)) * frame.extent[:, None, :],
      clutter_angle=uniform(0.0, 2 * np.pi, (slots,)),
      clutter_length=uniform(2.0, 6.0, (slots,)),
      clutter_width=uniform(0.7, 1.2, (slots,)),
      clutter_colour=uniform(0.0, 1.0, (slots, 3)),
  )
  # The occluder is a pole in front of the shape: a band from edge to edge of
  # the image, so it is not mistaken for a bar or a cross; coloured unlike the
  # shape; at most 0.3 radii wide, half a dot's width, so it hides a piece of
  # any part of a shape but never a whole part.
  scenes.update(
      occluded=rng.uniform(0.0, 1.0, n) < nuisances.occlusion,
      occluder_offset=uniform(-0.7, 0.7) * radius,  # From the shape's centre, across the pole.
      occluder_half_width=uniform(0.08, 0.15) * radius,
      occluder_angle=uniform(0.0, np.pi),
      occluder_colour=_contrasting_colours(rng, scenes["colour"], nuisances.contrast),
  )
  return scenes


def _ramp(direction, frame: Frame):
  """A linear ramp over the image, 0 on one side and 1 on the other, along `direction`."""
  x, y = _pixel_grid(frame)
  width, height = (frame.extent[:, axis, None, None] for axis in (0, 1))
  along = ((x - width / 2) * np.cos(direction)[:, None, None] +
           (y - height / 2) * np.sin(direction)[:, None, None])
  side = np.sqrt((width * width + height * height) / 2)  # Of the square with that diagonal.
  return (along / side * math.sqrt(0.5) + 0.5)[..., None]  # The image diagonal maps to [0, 1].


def _scratch_coverage(scenes, slot):
  angle, length = scenes["clutter_angle"][:, slot], scenes["clutter_length"][:, slot]
  start = scenes["clutter_start"][:, slot].T[..., None, None]  # (2, n, 1, 1): x, y.
  end = start + (length * np.stack([np.cos(angle), np.sin(angle)]))[..., None, None]
  frame = _frame(scenes)
  x, y = _pixel_grid(frame)
  half_width = scenes["clutter_width"][:, slot, None, None] / 2
  distance = _segment(x, y, start, end) - half_width
  present = (slot < scenes["clutter_count"])[:, None, None]
  return _coverage(distance * frame.pixels_per_unit[:, None, None]) * present


def _occluder_coverage(scenes):
  """A band across the image: distance to its centre line, less its half width."""
  frame = _frame(scenes)
  x, y = _pixel_grid(frame)
  angle = scenes["occluder_angle"][:, None, None]
  across = ((x - scenes["centre"][:, 0, None, None]) * -np.sin(angle) +
            (y - scenes["centre"][:, 1, None, None]) * np.cos(angle))
  distance = (np.abs(across - scenes["occluder_offset"][:, None, None]) -
              scenes["occluder_half_width"][:, None, None])
  return _coverage(distance * frame.pixels_per_unit[:, None, None]) * scenes["occluded"][:, None, None]


def _over(image, colour, coverage):
  """Paints `colour` (n, 3) over `image` (n, H, W, 3) where `coverage` (n, H, W) says."""
  return image + coverage[..., None] * (colour[:, None, None, :] - image)


def draw(scenes: dict[str, np.ndarray], rng: np.random.Generator) -> np.ndarray:
  """The images of `scenes` on one canvas, uint8 (n, H, W, 3) with H and W
  the largest height and width (32x32 by default: the images themselves);
  `rng` draws the pixel noise."""
  frame = _frame(scenes)
  background, far = scenes["background"], scenes["background_far"]
  image = (background[:, None, None, :] +
           (far - background)[:, None, None, :] * _ramp(scenes["background_direction"], frame))
  for slot in range(scenes["clutter_start"].shape[1]):
    image = _over(image, scenes["clutter_colour"][:, slot], _scratch_coverage(scenes, slot))
  image = _over(image, scenes["colour"], shape_coverage(
      scenes["labels"], scenes["centre"], scenes["radius"], scenes["angle"], scenes["stroke"],
      frame))
  image = _over(image, scenes["occluder_colour"], _occluder_coverage(scenes))
  shading = _ramp(scenes["shading_direction"], frame)
  image = image * (1 - scenes["shading"][:, None, None, None] * shading)
  noise = rng.standard_normal(image.shape, np.float32)
  image = image + noise * scenes["noise"][:, None, None, None]
  return np.round(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)


def render(labels, rng: np.random.Generator, nuisances: Nuisances,
           frame: Frame | None = None) -> np.ndarray:
  """Images of the shapes `labels` under random `nuisances`, uint8 (n, 32, 32, 3),
  or on a canvas as `draw` says, in `frame`."""
  return draw(sample_scenes(labels, rng, nuisances, frame), rng)
