#!/usr/bin/env bash
# The GPU figures of the performance work, in one command on a GPU host that
# has jax (CUDA), flax, optax, orbax-checkpoint and ml-collections, and for the
# comparison torch and torchvision; TensorFlow is not needed. Each result goes
# to DIR (default gpu_report/) as it is made, so a run cut short keeps the rest.
#
#   PYTHONPATH=$PWD bash scripts/gpu_report.sh [DIR]
set -u
dir=${1:-gpu_report}
mkdir -p "$dir"
python=${PYTHON:-python3}
bench() { "$python" -m cnnjax bench --format json "$@"; }
run() {  # run NAME COMMAND...: stdout to DIR/NAME, both streams echoed.
  local name=$1; shift
  echo "== $name: $*"
  "$@" > >(tee "$dir/$name") 2>&1 || echo "== $name failed with status $?"
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
"$python" -c "import jax, flax, optax; print('jax', jax.__version__, 'flax', flax.__version__,
    'optax', optax.__version__, jax.devices())"

# Convolutions and matrix products of the compiled bfloat16 step: all bf16, NHWC?
run precision_resnet50.txt "$python" scripts/check_step_precision.py --model resnet50 --batch-size 256
# ResNet-50 in bfloat16, batch 256 (the bar: 3,100 images/s on an H200).
run resnet50_bf16.json bench --model resnet50 --dtype bfloat16 --batch-size 256 --steps 20
# The XLA GPU flags docs/benchmarks.md names, each alone.
XLA_FLAGS=--xla_gpu_enable_latency_hiding_scheduler=true \
  run resnet50_bf16_lhs.json bench --model resnet50 --dtype bfloat16 --batch-size 256 --steps 20
XLA_FLAGS=--xla_gpu_enable_command_buffer= \
  run resnet50_bf16_no_command_buffer.json bench --model resnet50 --dtype bfloat16 --batch-size 256 --steps 20
# The largest model of the zoo (VGG-19: 144 M parameters, 19.6 GMACs an image).
run vgg19_bf16.json bench --model vgg19 --dtype bfloat16 --batch-size 256 --steps 10
# float32 (TF32 matmuls are XLA's default on this GPU) for the ratio to bfloat16.
run resnet50_f32.json bench --model resnet50 --dtype float32 --batch-size 256 --steps 10
# Beside PyTorch with torch.autocast(bfloat16), in one process.
run compare_pytorch.txt "$python" scripts/compare_pytorch.py --case resnet50_bf16 --steps 20
