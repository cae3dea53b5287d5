#!/usr/bin/env bash
# The GPU figures of the performance work (issue 28, section 3), in one
# command on a GPU host with jax (CUDA), flax, optax and orbax-checkpoint;
# TensorFlow is needed only for the end-to-end figure (step 4), which is
# skipped with a line saying so where it is missing. Each result goes to DIR
# (default gpu_report/) as it is made, so a run cut short keeps the rest.
# About 5 minutes on an H200; `--smoke` shrinks every step (small models,
# tiny batches, one step) to check on a CPU that the script runs.
#
#   PYTHONPATH=$PWD bash scripts/gpu_report.sh [--smoke] [DIR]
#
# 1. ResNet-50, bfloat16, batch 256: images/s, compile time, peak memory, MFU
#    (against the bfloat16 matmul peak measured in the same run); the goal is
#    8,000 images/s on an H200 (MLPerf's per-GPU rate).
# 2. Compile time of the training step, batch 8, for the models that compile
#    longest on the CPU (ALL=1: every model), the GPU's column of the
#    compile-time table in docs/benchmarks.md.
# 3. The largest batch whose bfloat16 step fits, per model (scripts/largest_batch.py).
# 4. End to end: ResNet-50 fed by the input pipeline on shapes/jpeg with the
#    ResNet recipe, on this host's CPU cores (goal: 90% of step 1's rate).
# 5. Which products of the compiled step are bfloat16 (scripts/check_step_precision.py),
#    and PyTorch AMP beside it where torch is installed.
set -u
smoke=0
if [ "${1:-}" = "--smoke" ]; then smoke=1; shift; fi
dir=${1:-gpu_report}
mkdir -p "$dir"
python=${PYTHON:-python3}
bench() { "$python" -m cnnjax bench --format json "$@"; }
run() {  # run NAME COMMAND...: stdout to DIR/NAME, both streams echoed.
  local name=$1; shift
  echo "== $name: $*"
  "$@" > >(tee "$dir/$name") 2>&1 || echo "== $name failed with status $?"
}

resnet_recipe="resize_shorter(256, 480) | random_crop(224) | flip | pca_lighting(0.1)"
if [ $smoke = 1 ]; then  # Same commands, shrunk to run on two CPU cores in minutes.
  model=resnet20 size=(--image-size 32) batch=8 steps=(--steps 1 --repeats 1)
  compile_models=resnet20,densenet_bc100 batch_models=lenet5,resnet20
  largest=(--start 4 --multiple 4 --max 16)
  resnet_recipe="resize_shorter(36, 40) | random_crop(32) | flip | pca_lighting(0.1)"
else
  model=resnet50 size=() batch=256 steps=(--steps 20)
  compile_models=densenet201,densenet169,densenet161,densenet121,resnet152,resnet101,googlenet,vgg19,resnet50
  batch_models=resnet50,resnet152,densenet201,vgg19,googlenet,alexnet,resnet20
  largest=()
fi
if [ "${ALL:-0}" = 1 ]; then compile_models=all; fi

command -v nvidia-smi > /dev/null &&
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
"$python" -c "import os, jax, flax, optax; print('jax', jax.__version__, 'flax', flax.__version__,
    'optax', optax.__version__, jax.devices(), os.cpu_count(), 'CPU cores')"

# 1. The step alone.
run step_bf16.json bench --model $model "${size[@]}" --dtype bfloat16 --batch-size $batch "${steps[@]}"
# 2. Compile times (the first model measures the matmul peak, the others are given it).
run compile_times.json bench --model $compile_models --batch-size 8 --steps 1 --repeats 1
# 3. The largest bfloat16 batch per model.
run largest_batch.jsonl "$python" scripts/largest_batch.py --model $batch_models \
  --dtype bfloat16 "${largest[@]}"
# 4. End to end on JPEG input, where TensorFlow is installed.
if "$python" -c "import tensorflow, tensorflow_datasets" 2> /dev/null; then
  run end_to_end_bf16.json bench --model $model "${size[@]}" --dtype bfloat16 \
    --batch-size $batch "${steps[@]}" --data shapes/jpeg --recipe "$resnet_recipe"
else
  echo "== end_to_end_bf16.json: skipped, TensorFlow is not installed here (the input" \
       "pipeline needs tensorflow-cpu and tensorflow-datasets: pip install -c" \
       "requirements.lock -e '.[test]'); $(nproc) CPU cores" | tee "$dir/end_to_end_bf16.json"
fi
# 5. Precision of the compiled step, and PyTorch beside it.
run precision.txt "$python" scripts/check_step_precision.py --model $model --batch-size $batch
if [ $smoke = 0 ]; then
  run compare_pytorch.txt "$python" scripts/compare_pytorch.py --case resnet50_bf16 --steps 20
fi
