PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.package-lock.json
VENDOR_STAMP := gateway/static/vendor/manifest.json

.PHONY: install run engine test test-slow lint bench clean

install: $(STAMP) $(VENDOR_STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --ignore-scripts
	touch $(NODE_STAMP)

$(VENDOR_STAMP): $(NODE_STAMP) gateway/assets.py $(STAMP)
	$(BIN)/python -m gateway.assets

run: install
	GATEWAY_EMBEDDED_ENGINE_DEMO=$${GATEWAY_EMBEDDED_ENGINE_DEMO:-true} $(BIN)/python -m gateway

engine: install
	$(BIN)/python -m embedded_engine --host 127.0.0.1 --port 56100 --data-dir .data/engine --demo

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: install lint
	$(BIN)/pytest

test-slow: install
	$(BIN)/pytest --run-slow

bench: install
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .data .pytest_cache .mypy_cache .ruff_cache node_modules gateway/static/vendor
