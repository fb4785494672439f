# lorsp: the two commands of the README are `make demo` and `make test`.
# Two environments: the main one (.venv) on the newest Python every dependency supports, with the
# newest releases; the Lava one (.venv-lava) on Python 3.10 with lava-nc 0.10 / lava-dl 0.6 and every
# other dependency at its lowest supported version (constraints/lowest.txt), for the Lava-marked tests
# and the lower bounds. Nothing but `--backend lava` and the Lava recipes needs the second.
SHELL := /bin/bash
VENV       ?= .venv
VENV_LAVA  ?= .venv-lava
PY         := $(VENV)/bin/python
PY_LAVA    := $(VENV_LAVA)/bin/python
STAMP      := $(VENV)/.lorsp-installed
STAMP_LAVA := $(VENV_LAVA)/.lorsp-installed
# glibc keeps large buffers instead of returning them to the system (see docs/speed.md).
export MALLOC_MMAP_THRESHOLD_ := 1073741824
export MALLOC_TRIM_THRESHOLD_ := 1073741824
# torch's CUDA wheels from PyPI are several GB per environment; pip's cache would keep a second copy
# of each download, which is what ran a CI disk out of space. The installs below skip that cache.
NO_PIP_CACHE := PIP_NO_CACHE_DIR=1

.PHONY: demo test test-main test-lava test-fast bench results data venv venv-lava wheel clean

venv: $(STAMP)
venv-lava: $(STAMP_LAVA)

$(STAMP): pyproject.toml
	@py=$$(scripts/find_python.sh main) || exit 2; \
	if [ ! -x $(PY) ]; then echo "creating $(VENV) with $$py"; "$$py" -m venv $(VENV) || exit 2; fi
	$(NO_PIP_CACHE) $(PY) -m pip install --quiet --upgrade pip
	$(NO_PIP_CACHE) $(PY) -m pip install --progress-bar off -e ".[test,bench]"
	@touch $(STAMP)

$(STAMP_LAVA): pyproject.toml constraints/lowest.txt
	@py=$$(scripts/find_python.sh lava) || exit 2; \
	if [ ! -x $(PY_LAVA) ]; then echo "creating $(VENV_LAVA) with $$py"; "$$py" -m venv $(VENV_LAVA) || exit 2; fi
	$(NO_PIP_CACHE) $(PY_LAVA) -m pip install --quiet --upgrade pip
	$(NO_PIP_CACHE) $(PY_LAVA) -m pip install --progress-bar off -c constraints/lowest.txt -e ".[lava,test,bench]"
	@touch $(STAMP_LAVA)

demo: $(STAMP)
	$(PY) -m pipeline.demo

# The whole suite but the Lava-marked tests in the main environment, then those tests and the quick
# ones in the Lava environment (the lower bounds); LORSP_REQUIRE_LAVA makes a missing Lava a failure there.
test: test-main test-lava

test-main: $(STAMP)
	$(PY) -m pytest -q -ra -m "not lava"

test-lava: $(STAMP_LAVA)
	LORSP_REQUIRE_LAVA=1 $(PY_LAVA) -m pytest -q -ra -m "lava or not slow"

# A wheel and an sdist in dist/, as `python -m build` makes them, from the files git tracks.
wheel: $(STAMP)
	PYTHON=$(PY) scripts/build_wheel.sh dist

# Fashion-MNIST and OpenCV digits come from Debian packages; this unpacks them
# without root into ~/.cache/lorsp/debian (or $$LORSP_DEBIAN_DIR).
data:
	scripts/fetch_debian_data.sh

clean:
	rm -rf $(VENV) $(VENV_LAVA) build dist *.egg-info

test-fast: $(STAMP)
	$(PY) -m pytest -q -ra -m "not slow"

