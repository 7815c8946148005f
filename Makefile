# Two entry points: `make demo` (the main job on embedded defaults) and `make test` (the suite).
# Each creates its own virtual environment and installs what it needs.
PYTHON ?= python3
VENV ?= .venv
DEMO_OUT ?= softlabel-demo

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip

KERNEL_SOURCES := setup.py $(shell find worker -name '*.pyx' -o -name '*.h')

$(VENV)/.installed-core: pyproject.toml $(KERNEL_SOURCES) | $(VENV)/bin/python
	$(VENV)/bin/pip install --quiet -e .  # builds the engine's C kernels (gcc, OpenMP)
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(KERNEL_SOURCES) | $(VENV)/bin/python
	$(VENV)/bin/pip install --quiet -e '.[dev,train,nnunet]'
	touch $@ $(VENV)/.installed-core

.PHONY: demo test
demo: $(VENV)/.installed-core
	$(VENV)/bin/softlabel demo --out $(DEMO_OUT)

test: $(VENV)/.installed-dev
	$(VENV)/bin/lint-imports
	$(VENV)/bin/pytest
