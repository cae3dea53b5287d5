"""`cnnjax bench`: the real train step timed without TensorFlow, figures that
hang together, and bad input refused in one line before anything compiles."""

import json
import os
import subprocess
import sys
import time

import jax
import pytest
from helpers import ROOT, markdown_rows, script

from cnnjax import cli, kernels, models
from cnnjax.analysis import summary
from cnnjax.bench import command as bench
from cnnjax.bench import timing as bench_timing
from cnnjax.kernels import onednn
from cnnjax.training import parallel

KEYS = ("model", "image_size", "batch_size", "dtype", "images_per_sec", "step_ms", "compile_s",
        "flops_per_image", "achieved_tflops", "mfu", "peak_memory_bytes")
# Installed in every Python process that finds it on PYTHONPATH: importing
# TensorFlow (or TFDS) there fails, so a bench process that imports it dies.
NO_TENSORFLOW = """
import importlib.abc, sys

class NoTensorFlow(importlib.abc.MetaPathFinder):
  def find_spec(self, name, path, target=None):
    if name.partition(".")[0] in ("tensorflow", "tensorflow_datasets"):
      raise ImportError(f"{name} is blocked: the bench path must not import it")

sys.meta_path.insert(0, NoTensorFlow())
"""


def _forward_macs(name: str) -> int:
  """The model's forward multiply-accumulates at its native input, as
  `cnnjax summary` counts them."""
  size, channels, _ = summary.default_input(name)
  return summary.summarize(summary.Model(name, size, channels, 10, {})).rows[-1].macs


def test_zoo_times_each_model_in_a_process_without_tensorflow(tmp_path, monkeypatch, capsys):
  """`--model all` over a two-model zoo: each model's own process, where
  importing TensorFlow fails; the first measures the peak, the second is given it."""
  (tmp_path / "sitecustomize.py").write_text(NO_TENSORFLOW)
  monkeypatch.setenv("PYTHONPATH", f"{tmp_path}:{ROOT}")
  blocked = subprocess.run([sys.executable, "-c", "import tensorflow"], capture_output=True,
                           text=True, timeout=60)
  assert blocked.returncode == 1 and "tensorflow is blocked" in blocked.stderr
  monkeypatch.setattr(models, "list_models", lambda: ["lenet5", "lenet5_modern"])

  started = time.monotonic()
  assert cli.main(["bench", "--model", "all", "--batch-size", "8", "--steps", "2",
                   "--repeats", "2", "--format", "json"]) == 0
  elapsed = time.monotonic() - started

  out, err = capsys.readouterr()
  rows = json.loads(out)
  assert [row["model"] for row in rows] == ["lenet5", "lenet5_modern"]
  assert "[1/2] lenet5" in err and "[2/2] lenet5_modern" in err
  lenet5_macs = _forward_macs("lenet5")
  for row in rows:
    assert all(key in row for key in KEYS)
    assert (row["image_size"], row["channels"], row["num_classes"]) == (32, 1, 10)
    assert (row["batch_size"], row["dtype"], row["steps"], row["repeats"]) == (8, "float32", 2, 2)
    assert row["images_per_sec_min"] <= row["images_per_sec"] <= row["images_per_sec_max"]
    assert row["step_ms"] == pytest.approx(1000 * 8 / row["images_per_sec"])
    assert row["peak_memory_bytes"] is None  # CPU reports none.
    # Seconds, inside the command's wall time: the compile, and the timed steps at the
    # slowest repeat's rate.
    assert 0 < row["compile_s"] < elapsed
    assert row["steps"] * row["batch_size"] / row["images_per_sec_min"] < elapsed
    assert row["platform"] == "cpu" and row["device_count"] == 4
    # A training step is about 3 forward passes (input and weight gradients),
    # 2 FLOPs per multiply-accumulate; one device's program over its 2 images.
    assert 4 * lenet5_macs < row["flops_per_image"] < 10 * lenet5_macs
    assert row["achieved_tflops"] == pytest.approx(
        row["flops_per_image"] * row["images_per_sec"] / 1e12)
    assert row["mfu"] == pytest.approx(row["achieved_tflops"] / rows[0]["peak_tflops"])
  assert [row["peak_source"] for row in rows] == ["measured", "given"]
  # The CPU's float32 matmul: above 1 GFLOP/s, and below 256 GFLOP/s a core (two AVX-512
  # FMA units at 4 GHz) on the cores that the 4 fake devices share.
  cores = len(os.sched_getaffinity(0))
  assert rows[1]["peak_tflops"] == rows[0]["peak_tflops"]
  assert 1e-3 < rows[0]["peak_tflops"] < 0.256 * cores
  assert all(0 < row["mfu"] < 1 for row in rows)  # A batch of 8 LeNets: far from the peak.

  table = bench.table(rows)
  shown = markdown_rows(table)
  assert [list(row.values())[:4] for row in shown] == [["lenet5", "32x32x1", "8", "float32"],
                                                      ["lenet5_modern", "32x32x1", "8", "float32"]]
  assert shown[0]["peak memory"] == "-"  # The CPU reports none.
  assert "4 x cpu" in table and "(measured, float32 matmul)" in table


