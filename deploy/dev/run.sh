#!/usr/bin/env bash
# `make run`: Redis and Neo4j (started only if not already answering), then the API and the
# janitor in the foreground. Ctrl-C stops everything this script started, and nothing else.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$repo"
services="$repo/deploy/dev/services.sh"
python="$repo/.venv/bin/python"

redis_was_up=0
neo4j_was_up=0
redis-cli -p "${REDIS_PORT:-6379}" ping >/dev/null 2>&1 && redis_was_up=1
(exec 3<>"/dev/tcp/127.0.0.1/${NEO4J_BOLT_PORT:-7687}") 2>/dev/null && neo4j_was_up=1
"$services" start

export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:${REDIS_PORT:-6379}/0}"
export NEO4J_URI="${NEO4J_URI:-bolt://127.0.0.1:${NEO4J_BOLT_PORT:-7687}}"
export GRAPHITI_TELEMETRY_ENABLED=false

pids=()
cleanup() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  [ "$redis_was_up" = 1 ] || "$services" stop-redis || true
  [ "$neo4j_was_up" = 1 ] || "$services" stop-neo4j || true
}
trap cleanup INT TERM EXIT

"$python" -m service & pids+=($!)
"$python" -m janitor & pids+=($!)
echo "synapse: API on http://${SYNAPSE_HOST:-127.0.0.1}:${SYNAPSE_PORT:-8000} and the janitor are running; Ctrl-C stops them"
wait -n "${pids[@]}" || true
