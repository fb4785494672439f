#!/usr/bin/env bash
# The built wheel with nothing borrowed: a fresh venv on another Python (3.12 unless PYTHON_CHECK names
# an interpreter), every dependency resolved from the registry at its newest (PIP_CONFIG_FILE=/dev/null
# drops the machine's pip configuration, such as a cap on torch), then lorsp-train, lorsp-export
# --target all, lorsp-hwsim and lorsp-cosim on a tiny run in a temporary folder outside the checkout.
# Prints what ran and, with a path as first argument, writes it there as JSON (docs/install.md).
#   scripts/wheel_check.sh [OUT.json]
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
out_json="${1:-}"
if [ -n "$out_json" ]; then
  [ -e "$out_json" ] && { echo "error: $out_json exists" >&2; exit 2; }
  out_json="$(cd "$(dirname "$out_json")" && pwd)/$(basename "$out_json")"
fi
py="${PYTHON_CHECK:-}"
if [ -z "$py" ]; then
  root="$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"
  for cand in "$(command -v python3.12 || true)" "$root"/versions/3.12.*/bin/python3.12; do
    if [ -n "$cand" ] && [ -x "$cand" ] && "$cand" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null
    then py="$cand"; break; fi
  done
fi
[ -n "$py" ] && "$py" -c 'import sys' 2>/dev/null || { echo "error: no Python 3.12 found; set PYTHON_CHECK=/path/to/python" >&2; exit 2; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
export MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=1073741824 PIP_CONFIG_FILE=/dev/null PIP_NO_CACHE_DIR=1  # no second copy of torch in pip's cache
start=$(date +%s)
cd "$tmp"  # pip must not see the checkout's lorsp.egg-info (an editable install's) on its path
"$py" -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install --quiet --upgrade pip build
PYTHON="$tmp/venv/bin/python" "$repo/scripts/build_wheel.sh" "$tmp/dist" >/dev/null
"$tmp/venv/bin/python" -m pip install --quiet --progress-bar off "$tmp/dist"/lorsp-*.whl
installed=$(date +%s)
mkdir "$tmp/work" && cd "$tmp/work"
bin="$tmp/venv/bin"
"$bin/lorsp-train" --prompt lorsp --dataset sklearn-digits --image-size 32 --epochs 1 --limit-train 64 \
  --limit-val 32 --limit-test 32 --batch-size 16 --device cpu --quiet --out run
"$bin/lorsp-export" --target all run/model.pt -o bundle --samples 8 --quiet
"$bin/lorsp-hwsim" bundle --samples 8 --quiet -o report
"$bin/lorsp-cosim" bundle --dataset sklearn-digits --split test --limit 16 --quiet -o cosim
done_at=$(date +%s)
commit="$(git -C "$repo" rev-parse --short=12 HEAD)$(git -C "$repo" diff --quiet HEAD -- 2>/dev/null || echo +dirty)"
"$bin/python" - "$out_json" "$((installed - start))" "$((done_at - installed))" "$commit" <<'EOF'
import json, platform, sys
from importlib.metadata import version
from pathlib import Path

out, install_s, chain_s = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
import lorsp
cosim = json.loads(Path("cosim/cosim.json").read_text())
report = json.loads(Path("report/report.json").read_text())
summary = {
    "python": platform.python_version(), "lorsp_commit": sys.argv[4],
    "versions": {p: version(p) for p in ("lorsp", "torch", "torchvision", "numpy", "onnxruntime", "onnx", "timm",
                                         "snntorch", "nir", "h5py")},
    "lorsp_from": str(Path(lorsp.__file__).parent),
    "install_seconds": install_s, "chain_seconds": chain_s,
    "cosim_agreement": cosim["agreement"]["share"], "cosim_samples": cosim["samples"],
    "hwsim_backend": report["backend"], "hwsim_modes": report["modes"],
    "bundle_files": sorted(p.name for p in Path("bundle").iterdir()),
    "machine": f"{platform.machine()}, {__import__('os').cpu_count()} logical CPUs, {platform.platform()}",
}
print(json.dumps(summary, indent=2))
if out:
    Path(out).write_text(json.dumps(summary, indent=2) + "\n")
EOF