def test_bfloat16_step_and_given_peak(capsys):
  """In the test's process: bfloat16 compute, a model option, the table."""
  assert cli.main(["bench", "--model", "lenet5", "--image-size", "36", "--batch-size", "4",
                   "--steps", "1", "--repeats", "1", "--dtype", "bfloat16",
                   "--peak-tflops", "0.5", "--config.model.activation=relu"]) == 0
  out, _ = capsys.readouterr()
  (row,) = markdown_rows(out)
  assert list(row.values())[:4] == ["lenet5", "36x36x1", "4", "bfloat16"]
  assert "peak 0.5 TFLOP/s per device (given)" in out


def test_steps_timer_times_the_step_it_compiled_once():
  """What scripts/compare_pytorch.py times cnnjax with."""
  case = bench_timing.Case("lenet5", 32, 1, 10, 4, "float32", steps=None, repeats=1)
  run = bench_timing.steps_timer(case)
  with bench_timing._CompileCounter() as compilations:
    started = time.perf_counter()
    seconds = run(2)
    elapsed = time.perf_counter() - started
  assert 0 < seconds <= elapsed and compilations.count == 0  # The steps' own seconds.


def test_compare_pytorch_says_when_torch_is_missing():
  blocker = "import sys; sys.modules['torch'] = None; "
  script = ROOT / "scripts" / "compare_pytorch.py"
  result = subprocess.run([sys.executable, "-c", blocker + f"exec(open({str(script)!r}).read())"],
                          capture_output=True, text=True, timeout=120)
  assert result.returncode == 2
  assert result.stderr.strip().startswith("compare_pytorch: torch and torchvision are not "
                                          "importable here")


def test_flops_are_counted_with_xlas_own_convolutions():
  """XLA's cost analysis leaves out custom calls: cuDNN's convolutions on a
  GPU, oneDNN's on the CPU. bench counts the step traced with XLA's own
  (`kernels.with_xla_primitives`), mapped over one CPU device: near the
  4-device program's count traced the same way (lowered, which adds the mean
  of the gradients over devices), LeNet-5 about 6 x its 0.42 M forward MACs
  per image (less its first layer's input gradient), and never below the
  compiled step's own count."""
  case = bench_timing.Case("lenet5_modern", 32, 1, 10, 8, "float32", steps=None, repeats=1)
  step = bench_timing._build_step(case, 2, lambda text: None)
  on_cpu = bench_timing._flops_on_cpu(step)
  four_devices = parallel.map_train_step(kernels.with_xla_primitives(step.train_step)).lower(
      step.state, step.batch, step.rng)
  assert on_cpu == pytest.approx(bench_timing._flops(four_devices), rel=0.05)
  assert on_cpu / 2 == pytest.approx(6 * 0.42e6, rel=0.15)
  compiled = bench_timing._flops(step.call.lower(step.state, step.batch, step.rng).compile())
  assert bench_timing._compile(step)[2] == max(on_cpu, compiled)
  if onednn.available():  # Its convolutions are custom calls, hidden from XLA.
    assert compiled < 0.5 * on_cpu


