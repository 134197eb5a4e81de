# Synapse task runner. `make test` and `make run` work on a fresh machine: they install what
# they need (venv, Python deps, redis-server, the Neo4j jars) before using it.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SERVICES := deploy/dev/services.sh

.PHONY: help venv test lint run services services-stop bench chaos clean

help:
	@echo "make run            API + janitor in the foreground (starts Redis and Neo4j if needed)"
	@echo "make test           the whole test suite against real Redis and Neo4j"
	@echo "make lint           ruff and mypy --strict"
	@echo "make services       start Redis and Neo4j in the background"
	@echo "make services-stop  stop the Redis and Neo4j that 'make services' started"
	@echo "make chaos SEED=123 MINUTES=10   a long fault-schedule run (tests/chaos)"

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

test: venv
	$(SERVICES) install
	$(BIN)/python -m pytest

lint: venv
	$(BIN)/ruff check service janitor contracts tests
	$(BIN)/ruff format --check service janitor contracts tests
	$(BIN)/mypy

run: venv
	deploy/dev/run.sh

services:
	$(SERVICES) start

# Load generator from the OS packages; Redis and Neo4j on ports and a run dir of their own
# (tests/bench/run.py starts and stops them). BENCH_* variables tune it (see run.py).
bench: venv
	command -v wrk >/dev/null 2>&1 || (apt-get update && apt-get install -y wrk)
	$(SERVICES) install
	$(BIN)/python -m tests.bench.run

# Fault-schedule ("chaos") run with its own Redis, Neo4j, API and janitors on free ports
# (tests/chaos). `make test` runs it with a short schedule and a fixed seed.
SEED ?= $(shell od -An -N2 -tu2 /dev/urandom | tr -d " ")
MINUTES ?= 10
chaos: venv
	$(SERVICES) install
	CHAOS_SEED="$(SEED)" CHAOS_MINUTES="$(MINUTES)" $(BIN)/python -m pytest tests/chaos

services-stop:
	$(SERVICES) stop

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
