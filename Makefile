# Two commands on a fresh machine: `make demo` and `make test`. Each installs what it
# needs first (uv into .tools/, the locked Python stack into .venv/, Prism into
# node_modules/, Chromium and PostgreSQL from Debian for the tests) and is quick once
# installed.

SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.9
UV := .tools/bin/uv
VENV := .venv
export PREFECT_HOME ?= $(CURDIR)/.prefect
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS := 90
export UV_PROJECT_ENVIRONMENT := $(CURDIR)/$(VENV)

.PHONY: demo test lint bench install clean

demo: $(VENV)/.synced
	PREFECT_LOGGING_LEVEL=WARNING $(VENV)/bin/aftersale demo

test: $(VENV)/.synced node_modules/.installed chromium postgresql
	$(VENV)/bin/pytest

lint: $(VENV)/.synced
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: $(VENV)/.synced
	$(VENV)/bin/python bench/parse.py
	$(VENV)/bin/python bench/poll.py
	$(VENV)/bin/python bench/decide.py
	$(VENV)/bin/python bench/render.py
	$(VENV)/bin/python bench/cycle.py
	$(VENV)/bin/python bench/messages.py
	$(VENV)/bin/python bench/store.py
	$(VENV)/bin/python bench/limits.py

install: $(VENV)/.synced node_modules/.installed

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

$(VENV)/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --quiet
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The gallery and Prefect UI tests drive Debian's Chromium (headless).
.PHONY: chromium
chromium:
	@command -v chromium >/dev/null || { \
	  echo "installing chromium (Debian package) for the browser tests"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; fi; }

# The store suite also runs on a throwaway PostgreSQL server the tests start themselves
# (tests/support/postgres.py); Debian's `postgresql` provides initdb and pg_ctl.
.PHONY: postgresql
postgresql:
	@ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || command -v pg_ctl >/dev/null || { \
	  echo "installing postgresql (Debian package) for the store tests"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; fi; }

clean:
	rm -rf $(VENV) .tools node_modules .prefect var test-artifacts
