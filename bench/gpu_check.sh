#!/usr/bin/env bash
# The GPU check: everything about the CUDA path that needs a GPU, in one run of about 8 minutes.
#
#   bash bench/gpu_check.sh [RESULTS_DIR]        # default: $OUT, else bench/results/gpu
#
# Run it from a clone on a machine with an NVIDIA GPU. It needs nothing but the repository and a
# package index: it makes a fresh venv with the `cuda` extra (onnxruntime-gpu with its CUDA and
# cuDNN wheels, torch's CUDA build), then
#   1. runs the provider tests against the real CUDA provider (a skip counts as a failure here);
#   2. runs bench/providers.py on CUDA and on the CPU at 1, 64, 256 and 1024 concurrent requests
#      (state on the host vs kept on the device);
#   3. trains for 90 s on the GPU with bench/training.py (the corpus: $CORPUS, by default
#      tinyshakespeare beside the clone at ../shared/data/tinyshakespeare.txt).
# Each step writes JSON into RESULTS_DIR; summary.txt collects the tables. Offline, point pip at
# carried wheels: GPU_PIP_ARGS="--no-index --find-links /path/to/wheels".
set -euo pipefail
cd "$(dirname "$0")/.."
results=${1:-${OUT:-bench/results/gpu}}
mkdir -p "$results"
venv=${GPU_VENV:-/tmp/charbot-gpu-venv}
corpus=${CORPUS:-../shared/data/tinyshakespeare.txt}
pip_args=${GPU_PIP_ARGS:-}
log() { printf '\n== %s (%s)\n' "$1" "$(date -u +%H:%M:%S)" | tee -a "$results/summary.txt"; }

log "install"
python3 -m venv "$venv"
# shellcheck disable=SC2086  # pip_args is a list of options
"$venv/bin/pip" install -q $pip_args -e ".[train,dev]" "onnxruntime-gpu[cuda,cudnn]" "torch==2.13.0"
# onnxruntime and onnxruntime-gpu install the same module: keep only the GPU one.
"$venv/bin/pip" uninstall -q -y onnxruntime
# shellcheck disable=SC2086
"$venv/bin/pip" install -q $pip_args --force-reinstall --no-deps onnxruntime-gpu
# The CUDA and cuDNN libraries arrive as nvidia-* wheels; ONNX Runtime finds them on this path.
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
LD_LIBRARY_PATH=$(printf '%s:' "$site"/nvidia/*/lib)${LD_LIBRARY_PATH:-}
export LD_LIBRARY_PATH
"$venv/bin/python" -c 'import onnxruntime as o, torch; print("onnxruntime", o.__version__,
o.get_available_providers(), "| torch", torch.__version__, "cuda", torch.cuda.is_available())' \
  | tee -a "$results/summary.txt"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader \
  | tee -a "$results/summary.txt" || true

log "provider tests on the real CUDA provider"
CHARBOT_REQUIRE_CUDA=1 "$venv/bin/python" -m pytest -q -p no:cacheprovider \
  tests/bot/generation/test_cuda.py tests/bot/generation/test_device.py \
  tests/bot/generation/test_model.py 2>&1 | tail -n 5 | tee -a "$results/summary.txt"

log "engine throughput by concurrency: CUDA, then CPU"
for provider in cuda cpu; do
  "$venv/bin/python" bench/providers.py --provider "$provider" --reps 3 \
    --json "$results/providers-$provider.json" | tee -a "$results/summary.txt"
done

log "training for 90 s on the GPU"
if [ -f "$corpus" ]; then
  "$venv/bin/python" bench/training.py --corpus "$corpus" --budget 90 --device cuda \
    --json "$results/training-cuda.json" | tee -a "$results/summary.txt"
else
  echo "no corpus at $corpus: set CORPUS to tinyshakespeare.txt to measure training" \
    | tee -a "$results/summary.txt"
  exit 1
fi
log "done"
