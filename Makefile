# Mend: `make run` starts the whole stack, `make test` runs every test.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROTO_SRC := protos/mend/v1/jobs.proto
GEN := mend/v1

.PHONY: run test lint lint-ci proto proto-check bench redis test-tools dev-certs clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

# What is not on PATH comes from Debian's packages: redis-server to run the stack, jq
# and curl for the tests that run the docs' shell walkthrough, and chromium for the
# tests a browser runs (EventSource; Playwright drives it and never downloads one).
redis:
	@scripts/ensure-packages.sh redis-server

test-tools:
	@scripts/ensure-packages.sh redis-server jq curl chromium

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

# What CI enforces on every change.
lint-ci: $(STAMP)
	$(BIN)/ruff check .

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
