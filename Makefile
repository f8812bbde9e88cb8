# `make run` and `make test` do all the set-up on a fresh machine (Python 3.11+).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: install run test lint fmt bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,postgres]'
	@touch $(STAMP)

install: $(STAMP)

# The demo stack's one writer of record for stock (SPEC §3): the inventory service.
STOCK_AUTHORITY ?= inventory

## Seed the demo data and start the whole stack in the foreground (Ctrl-C stops it).
run: install
	@mkdir -p var
	$(BIN)/python -m legacy_monolith seed
	STOCK_AUTHORITY=$(STOCK_AUTHORITY) PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/honcho start -f Procfile

## The whole test suite (PostgreSQL/Redis tests skip with a reason unless REQUIRE_SERVICES=1).
test: install
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy gateway extracted legacy_monolith

fmt: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install
	bash bench/gateway.sh

## The data-flow benchmark (SPEC §3 I5): change lag, sync CPU per change at 200 vs 200k orders, idle CPU.
## make bench-dataflow DATAFLOW_ARGS="--quick"   (also --redis; results in bench/dataflow/results/)
DATAFLOW_ARGS ?=
.PHONY: bench-dataflow
bench-dataflow: install
	$(BIN)/python -m bench.dataflow $(DATAFLOW_ARGS)

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
