"""Input pipelines: TFDS datasets through tf.data. The only package that imports
TensorFlow, which feeds the host and must never take an accelerator."""

import os

# Quiet TensorFlow's C++ start-up logging, and keep its CPU ops free of
# oneDNN's reordered arithmetic so preprocessing is bitwise repeatable.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import tensorflow as tf  # noqa: E402

tf.config.set_visible_devices([], "GPU")
# TFDS calls deprecated tf.data APIs (e.g. CounterV2 for `tfds_id`); their
# warnings are TensorFlow's business, not the user's.
tf.get_logger().setLevel("ERROR")

from cnnjax.data.datasets import DATASETS, DatasetSpec, dataset_spec  # noqa: E402
from cnnjax.data.pipeline import InputPipeline, open_builder  # noqa: E402
