# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint bench bench-fanout install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## The embedded stack (Temporal dev server, API, worker, dev mailbox, SMS endpoint) with demo data.
run: $(STAMP)
	$(BIN)/lotline dev

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

test: lint
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

## Benchmarks print figures; SIZE scales the synthetic data (1.0 = full size).
bench: $(STAMP)
	$(BIN)/python bench/trace.py $(BENCH_ARGS)

## A recall reaching 10,000 consignees on the embedded stack: fan-out, history, acknowledgements.
bench-fanout: $(STAMP)
	$(BIN)/python bench/recall_fanout.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache
