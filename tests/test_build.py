"""Compiling cnnjax's C++ kernels where they run (cnnjax.kernels.build): the
cache key covers every input, $CXX is a command line, the compiler has a time
limit, and any failure is one line and the libraries' own kernels, while a
config check or an abstract trace compiles and writes nothing."""

import os
import pathlib
import shutil
import subprocess
import sys
import textwrap

import pytest
from helpers import LENET_DIGITS, ROOT

from cnnjax.kernels import build

RUN_TIMEOUT_S = 300  # A whole short run, start-up included, on 2 loaded cores.
needs_compiler = pytest.mark.skipif(not (shutil.which("c++") or shutil.which("g++")),
                                    reason="no C++ compiler here")


@pytest.fixture
def cache(tmp_path, monkeypatch) -> pathlib.Path:
  monkeypatch.setenv("CNNJAX_CACHE_DIR", str(tmp_path / "cache"))
  return tmp_path / "cache"


def _fake_compiler(directory: pathlib.Path, version: str, seconds: float = 0) -> pathlib.Path:
  """A "compiler" that prints `version` when asked, logs each command line and, after
  `seconds`, writes an empty file where `-o` says."""
  script = directory / "fake-cxx"
  script.write_text(textwrap.dedent(f"""\
      #!{sys.executable}
      import pathlib, sys, time
      if "--version" in sys.argv:
        print({version!r})
        sys.exit(0)
      with open({str(directory / "log")!r}, "a") as log:
        print(" ".join(sys.argv[1:]), file=log)
      time.sleep({seconds})
      pathlib.Path(sys.argv[sys.argv.index("-o") + 1]).write_bytes(b"")
      """))
  script.chmod(0o755)
  return script


def _source(directory: pathlib.Path, text: str = "int f() { return 1; }\n") -> pathlib.Path:
  source = directory / "kernel.cc"
  source.write_text(text)
  return source


def test_cxx_is_split_as_a_shell_splits_it(monkeypatch):
  monkeypatch.setenv("CXX", "ccache g++")
  assert build.compiler() == ["ccache", "g++"]
  monkeypatch.setenv("CXX", "'/opt/my compilers/g++' -m64")
  assert build.compiler() == ["/opt/my compilers/g++", "-m64"]


def test_the_cache_key_covers_the_compiler_its_flags_the_source_and_the_versions(
    tmp_path, monkeypatch, cache):
  compiler = _fake_compiler(tmp_path, "fake 1.0")
  monkeypatch.setenv("CXX", f"{compiler} --wrapped")
  source = _source(tmp_path)
  built = build.build(source, ["-O2", str(source)], {"jaxlib": "1.0"})
  assert built.parent == cache and built.exists()
  log = (tmp_path / "log").read_text().splitlines()
  assert log == [f"--wrapped -O2 {source} -o {log[0].split(' -o ')[1]}"]  # $CXX's own flag first.
  assert build.build(source, ["-O2", str(source)], {"jaxlib": "1.0"}) == built  # Cached.
  assert len((tmp_path / "log").read_text().splitlines()) == 1
  others = [build.build(source, ["-O3", str(source)], {"jaxlib": "1.0"}),
            build.build(source, ["-O2", str(source)], {"jaxlib": "1.1"}),
            build.build(source, ["-O2", str(source)], {"jaxlib": "1.0", "onednn": "3"})]
  source.write_text("int f() { return 2; }\n")
  others.append(build.build(source, ["-O2", str(source)], {"jaxlib": "1.0"}))
  monkeypatch.setenv("CXX", str(_fake_compiler(tmp_path, "fake 1.1")))  # Upgraded in place.
  build._version.cache_clear()
  source.write_text("int f() { return 1; }\n")
  others.append(build.build(source, ["-O2", str(source)], {"jaxlib": "1.0"}))
  assert len({built, *others}) == 6


def test_a_compiler_past_the_time_limit_is_given_up(tmp_path, monkeypatch, cache):
  monkeypatch.setenv("CXX", str(_fake_compiler(tmp_path, "slow 1.0", seconds=30)))
  monkeypatch.setattr(build, "COMPILE_TIMEOUT_S", 1)
  source = _source(tmp_path)
  with pytest.raises(build.Unavailable, match=r"^compiling kernel.cc took more than 1 s"):
    build.build(source, [str(source)], {})


