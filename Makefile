# One-command workflows. Every target installs what it needs on a fresh machine.
#   make demo   start the console with demo data (SQLite, simulator, local identity provider)
#   make evidence   the go-live evidence pack for the demo (into .demo/evidence/<time>/)
#   make test   run the whole test suite (SQLite and PostgreSQL, browser journeys included)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HTMX_VERSION := $(shell sed -n 's/.*"htmx.org": "\(.*\)".*/\1/p' package.json)

.PHONY: demo evidence test lint audit-deps bench faults deps assets idp browser postgres clean

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $@

deps: $(VENV)/.installed

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --silent

static/vendor/htmx.min.js: node_modules/.package-lock.json
	mkdir -p static/vendor
	cp node_modules/htmx.org/dist/htmx.min.js $@

assets: static/vendor/htmx.min.js

idp/node_modules/.package-lock.json: idp/package.json idp/package-lock.json
	cd idp && npm ci --no-audit --no-fund --silent

idp: idp/node_modules/.package-lock.json

# Debian's Chromium for the browser journeys (Playwright drives /usr/bin/chromium; it never
# downloads a browser of its own).
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = "0" ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "Chromium is missing: run 'sudo apt-get install chromium'" >&2; exit 1; \
	  fi; \
	fi

# The machine's PostgreSQL (127.0.0.1:5432, trust auth); start it if it is installed but down.
postgres:
	@if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then \
	  if command -v pg_ctlcluster >/dev/null; then \
	    pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start; \
	  fi; \
	  for i in $$(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done; \
	fi
	@pg_isready -h 127.0.0.1 -p 5432 -q || { echo "PostgreSQL is not reachable on 127.0.0.1:5432" >&2; exit 1; }

test: deps assets idp browser postgres
	$(PY) -m pytest $(PYTEST_ARGS)

lint: deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/bandit -q -r console -c pyproject.toml --severity-level medium

# The fault runs at full size (10,000 messages), three times (issue 16); the suite runs them short.
faults: deps postgres
	for run in 1 2 3; do FAULT_SCALE=full FAULT_SEED=$$run $(PY) -m pytest -p no:cacheprovider -q -s -m faults tests/faults || exit 1; done

# Needs a machine that can reach a vulnerability database (not a CI gate here: see README).
audit-deps: deps
	$(VENV)/bin/pip-audit -r <($(PY) -m pip freeze --exclude-editable)

demo: deps assets idp
	$(PY) -m console.demo

# The go-live evidence pack (issue 17) for the embedded demo, into .demo/evidence/<time>/
evidence: deps assets
	$(PY) -m console.evidence.demo

bench: deps postgres
	$(PY) -m bench

clean:
	rm -rf $(VENV) node_modules idp/node_modules static/vendor .demo