# Three instructions of a bfloat16 ResNet step as XLA's GPU backend compiles
# them (cuDNN and cuBLAS calls), shortened, with one float32 product planted.
GPU_HLO = """
  %p.1 = bf16[256,56,56,64]{3,2,1,0} parameter(0)
  %p.2 = bf16[64,3,3,64]{3,2,1,0} parameter(1)
  %p.3 = f32[256,2048]{1,0} parameter(2)
  %p.4 = f32[2048,1000]{1,0} parameter(3)
  %cudnn-conv.7 = (bf16[256,56,56,64]{3,2,1,0}, u8[0]{0}) custom-call(%p.1, %p.2), window={size=3x3 pad=1_1x1_1}, dim_labels=b01f_o01i->b01f, custom_call_target="__cudnn$convForward", backend_config={}
  %gemm.2 = (f32[256,1000]{1,0}, s8[4194304]{0}) custom-call(%p.3, %p.4), custom_call_target="__cublas$gemm", backend_config={}
  %add.9 = bf16[256,56,56,64]{3,2,1,0} add(%p.1, %p.1)
"""


def test_check_step_precision_reads_library_calls_and_their_operand_types():
  products = script("check_step_precision").products(GPU_HLO)
  assert products == [
      {"kind": "__cudnn$convForward", "operands": ("bf16", "bf16"), "dim_labels": "b01f_o01i->b01f"},
      {"kind": "__cublas$gemm", "operands": ("f32", "f32"), "dim_labels": ""}]


def test_check_step_precision_finds_the_products_of_a_compiled_cpu_step():
  case = bench_timing.Case("lenet5_modern", 32, 1, 10, 4, "float32", steps=None, repeats=1)
  products = script("check_step_precision").products(bench_timing.compiled_step(case).as_text())
  kinds = {product["kind"] for product in products}
  # LeNet-5's convolutions are oneDNN's custom calls where it is built, else XLA's.
  convolutions = set(onednn.TARGETS) if onednn.available() else {"convolution"}
  assert kinds == convolutions | {"dot"}
  assert {product["operands"] for product in products} == {("f32", "f32")}


def test_compile_counter_sees_a_compilation():
  """The guard that refuses figures timed across a recompilation can see one."""
  ones = jax.numpy.ones(7)
  with bench_timing._CompileCounter() as compilations:
    jax.jit(lambda x: x * 3.25 + 0.125)(ones)
  assert compilations.count >= 1


@pytest.mark.parametrize("arguments, message", [
    (["--model", "no_such_net"], "unknown --model 'no_such_net'; registered models:"),
    (["--model", "lenet5", "--batch-size", "6"],
     "--batch-size 6 does not divide evenly over 4 cpu devices; use a multiple of 4"),
    (["--model", "lenet5", "--steps", "0"], "--steps must be a positive integer, got '0'"),
    (["--model", "lenet5", "--peak-tflops", "nan"], "--peak-tflops must be a positive number"),
    (["--model", "lenet5", "--dtype", "float16"], "argument --dtype: invalid choice"),
    (["--model", "all", "--image-size", "64"], "--model all (or A,B,...) runs each model at its"),
    (["--model", "lenet5,resnet20", "--channels", "1"], "need one --model NAME"),
    (["--model", "lenet5,lenet_5,vgg"], "unknown --model lenet_5, vgg; registered models:"),
    (["--model", "lenet5", "--image-size", "16"], "lenet5 needs inputs of at least 32x32"),
    (["--model", "lenet5", "--config.model.activation=swish"], "(config.model.activation)"),
    (["--model", "lenet5", "--config.model.no_such=1"], "unknown config key 'config.model.no_such'"),
    (["--model", "lenet5", "--config.optimizer.name=adam"],
     "takes only --config.model.KEY overrides (and --config.dataset.KEY with --data), not "
     "--config.optimizer.name"),
    (["--model", "lenet5", "--config.dataset.num_shards=2"], "not --config.dataset.num_shards"),
    (["--model", "lenet5", "--recipe", "flip"], "--recipe is the augmentation of --data's"),
    (["--model", "lenet5", "--data", "digits", "--recipe", "randm_crop"],
     "unknown train_preprocess 'randm_crop'"),
    (["--model", "lenet5", "--data", "digits", "--config.dataset.image_size=3"],
     "takes --config.dataset.image_size from --image-size"),
    (["--model", "all", "--data", "digits"], "--data and --config.model.KEY need one --model"),
    (["--model", "lenet5", "--config.model.name=alexnet"], "takes the model from --model"),
])
def test_bad_input_is_one_line_and_exit_2(arguments, message, capsys):
  assert cli.main(["bench", *arguments]) == 2
  error = capsys.readouterr().err.strip()
  assert len(error.splitlines()) == 1 and error.startswith("cnnjax: error: ")
  assert message in error


