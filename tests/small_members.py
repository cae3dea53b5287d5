"""Small members of a family the registry cannot narrow, built from the
family's own classes, for tests that need the family's layers without its
compile time."""

import functools

import jax
import jax.numpy as jnp
from flax import linen as nn

from cnnjax.models import googlenet, layers


class GoogLeNetStem(nn.Module):
  """GoogLeNet's layers up to and with inception 3a (Table 1), then its head:
  its stem, LRN, Xavier initialisation and Inception module, one of nine."""

  num_classes: int

  def min_input_size(self) -> int:
    return layers.min_input_size([(7, 2, 3), (3, 2, 0, True), (3, 2, 0, True)])

  @nn.compact
  def __call__(self, images: jax.Array, *, train: bool) -> jax.Array:
    conv = functools.partial(layers.ConvNormAct, kernel_init=googlenet.XAVIER)
    lrn = layers.lrn("paper")
    x = conv(64, 7, strides=2, name="conv1")(images, train=train)
    x = lrn(layers.max_pool_ceil(x, 3, 2))
    x = conv(64, 1, name="conv2_reduce")(x, train=train)
    x = layers.max_pool_ceil(lrn(conv(192, 3, name="conv2")(x, train=train)), 3, 2)
    x = googlenet.Inception(googlenet.INCEPTION["3a"], conv, name="inception3a")(x, train=train)
    return nn.Dense(self.num_classes, name="fc")(jnp.mean(x, axis=(1, 2)))
