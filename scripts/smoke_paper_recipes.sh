#!/usr/bin/env bash
# Runs the `smoke` variant of every paper recipe end to end (train, every
# evaluation mode, results.json) on the embedded stand-ins, then
# `cnnjax report` on them: the whole path of each recipe without ImageNet or
# CIFAR. About 8 minutes on 2 CPU cores, mostly compiling. CI runs it after
# the tests (.ci/run).
#
#   bash scripts/smoke_paper_recipes.sh [WORKDIR_ROOT]
set -euo pipefail
cd "$(dirname "$0")/.."
root="${1:-$(mktemp -d)/paper_smokes}"
recipes=(
  alexnet_imagenet:smoke
  vgg_imagenet:a,smoke
  googlenet_imagenet:smoke
  resnet_imagenet:50,smoke
  densenet_imagenet:121,smoke
  resnet_cifar10:110,smoke
  densenet_cifar:smoke
)
mkdir -p "$root"
workdirs=()
for recipe in "${recipes[@]}"; do
  name="${recipe%%:*}"
  start=$SECONDS
  if ! cnnjax train --config "experiments/${name}.py:${recipe#*:}" --workdir "$root/$name" \
      > "$root/$name.log" 2>&1; then
    tail -20 "$root/$name.log"
    echo "FAILED: experiments/${name}.py:${recipe#*:} (log: $root/$name.log)" >&2
    exit 1
  fi
  echo "experiments/${name}.py:${recipe#*:}: $((SECONDS - start)) s"
  workdirs+=("$root/$name")
done
cnnjax report "${workdirs[@]}"
