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

# The web UI's browser tests (tests/ui) drive Debian's headless Chromium with its driver. As
# root (CI), `make test` installs them; otherwise install them yourself, or those tests fail
# saying what is missing.
BROWSER_PACKAGES := chromium chromium-driver

.PHONY: demo test browser
demo: $(VENV)/.installed-core
	$(VENV)/bin/softlabel demo --out $(DEMO_OUT)

browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(BROWSER_PACKAGES); \
	else echo "note: the browser tests need $(BROWSER_PACKAGES) (apt-get install, as root)"; fi

test: $(VENV)/.installed-dev browser
	$(VENV)/bin/lint-imports
	$(VENV)/bin/pytest
