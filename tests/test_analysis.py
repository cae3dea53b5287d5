"""cnnjax.analysis: convolution arithmetic against hand-computed values."""

import pytest

from cnnjax.analysis import Field, conv_output_size, receptive_fields


# --- Arithmetic ------------------------------------------------------------------------------

@pytest.mark.parametrize("arguments, size", [
    ((32, 5), 28),                # LeNet-5 C1 (§II.B).
    ((28, 2, 2), 14),             # S2.
    ((227, 11, 4), 55),           # AlexNet conv1 (§3.5, with the 227 its arithmetic needs).
    ((224, 11, 4, 2), 55),        # torchvision's padded 224.
    ((224, 7, 2, 3), 112),        # ResNet conv1.
    ((112, 3, 2, 1), 56),         # ResNet's max pool.
    ((55, 3, 2), 27),             # AlexNet's overlapping pool.
    ((32, 3, 1, 0, 2), 28),       # Dilation 2: a 3x3 kernel spans 5 pixels.
    ((7, 3, 2, 1, 3), 2),         # floor((7 + 2 - 7) / 2) + 1.
])
def test_conv_output_size_by_hand(arguments, size):
  assert conv_output_size(*arguments) == size


@pytest.mark.parametrize("arguments, message", [
    ((4, 5), "does not fit"), ((32, 3, 0), "stride must be"), ((32, 3, 1, -1), "padding must"),
    ((32, 2.5), "kernel must"),
])
def test_conv_output_size_refuses_impossible_layers(arguments, message):
  with pytest.raises(ValueError, match=message):
    conv_output_size(*arguments)


def test_receptive_fields_by_hand():
  lenet = receptive_fields([(5,), (2, 2), (5,), (2, 2), (5,)])
  assert [(f.size, f.jump) for f in lenet] == [(5, 1), (6, 2), (14, 2), (16, 4), (32, 4)]
  # VGG §2.3: two stacked 3x3 convolutions see 5x5, three see 7x7.
  assert [f.size for f in receptive_fields([(3, 1, 1)] * 3)] == [3, 5, 7]
  # Yu & Koltun 2016: 3x3 convolutions dilated 1, 2, 4 see 3, 7, 15.
  assert [f.size for f in receptive_fields([(3, 1, 0, 1), (3, 1, 0, 2), (3, 1, 0, 4)])] == [3, 7, 15]
  # Centres: "valid" moves the first unit's centre by (k-1)/2 input pixels, "same" does not.
  assert Field().through(3).start == 1.5 and Field().through(3, padding=1).start == 0.5
  assert receptive_fields([(11, 4), (3, 2)])[-1] == Field(19, 8, 9.5)
