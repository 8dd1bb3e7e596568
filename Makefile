# pixl-ipc reference kit. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
BUILD := build
STAMP := $(VENV)/.installed

.PHONY: help setup test test-asyncio lint serve conformance conformance-installed bench soak clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

setup: $(STAMP) php-check ## Create .venv and install the kit, its tools and PHP

$(STAMP): python/pyproject.toml conformance/pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e 'python[dev,bench,uvloop]' -e conformance
	@touch $@

.PHONY: php-check
php-check:
	@if ! command -v php >/dev/null || ! command -v phpunit >/dev/null; then \
	  if [ "$$(id -u)" != 0 ]; then \
	    echo "php and phpunit are missing: run 'sudo apt-get install php-cli php-mbstring phpunit' or run make as root" >&2; exit 1; \
	  fi; \
	  echo "installing php-cli and phpunit with apt-get"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq php-cli php-mbstring phpunit >/dev/null; \
	fi
	@# Composer checks the PHP package (make lint) and its install (a PHPUnit
	@# test); without it both are skipped with a note. As root it is installed
	@# from the package lists already present, or after an update.
	@if ! command -v composer >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing composer with apt-get"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y -qq composer >/dev/null 2>&1 \
	      || { apt-get update -qq && apt-get install -y -qq composer >/dev/null; } \
	      || echo "could not install composer: the Composer install test will be skipped"; \
	  else \
	    echo "composer is not installed (apt-get install composer): the Composer install test will be skipped"; \
	  fi; \
	fi

test: setup ## Run every test: pytest, PHPUnit, node --test, the conformance matrix from the installed wheels
	$(PY) -m pytest
	$(MAKE) --no-print-directory test-asyncio
	phpunit -c php/phpunit.xml
	@if command -v node >/dev/null; then node --test node/test/*.test.js; else echo "node is not installed: Node client tests skipped"; fi
	$(MAKE) --no-print-directory conformance-installed

# uvloop is an extra: without it the server runs on plain asyncio. This hides
# it (tests/without_uvloop/uvloop.py fails to import) for a representative part.
test-asyncio: $(STAMP) ## The CLI and service tests and the server's conformance cases without uvloop
	PYTHONPATH=$(CURDIR)/tests/without_uvloop $(PY) -m pytest -q -p no:cacheprovider tests/cli tests/service
	@mkdir -p $(BUILD)/conformance-asyncio
	PYTHONPATH=$(CURDIR)/tests/without_uvloop $(PY) -m pixl_ipc_conformance matrix --quiet \
	  --only "python server" --out $(BUILD)/conformance-asyncio

lint: $(STAMP) ## ruff, mypy --strict, and phpcs (PSR-12), tsc and composer validate when installed
	$(VENV)/bin/ruff check python conformance tests
	$(VENV)/bin/ruff format --check python conformance tests
	$(VENV)/bin/mypy --strict python/src python/adapters python/benchmarks conformance/src
	@if command -v phpcs >/dev/null; then phpcs --standard=php/phpcs.xml; \
	else echo "phpcs is not installed (apt-get install php-codesniffer): PHP style not checked"; fi
	@if command -v tsc >/dev/null; then tsc -p node; \
	else echo "tsc is not installed (npm install -g typescript): node/index.d.ts not checked"; fi
	@if command -v composer >/dev/null; then composer validate --strict; \
	else echo "composer is not installed (apt-get install composer): composer.json not validated"; fi

serve: $(STAMP) ## Run the reference server on build/pixl-ipc.sock
	@mkdir -p $(BUILD)
	$(VENV)/bin/pixl-ipc serve --socket $(BUILD)/pixl-ipc.sock --log-level INFO

conformance: setup ## Conformance matrix: reference server and every client adapter
	@mkdir -p $(BUILD)/conformance
	$(PY) -m pixl_ipc_conformance matrix --out $(BUILD)/conformance

conformance-installed: setup ## The same matrix from both wheels, installed in a fresh venv outside the tree
	PYTHON=$(abspath $(PY)) conformance/check-installed.sh $(BUILD)/conformance

bench: $(STAMP) ## Benchmark against floors; writes build/bench/
	$(PY) python/benchmarks/bench.py --out $(BUILD)/bench

soak: $(STAMP) ## The long soak under mixed load with faults
	PIXL_SOAK=long $(PY) -m pytest -m soak -p no:cacheprovider tests/reliability

clean: ## Remove build output and the virtualenv
	rm -rf $(BUILD) $(VENV)
