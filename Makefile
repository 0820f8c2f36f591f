# Two entry points for a fresh clone: `make demo` and `make test`.
# Both create the virtual environment once (.venv) and reuse it afterwards:
# the stamp file .venv/.installed is rebuilt only when pyproject.toml changes.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST := $(BIN)/python -m pytest -q -p no:cacheprovider

.PHONY: venv demo test test-all lint clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -q -e ".[all,dev]"
	@touch $(STAMP)

demo: venv
	$(BIN)/art-spatial demo

test: venv
	$(BIN)/ruff format --check art_spatial tests benchmarks docs/gen_api.py
	$(BIN)/ruff check art_spatial tests benchmarks docs/gen_api.py
	$(PYTEST) -m "not slow" --doctest-modules art_spatial tests

test-all: venv
	$(PYTEST) --doctest-modules art_spatial tests

lint: venv
	$(BIN)/ruff check art_spatial tests benchmarks docs/gen_api.py
	$(BIN)/ruff format --check art_spatial tests benchmarks docs/gen_api.py

clean:
	rm -rf build dist *.egg-info runs
