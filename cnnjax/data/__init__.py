"""Input pipelines: TFDS datasets through tf.data. The only package that imports
TensorFlow, which feeds the host and must never take an accelerator.

Importing the package does not import TensorFlow: `describe` (what cnnjax
knows of a dataset: its table, a TFDS dataset's DatasetInfo, a folder's
class folders) is free of it, so configs are checked at once;
`InputPipeline` and `open_builder` import it when first used.
"""

import os

# Quiet TensorFlow's C++ start-up logging, and keep its CPU ops free of
# oneDNN's reordered arithmetic so preprocessing is bitwise repeatable. Set
# here, before any module of the package can import TensorFlow.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
# TensorFlow's import loads Keras's optimizers eagerly, for SavedModel's registry
# (tensorflow/__init__.py), unless told to use the legacy `tf_keras`, whose failed
# import it then skips. cnnjax uses tf.data and tf.image only, never Keras: this saves
# 1.0-1.3 CPU s of the 5.9 that `import tensorflow` costs every command that reads
# data (2-core AMD EPYC, measured), and every process of a multi-process run.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from cnnjax.data.datasets import DATASETS, DatasetSpec, dataset_spec  # noqa: E402
from cnnjax.data.lookup import describe  # noqa: E402

_PIPELINE_NAMES = ("InputPipeline", "open_builder")


def __getattr__(name: str):
  if name in _PIPELINE_NAMES:
    from cnnjax.data import pipeline

    return getattr(pipeline, name)
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
