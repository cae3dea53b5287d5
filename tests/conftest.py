"""Four fake CPU devices for every test, declared before JAX is imported, so
multi-device code runs here exactly as it would on four accelerators."""

import atexit
import importlib.metadata
import os
import shutil
import tempfile

if "--xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                             " --xla_force_host_platform_device_count=4").strip()
# Tests compile far more than they run (a few steps of each small program):
# without XLA's LLVM optimisations a program compiles in about two thirds of
# the time. The paper recipes' smoke runs (scripts/smoke_paper_recipes.sh,
# run by CI after the tests) train with XLA's defaults.
if "--xla_backend_optimization_level" not in os.environ["XLA_FLAGS"]:
  os.environ["XLA_FLAGS"] += " --xla_backend_optimization_level=0"
  # And without the fusion emitters: a tiny run's first compile 7.1-7.9 ->
  # 5.8 s. Only where the flag is known to exist (XLA aborts on unknown ones).
  if importlib.metadata.version("jaxlib").startswith("0.10."):
    os.environ["XLA_FLAGS"] += " --xla_cpu_use_fusion_emitters=false"
# XLA's CPU collectives end the whole process (LOG(FATAL), SIGABRT) when one of
# the four device threads has not joined an all-reduce within 40 s: on 2 cores
# loaded 10-20 by other work, workers died so mid-run, taking the tests they had
# with them (seen three times, the rendezvous message naming 3 of 4 threads).
# Waiting as long as a test may run leaves a real hang to pytest-timeout, which
# fails that one test with its traceback.
if ("--xla_cpu_collective_call_terminate_timeout_seconds" not in os.environ["XLA_FLAGS"]
    and importlib.metadata.version("jaxlib").startswith("0.10.")):
  os.environ["XLA_FLAGS"] += (" --xla_cpu_collective_call_terminate_timeout_seconds=900"
                              " --xla_cpu_collective_call_warn_stuck_timeout_seconds=120")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# As pyproject.toml's filterwarnings in this process, with its exception: a
# deprecated call in a `cnnjax` process that a test starts ends it with the
# warning's traceback.
os.environ.setdefault("PYTHONWARNINGS", "error::DeprecationWarning,ignore:jax.sharding.PmapSharding"
                      " is deprecated:DeprecationWarning:jax.experimental.multihost_utils")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
# As cnnjax/data/__init__.py: tests import TensorFlow before cnnjax.data does.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
# Tests compile the same small steps many times, in this process, in pytest-
# xdist's workers and in the `cnnjax` processes they start: all of them share
# one persistent compilation cache (JAX reads these variables at import), so
# each step compiles once per session.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  _cache = tempfile.mkdtemp(prefix="cnnjax-tests-jax-cache-")
  atexit.register(shutil.rmtree, _cache, ignore_errors=True)
  os.environ.update(JAX_COMPILATION_CACHE_DIR=_cache,
                    JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                    JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")


def pytest_xdist_auto_num_workers(config):
  """`-n auto`: one worker more than the cores. Many tests wait on the
  `cnnjax` processes they start; on 2 cores, 3 workers ran the suite in
  9m42s against 10m15s for 2 (pytest-xdist's --maxprocesses still caps it)."""
  return len(os.sched_getaffinity(0)) + 1

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_platforms", "cpu")


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


@pytest.fixture(scope="session")
def slurm_cluster():
  """A one-node SLURM cluster of this machine's CPUs for the session (tests/slurm.py),
  stopped at its end; skipped, saying why, where SLURM is not installed or this is
  not root."""
  import slurm

  reason = slurm.missing()
  if reason:
    pytest.skip(reason)
  cluster = slurm.Cluster().start()
  try:
    yield cluster
  finally:
    cluster.stop()


@pytest.fixture(scope="session")
def learned_digits(digits_dir, tmp_path_factory):
  """LeNet-5 trained on `digits` until it has learnt them (60 steps of 32),
  for the tests that only read a trained run (or a copy of it):
  tests/test_learning.py asserts what it learnt, test_train.py reads its
  workdir, test_visualize.py draws it. (workdir, plan, final evaluation)."""
  from helpers import tiny_config

  from cnnjax.training import train

  workdir = tmp_path_factory.mktemp("learned_digits")
  plan = train.plan(tiny_config(digits_dir, batch_size=32, num_train_steps=60,
                                log_every_steps=20, eval_every_steps=30,
                                checkpoint_every_steps=30))
  return workdir, plan, train.train_and_evaluate(plan, workdir)
