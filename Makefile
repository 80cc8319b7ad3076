# landreg: everything a newcomer needs is `make demo` and `make test`.
# Both set up what is missing (Python venv + packages, npm packages) and nothing else.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PY_STAMP  := $(VENV)/.landreg-installed
NPM_STAMP := node_modules/.landreg-installed
CHROMIUM  := /usr/bin/chromium
# Keep compiled bytecode (__pycache__, ignored by git) even where the environment says not to: the
# suite starts landreg in hundreds of processes, each of which would otherwise recompile it.
export PYTHONDONTWRITEBYTECODE :=

.PHONY: setup demo test test-fast bench lint format contracts clean help

help:
	@echo "make demo   set up, then run the demo on the embedded default (SQLite + a local anvil node)"
	@echo "make test   set up, then run the whole test suite"
	@echo "make test-fast  the suite without subprocess, anvil and browser tests, on every core"
	@echo "make bench  run the benchmarks (figures go to docs/benchmarks.md)"
	@echo "make lint   ruff (check and format) and mypy"

$(PY_STAMP): pyproject.toml constraints.txt | mariadb-client-library
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $@

# package-lock.json lists anvil's binaries for every platform, although the registry mirror of the
# development machine serves only linux-amd64: npm ci installs the one matching this machine.
$(NPM_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

# mysqlclient, the MariaDB/MySQL driver `landreg legacy attach` uses (chosen by bench/drivers.py),
# builds against MariaDB's client library: on Debian and Ubuntu it comes from libmariadb-dev. (On
# macOS: brew install mariadb-connector-c pkg-config.)
.PHONY: mariadb-client-library
mariadb-client-library:
	@if pkg-config --exists libmariadb 2>/dev/null || pkg-config --exists mysqlclient 2>/dev/null; then exit 0; fi; \
	  echo "installing MariaDB's client library (libmariadb-dev, pkg-config) for the mysqlclient driver"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null; then SUDO=sudo; else \
	  echo "cannot install libmariadb-dev (not root, no sudo): install libmariadb-dev and pkg-config"; exit 1; fi; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  $$SUDO apt-get install -y --no-install-recommends libmariadb-dev pkg-config || \
	  { $$SUDO apt-get update && $$SUDO apt-get install -y --no-install-recommends libmariadb-dev pkg-config; }

# The browser tests drive Debian's Chromium (Playwright cannot download its own browser here).
$(CHROMIUM):
	@echo "installing Debian's chromium for the browser tests"
	@if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null; then SUDO=sudo; else \
	  echo "cannot install chromium (not root, no sudo): install the 'chromium' package, or the browser tests skip"; exit 0; fi; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  $$SUDO apt-get install -y --no-install-recommends chromium || \
	  { $$SUDO apt-get update && $$SUDO apt-get install -y --no-install-recommends chromium; }

setup: $(PY_STAMP) $(NPM_STAMP)

demo: setup
	$(BIN)/landreg demo

test: setup $(CHROMIUM)
	$(BIN)/pytest

test-fast: setup  # the browser tests are slow: left out, so no browser is installed for them
	$(BIN)/pytest -m "not slow" -n auto

bench: setup
	$(BIN)/python bench/anchoring.py

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

contracts: setup
	$(BIN)/landreg contracts build

clean:
	rm -rf $(VENV) node_modules .pytest_cache .hypothesis
