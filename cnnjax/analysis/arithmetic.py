"""Convolution arithmetic: output sizes and receptive fields, in plain Python.

Output size (Dumoulin & Visin 2016, "A guide to convolution arithmetic for
deep learning", §2.4 and §5.1): a convolution or pooling of kernel k, stride
s, zero padding p on each side and dilation d maps an input side i to

    o = floor((i + 2p - k - (k - 1)(d - 1)) / s) + 1.

Receptive field (Araujo, Norris, Sim 2019, "Computing receptive fields of
convolutional neural networks", Distill, eq. 1-2; the same recurrence the
lecture notes write layer by layer): with r the receptive field of a unit
(in input pixels), j the jump (the input distance between adjacent units, the
product of the strides so far) and c the input coordinate of the centre of
the first unit's field (pixel 0 is at 0.5, so the input itself has r = 1,
j = 1, c = 0.5),

    r_out = r_in + (k - 1) d j_in
    j_out = j_in s
    c_out = c_in + ((k - 1) d / 2 - p) j_in.

The field is what the arithmetic allows, padding included: it may be larger
than the image (ResNet-50's last maps see 427 pixels of a 224 image).
"""

import dataclasses
from typing import Iterable


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0,
                     dilation: int = 1) -> int:
  """The output side of a convolution or pooling over an input side `size`:
  floor((size + 2 padding - dilation (kernel - 1) - 1) / stride) + 1.

  >>> conv_output_size(227, 11, stride=4)   # AlexNet conv1
  55
  >>> conv_output_size(224, 7, stride=2, padding=3)   # ResNet conv1
  112
  """
  for name, value, least in (("size", size, 1), ("kernel", kernel, 1), ("stride", stride, 1),
                             ("padding", padding, 0), ("dilation", dilation, 1)):
    if int(value) != value or value < least:
      raise ValueError(f"{name} must be an integer of at least {least}, got {value!r}")
  span = dilation * (kernel - 1) + 1
  if size + 2 * padding < span:
    raise ValueError(f"a kernel spanning {span} pixels does not fit in {size} pixels padded by "
                     f"{padding} on each side")
  return (size + 2 * padding - span) // stride + 1


@dataclasses.dataclass(frozen=True)
class Field:
  """The receptive field of the units of one layer's output, along one axis:
  `size` input pixels wide, `jump` input pixels between adjacent units,
  the first unit's field centred on input coordinate `start`."""

  size: int = 1
  jump: int = 1
  start: float = 0.5

  def through(self, kernel: int, stride: int = 1, padding: int = 0,
              dilation: int = 1) -> "Field":
    """The field after a convolution or pooling applied to units with this field."""
    span = dilation * (kernel - 1)
    return Field(self.size + span * self.jump, self.jump * stride,
                 self.start + (span / 2 - padding) * self.jump)


def receptive_fields(layers: Iterable[tuple[int, ...]]) -> list[Field]:
  """The receptive field after each layer of a chain, each given as
  (kernel[, stride[, padding[, dilation]]]), from the input onwards.

  >>> [f.size for f in receptive_fields([(11, 4), (3, 2), (5, 1, 2)])]   # AlexNet to conv2
  [11, 19, 51]
  """
  fields, field = [], Field()
  for layer in layers:
    field = field.through(*layer)
    fields.append(field)
  return fields
