#!/usr/bin/env bash
# lorsp's sdist and wheel (or what the build arguments ask for) built from a copy of the files git tracks or
# would track, so nothing ignored or left over in the checkout (build/, *.egg-info, runs/) reaches them.
#   scripts/build_wheel.sh OUTDIR [python -m build arguments, e.g. --wheel --no-isolation]
# PYTHON (default .venv/bin/python) runs `python -m build`. Used by `make wheel`, scripts/wheel_check.sh,
# scripts/build_gpu_wheels.sh and the tests that install the wheel.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: scripts/build_wheel.sh OUTDIR [build arguments]" >&2; exit 2; }
out=$(mkdir -p "$1" && cd "$1" && pwd)
shift
repo="$(cd "$(dirname "$0")/.." && pwd)"
py=${PYTHON:-$repo/.venv/bin/python}
src=$(mktemp -d)
trap 'rm -rf "$src"' EXIT
(cd "$repo" && git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$src")
"$py" -m build "$@" --outdir "$out" "$src"
