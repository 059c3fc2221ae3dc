PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# MINI_RACER=0.12.4 (make variable or environment) installs that mini-racer release over the locked one, to run the
# whole suite against it (`MINI_RACER=0.12.4 bash .ci/run`); the stamp names it, so dropping it syncs back.
STAMP := $(VENV)/.installed$(if $(MINI_RACER),-mini-racer-$(MINI_RACER))
NODE_STAMP := node_modules/.package-lock.json
VENDOR_STAMP := gateway/static/vendor/manifest.json

LOCKS := requirements/bootstrap.txt requirements/runtime.txt requirements/dev.txt
COMPILE = $(BIN)/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes $(if $(UPGRADE),--upgrade)

.PHONY: bytecode install lock lock-check run engine test test-slow test-mini-racer lint bench docker-test clean

install: $(STAMP) $(VENDOR_STAMP) bytecode

# Exactly the lock: uv (itself pinned with hashes) syncs .venv to requirements/dev.txt, removing anything else.
$(STAMP): pyproject.toml $(LOCKS) | lock-check
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements/bootstrap.txt
	$(BIN)/uv pip sync --quiet --python $(BIN)/python --require-hashes --compile-bytecode requirements/dev.txt
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps --no-build-isolation -e .
	$(if $(MINI_RACER),$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps mini-racer==$(MINI_RACER))
	rm -f $(VENV)/.installed*
	touch $(STAMP)

# Bytecode written once: where PYTHONDONTWRITEBYTECODE is set, every process the tests start (gateways, engines,
# sandbox workers) would otherwise compile its imports again (about 1.3 s of CPU each).
bytecode: $(STAMP)
	$(BIN)/python -m compileall -q -j 0 gateway embedded_engine bench tests tools > /dev/null

# Fails when pyproject.toml lists other dependencies than the locks were compiled from.
lock-check:
	$(PYTHON) tools/lockfile.py check

# Refresh the locks on purpose: keeps current pins where they still fit; `make lock UPGRADE=1` takes the newest.
lock:
	test -x $(BIN)/uv || { $(PYTHON) -m venv $(VENV) && $(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements/bootstrap.txt; }
	$(COMPILE) requirements/bootstrap.in -o requirements/bootstrap.txt
	$(COMPILE) pyproject.toml -o requirements/runtime.txt
	$(COMPILE) pyproject.toml requirements/tools.in --extra dev -o requirements/dev.txt
	$(PYTHON) tools/lockfile.py stamp

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --ignore-scripts
	touch $(NODE_STAMP)

$(VENDOR_STAMP): $(NODE_STAMP) gateway/assets.py $(STAMP)
	$(BIN)/python -m gateway.assets

run: install
	GATEWAY_EMBEDDED_ENGINE_DEMO=$${GATEWAY_EMBEDDED_ENGINE_DEMO:-true} GATEWAY_LOG_FORMAT=$${GATEWAY_LOG_FORMAT:-text} \
		GATEWAY_UNSAFE_ANONYMOUS_ROOT=$${GATEWAY_UNSAFE_ANONYMOUS_ROOT:-true} \
		$(BIN)/python -m gateway

engine: install
	$(BIN)/python -m embedded_engine --host 127.0.0.1 --port 56100 --data-dir .data/engine --demo

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Three workers (pytest-xdist), a test file per worker: most of the suite waits on the real servers it starts, so
# three keep two cores busy (6 min here, against 9 with two workers and 14 with one).
test: lock-check install lint
	$(BIN)/pytest -n 3 --dist loadfile

test-slow: install
	$(BIN)/pytest -n 3 --dist loadfile --run-slow

# The JavaScript sandbox's tests against other mini-racer releases: `make test-mini-racer VERSIONS="0.12.4 0.13.2"`.
test-mini-racer: install
	bench/mini_racer_versions.sh $(VERSIONS)

bench: install
	$(BIN)/python -m bench
	$(BIN)/python -m bench.live

# The container image end to end (build, run, health, GraphQL, REST, SIGTERM): slow, needs Docker or root to set
# it up, so not part of `make test`. See docs/container.md.
docker-test:
	tools/docker_test.sh

clean:
	rm -rf $(VENV) .data .pytest_cache .mypy_cache .ruff_cache node_modules gateway/static/vendor
