# One command each: `make test` (set up + lint + mypy + docs + tests), `make demo` (set up + demo).
# `make docs` builds the documentation alone into site/ (warnings are errors).
# Both create their own virtual environment in $(VENV).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.prunegym-installed

.PHONY: install demo test test-slow lint typecheck docs clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m prunegym demo

lint: $(STAMP)
	$(VENV)/bin/ruff check prunegym tests benchmarks
	$(VENV)/bin/ruff format --check prunegym tests benchmarks

typecheck: $(STAMP)
	$(VENV)/bin/mypy

docs: $(STAMP)
	$(VENV)/bin/mkdocs build --strict --quiet

test: lint typecheck docs
	$(PY) -m pytest -q -m "not slow"

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build site *.egg-info