def test_a_cache_that_cannot_be_written_is_unavailable(tmp_path, monkeypatch):
  (tmp_path / "file").write_text("")
  monkeypatch.setenv("CNNJAX_CACHE_DIR", str(tmp_path / "file" / "cache"))
  monkeypatch.setenv("CXX", str(_fake_compiler(tmp_path, "fake 1.0")))
  source = _source(tmp_path)
  with pytest.raises(build.Unavailable, match=r"^cannot write to the cache .*CNNJAX_CACHE_DIR"):
    build.build(source, [str(source)], {})


@needs_compiler
def test_a_missing_header_is_the_compilers_error_in_one_line(tmp_path, monkeypatch, cache):
  monkeypatch.delenv("CXX", raising=False)
  source = _source(tmp_path, "#include <cnnjax_no_such_header.h>\n")
  with pytest.raises(build.Unavailable) as raised:
    build.build(source, ["-shared", "-fPIC", str(source)], {})
  assert str(raised.value).startswith("compiling kernel.cc failed: ")
  assert "cnnjax_no_such_header.h" in str(raised.value) and "\n" not in str(raised.value)


def _python(*args, cache_dir) -> subprocess.CompletedProcess:
  """A fresh Python (nothing built or loaded yet) with its kernels cached in `cache_dir`."""
  environment = {**os.environ, "CNNJAX_CACHE_DIR": str(cache_dir)}
  environment.pop("CNNJAX_ONEDNN", None)
  return subprocess.run([sys.executable, *map(str, args)], cwd=ROOT, text=True,
                        capture_output=True, timeout=RUN_TIMEOUT_S, env=environment)


def _cnnjax(*args, cache_dir) -> subprocess.CompletedProcess:
  return _python("-m", "cnnjax", *args, cache_dir=cache_dir)


# What `cnnjax sweep` does before its workdir exists (every run's config
# resolved, every model built abstractly), then a model's gradient traced
# abstractly (jax.eval_shape, and jit's trace without lowering).
SWEEP_PLAN_AND_ABSTRACT_TRACES = textwrap.dedent("""\
    import pathlib, sys
    import jax, jax.numpy as jnp
    from cnnjax.models import create_model
    from cnnjax.sweep import check_runs, load_sweep, plan_runs
    spec = sys.argv[1]
    check_runs(plan_runs(spec, load_sweep(spec), 1, [], pathlib.Path("unused")))
    model = create_model("resnet20", num_classes=10)
    images = jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.float32)
    variables = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), images)
    loss = lambda variables, x: model.apply(variables, x, train=False).sum()
    jax.eval_shape(jax.grad(loss), variables, images)
    jax.jit(jax.grad(loss)).trace(variables, images)
    """)


def test_checking_a_config_planning_a_sweep_or_tracing_abstractly_builds_nothing(tmp_path):
  cache_dir = tmp_path / "cache"
  cache_dir.mkdir()
  for command in (["-m", "cnnjax", "config", "--config", LENET_DIGITS],
                  ["-m", "cnnjax", "summary", "lenet5"],
                  ["-c", SWEEP_PLAN_AND_ABSTRACT_TRACES,
                   ROOT / "experiments" / "ablations" / "plain_vs_residual.py:smoke"]):
    done = _python(*command, cache_dir=cache_dir)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "cnnjax: note" not in done.stderr
  assert not any(cache_dir.iterdir())


def test_a_cache_that_cannot_be_written_is_one_line_per_kernel_and_training_finishes(
    tmp_path, digits_dir):
  (tmp_path / "file").write_text("")
  done = _cnnjax("train", "--config", LENET_DIGITS, "--workdir", tmp_path / "run",
                 f"--config.dataset.data_dir={digits_dir}", "--config.batch_size=16",
                 "--config.num_train_steps=2", "--config.eval_every_steps=2",
                 "--config.log_every_steps=1", cache_dir=tmp_path / "file" / "cache")
  assert done.returncode == 0, done.stderr[-2000:]
  # Each on a line of its own, the progress bar's included.
  notes = [line for line in done.stderr.splitlines() if line.startswith("cnnjax: note:")]
  assert sorted(note.split(":")[2].strip() for note in notes) == [
      "convolutions use XLA's CPU kernels, slower than oneDNN's",
      "images are resized by TensorFlow's kernel, slower than cnnjax's"]
  assert all("cannot write to the cache" in note for note in notes)
  assert (tmp_path / "run" / "results.json").exists()