# The quick subset of the benchmarks; each writes JSON under runs/bench/ and prints a table.
# fastsim.py races the fast simulator against Lava, so it runs in the Lava environment.
bench: $(STAMP) $(STAMP_LAVA)
	$(PY) benchmarks/train_speed.py --json runs/bench/train_speed.json
	$(PY) benchmarks/onnx_latency.py --json runs/bench/onnx_latency.json
	$(PY) benchmarks/cosim_throughput.py --json runs/bench/cosim_throughput.json
	$(PY_LAVA) benchmarks/fastsim.py --samples 256 --json runs/bench/fastsim.json
	$(PY) benchmarks/results_doc.py --speed-dir runs/bench --out runs/bench/results.md --figures runs/bench/figures --readme ''

# The whole of docs/results.md (every run finished at the running commit, on a clean checkout, is reused, so it can
# be stopped and restarted; a run of other code is trained again, docs/protocol.md; on 2 cores
# the Lite0 part takes about 2.5 h with JOBS=2, the Lite2 tables about 4 h more). Prompt learning rates and
# LoRSP's rank: chosen on val by benchmarks/lr_select.py. $(LORSP) is today's default (the trained
# pixel-gated generator); $(BAND) the earlier band-gated design, whose tables (ablation, digit tries, gate
# usage, the energy sweep of the band relay's noise, example prompts) the doc keeps, marked as such. The main
# accuracy table is assembled from the peers' and the default's table, its dense twin's (relay=open: every gate
# held open, the same factors with no zeros; a band-relay option, so the spec names gate=band) and its static
# mask's (pixel-input=none); the diagnostics likewise (benchmarks/results_data.py, with --keep-missing: a table
# not made here keeps its committed copy).
DATASETS  := fashion-mnist mnist-5k animal-shape opencv-digits sklearn-digits
LORSP     := lorsp:prompt-lr=0.1,rank=8
LORSP_RUN := lorsp-prompt-lr-0.1_rank-8
# the band design's options that differ from today's defaults (lorsp.prompts.lorsp.BAND_DEFAULTS)
BAND_BASE := gate=band,train-generator=none,sparsity-warmup=0,surrogate-slope=25,generator-lr-scale=10
BAND_OPTS := $(BAND_BASE),sparsity-target=0.6
BAND      := lorsp:$(BAND_OPTS),prompt-lr=0.1,rank=8
BAND_RUN  := lorsp-gate-band_train-generator-none_sparsity-warmup-0_surrogate-slope-25_generator-lr-scale-10_sparsity-target-0.6_prompt-lr-0.1_rank-8
TWIN      := $(BAND),relay=open
TWIN_RUN  := $(BAND_RUN)_relay-open
METHODS   := none vp:prompt-lr=20 lorvp:prompt-lr=0.2 $(LORSP) smm:prompt-lr=$(SMM_LR)
PARAM_METHODS := lorvp:prompt-lr=0.2,rank=1 lorvp:prompt-lr=0.2,rank=2 lorvp:prompt-lr=0.2,rank=4 \
	lorvp:prompt-lr=0.2,rank=8 lorvp:prompt-lr=0.2,rank=16 lorsp:prompt-lr=0.1,rank=2 lorsp:prompt-lr=0.1,rank=4 $(LORSP)
