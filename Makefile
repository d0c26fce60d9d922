# Mend: `make run` starts the whole stack, `make test` runs every test.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROTO_SRC := protos/mend/v1/jobs.proto
GEN := clients/mend/v1

.PHONY: run test lint lint-ci proto proto-check bench redis test-tools dev-certs clean

# Two distributions: mend-client (clients/: library, CLI, stubs) and mend-server (the rest),
# which requires the first; one pip call, so it takes mend-client from ./clients. A venv
# made before the split holds the old `mend` distribution, which would shadow them.
$(STAMP): pyproject.toml clients/pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	@$(BIN)/pip uninstall --quiet --yes mend 2>/dev/null || true
	$(BIN)/pip install --quiet -e ./clients -e '.[dev]'
	@touch $@

# What is not on PATH comes from Debian's packages: redis-server to run the stack, jq
# and curl for the tests that run the docs' shell walkthrough, chromium for the tests a
# browser runs (EventSource; Playwright drives it and never downloads one), and Node for
# the test of a Node client built from protos/ (its npm packages: tests/node). The Redis
# Cluster and Sentinel tests need redis-cli (redis-tools, which redis-server depends on)
# to create the cluster; the sentinel is `redis-server --sentinel`.
redis:
	@scripts/ensure-packages.sh redis-server

NODE_MODULES := tests/node/node_modules/.installed

test-tools: $(NODE_MODULES)
	@scripts/ensure-packages.sh redis-server redis-cli:redis-tools jq curl chromium

$(NODE_MODULES): tests/node/package-lock.json
	@scripts/ensure-packages.sh nodejs npm
	npm ci --prefix tests/node --no-audit --no-fund --loglevel=error
	@touch $@

run: $(STAMP) redis
	$(BIN)/mend-stack

# A private CA, a server certificate for 127.0.0.1/localhost and a client certificate in
# var/tls, for `make run` with TLS (README, "TLS"). For development only.
dev-certs: $(STAMP)
	$(BIN)/python -m scripts.devcerts var/tls

test: $(STAMP) test-tools
	$(BIN)/pytest -q tests

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy mend_core mend_server mend_worker clients/mend_client
	$(BIN)/mypy --strict clients/mend_client

# What CI enforces on every change: all of `make lint`.
lint-ci: lint

# Stubs are committed; `make proto-check` (run by CI) fails when they are stale.
proto: $(STAMP)
	$(BIN)/python -m scripts.genproto $(GEN)

proto-check: $(STAMP)
	@tmp=$$(mktemp -d) && $(BIN)/python -m scripts.genproto $$tmp/$(GEN) && \
	  diff -r -x __pycache__ $$tmp/$(GEN) $(GEN) >/dev/null || \
	  { echo "generated stubs in $(GEN) are stale: run 'make proto'"; rm -rf $$tmp; exit 1; }; rm -rf $$tmp

bench: $(STAMP) redis
	@scripts/ensure-packages.sh ffmpeg  # the CLI `bench media` compares with (bench only)
	$(BIN)/pip install --quiet -r bench/requirements.txt
	$(BIN)/python -m bench

clean:
	rm -rf var .pytest_cache
