# The README's two quickstart commands are `make run` and `make test`; both work on a fresh
# machine with only python3 (and its venv module) installed.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP_RUN  = $(VENV)/.installed-run
STAMP_TEST = $(VENV)/.installed-test

.PHONY: run test test-mongo lint bench demo clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP_RUN): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(STAMP_TEST): pyproject.toml plugins/coordd-rules/pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]' -e plugins/coordd-rules
	touch $@ $(STAMP_RUN)

## run: install coordd and run the daemon on its embedded default (in memory, no MongoDB)
run: $(STAMP_RUN)
	$(BIN)/coordd $(ARGS)

## test: install the test dependencies and run the whole suite
test: $(STAMP_TEST)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

## test-mongo: the real-server suite against FerretDB (built once into .cache/ferretdb; needs Go)
test-mongo: $(STAMP_TEST)
	PYTHON=$(abspath $(BIN)/python) scripts/test-mongo.sh $(PYTEST_ARGS)

## demo: the daemon on a live synthetic log
demo: $(STAMP_RUN)
	$(BIN)/coordd demo $(ARGS)

## lint: ruff, mypy and the layers contract (import-linter, see docs/architecture.md)
lint: $(STAMP_TEST)
	$(BIN)/ruff check .
	$(BIN)/mypy coordd
	$(BIN)/lint-imports

## bench: every benchmark in bench/ (prints figures; see BENCHMARKS.md)
bench: $(STAMP_TEST)
	for b in bench/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
