# The two commands of the README: `make run` and `make test`. CI runs .ci/run.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Contract checkers from npm (AsyncAPI parser, Redocly, oauth4webapi), pinned by the lock file.
NODE_DIR := tests/contracts
NODE_STAMP := $(NODE_DIR)/node_modules/.installed

.PHONY: run test test-unit test-integration lint format typecheck check bench clean chaos

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(NODE_STAMP): $(NODE_DIR)/package.json $(NODE_DIR)/package-lock.json
	npm ci --prefix $(NODE_DIR) --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

run: $(STAMP)
	$(BIN)/hub up

test: $(STAMP) $(NODE_STAMP)
	$(BIN)/pytest -q -rs

test-unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

test-integration: $(STAMP)
	$(BIN)/pytest -q -rs tests/integration

# Fault injection under load (docs/chaos.md); CI runs the short version in the test suite.
chaos: $(STAMP)
	mkdir -p data
	$(BIN)/python -m tests.chaos.run --json data/chaos.json

lint: $(STAMP)
	$(BIN)/ruff check .

format: $(STAMP)
	$(BIN)/ruff format .

typecheck: $(STAMP)
	$(BIN)/mypy

check: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m tests.benchmarks.all

clean:
	rm -rf $(VENV) $(NODE_DIR)/node_modules data .pytest_cache .mypy_cache .ruff_cache
