# Stratus developer commands. `make help` (the default) lists every target with its `## comment`.

.DEFAULT_GOAL := help
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c

# uv from PATH, else where `pip install --user uv` puts it; override with `make UV=/path/to/uv`.
UV ?= $(shell command -v uv 2>/dev/null || echo "$$(python3 -m site --user-base 2>/dev/null || echo $(HOME)/.local)/bin/uv")
# Never re-resolve dependencies behind the developer's back: use uv.lock as it is.
FROZEN := $(if $(wildcard uv.lock),--frozen,)
RUN := $(UV) run $(FROZEN)
DATA_DIR := .stratus
PYTEST_ARGS ?=
TS_CLIENT := clients/typescript

.PHONY: help install run test lint fmt bench bench-scale ts-client clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "; print "Usage: make <target>\n\nTargets:"} \
		/^[a-zA-Z_-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

install: ## Install uv (from PyPI, if missing), the virtualenv from uv.lock, docker-compose (apt, if root), the TS client's npm packages
	@if ! command -v "$(UV)" >/dev/null 2>&1; then \
		echo "uv not found: installing it from PyPI (pip install --user uv)"; \
		python3 -m pip install --user --quiet uv \
			|| python3 -m pip install --user --quiet --break-system-packages uv; \
	fi
	@if [ -f uv.lock ]; then "$(UV)" sync --frozen; else "$(UV)" sync; fi
	@# tests/deploy validates docker-compose.yml with Debian's docker-compose (no engine needed).
	@if ! command -v docker-compose >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "docker-compose not found: installing it with apt-get (tests/deploy validates docker-compose.yml with it)"; \
			export DEBIAN_FRONTEND=noninteractive; \
			apt-get update -qq && apt-get install -y -qq --no-install-recommends docker-compose >/dev/null; \
		else \
			echo "note: docker-compose is not installed and cannot be installed here (needs root and apt-get);"; \
			echo "      tests/deploy will fail until it is (Debian/Ubuntu: sudo apt-get install docker-compose)"; \
		fi; \
	fi
	@# The TypeScript client's packages (npm ci from its lockfile), when Node.js is here and they are
	@# missing or older than the lockfile; without Node.js its test is skipped.
	@if command -v npm >/dev/null 2>&1; then \
		if [ ! $(TS_CLIENT)/node_modules/.package-lock.json -nt $(TS_CLIENT)/package-lock.json ]; then \
			echo "npm ci in $(TS_CLIENT)"; \
			(cd $(TS_CLIENT) && npm ci --no-audit --no-fund --loglevel=error); \
		fi; \
	else \
		echo "note: Node.js and npm are not installed: the TypeScript client ($(TS_CLIENT)) is left out"; \
		echo "      and its test skipped"; \
	fi

run: install ## Start the whole stack locally (stratus up); Ctrl-C stops it
	$(RUN) stratus up

test: install ## Run the test suite (PYTEST_ARGS="-k name" to select)
	$(RUN) pytest $(PYTEST_ARGS)

lint: install ## Lint and check formatting (ruff)
	$(RUN) ruff check . && $(RUN) ruff format --check .

fmt: install ## Format the code and sort imports (ruff)
	$(RUN) ruff check --select I --fix . && $(RUN) ruff format .

bench: install ## Run the benchmarks (deploy/bench/run.py)
	$(RUN) python deploy/bench/run.py

bench-scale: install ## Cost as an account grows: 100k projects, 10k config versions (scale.py)
	$(RUN) python deploy/bench/scale.py

ts-client: install ## The TypeScript client: npm ci, regenerate src/schema.d.ts from this checkout's spec, build
	@command -v npm >/dev/null 2>&1 || { echo "ts-client needs Node.js 20+ and npm"; exit 1; }
	cd $(TS_CLIENT) && npm ci --no-audit --no-fund --loglevel=error
	@# The spec of a throwaway stack of this checkout (or of STRATUS_OPENAPI_URL's gateway).
	@spec=$$(mktemp -t stratus-openapi.XXXXXX); trap 'rm -f "$$spec"' EXIT; \
		$(RUN) python $(TS_CLIENT)/scripts/openapi_spec.py "$$spec" && \
		(cd $(TS_CLIENT) && npm run --silent generate -- "$$spec" && npm run --silent build)

clean: ## Delete the local stack's data (.stratus); refuses while it runs
	@if [ -f $(DATA_DIR)/stack.json ] && kill -0 "$$(sed -n 's/.*"pid": *\([0-9]*\).*/\1/p' $(DATA_DIR)/stack.json | head -1)" 2>/dev/null; then \
		echo "a stack is running on $(DATA_DIR): stop it (Ctrl-C) first"; exit 1; \
	fi
	rm -rf $(DATA_DIR)
