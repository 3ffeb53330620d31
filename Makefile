# Every target is documented with a `## ` comment; `make` alone prints them.
.DEFAULT_GOAL := help
SHELL := /bin/bash

VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
PYTEST := $(VENV)/bin/pytest
RUFF   := $(VENV)/bin/ruff
MYPY   := $(VENV)/bin/mypy
# Reinstall only when the project's metadata changed: keeps `make install` quick.
STAMP  := $(VENV)/.durable-installed
# Lint only the folders that exist yet (ruff errors on missing paths).
LINT_PATHS := $(wildcard durable tests benchmarks examples)

.PHONY: help install demo test test-citus test-faults chaos lint typecheck format bench bench-smoke \
	db-up db-down clean browser-deps

help: ## Show this list of targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) \
		| awk 'BEGIN {FS = ":.*## "}; {printf "  %-12s %s\n", $$1, $$2}'

install: $(STAMP) ## Create .venv if missing and install durable with its dev tools (editable)

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install --quiet -e '.[dev]'
	@touch $@

demo: install ## Run the quickstart example against DURABLE_DSN or an embedded Postgres
	@if [ -z "$$DURABLE_DSN" ] && ! $(PY) -c 'from durable.embedded import find_bindir; find_bindir()' 2>/dev/null; then \
		echo "no DURABLE_DSN and no PostgreSQL binaries: installing durable-pg[embedded]"; \
		$(PIP) install --quiet -e '.[dev,embedded]'; \
	fi
	$(PY) examples/quickstart.py

test: install browser-deps ## Run the test suite (real Postgres: DURABLE_TEST_DSN, localhost:5432 or embedded)
	$(PYTEST) -q

# The dashboard's browser test drives Debian's chromium through Playwright (never
# `playwright install`). Without chromium (and no way to install it) that test skips
# and says why; nothing else depends on it.
browser-deps: ## Install Debian's chromium for the dashboard's browser test when missing
	@command -v chromium >/dev/null 2>&1 || { \
		if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
			(apt-get update -qq && apt-get install -y -qq chromium >/dev/null) \
				|| echo "chromium could not be installed: the browser test will skip"; \
		else \
			echo "no chromium and no root apt-get: the browser test will skip"; \
		fi; }

# Not part of `test`: it installs Citus (root) and runs a 3-node cluster for ~2 minutes.
test-citus: install ## Scale-out tests on a local Citus cluster (../shared/citus; skips if missing)
	bash tests/citus/run.sh

test-faults: install ## Run the long fault-injection (chaos) tests only
	$(PYTEST) -q -m faults

chaos: test-faults ## Alias of test-faults

lint: install ## ruff check + ruff format --check + mypy --strict + import-linter layer contracts
	$(RUFF) check $(LINT_PATHS)
	$(RUFF) format --check durable
	$(MYPY) --strict durable
	$(VENV)/bin/lint-imports

typecheck: install ## mypy --strict over the durable package
	$(MYPY) --strict durable

format: install ## Apply ruff's formatter and safe autofixes
	$(RUFF) format $(LINT_PATHS)
	$(RUFF) check --fix $(LINT_PATHS)

bench: install ## Run the full benchmarks vs DBOS and the asyncpg ceiling, then draw the plots
	$(PIP) install --quiet -e '.[dev,bench]'
	$(PY) benchmarks/run.py
	$(PY) benchmarks/plot.py

bench-smoke: install ## Run the benchmarks at smoke size (as CI does; DBOS skipped if it cannot install)
	$(PIP) install --quiet -e '.[dev,bench]' || echo "bench extras unavailable: running without DBOS"
	$(PY) benchmarks/run.py --smoke --out benchmarks/results/smoke.jsonl

db-up: install ## Start (or reuse) the local throwaway Postgres and print its DSN
	$(PY) -m durable.embedded start

db-down: install ## Stop the local throwaway Postgres (its data is kept)
	$(PY) -m durable.embedded stop

clean: ## Remove caches and build output (keeps .venv and Postgres data)
	rm -rf build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -exec rm -rf {} +
