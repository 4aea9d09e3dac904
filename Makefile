# Every target is self-sufficient on a fresh machine with only Python 3.11 and make:
# the virtual environment in .venv is created, and refreshed whenever pyproject.toml changes.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo_output

.PHONY: setup demo test test-slow lint bench fewshot clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/ehrbench demo --out $(DEMO_DIR)

# The full synthetic benchmark (tasks/synthetic.yaml): long; rerunning resumes where it stopped.
fewshot: $(STAMP)
	$(BIN)/ehrbench run tasks/synthetic.yaml
	$(BIN)/ehrbench report results/synthetic

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

lint: $(STAMP)
	$(BIN)/ruff check ehrbench tests benchmarks examples
	$(BIN)/ruff format --check ehrbench tests benchmarks examples

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) $(DEMO_DIR)
