# The two commands README.md gives, and what they need. Each creates or reuses .venv/ itself.
#   make all    set up, verify every claim on the embedded default, build the paper, then the site
#   make test   set up, run the test suite (unit tests on a tiny model + one 270M smoke test)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_NO_ADVISORY_WARNINGS ?= 1

.PHONY: all setup verify site paper test lint bench clean

all: verify paper site   # the paper first, so that the site links its downloads

setup: $(STAMP)

# constraints.txt pins the CPU torch build this machine kind ships (and the versions tested
# together); bergson goes in without its deps, whose torchvision/torchaudio pins are CUDA builds.
$(STAMP): pyproject.toml constraints.txt scripts/setup_system.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -c constraints.txt -e '.[dev,attribution]'
	$(PIP) install --quiet --no-deps -c constraints.txt bergson==2.5.1
	sh scripts/setup_system.sh
	touch $(STAMP)

verify: $(STAMP)
	$(PY) -m claims verify

site: $(STAMP)
	$(PY) -m claims build-site

paper: $(STAMP)
	$(PY) -m claims build-paper

test: $(STAMP)
	$(PY) -m pytest -q
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	$(PY) scripts/bench_generation.py

clean:
	rm -rf build
