"""Four fake CPU devices for every test, declared before JAX is imported, so
multi-device code runs here exactly as it would on four accelerators."""

import os

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_force_host_platform_device_count=4").strip()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_platforms", "cpu")


@pytest.fixture(scope="session", autouse=True)
def compilation_cache(tmp_path_factory):
  """Tests compile the same small steps many times; compile each once per session."""
  jax.config.update("jax_compilation_cache_dir", str(tmp_path_factory.mktemp("jax_cache")))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory):
  """A TFDS data dir holding the prepared `digits`, shared by the whole session."""
  from cnnjax.config import base_config
  from cnnjax.data import open_builder

  data_dir = tmp_path_factory.mktemp("tfds")
  dataset = base_config().dataset
  dataset.name, dataset.data_dir = "digits", str(data_dir)
  open_builder(dataset)
  return str(data_dir)
