#!/usr/bin/env bash
# Tools that render and check the deployment manifests (tests/test_deploy_manifests.py calls it).
#
# Usage: deploy/dev/tools.sh COMMAND
#   install               make kustomize available; print which one will be used
#   kustomize ARGS...     run it, installing it first if needed (e.g. `kustomize build DIR`)
#
# kustomize is built from its Go module (sigs.k8s.io/kustomize/kustomize/v5, pinned below) with
# `go install` through the Go module proxy, into <repo>/.run/tools/bin; a cold build takes about
# 35 s on 2 cores and is reused afterwards. Without a Go toolchain (>= 1.22), it falls back to a
# kubectl whose embedded kustomize is v5 or newer (`kubectl kustomize DIR` = `kustomize build DIR`).
#
# Environment: SYNAPSE_TOOLS_DIR [<repo>/.run/tools]
set -euo pipefail

KUSTOMIZE_MODULE="sigs.k8s.io/kustomize/kustomize/v5"
KUSTOMIZE_VERSION="v5.7.1"
GO_MIN_MINOR=22 # kustomize v5.7's go.mod asks for go 1.22.7

REPO_ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
TOOLS_DIR="${SYNAPSE_TOOLS_DIR:-$REPO_ROOT/.run/tools}"
BIN_DIR="$TOOLS_DIR/bin"
PINNED="$BIN_DIR/kustomize-$KUSTOMIZE_VERSION"

say() { printf '%s\n' "$*" >&2; }
die() {
    printf 'tools.sh: %s\n' "$*" >&2
    exit 1
}

# True when `go` exists and is at least 1.$GO_MIN_MINOR.
go_usable() {
    local version
    command -v go >/dev/null 2>&1 || return 1
    version="$(go env GOVERSION 2>/dev/null)" || return 1
    [[ $version =~ ^go1\.([0-9]+) ]] || return 1
    ((BASH_REMATCH[1] >= GO_MIN_MINOR))
}

# True when `kubectl kustomize` is kustomize v5 or newer (components, labels, current syntax).
kubectl_usable() {
    local out
    command -v kubectl >/dev/null 2>&1 || return 1
    out="$(kubectl version --client 2>/dev/null)" || return 1
    [[ $out =~ Kustomize\ Version:\ v([0-9]+) ]] || return 1
    ((BASH_REMATCH[1] >= 5))
}

build_pinned() {
    local tmp started
    mkdir -p "$BIN_DIR"
    tmp="$(mktemp -d "$TOOLS_DIR/build.XXXXXX")"
    started=$SECONDS
    say "tools: go install $KUSTOMIZE_MODULE@$KUSTOMIZE_VERSION (from the Go module proxy)"
    if ! GOBIN="$tmp" GOFLAGS='' go install -trimpath -ldflags='-s -w' \
        "$KUSTOMIZE_MODULE@$KUSTOMIZE_VERSION" >"$TOOLS_DIR/go-install.log" 2>&1; then
        tail -n 30 "$TOOLS_DIR/go-install.log" >&2 || true
        rm -rf "$tmp"
        return 1
    fi
    mv -f "$tmp/kustomize" "$PINNED"
    rm -rf "$tmp"
    say "tools: built $PINNED in $((SECONDS - started)) s"
}

# Sets KUSTOMIZE to a command array that behaves like `kustomize`.
KUSTOMIZE=()
ensure_kustomize() {
    if [[ ! -x $PINNED ]] && go_usable; then
        mkdir -p "$TOOLS_DIR"
        exec 9>"$TOOLS_DIR/.install.lock"
        if command -v flock >/dev/null 2>&1; then
            flock -w 600 9 || die "another tools.sh holds $TOOLS_DIR/.install.lock"
        fi
        [[ -x $PINNED ]] || build_pinned || say "tools: building kustomize failed"
        exec 9>&-
    fi
    if [[ -x $PINNED ]]; then
        KUSTOMIZE=("$PINNED")
    elif kubectl_usable; then
        KUSTOMIZE=(kubectl_kustomize)
    else
        die "no kustomize: install Go >= 1.$GO_MIN_MINOR (then rerun) or a kubectl with kustomize v5"
    fi
}

# `kustomize build DIR` through kubectl.
kubectl_kustomize() {
    [[ ${1:-} == build ]] || die "the kubectl fallback supports only 'kustomize build DIR'"
    shift
    kubectl kustomize "$@"
}

main() {
    local cmd="${1:-}"
    case "$cmd" in
        install)
            ensure_kustomize
            if [[ ${KUSTOMIZE[0]} == kubectl_kustomize ]]; then
                say "tools: using kubectl kustomize ($(command -v kubectl))"
            else
                say "tools: using ${KUSTOMIZE[0]}"
            fi
            ;;
        kustomize)
            shift
            ensure_kustomize
            "${KUSTOMIZE[@]}" "$@"
            ;;
        *)
            say "usage: $0 install | kustomize ARGS..."
            return 2
            ;;
    esac
}

main "$@"
