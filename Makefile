# The few commands people type. `make demo` and `make test` set everything up on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch; an unpinned torch pulls a multi-GB CUDA build (see README for GPUs).
TORCH ?= torch==2.13.0

.PHONY: demo test install install-test lint bench case-study

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/python -m pip install --quiet "$(TORCH)" -e .

install-test: $(BIN)/python
	$(BIN)/python -m pip install --quiet "$(TORCH)" -e ".[test]"

demo: install
	$(BIN)/bayespinn demo

test: install-test
	$(BIN)/python -m pytest -n 3 --dist loadfile --durations=30

lint: install-test
	$(BIN)/ruff check bayespinn surrogates inference tests benchmarks case_studies

bench: install
	$(BIN)/python benchmarks/smib.py
	$(BIN)/python benchmarks/battery_spm.py
	$(BIN)/python benchmarks/engines.py
	$(BIN)/python benchmarks/soh.py

case-study: install
	$(BIN)/python case_studies/power_smib/compare.py
	$(BIN)/python case_studies/engines/compare.py
	$(BIN)/python case_studies/battery_spm/compare.py
	$(BIN)/python case_studies/reservoir/compare.py
	$(BIN)/python case_studies/exactness/compare.py
	$(BIN)/python case_studies/battery_soh/compare.py
