# Every target makes its own virtual environment (.venv) and installs what it needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Use the real MNIST files beside the checkout when they are there (no download needed).
SHARED_MNIST := $(abspath ../shared/data/mnist)
ifneq ($(wildcard $(SHARED_MNIST)/train-images-idx3-ubyte.gz),)
export DEZERO_DATA_DIR ?= $(SHARED_MNIST)
endif

.PHONY: venv train train-distributed gpt test test-numpy1 lint bench gpu-check gpu-data docs docs-serve clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

## The main job: train an MLP on MNIST (pass flags with ARGS="--epochs 3 ...").
train: venv
	$(BIN)/python examples/mnist.py $(ARGS)

## A character-level GPT on Tiny Shakespeare, nanoGPT's baby config (flags through ARGS).
SHARED_SHAKESPEARE := $(abspath ../shared/data/tinyshakespeare)
GPT_DATA := $(if $(wildcard $(SHARED_SHAKESPEARE)/input.txt),DEZERO_DATA_DIR=$(SHARED_SHAKESPEARE),)
gpt: venv
	$(GPT_DATA) $(BIN)/python examples/gpt.py $(ARGS)

## The main job data-parallel on NP processes over MPI (ARGS as for train); the cores are
## shared out between the processes. mpiexec comes from the mpich wheel (extra mpi).
NP ?= 2
train-distributed: venv
	$(BIN)/python -c "import mpi4py" 2>/dev/null || $(BIN)/python -m pip install -q -e ".[mpi]"
	threads=$$($(BIN)/python -c "import os; print(max(1, (os.cpu_count() or 1) // $(NP)))"); \
	mpiexec=$$([ -x $(BIN)/mpiexec ] && echo $(BIN)/mpiexec || echo mpiexec); \
	OMP_NUM_THREADS=$$threads OPENBLAS_NUM_THREADS=$$threads MKL_NUM_THREADS=$$threads \
	    $$mpiexec -n $(NP) $(BIN)/python examples/mnist.py --distributed $(ARGS)

## The whole test suite (lint included).
test: venv
	$(BIN)/python -m ruff check dezero tests examples benchmarks tools docs conftest.py
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

## The suite on NumPy 1.26 in a separate environment.
test-numpy1:
	$(PYTHON) -m venv .venv-np1
	.venv-np1/bin/python -m pip install -q "numpy>=1.26,<2" -e ".[test]"
	.venv-np1/bin/python -m pytest -q $(PYTEST_ARGS)

lint: venv
	$(BIN)/python -m ruff check dezero tests examples benchmarks tools docs conftest.py

## Benchmarks against PyTorch CPU (installs the CPU build of torch into .venv).
bench: venv
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python benchmarks/run.py $(ARGS)

## The documentation site into site/ (strict: a broken link, a bad docstring or a failing
## page fails the build). Graph pictures need Graphviz's dot.
docs: venv
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict

## Preview the site at http://127.0.0.1:8000 while editing docs/.
docs-serve: venv
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs serve

## On a machine with a CUDA GPU: GPU tests, examples and benchmarks in one call of at most
## 8 minutes (ARGS=--quick: at most 4). Reads its data from gpu_data/ (make gpu-data).
gpu-check:
	PYTHON=$(abspath $(BIN)/python) bash tools/gpu_check.sh $(ARGS)

## Fill gpu_data/ (git-ignored, about 13 MiB) with MNIST and Tiny Shakespeare from
## DEZERO_DATA_DIR, ../shared/data or ~/.dezero, so that it travels with the working tree.
gpu-data:
	bash tools/gpu_check.sh --fill-data

clean:
	rm -rf $(VENV) .venv-np1 .pytest_cache .ruff_cache site
