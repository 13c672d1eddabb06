# Two commands on a fresh machine: `make quickstart` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH := torch==2.14.1 torchvision==0.29.1

.PHONY: quickstart test setup

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip

$(VENV)/.core-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e ".[torch,server]"
	touch $@

$(VENV)/.all-installed: pyproject.toml scripts/install-openmmlab.sh $(VENV)/.core-installed
	$(BIN)/pip install -q -e ".[dev,lightning,keras,transformers,server,ultralytics,mmengine]"
	$(BIN)/pip install -q tensorflow-cpu  # the Keras paths on the TensorFlow backend
	bash scripts/install-openmmlab.sh $(BIN)/pip  # MMDetection3D, mmcv ops, nuScenes devkit
	touch $@

setup: $(VENV)/.all-installed

quickstart: $(VENV)/.core-installed
	$(BIN)/python examples/quickstart.py

test: $(VENV)/.all-installed
	$(BIN)/python -m pytest
