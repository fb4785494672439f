# lorsp: the two commands of the README are `make demo` and `make test`.
SHELL := /bin/bash
VENV  ?= .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.lorsp-installed
# glibc keeps large buffers instead of returning them to the system (see docs/speed.md).
export MALLOC_MMAP_THRESHOLD_ := 1073741824
export MALLOC_TRIM_THRESHOLD_ := 1073741824

.PHONY: demo test test-fast bench data venv clean

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
	$(PY) benchmarks/results_doc.py --out runs/bench/results.md

# Fashion-MNIST and OpenCV digits come from Debian packages; this unpacks them
# without root into ~/.cache/lorsp/debian (or $$LORSP_DEBIAN_DIR).
data:
	scripts/fetch_debian_data.sh

clean:
	rm -rf $(VENV) build *.egg-info
