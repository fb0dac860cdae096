# The README's two commands: `make run` and `make test`. Both install what they need.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# What each needs (pyproject.toml's extras): `make run` serves and trains the default
# models ('.[train]'); the tests and every other target take everything ('.[dev]').
STAMP     := $(VENV)/.installed
RUN_STAMP := $(VENV)/.installed-run
# pip with one progress line ([install] ...) instead of silence or pip's hundreds of lines
PIP       := $(PYTHON) -m pamtalk.pip_progress $(BIN)/pip install

.PHONY: run test lint format install bench clean

$(BIN)/python:
	@echo "[install] creating $(VENV) ($(PYTHON) -m venv)"
	@$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	@$(PIP) -e '.[dev]'
	@touch $(STAMP) $(RUN_STAMP)

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	@$(PIP) -e '.[train]'
	@touch $(RUN_STAMP)

install: $(STAMP)

# Four stages, each with its own lines: [install], [database] and [models] (pamtalk init:
# first-run models in seconds; `pamtalk train` trains the full ones), then [serve].
run: $(RUN_STAMP)
	@$(BIN)/pamtalk init
	@echo "[serve] http://$${HOST:-127.0.0.1}:$${PORT:-8000} (API docs at /docs; Ctrl-C stops)"
	@$(BIN)/pamtalk serve --host $${HOST:-127.0.0.1} --port $${PORT:-8000}

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

# 25 minutes at the peak scenario's rate: memory, descriptors, connections and p99 over time.
.PHONY: soak
soak: $(STAMP)
	$(BIN)/python bench/soak.py --write $(SOAK_ARGS)

# deploy/compose.yaml's passwords and keys: random (openssl rand -hex 32), written once to
# deploy/.env, readable by its owner only, never committed. Delete it to make new ones (the
# database volume keeps the old PostgreSQL password: rotate that one inside PostgreSQL).
DEPLOY_SECRETS := POSTGRES_PASSWORD REDIS_PASSWORD RABBITMQ_PASSWORD PAMTALK_SECRET_KEY PAMTALK_ADMIN_API_KEY FLOWER_PASSWORD GRAFANA_PASSWORD
.PHONY: deploy-secrets
deploy-secrets: deploy/.env
deploy/.env:
	umask 077 && for name in $(DEPLOY_SECRETS); do echo "$$name=$$(openssl rand -hex 32)"; done > $@
	@echo "wrote $@ (keep it secret; compose reads it)"

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
