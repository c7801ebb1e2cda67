# Everything paragents needs is installed by this file into $(VENV), from the project's
# own pyproject.toml.  `make run` and `make test` are the README's two commands.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
GOAL ?= Plan a three-day trip to Lisbon on a budget
ARGS ?=
PYTEST_ARGS ?= -q

.PHONY: install install-bench run test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium chromium-driver)
	$(BIN)/python -m pip install --quiet -e '.[test,ray]'
	touch $@

$(VENV)/.installed-bench: pyproject.toml $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	$(BIN)/python -m pip install --quiet --no-deps anrg-saga==2.0.2
	touch $@

install: $(VENV)/.installed

install-bench: $(VENV)/.installed-bench

run: install
	$(BIN)/paragents run "$(GOAL)" $(ARGS)

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: install-bench
	$(BIN)/python benchmarks/overhead.py
	$(BIN)/python benchmarks/uneven_branches.py
	$(BIN)/python benchmarks/makespan.py
	$(BIN)/python benchmarks/dyntask.py
	$(BIN)/python benchmarks/gpu_allocation.py
	$(BIN)/python benchmarks/adaptive.py
	$(BIN)/python benchmarks/store_overhead.py
	$(BIN)/python benchmarks/ray_overhead.py
	$(BIN)/python benchmarks/orchestration.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache .hypothesis
