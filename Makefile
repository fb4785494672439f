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
	$(PY) -m pipeline.demo

test: $(STAMP)
	$(PY) -m pytest -q -ra

# Fashion-MNIST and OpenCV digits come from Debian packages; this unpacks them
# without root into ~/.cache/lorsp/debian (or $$LORSP_DEBIAN_DIR).
data:
	scripts/fetch_debian_data.sh

clean:
	rm -rf $(VENV) build *.egg-info

test-fast: $(STAMP)
	$(PY) -m pytest -q -ra -m "not slow"

# The quick subset of the benchmarks; each writes JSON under runs/bench/ and prints a table.
bench: $(STAMP)
	$(PY) benchmarks/train_speed.py --json runs/bench/train_speed.json
	$(PY) benchmarks/onnx_latency.py --json runs/bench/onnx_latency.json
	$(PY) benchmarks/cosim_throughput.py --json runs/bench/cosim_throughput.json
	$(PY) benchmarks/fastsim.py --samples 256 --json runs/bench/fastsim.json
	$(PY) benchmarks/results_doc.py --speed-dir runs/bench --out runs/bench/results.md --figures runs/bench/figures --readme ''

# The whole of docs/results.md (about 8 h on 2 cores with JOBS=2; every finished run is reused, so it can
# be stopped and restarted). Prompt learning rates and LoRSP's rank: chosen on val by benchmarks/lr_select.py.
DATASETS  := fashion-mnist mnist-5k animal-shape opencv-digits sklearn-digits
METHODS   := none vp:prompt-lr=20 lorvp:prompt-lr=0.2 lorsp:prompt-lr=0.2,rank=8 smm:prompt-lr=$(SMM_LR)
SMM_LR    ?= 0.02
# the earlier LoRSP (row/column gates of per-channel factors, pooled encoding, trained generator), for the ablation
OLD_LORSP := lorsp:prompt-lr=0.2,gate=rowcol,encoding=pool,factors=per-channel,gates=16,hidden=16,train-generator=all,beta=0.9
JOBS      ?= 2
results: bench data
	$(PY) benchmarks/lr_select.py --jobs $(JOBS) --grid vp@0.02,0.2,2,20 lorvp@0.02,0.2,0.5 lorsp@0.02,0.2,0.5 \
		lorsp:rank=8@0.2 lorsp:relay=background@0.2 smm@0.02,0.2,2
	$(PY) benchmarks/baselines.py --jobs $(JOBS) --out runs/main --datasets $(DATASETS) --methods $(METHODS)
	$(PY) benchmarks/baselines.py --jobs $(JOBS) --backbone efficientnet_lite2 --out runs/baselines-lite2 --datasets $(DATASETS) \
		--methods $(METHODS)
	$(PY) benchmarks/baselines.py --jobs $(JOBS) --backbone efficientnet_lite1 --out runs/baselines-lite1 --datasets mnist-5k animal-shape \
		--methods $(METHODS)
	$(PY) benchmarks/baselines.py --jobs $(JOBS) --out runs/main --datasets $(DATASETS) --table-name ablation \
		--methods lorsp:prompt-lr=0.2,rank=8 lorsp:prompt-lr=0.2 lorsp:prompt-lr=0.2,rank=8,train-generator=all \
		lorsp:prompt-lr=0.2,rank=8,gates=8,hidden=16 lorsp:prompt-lr=0.2,rank=8,relay=background \
		lorsp:prompt-lr=0.2,rank=4,factors=per-channel $(OLD_LORSP)
	$(PY) benchmarks/sparsity_sweep.py --jobs $(JOBS) --option sparsity-target --values 0.5 0.6 0.8 0.9 \
		--method lorsp:prompt-lr=0.2,rank=8 --out runs/main-sweep --baselines-out runs/main --lorvp-method lorvp:prompt-lr=0.2
	$(PY) benchmarks/robustness.py --runs runs/main --datasets mnist-5k --methods $(METHODS) --json runs/robustness/mnist-5k.json
	$(PY) benchmarks/robustness.py --runs runs/main --datasets animal-shape --methods $(METHODS) --json runs/robustness/animal-shape.json
	$(PY) benchmarks/gate_usage.py --runs runs/main --datasets mnist-5k animal-shape --method lorsp-prompt-lr-0.2_rank-8
	$(PY) benchmarks/deployment.py --runs runs/main --methods $(filter-out smm%,$(METHODS))  # SMM: no chip path
	$(PY) benchmarks/energy_sweep.py --dataset mnist-5k --seed 0 --time-steps 4 8 16 --relay-noise 0.05 0 \
		--out runs/energy-sweep --json runs/energy-sweep/energy_sweep.json --figure runs/energy-sweep/energy_sweep.png
	$(PY) benchmarks/few_shot.py --jobs $(JOBS) --datasets sklearn-digits mnist-5k --methods $(METHODS) --steps 60 --limit-val 30
	$(PY) benchmarks/example_prompts.py --runs runs/main --lorvp lorvp-prompt-lr-0.2 --lorsp lorsp-prompt-lr-0.2_rank-8
	$(PY) benchmarks/results_data.py --baselines runs/main/results.json --ablation runs/main/ablation.json \
		--sweep runs/main-sweep/sweep.json \
		--other-backbones runs/baselines-lite2/results.json runs/baselines-lite1/results.json
	$(PY) benchmarks/results_doc.py
