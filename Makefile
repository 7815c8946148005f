# Two entry points: `make demo` (the main job on embedded defaults) and `make test` (the suite).
# Each creates its own virtual environment and installs what it needs.
PYTHON ?= python3
VENV ?= .venv
DEMO_OUT ?= softlabel-demo

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip

$(VENV)/.installed-core: pyproject.toml | $(VENV)/bin/python
	$(VENV)/bin/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(VENV)/bin/python
	$(VENV)/bin/pip install --quiet -e '.[dev,train]'
	touch $@ $(VENV)/.installed-core

.PHONY: demo test
demo: $(VENV)/.installed-core
	$(VENV)/bin/softlabel demo-study --out $(DEMO_OUT)/study
	$(VENV)/bin/softlabel soften --image $(DEMO_OUT)/study/imagesTr/mni152_001_0000.nii.gz \
		--label $(DEMO_OUT)/study/labelsTr/mni152_001.nii.gz --classes 4 \
		--out $(DEMO_OUT)/mni152_001_soft.nii.gz --save-superpixels $(DEMO_OUT)/mni152_001_superpixels.nii.gz
	$(VENV)/bin/softlabel preview --image $(DEMO_OUT)/study/imagesTr/mni152_001_0000.nii.gz \
		--label $(DEMO_OUT)/study/labelsTr/mni152_001.nii.gz --soft $(DEMO_OUT)/mni152_001_soft.nii.gz \
		--superpixels $(DEMO_OUT)/mni152_001_superpixels.nii.gz --out $(DEMO_OUT)/mni152_001_preview.png

test: $(VENV)/.installed-dev
	$(VENV)/bin/python -m pytest
