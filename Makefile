# The README's two commands: `make run` and `make test`. Both install what they need.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint format install bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/pamtalk init
	$(BIN)/pamtalk serve --host $${HOST:-127.0.0.1} --port $${PORT:-8000}

test: $(STAMP)
	$(BIN)/pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check pamtalk tests bench
	$(BIN)/ruff format --check pamtalk tests bench
	$(BIN)/mypy pamtalk
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff format pamtalk tests bench
	$(BIN)/ruff check --fix pamtalk tests bench

bench: $(STAMP)
	$(BIN)/python bench/api.py

# The seed's load test (Locust) on PostgreSQL + Redis + `pamtalk serve --workers 2`: the
# three scenarios, scaled down (bench/loadtest.py; LOADTEST_ARGS=--full for full length).
.PHONY: loadtest
loadtest: $(STAMP)
	$(BIN)/python bench/loadtest.py $(LOADTEST_ARGS)

# Fault injection (bench/chaos.py): PostgreSQL restarted under writes, Redis killed, 2x overload;
# each on processes the run starts itself. Writes var/chaos/summary.json; fails if one fails.
.PHONY: chaos
chaos: $(STAMP)
	$(BIN)/python -m bench.chaos $(CHAOS_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
