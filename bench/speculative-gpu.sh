#!/usr/bin/env bash
# The speculative decoding table of bench/speculative on a CUDA GPU: a release build with
# `--features cuda`, then the Qwen2.5-Coder pair and SmolLM2 self-draft, gamma 2, 3, 4, 6.
# Meant for a machine with nvcc and one GPU; sized for 10 minutes once the models are there.
# Usage: bench/speculative-gpu.sh            (build and run)
#        bench/speculative-gpu.sh build      (build only, e.g. a first call with its own limit)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/gatehouse-target-cuda}"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
# Build with every core the machine has; the CUDA kernels dominate the build.
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-$(nproc)}"
scripts/fetch-models --only smollm2,qwen-1.5b,qwen-0.5b
scripts/patch-deps
cargo build --release --locked -p engine -p gateway -p mock-upstream --bins --examples --features engine/cuda,gateway/cuda
if [[ ${1:-} == build ]]; then exit 0; fi
CARGO_FEATURES=engine/cuda,gateway/cuda exec bench/speculative qwen smollm2
