# Two commands from a fresh clone, with nothing installed but Python:
#   make test   set up .venv, lint, run the tests
#   make demo   set up .venv, fit 500 points to Beta(2, 6) and write outputs/beta.gif
# Other targets: make bench, make lint, make format, make clean.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# A CPU build of torch unless the machine has a CUDA driver. `torch==2.13.0` is the CPU build
# on our development and CI machines; elsewhere pass an index, e.g.
#   make test TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu"
HAS_CUDA := $(shell nvidia-smi -L >/dev/null 2>&1 && echo yes)
ifeq ($(HAS_CUDA),yes)
TORCH_SPEC ?= torch>=2.4,<3
else
TORCH_SPEC ?= torch==2.13.0
endif
TORCH_PIP_ARGS ?=
PYTEST_ARGS ?=

.PHONY: setup test lint format demo bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet "$(TORCH_SPEC)" $(TORCH_PIP_ARGS)
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

format: $(STAMP)
	$(BIN)/ruff check --fix src tests benchmarks
	$(BIN)/ruff format src tests benchmarks

test: lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

demo: $(STAMP)
	$(BIN)/batchshaping demo beta --a 2 --b 6 --steps 100 --out outputs/beta.gif

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache .hypothesis
