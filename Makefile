# `make demo` and `make test` work on a fresh machine with only Python 3:
# both create .venv through `make setup` when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint bench bench-trainer clean

setup: $(STAMP)

# torch is pinned in the same pip command as the package so no other torch
# (e.g. a multi-GB CUDA build) is ever resolved.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "torch==2.13.0" -e ".[test]"
	touch $(STAMP)

demo: setup
	$(BIN)/mariana demo

lint: setup
	$(BIN)/ruff check .

test: setup lint
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python benchmarks/step_overhead.py

# The Trainer against a plain PyTorch loop (and Keras 3 / Lightning with the bench extra) on MNIST.
bench-trainer: setup
	$(BIN)/python benchmarks/trainer_overhead.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache runs