SMM_LR    ?= 0.02
JOBS      ?= 2
results: bench data
	$(PY) benchmarks/lr_select.py --jobs $(JOBS) --dataset mnist-5k --seed 0 --grid vp@0.02,0.2,2,20 \
		lorvp@0.02,0.05,0.1,0.2,0.5 lorsp:rank=8@0.05,0.1,0.2,0.3,0.5,1 smm@0.02,0.2,2 --out runs/lr-select
	$(PY) benchmarks/baselines.py --jobs $(JOBS) --out runs/main --datasets $(DATASETS) --methods $(METHODS) \
		--table-name results
	$(PY) benchmarks/baselines.py --jobs $(JOBS) --out runs/main --datasets $(DATASETS) --methods $(TWIN) \
		--table-name twin
	$(PY) benchmarks/baselines.py --jobs $(JOBS) --out runs/main --datasets $(DATASETS) --seeds 0 \
		--methods $(LORSP),pixel-input=none --table-name static-seed0
	$(PY) benchmarks/baselines.py --jobs $(JOBS) --out runs/main --datasets $(DATASETS) --seeds 0 \
		--methods $(PARAM_METHODS) --table-name param-figure-seed0
	$(PY) benchmarks/prompt_diagnostics.py --runs runs/main --datasets $(DATASETS) --seeds 0 1 2 --limit-test 1000 \
		--methods none vp-prompt-lr-20 lorvp-prompt-lr-0.2 $(LORSP_RUN) $(TWIN_RUN) smm-prompt-lr-$(SMM_LR) \
		--json runs/diagnostics/diagnostics.json
	$(PY) benchmarks/pixel_energy.py $(foreach d,$(DATASETS),runs/main/$(d)/$(LORSP_RUN)/seed0/model.pt) --samples 64 \
		--out runs/pixel-energy --table-name pixel-energy
	$(PY) benchmarks/train_speed.py --methods lorvp $(LORSP) --batch-size 32 --rounds 7 --json runs/step-cost/train_speed.json
	$(PY) benchmarks/baselines.py --jobs $(JOBS) --out runs/main --datasets $(DATASETS) --table-name ablation \
		--methods lorsp:$(BAND_OPTS),prompt-lr=0.2,rank=8 lorsp:$(BAND_OPTS),prompt-lr=0.2,rank=8,beta=0.9
	# the committed tries' rows with --relay frame/mixed/border, --usage-weight or --train-generator gate-biases
	# need lorsp 567fd19, those with --band-layout comb lorsp 37f2411 (their options were removed after it)
	$(PY) benchmarks/baselines.py --jobs $(JOBS) --out runs/main --datasets mnist-5k opencv-digits sklearn-digits \
		--table-name digit-tries --methods $(BAND) lorsp:$(BAND_BASE),sparsity-target=0.5,prompt-lr=0.1,rank=8 $(BAND),init-std=0.1 \
		lorsp:$(BAND_OPTS),prompt-lr=0.1,rank=4,factors=per-channel lorsp:$(BAND_OPTS),prompt-lr=0.1,rank=11
	$(PY) benchmarks/baselines.py --jobs $(JOBS) --out runs/main --datasets $(DATASETS) --methods $(BAND) --table-name band
	$(PY) benchmarks/baselines.py --jobs $(JOBS) --backbone efficientnet_lite2 --out runs/baselines-lite2 --datasets $(DATASETS) \
		--methods $(METHODS) --table-name results
	$(PY) benchmarks/gate_usage.py --runs runs/main --datasets $(DATASETS) --method $(BAND_RUN) \
		--seeds 0 1 2 --limit 500 --json runs/gate-usage/gate_usage.json
	$(PY) benchmarks/robustness.py --runs runs/main --datasets mnist-5k --methods $(METHODS) --seeds 0 1 2 --limit 300 \
		--json runs/robustness/mnist-5k.json
	$(PY) benchmarks/robustness.py --runs runs/main --datasets animal-shape --methods $(METHODS) --seeds 0 1 2 --limit 300 \
		--json runs/robustness/animal-shape.json
	$(PY) benchmarks/deployment.py --runs runs/main --methods $(filter-out smm%,$(METHODS)) --out runs/deployment  # SMM: no chip path
	$(PY) benchmarks/energy_sweep.py --dataset mnist-5k --seed 0 --time-steps 4 8 16 --relay-noise 0.05 0 --prompt-lr 0.1 \
		--out runs/energy-sweep --json runs/energy-sweep/energy_sweep.json --figure runs/energy-sweep/energy_sweep.png
	$(PY) benchmarks/example_prompts.py --runs runs/main --lorvp lorvp-prompt-lr-0.2 --lorsp $(BAND_RUN)
	$(PY) benchmarks/results_data.py --keep-missing \
		--baselines runs/main/results.json runs/main/twin.json runs/main/static-seed0.json \
		--diagnostics runs/diagnostics/diagnostics.json --param-figure runs/main/param-figure-seed0.json \
		--pixel-energy runs/pixel-energy/pixel-energy.json --step-cost runs/step-cost/train_speed.json \
		--ablation runs/main/ablation.json --digit-tries runs/main/digit-tries.json \
		--other-backbones runs/baselines-lite2/results.json
	$(PY) benchmarks/results_doc.py
