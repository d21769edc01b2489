# Tongban: the two set-up commands are `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: setup demo test lint bench clean

setup: $(VENV)/.installed

# Everything is pinned: constraints.txt holds the exact version of every package (Airflow's tree included).
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade "pip==25.3"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[test]"
	touch $@

# Run again, it starts over unless you changed what it wrote; DEMO_ARGS=--fresh starts over regardless.
DEMO_ARGS ?=
demo: setup
	$(BIN)/tongban demo --workdir demo $(DEMO_ARGS)

test: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -n 2

bench: setup
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[test,bench]"
	$(BIN)/python bench/validate.py
	$(BIN)/python bench/sync.py

clean:
	rm -rf $(VENV) demo .pytest_cache .ruff_cache .hypothesis
