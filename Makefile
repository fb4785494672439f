# lorsp: the two commands of the README are `make demo` and `make test`.
SHELL := /bin/bash
VENV  ?= .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.lorsp-installed
# glibc keeps large buffers instead of returning them to the system (see docs/speed.md).
export MALLOC_MMAP_THRESHOLD_ := 1073741824
export MALLOC_TRIM_THRESHOLD_ := 1073741824

.PHONY: demo test test-fast bench results data venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@py=$$(scripts/find_python310.sh) || exit 2; \
	if [ ! -x $(PY) ]; then echo "creating $(VENV) with $$py"; "$$py" -m venv $(VENV) || exit 2; fi
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --progress-bar off -e .   # one resolve for the whole stack
	@touch $(STAMP)

demo: $(STAMP)
	$(PY) -m lorsp.demo

test: $(STAMP)
	$(PY) -m pytest -q -ra

test-fast: $(STAMP)
	$(PY) -m pytest -q -ra -m "not slow"

# The quick subset of the benchmarks; each writes JSON under runs/bench/ and prints a table.
bench: $(STAMP)
	$(PY) benchmarks/train_speed.py --json runs/bench/train_speed.json
	$(PY) benchmarks/onnx_latency.py --json runs/bench/onnx_latency.json
	$(PY) benchmarks/cosim_throughput.py --json runs/bench/cosim_throughput.json
	$(PY) benchmarks/fastsim.py --samples 256 --json runs/bench/fastsim.json
	$(PY) benchmarks/results_doc.py --out runs/bench/results.md --figures runs/bench/figures --readme ''

# The whole of docs/results.md (hours on 2 cores; every finished run is reused, so it can
# be stopped and restarted). Prompt learning rates: chosen on val by benchmarks/lr_select.py.
DATASETS  := fashion-mnist mnist-5k animal-shape opencv-digits sklearn-digits
PROMPT_LR := 0.2
VP_LR     := 2
VP        := vp:prompt-lr=$(VP_LR)
MAIN      := --prompt-lr $(PROMPT_LR) --out runs/main
results: bench
	$(PY) benchmarks/lr_select.py
	$(PY) benchmarks/baselines.py $(MAIN) --datasets $(DATASETS) --methods none $(VP) lorvp lorsp
	$(PY) benchmarks/baselines.py $(MAIN) --datasets mnist-5k --methods lorsp:gate=rank --table-name ablation
	$(PY) benchmarks/sparsity_sweep.py --prompt-lr $(PROMPT_LR) --weights 0 1 4 --out runs/main-sweep --baselines-out runs/main
	$(PY) benchmarks/robustness.py --runs runs/main --datasets mnist-5k --methods none $(VP) lorvp lorsp --json runs/robustness/mnist-5k.json
	$(PY) benchmarks/robustness.py --runs runs/main --datasets animal-shape --methods none $(VP) lorvp lorsp --json runs/robustness/animal-shape.json
	$(PY) benchmarks/few_shot.py --prompt-lr $(PROMPT_LR) --datasets sklearn-digits mnist-5k --methods none lorvp lorsp --steps 60 --limit-val 30
	$(PY) benchmarks/deployment.py --runs runs/main --methods none $(VP) lorvp lorsp
	$(PY) benchmarks/example_prompts.py --runs runs/main
	$(PY) benchmarks/results_doc.py --baselines runs/main/results.json --ablation runs/main/ablation.json --sweep runs/main-sweep/sweep.json

# Fashion-MNIST and OpenCV digits come from Debian packages; this unpacks them
# without root into ~/.cache/lorsp/debian (or $$LORSP_DEBIAN_DIR).
data:
	scripts/fetch_debian_data.sh

clean:
	rm -rf $(VENV) build *.egg-info