def test_flag_mistakes_are_reported_before_jax_is_imported():
  code = ("import sys\nfrom cnnjax import cli\ncode = cli.main(sys.argv[1:])\n"
          "print(sorted(m for m in ('jax', 'flax', 'tensorflow') if m in sys.modules))\n"
          "sys.exit(code)")
  run = subprocess.run([sys.executable, "-c", code, "bench", "--model", "resnet50", "--repeats",
                        "0"], capture_output=True, text=True, cwd=ROOT, timeout=60,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
  assert run.returncode == 2 and run.stdout.strip() == "[]"
  assert run.stderr.strip() == "cnnjax: error: --repeats must be a positive integer, got '0'"


def test_data_feeds_the_step_from_the_input_pipeline(digits_dir, capsys):
  """`--data`: the step alone, fed by training's pipeline, and the pipeline
  alone, from one process, with figures that agree with each other."""
  assert cli.main(["bench", "--model", "lenet5", "--data", "digits", "--batch-size", "16",
                   "--steps", "4", "--repeats", "3", "--peak-tflops", "1", "--format", "json",
                   f"--config.dataset.data_dir={digits_dir}"]) == 0
  (row,) = json.loads(capsys.readouterr().out)
  assert (row["data"], row["recipe"], row["steps"], row["repeats"]) == ("digits", "resize", 4, 3)
  for rate in ("images_per_sec", "end_to_end_images_per_sec", "input_images_per_sec"):
    assert 0 < row[f"{rate}_min"] <= row[rate] <= row[f"{rate}_max"]
  assert row["end_to_end_fraction"] == pytest.approx(row["end_to_end_images_per_sec"]
                                                     / row["images_per_sec"])
  assert row["limited_by"] == ("input" if row["input_images_per_sec"] < row["images_per_sec"]
                               else "step")
  # Fed by the pipeline, the step is no faster than the slower of the two
  # alone, but for timing noise (a quarter: few steps, a shared machine).
  slower = min(row["images_per_sec_max"], row["input_images_per_sec_max"])
  assert row["end_to_end_images_per_sec_min"] <= 1.25 * slower
  assert row["compile_cpu_s"] > 0
  table = bench.table([row])
  (shown,) = markdown_rows(table)
  assert shown["data"] == "digits" and shown["limited by"] == row["limited_by"]


def test_bench_input_times_a_recipe_on_generated_jpegs(capsys):
  started = time.monotonic()
  assert cli.main(["bench-input", "--recipe", "resize_shorter(40, 48) | random_crop(32) | flip",
                   "--image-size", "32", "--batch-size", "4", "--seconds", "0.5", "--files", "3",
                   "--format", "json"]) == 0
  elapsed = time.monotonic() - started
  result = json.loads(capsys.readouterr().out)
  assert result["recipe"] == "resize_shorter(40, 48) | random_crop(32) | flip"
  assert result["output_shape"] == "32x32x3" and elapsed > 0.5
  assert (0 < result["images_per_sec_min"] <= result["images_per_sec"]
          <= result["images_per_sec_max"])
  # The whole timing's rate, from the CPU figures (images / cpu x cpu / wall), lies
  # between the slowest and the fastest of its three parts.
  overall = (result["images_per_cpu_second"] * result["cpu_utilisation"] * result["cores"])
  assert 0.9 * result["images_per_sec_min"] <= overall <= 1.01 * result["images_per_sec_max"]
  assert result["images_per_sec_per_core"] == pytest.approx(result["images_per_sec"]
                                                            / result["cores"])
  assert 0 < result["cpu_utilisation"] and result["mean_file_bytes"] > 10_000


@pytest.mark.parametrize("arguments, message", [
    (["--recipe", "resize_shorter(256) | randm_crop"], "--recipe='resize_shorter(256) | "
                                                        "randm_crop': unknown op 'randm_crop'"),
    (["--recipe", "flip", "--seconds", "0"], "--seconds must be positive, got 0"),
    (["--recipe", "flip", "--batch-size", "0"], "--batch-size must be at least 1, got 0"),
])
def test_bench_input_mistakes_are_one_line(arguments, message, capsys):
  assert cli.main(["bench-input", *arguments]) == 2
  error = capsys.readouterr().err.strip()
  assert len(error.splitlines()) == 1 and message in error, error
