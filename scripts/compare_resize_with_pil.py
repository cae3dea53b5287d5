"""How close cnnjax's torchvision-style evaluation preprocessing is to
torchvision's own, which runs on PIL: JPEG decoding, then the shorter side
resized to 256 (bilinear, antialiased as PIL does), then the centre 224 x 224.

For each image, three differences in grey levels (pixels 0-255): decoding
(cnnjax's, preprocess.decode, against PIL's; TensorFlow's default fast DCT
is shown beside it), resizing and cropping the same decoded
pixels (cnnjax's "resize_shorter(256) | center_crop(224)" against PIL's
Image.resize(BILINEAR) and torchvision's CenterCrop offsets, PIL's result
rounded to uint8 as torchvision's ToTensor sees it), and the two end to end.
Images: the photographs bundled with scikit-learn and a few `shapes/jpeg`
images (re-encoded from the generator, so no dataset is built).

Pillow and scikit-learn (its photographs) are needed here only, not by cnnjax:
pip install ".[scripts]".

  PYTHONPATH=$PWD python scripts/compare_resize_with_pil.py
"""

import io
import pathlib

import numpy as np
import sklearn
import tensorflow as tf
from PIL import Image

from cnnjax.data import preprocess, recipes, shapes

RECIPE = "resize_shorter(256) | center_crop(224)"


def torchvision_eval(image: Image.Image) -> np.ndarray:
  """torchvision's Resize(256) then CenterCrop(224) on a PIL image, as uint8."""
  width, height = image.size
  short, long = min(width, height), max(width, height)
  new_long = int(256 * long / short)  # torchvision's _compute_resized_output_size.
  size = (256, new_long) if width <= height else (new_long, 256)
  resized = image.resize(size, Image.BILINEAR)
  top = int(round((resized.size[1] - 224) / 2.0))
  left = int(round((resized.size[0] - 224) / 2.0))
  return np.asarray(resized.crop((left, top, left + 224, top + 224)))


def cnnjax_eval(encoded: bytes) -> np.ndarray:
  """cnnjax's recipe, pixels 0-255 as floats."""
  recipe = preprocess.recipe(recipes.parse(RECIPE, 224, "eval_preprocess"), 3)
  out = recipe({"image": tf.constant(encoded)}, tf.zeros(2, tf.int64))["image"]
  return out.numpy() * 255


def differences(encoded: bytes) -> dict[str, tuple[float, float]]:
  """(mean, max) absolute difference of decoding, of resize + crop, and of both."""
  pil_image = Image.open(io.BytesIO(encoded)).convert("RGB")
  pil_pixels = np.asarray(pil_image).astype(np.float64)
  decoded = preprocess.decode({"image": tf.constant(encoded)}, 3)["image"]
  tf_pixels = np.rint(decoded.numpy() * 255)
  expected = torchvision_eval(pil_image).astype(np.float64)
  same_input = cnnjax_eval(tf.io.encode_png(pil_pixels.astype(np.uint8)).numpy())
  end_to_end = cnnjax_eval(encoded)
  fast_dct = tf.io.decode_jpeg(encoded, channels=3).numpy().astype(np.float64)
  stat = lambda a, b: (float(np.abs(a - b).mean()), float(np.abs(a - b).max()))
  return {"decode": stat(tf_pixels, pil_pixels), "decode, TF's default": stat(fast_dct, pil_pixels), "resize+crop": stat(same_input, expected),
          "end to end": stat(end_to_end, expected)}


def images() -> dict[str, bytes]:
  folder = pathlib.Path(sklearn.__file__).parent / "datasets" / "images"
  found = {path.name: path.read_bytes() for path in sorted(folder.glob("*.jpg"))}
  drawn = [image for images, _ in shapes.generate(shapes.HARD, "validation", 50, stop=4,
                                                   sizes=shapes.JPEG_SIZES) for image in images]
  for index, image in enumerate(drawn):
    found[f"shapes/jpeg validation {index} {image.shape[1]}x{image.shape[0]}"] = (
        tf.io.encode_jpeg(image).numpy())
  return found


def main():
  print(f"grey levels (0-255), mean / max absolute difference; cnnjax: {RECIPE!r}")
  for name, encoded in images().items():
    size = Image.open(io.BytesIO(encoded)).size
    row = "  ".join(f"{key} {mean:.3f} / {largest:.1f}"
                    for key, (mean, largest) in differences(encoded).items())
    print(f"{name} ({size[0]}x{size[1]}): {row}")


if __name__ == "__main__":
  main()
