#!/usr/bin/env bash
# Start and stop real multi-node Redis topologies for development and tests on a machine without
# Docker, from Debian's `redis-server` (deploy/dev/services.sh `install` installs it): a Redis
# Cluster (3 masters + 3 replicas) and a Sentinel setup (a primary, one replica, three sentinels).
# tests/support/redis_topology.py drives it for pytest (a fresh run dir and free ports per session).
#
# Usage: deploy/dev/redis-topology.sh COMMAND
#   cluster-start    start any of the 6 cluster nodes that is not running (cluster-enabled, AOF
#                    with appendfsync everysec, one dir each under RUN_DIR/cluster/), create the
#                    cluster with `redis-cli --cluster create ... --cluster-replicas 1` if it has
#                    never been created, then wait until every node says cluster_state:ok, 3
#                    masters own all slots and 3 replicas are connected with their replication
#                    link up. Idempotent: a healthy running cluster is left as it is. A node killed
#                    earlier rejoins from its nodes.conf (a former master comes back as a replica).
#                    Prints the seed URL.
#   cluster-stop     stop the cluster's nodes (pid files; SIGTERM, then SIGKILL); data is kept
#   cluster-status   show the nodes; exit 0 when healthy, 3 otherwise
#   sentinel-start   start what is not running of: the primary, its replica and three sentinels
#                    monitoring it as REDIS_SENTINEL_MASTER (quorum 2), then wait until every
#                    sentinel sees the master, one healthy replica and the 2 other sentinels, and
#                    the replica's link is up. Idempotent. A data node that was killed is started
#                    again as a replica of whichever node the sentinels now call the master.
#   sentinel-stop    stop the sentinels, then the data nodes; data is kept
#   sentinel-status  show the nodes; exit 0 when healthy, 3 otherwise
#   stop             cluster-stop and sentinel-stop
#   status           cluster-status and sentinel-status; exit 0 when both are healthy
#   purge            stop, then delete the run dir
#   env              print shell assignments for tests of the service against these topologies:
#                    SYNAPSE_TEST_REDIS_CLUSTER_URL, SYNAPSE_TEST_REDIS_SENTINELS,
#                    SYNAPSE_TEST_REDIS_SENTINEL_MASTER (e.g. `export $(... env)`)
#
# Environment (defaults in brackets):
#   REDIS_TOPOLOGY_DIR [<repo>/.run/redis-topology]  data, configs, logs and pid files
#   REDIS_CLUSTER_BASE_PORT [7000]     cluster nodes on BASE..BASE+5; their cluster bus ports are
#                                      BASE+10000..BASE+10005, so BASE must be at most 55530
#   REDIS_SENTINEL_BASE_PORT [6480]    the sentinel setup's primary on BASE, its replica on BASE+1
#   REDIS_SENTINELS_BASE_PORT [26480]  the three sentinels on BASE..BASE+2
#   REDIS_SENTINEL_MASTER [synapse]    the name the sentinels monitor the primary as
#   REDIS_APPENDFSYNC [everysec: always|everysec|no]
#   REDIS_TOPOLOGY_START_TIMEOUT [60]  seconds to wait for a topology to become healthy
#
# Every process listens on 127.0.0.1 only and runs detached (setsid, stdin from /dev/null, output
# to its own log file), like services.sh's. Works as root and as a normal user. Failover tests
# kill -9 nodes by the pids in the pid files ("PID STARTTIME PORT" in each node's dir/node.pid).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "$0")/../.." && pwd)"

RUN_DIR="${REDIS_TOPOLOGY_DIR:-$REPO_ROOT/.run/redis-topology}"
REDIS_CLUSTER_BASE_PORT="${REDIS_CLUSTER_BASE_PORT:-7000}"
REDIS_SENTINEL_BASE_PORT="${REDIS_SENTINEL_BASE_PORT:-6480}"
REDIS_SENTINELS_BASE_PORT="${REDIS_SENTINELS_BASE_PORT:-26480}"
REDIS_SENTINEL_MASTER="${REDIS_SENTINEL_MASTER:-synapse}"
REDIS_APPENDFSYNC="${REDIS_APPENDFSYNC:-everysec}"
START_TIMEOUT="${REDIS_TOPOLOGY_START_TIMEOUT:-60}"

CLUSTER_NODES=6
CLUSTER_MASTERS=3
SENTINELS=3
SENTINEL_QUORUM=2

# Failure detection. Production would use more (15 s / 30 s); these make a failover test take a
# few seconds while a healthy node is never taken for dead: an idle local Redis answers a PING in
# well under a millisecond, so 2 s without an answer means the process is gone, even on a busy
# two-core machine.
# - cluster-node-timeout: a master unreachable this long is PFAIL, and FAIL once a majority of the
#   masters agree; its replica then waits 0.5-1 s and wins the election. Kill to promotion: ~3-4 s.
CLUSTER_NODE_TIMEOUT_MS=2000
# - down-after-milliseconds: the same for sentinels (SDOWN, then ODOWN with the quorum of 2, then a
#   leader election and the promotion). Kill to promotion: ~3-5 s.
# - failover-timeout: bounds each step of a failover; a failover that fails (e.g. a split vote)
#   is retried after twice this, so 5 s keeps a retried failover within ~15 s (the default,
#   3 min, would turn one unlucky vote into a test timeout).
SENTINEL_DOWN_AFTER_MS=2000
SENTINEL_FAILOVER_TIMEOUT_MS=5000

STOP_TIMEOUT=20
LOCK_TIMEOUT=300

say() { printf '%s\n' "$*"; }
err() { printf 'redis-topology.sh: %s\n' "$*" >&2; }
die() {
    err "$*"
    exit 1
}

usage() {
    cat >&2 <<EOF
usage: $0 cluster-start|cluster-stop|cluster-status|sentinel-start|sentinel-stop|sentinel-status|stop|status|purge|env
env: REDIS_TOPOLOGY_DIR REDIS_CLUSTER_BASE_PORT REDIS_SENTINEL_BASE_PORT REDIS_SENTINELS_BASE_PORT
     REDIS_SENTINEL_MASTER REDIS_APPENDFSYNC REDIS_TOPOLOGY_START_TIMEOUT
EOF
}

# ---------------------------------------------------------------------------------------------
# Configuration checks and run dir
# ---------------------------------------------------------------------------------------------

check_port_value() { # NAME VALUE MAX
    if ! [[ $2 =~ ^[0-9]{1,5}$ ]] || ((10#$2 < 1 || 10#$2 > $3)); then
        die "$1 must be a TCP port number from 1 to $3 (got '$2')"
    fi
}

cluster_ports() {
    local i
    for ((i = 0; i < CLUSTER_NODES; i++)); do printf '%s\n' $((REDIS_CLUSTER_BASE_PORT + i)); done
}
sentinel_data_ports() { printf '%s\n%s\n' "$REDIS_SENTINEL_BASE_PORT" $((REDIS_SENTINEL_BASE_PORT + 1)); }
sentinel_ports() {
    local i
    for ((i = 0; i < SENTINELS; i++)); do printf '%s\n' $((REDIS_SENTINELS_BASE_PORT + i)); done
}

validate_config() {
    check_port_value REDIS_CLUSTER_BASE_PORT "$REDIS_CLUSTER_BASE_PORT" $((65535 - 10000 - CLUSTER_NODES + 1))
    check_port_value REDIS_SENTINEL_BASE_PORT "$REDIS_SENTINEL_BASE_PORT" 65534
    check_port_value REDIS_SENTINELS_BASE_PORT "$REDIS_SENTINELS_BASE_PORT" $((65535 - SENTINELS + 1))
    REDIS_CLUSTER_BASE_PORT=$((10#$REDIS_CLUSTER_BASE_PORT))
    REDIS_SENTINEL_BASE_PORT=$((10#$REDIS_SENTINEL_BASE_PORT))
    REDIS_SENTINELS_BASE_PORT=$((10#$REDIS_SENTINELS_BASE_PORT))
    [[ $REDIS_SENTINEL_MASTER =~ ^[A-Za-z0-9_.-]+$ ]] \
        || die "REDIS_SENTINEL_MASTER must be letters, digits, '_', '.' or '-' (got '$REDIS_SENTINEL_MASTER')"
    case "$REDIS_APPENDFSYNC" in
        always | everysec | no) ;;
        *) die "REDIS_APPENDFSYNC must be always, everysec or no (got '$REDIS_APPENDFSYNC')" ;;
    esac
    [[ $START_TIMEOUT =~ ^[0-9]+$ ]] || die "REDIS_TOPOLOGY_START_TIMEOUT must be seconds (got '$START_TIMEOUT')"
    # No two roles may share a port (the cluster bus ports included).
    local port
    local -A seen=()
    for port in $(cluster_ports) $(cluster_ports | while read -r p; do echo $((p + 10000)); done) \
        $(sentinel_data_ports) $(sentinel_ports); do
        [[ -z ${seen[$port]:-} ]] || die "port $port is used twice: the cluster ports (and bus ports +10000), REDIS_SENTINEL_BASE_PORT (+1) and REDIS_SENTINELS_BASE_PORT (+2) must not overlap"
        seen[$port]=1
    done
}

require_binaries() {
    command -v redis-server >/dev/null 2>&1 \
        || die "redis-server not found; install it (deploy/dev/services.sh install, or apt-get install redis-server)"
    command -v redis-cli >/dev/null 2>&1 \
        || die "redis-cli not found; install it (deploy/dev/services.sh install, or apt-get install redis-tools)"
}

prepare_run_dir() {
    mkdir -p "$RUN_DIR" || die "cannot create run dir $RUN_DIR"
    RUN_DIR="$(cd "$RUN_DIR" && pwd)"
}

# Serialise concurrent invocations on the same run dir. Launched servers close this descriptor.
take_lock() {
    command -v flock >/dev/null 2>&1 || return 0
    exec 9>"$RUN_DIR/.topology.lock"
    flock -w "$LOCK_TIMEOUT" 9 || die "another redis-topology.sh holds $RUN_DIR/.topology.lock"
}

# ---------------------------------------------------------------------------------------------
# Process bookkeeping (as in services.sh): a node's dir holds node.pid = "PID STARTTIME PORT";
# STARTTIME (from /proc/PID/stat) guards against a recycled pid, so we never signal a process this
# script did not start.
# ---------------------------------------------------------------------------------------------

cluster_dir() { printf '%s/cluster/%s' "$RUN_DIR" "$1"; }
data_dir() { printf '%s/sentinel/redis-%s' "$RUN_DIR" "$1"; }
sentinel_dir() { printf '%s/sentinel/sentinel-%s' "$RUN_DIR" "$1"; }

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

# Sets OWN_PID / OWN_START. Returns 0 if DIR/node.pid names a live process this script started,
# 1 if there is no pid file, 2 if it is stale (process gone or pid reused).
check_pidfile() { # DIR
    local pf="$1/node.pid" pid start port now
    OWN_PID=""
    OWN_START=""
    [[ -f $pf ]] || return 1
    read -r pid start port <"$pf" || true
    [[ ${pid:-} =~ ^[0-9]+$ && -n ${start:-} ]] || return 2
    now="$(proc_starttime "$pid")" || return 2
    [[ $now == "$start" ]] || return 2
    OWN_PID="$pid"
    OWN_START="$start"
    return 0
}

pid_alive() { # PID STARTTIME
    local now
    now="$(proc_starttime "$1")" || return 1
    [[ $now == "$2" ]]
}

# launch DIR PORT LOG CMD... : starts CMD in DIR, detached in its own session, stdin from
# /dev/null, stdout+stderr appended to LOG, every other inherited descriptor closed; writes
# DIR/node.pid.
launch() {
    local dir=$1 port=$2 log=$3
    shift 3
    local pf="$dir/node.pid" tmp pid="" start i
    tmp="$pf.new"
    rm -f "$tmp"
    # shellcheck disable=SC2016  # $$ and $@ are for the inner bash
    (cd "$dir" && exec setsid nohup bash -c '
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
    [[ $pid =~ ^[0-9]+$ ]] || {
        tail_log "$log"
        die "port $port: failed to launch"
    }
    start="$(proc_starttime "$pid")" || {
        tail_log "$log"
        die "port $port: exited immediately; log: $log"
    }
    printf '%s %s %s\n' "$pid" "$start" "$port" >"$pf"
    OWN_PID="$pid"
    OWN_START="$start"
}

tail_log() {
    [[ -f $1 ]] || return 0
    err "last lines of $1:"
    tail -n 30 "$1" >&2 || true
}

port_open() { # PORT
    # shellcheck disable=SC2016  # $0 is for the inner bash
    timeout 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0"' "$1" 2>/dev/null
}

rcli() { # PORT ARGS...
    local port=$1
    shift
    timeout 5 redis-cli -h 127.0.0.1 -p "$port" "$@" 2>/dev/null
}

redis_ping() { # PORT
    local reply
    reply="$(rcli "$1" ping)" || return 1
    [[ $reply == PONG ]]
}

# The value of FIELD in an INFO-style "field:value" reply (CLUSTER INFO, INFO replication).
info_field() { # TEXT FIELD
    local line
    while IFS= read -r line; do
        line="${line%$'\r'}"
        if [[ $line == "$2:"* ]]; then
            printf '%s' "${line#*:}"
            return 0
        fi
    done <<<"$1"
    return 1
}

# Starts a node from its config unless our pid file names it live. Dies if the port is taken by
# something else. Sets STARTED=1 when it launched one.
ensure_node() { # DIR PORT CONF [EXTRA ARGS...]
    local dir=$1 port=$2 conf=$3 rc=0 log
    shift 3
    log="$dir/redis.log"
    check_pidfile "$dir" || rc=$?
    ((rc == 0)) && return 0
    rm -f "$dir/node.pid"
    if port_open "$port"; then
        die "port $port is taken by a process this script did not start (pick other base ports, see '$0 --help')"
    fi
    if ((port + 10000 <= 65535)) && [[ $conf == */cluster/* ]] && port_open $((port + 10000)); then
        die "cluster bus port $((port + 10000)) (node port + 10000) is taken by a process this script did not start"
    fi
    printf '\n=== %s redis-topology.sh: starting %s on port %s %s\n' "$(date '+%F %T')" "$conf" "$port" "$*" >>"$log"
    launch "$dir" "$port" "$log" redis-server "$conf" "$@"
    STARTED=1
}

# Waits until each port answers PING (a restarted node answers only once its AOF is loaded).
wait_pings() { # DIR_FN PORT...
    local dir_fn=$1 port deadline
    shift
    deadline=$((SECONDS + START_TIMEOUT))
    for port in "$@"; do
        until redis_ping "$port"; do
            if ! check_pidfile "$("$dir_fn" "$port")"; then
                tail_log "$("$dir_fn" "$port")/redis.log"
                die "port $port: exited during startup; log: $("$dir_fn" "$port")/redis.log"
            fi
            ((SECONDS < deadline)) || die "port $port: not answering PING after ${START_TIMEOUT}s"
            sleep 0.2
        done
    done
}

stop_dirs() { # NAME DIR... : SIGTERM to all, then wait, then SIGKILL what is left
    local name=$1 dir pid start deadline stopped=0
    shift
    local -a pids=() starts=() dirs=()
    for dir in "$@"; do
        if check_pidfile "$dir"; then
            kill -TERM "$OWN_PID" 2>/dev/null || true
            pids+=("$OWN_PID")
            starts+=("$OWN_START")
            dirs+=("$dir")
        else
            rm -f "$dir/node.pid"
        fi
    done
    local i
    for i in "${!pids[@]}"; do
        pid=${pids[$i]}
        start=${starts[$i]}
        deadline=$((SECONDS + STOP_TIMEOUT))
        while pid_alive "$pid" "$start" && ((SECONDS < deadline)); do sleep 0.1; done
        if pid_alive "$pid" "$start"; then
            err "$name: pid $pid still running after ${STOP_TIMEOUT}s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            deadline=$((SECONDS + 10))
            while pid_alive "$pid" "$start" && ((SECONDS < deadline)); do sleep 0.1; done
            pid_alive "$pid" "$start" && {
                err "$name: pid $pid survived SIGKILL; pid file kept"
                continue
            }
        fi
        rm -f "${dirs[$i]}/node.pid"
        stopped=$((stopped + 1))
    done
    say "$name: stopped $stopped process(es)"
}

# ---------------------------------------------------------------------------------------------
# Cluster
# ---------------------------------------------------------------------------------------------

write_cluster_conf() { # PORT
    local dir conf
    dir="$(cluster_dir "$1")"
    conf="$dir/redis.conf"
    mkdir -p "$dir"
    [[ -f $conf ]] && return 0
    cat >"$conf" <<EOF
# Written by deploy/dev/redis-topology.sh; Redis keeps the cluster's state in nodes.conf.
bind 127.0.0.1
port $1
protected-mode yes
daemonize no
supervised no
dir $dir
logfile ""
cluster-enabled yes
cluster-config-file nodes.conf
cluster-node-timeout $CLUSTER_NODE_TIMEOUT_MS
appendonly yes
appendfsync $REDIS_APPENDFSYNC
save ""
# Full syncs start at once instead of waiting 5 s for more replicas to share the transfer.
repl-diskless-sync-delay 0
EOF
}

# True when some node already belongs to a cluster (slots assigned or other nodes known).
cluster_created() {
    local port info
    for port in $(cluster_ports); do
        info="$(rcli "$port" cluster info)" || continue
        [[ $(info_field "$info" cluster_slots_assigned) != 0 ]] && return 0
        [[ $(info_field "$info" cluster_known_nodes) != 1 ]] && return 0
    done
    return 1
}

# Prints why the cluster is not healthy (nothing, and returns 0, when it is).
cluster_problem() {
    local port info nodes line masters slaves id flags master link role
    local -a f
    local -A has_replica=() master_ids=()
    for port in $(cluster_ports); do
        info="$(rcli "$port" cluster info)" || {
            say "node $port does not answer"
            return 1
        }
        [[ $(info_field "$info" cluster_state) == ok ]] || {
            say "node $port: cluster_state:$(info_field "$info" cluster_state)"
            return 1
        }
        [[ $(info_field "$info" cluster_slots_ok) == 16384 ]] || {
            say "node $port: cluster_slots_ok:$(info_field "$info" cluster_slots_ok)"
            return 1
        }
        [[ $(info_field "$info" cluster_known_nodes) == "$CLUSTER_NODES" ]] || {
            say "node $port: cluster_known_nodes:$(info_field "$info" cluster_known_nodes)"
            return 1
        }
        # CLUSTER NODES lines: id addr flags master-id ping pong epoch link slots...
        nodes="$(rcli "$port" cluster nodes)" || {
            say "node $port does not answer CLUSTER NODES"
            return 1
        }
        masters=0
        slaves=0
        has_replica=()
        master_ids=()
        while IFS= read -r line; do
            read -r -a f <<<"$line"
            ((${#f[@]} >= 8)) || continue
            id=${f[0]}
            flags=${f[2]}
            master=${f[3]}
            link=${f[7]}
            [[ $flags == *fail* || $flags == *handshake* || $flags == *noaddr* ]] && continue
            [[ $link == connected ]] || continue
            if [[ ,$flags, == *,master,* ]] && ((${#f[@]} > 8)); then
                masters=$((masters + 1))
                master_ids[$id]=1
            elif [[ ,$flags, == *,slave,* ]]; then
                slaves=$((slaves + 1))
                has_replica[$master]=1
            fi
        done <<<"$nodes"
        if ((masters != CLUSTER_MASTERS || slaves != CLUSTER_NODES - CLUSTER_MASTERS)); then
            say "node $port sees $masters healthy masters with slots and $slaves connected replicas"
            return 1
        fi
        for id in "${!master_ids[@]}"; do
            [[ -n ${has_replica[$id]:-} ]] || {
                say "node $port: master $id has no replica"
                return 1
            }
        done
        info="$(rcli "$port" info replication)" || return 1
        role="$(info_field "$info" role)"
        if [[ $role == slave && $(info_field "$info" master_link_status) != up ]]; then
            say "replica $port: master_link_status:$(info_field "$info" master_link_status)"
            return 1
        fi
    done
    return 0
}

wait_cluster_healthy() {
    local deadline problem
    deadline=$((SECONDS + START_TIMEOUT))
    until problem="$(cluster_problem)"; do
        if ((SECONDS >= deadline)); then
            die "cluster: not healthy after ${START_TIMEOUT}s: $problem (logs: $RUN_DIR/cluster/*/redis.log)"
        fi
        sleep 0.5
    done
}

cluster_start() {
    local port started=0
    local -a ports
    mapfile -t ports < <(cluster_ports)
    if cluster_problem >/dev/null 2>&1 && all_own cluster_dir "${ports[@]}"; then
        say "cluster: already running and healthy"
        cluster_summary
        return 0
    fi
    for port in "${ports[@]}"; do
        write_cluster_conf "$port"
        STARTED=0
        ensure_node "$(cluster_dir "$port")" "$port" "$(cluster_dir "$port")/redis.conf"
        started=$((started + STARTED))
    done
    wait_pings cluster_dir "${ports[@]}"
    if ! cluster_created; then
        local -a addrs=()
        for port in "${ports[@]}"; do addrs+=("127.0.0.1:$port"); done
        say "cluster: creating (3 masters, 1 replica each)"
        redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes \
            </dev/null >"$RUN_DIR/cluster/create.log" 2>&1 || {
            tail_log "$RUN_DIR/cluster/create.log"
            die "redis-cli --cluster create failed; log: $RUN_DIR/cluster/create.log"
        }
    fi
    wait_cluster_healthy
    say "cluster: healthy ($started process(es) started)"
    cluster_summary
}

all_own() { # DIR_FN PORT...
    local dir_fn=$1 port
    shift
    for port in "$@"; do check_pidfile "$("$dir_fn" "$port")" || return 1; done
}

cluster_summary() {
    say "cluster: seed URL redis://127.0.0.1:$REDIS_CLUSTER_BASE_PORT (nodes 127.0.0.1:$REDIS_CLUSTER_BASE_PORT-$((REDIS_CLUSTER_BASE_PORT + CLUSTER_NODES - 1)), run dir $RUN_DIR/cluster)"
}

cluster_status() {
    local port dir role pid problem rc=0
    say "cluster run dir: $RUN_DIR/cluster"
    for port in $(cluster_ports); do
        dir="$(cluster_dir "$port")"
        pid="not started by this script"
        check_pidfile "$dir" && pid="pid $OWN_PID"
        role="$(info_field "$(rcli "$port" info replication)" role)" || role="down"
        say "  127.0.0.1:$port $role ($pid)"
    done
    if problem="$(cluster_problem)"; then
        say "cluster: healthy; seed URL redis://127.0.0.1:$REDIS_CLUSTER_BASE_PORT"
    else
        say "cluster: NOT healthy: $problem"
        rc=3
    fi
    return "$rc"
}

cluster_stop() {
    local port
    local -a dirs=()
    for port in $(cluster_ports); do dirs+=("$(cluster_dir "$port")"); done
    stop_dirs cluster "${dirs[@]}"
}

# ---------------------------------------------------------------------------------------------
# Sentinel
# ---------------------------------------------------------------------------------------------

write_data_conf() { # PORT
    local dir conf
    dir="$(data_dir "$1")"
    conf="$dir/redis.conf"
    mkdir -p "$dir"
    [[ -f $conf ]] && return 0
    # Sentinel rewrites this file (CONFIG REWRITE) when it changes the node's role; the role is
    # also given on the command line at each start (see sentinel_start), which wins.
    cat >"$conf" <<EOF
# Written by deploy/dev/redis-topology.sh; sentinels may rewrite it.
bind 127.0.0.1
port $1
protected-mode yes
daemonize no
supervised no
dir $dir
logfile ""
appendonly yes
appendfsync $REDIS_APPENDFSYNC
save ""
repl-diskless-sync-delay 0
EOF
}

write_sentinel_conf() { # PORT
    local dir conf
    dir="$(sentinel_dir "$1")"
    conf="$dir/sentinel.conf"
    mkdir -p "$dir"
    # Sentinels keep their state (current master, epochs, known replicas and sentinels) here.
    [[ -f $conf ]] && return 0
    cat >"$conf" <<EOF
# Written by deploy/dev/redis-topology.sh; the sentinel rewrites it with its state.
bind 127.0.0.1
port $1
protected-mode yes
daemonize no
dir $dir
logfile ""
sentinel monitor $REDIS_SENTINEL_MASTER 127.0.0.1 $REDIS_SENTINEL_BASE_PORT $SENTINEL_QUORUM
sentinel down-after-milliseconds $REDIS_SENTINEL_MASTER $SENTINEL_DOWN_AFTER_MS
sentinel failover-timeout $REDIS_SENTINEL_MASTER $SENTINEL_FAILOVER_TIMEOUT_MS
sentinel parallel-syncs $REDIS_SENTINEL_MASTER 1
EOF
}

# Prints the port of the current master: what a live sentinel says, else what the first sentinel
# config that names one says (sentinels rewrite it after a failover), else the initial primary.
current_master_port() {
    local port reply line
    local -a lines
    for port in $(sentinel_ports); do
        reply="$(rcli "$port" sentinel get-master-addr-by-name "$REDIS_SENTINEL_MASTER")" || continue
        mapfile -t lines <<<"$reply"
        if ((${#lines[@]} == 2)) && [[ ${lines[1]} =~ ^[0-9]+$ ]]; then
            printf '%s' "${lines[1]}"
            return 0
        fi
    done
    for port in $(sentinel_ports); do
        [[ -f $(sentinel_dir "$port")/sentinel.conf ]] || continue
        line="$(grep -E "^sentinel monitor $REDIS_SENTINEL_MASTER " "$(sentinel_dir "$port")/sentinel.conf" || true)"
        read -r -a lines <<<"$line"
        if ((${#lines[@]} >= 5)) && [[ ${lines[4]} =~ ^[0-9]+$ ]]; then
            printf '%s' "${lines[4]}"
            return 0
        fi
    done
    printf '%s' "$REDIS_SENTINEL_BASE_PORT"
}

# SENTINEL MASTER / REPLICAS replies are alternating field and value lines; sets FIELDS[field].
declare -A FIELDS=()
parse_pairs() { # TEXT
    local -a lines
    local i
    FIELDS=()
    mapfile -t lines <<<"$1"
    for ((i = 0; i + 1 < ${#lines[@]}; i += 2)); do FIELDS[${lines[$i]}]=${lines[$((i + 1))]}; done
}

# Prints why the sentinel setup is not healthy (nothing, and returns 0, when it is).
sentinel_problem() {
    local port reply master_port="" data info replicas healthy line
    local -a lines
    for port in $(sentinel_ports); do
        reply="$(rcli "$port" sentinel master "$REDIS_SENTINEL_MASTER")" || {
            say "sentinel $port does not answer"
            return 1
        }
        parse_pairs "$reply"
        if [[ ${FIELDS[flags]:-} != master ]]; then
            say "sentinel $port: master flags ${FIELDS[flags]:-?}"
            return 1
        fi
        if [[ ${FIELDS[num-other-sentinels]:-} != $((SENTINELS - 1)) || ${FIELDS[num-slaves]:-} != 1 ]]; then
            say "sentinel $port: num-other-sentinels ${FIELDS[num-other-sentinels]:-?}, num-slaves ${FIELDS[num-slaves]:-?}"
            return 1
        fi
        if [[ -n $master_port && ${FIELDS[port]} != "$master_port" ]]; then
            say "sentinels disagree on the master (port $master_port vs ${FIELDS[port]})"
            return 1
        fi
        master_port=${FIELDS[port]}
        # The replica as this sentinel sees it: reachable and linked to the master.
        replicas="$(rcli "$port" sentinel replicas "$REDIS_SENTINEL_MASTER")" || return 1
        mapfile -t lines <<<"$replicas"
        healthy=0
        local i
        for ((i = 0; i < ${#lines[@]}; i++)); do
            if [[ ${lines[$i]} == flags && ${lines[$((i + 1))]:-} == slave ]]; then healthy=1; fi
        done
        if ((!healthy)); then
            say "sentinel $port: no healthy replica"
            return 1
        fi
    done
    for data in $(sentinel_data_ports); do
        info="$(rcli "$data" info replication)" || {
            say "redis $data does not answer"
            return 1
        }
        if [[ $data == "$master_port" ]]; then
            [[ $(info_field "$info" role) == master && $(info_field "$info" connected_slaves) == 1 ]] || {
                say "master $data: role $(info_field "$info" role), connected_slaves $(info_field "$info" connected_slaves)"
                return 1
            }
        else
            line="$(info_field "$info" role) $(info_field "$info" master_port) $(info_field "$info" master_link_status)"
            [[ $line == "slave $master_port up" ]] || {
                say "replica $data: role/master_port/link: $line"
                return 1
            }
        fi
    done
    return 0
}

wait_sentinel_healthy() {
    local deadline problem
    deadline=$((SECONDS + START_TIMEOUT))
    until problem="$(sentinel_problem)"; do
        if ((SECONDS >= deadline)); then
            die "sentinel: not healthy after ${START_TIMEOUT}s: $problem (logs: $RUN_DIR/sentinel/*/redis.log)"
        fi
        sleep 0.5
    done
}

sentinel_summary() {
    say "sentinel: master '$REDIS_SENTINEL_MASTER' is 127.0.0.1:$(current_master_port); sentinels $(sentinel_addrs)"
}

sentinel_addrs() {
    local port out=""
    for port in $(sentinel_ports); do out="${out:+$out,}127.0.0.1:$port"; done
    printf '%s' "$out"
}

sentinel_start() {
    local port master started=0
    local -a data_ports sentinels
    mapfile -t data_ports < <(sentinel_data_ports)
    mapfile -t sentinels < <(sentinel_ports)
    if sentinel_problem >/dev/null 2>&1 && all_own data_dir "${data_ports[@]}" \
        && all_own sentinel_dir "${sentinels[@]}"; then
        say "sentinel: already running and healthy"
        sentinel_summary
        return 0
    fi
    master="$(current_master_port)"
    if [[ $master == "${data_ports[0]}" ]]; then
        data_ports=("${data_ports[0]}" "${data_ports[1]}")
    elif [[ $master == "${data_ports[1]}" ]]; then
        data_ports=("${data_ports[1]}" "${data_ports[0]}")
    else
        die "the sentinels monitor port $master, which is not one of this setup's data ports; run '$0 purge'"
    fi
    # The master first, then the replica (of the master the sentinels know), then the sentinels.
    for port in "${data_ports[@]}"; do
        write_data_conf "$port"
        STARTED=0
        if [[ $port == "$master" ]]; then
            ensure_node "$(data_dir "$port")" "$port" "$(data_dir "$port")/redis.conf" --replicaof no one
        else
            ensure_node "$(data_dir "$port")" "$port" "$(data_dir "$port")/redis.conf" --replicaof 127.0.0.1 "$master"
        fi
        started=$((started + STARTED))
    done
    wait_pings data_dir "${data_ports[@]}"
    for port in "${sentinels[@]}"; do
        write_sentinel_conf "$port"
        STARTED=0
        ensure_node "$(sentinel_dir "$port")" "$port" "$(sentinel_dir "$port")/sentinel.conf" --sentinel
        started=$((started + STARTED))
    done
    wait_pings sentinel_dir "${sentinels[@]}"
    wait_sentinel_healthy
    say "sentinel: healthy ($started process(es) started)"
    sentinel_summary
}

sentinel_status() {
    local port dir role pid problem rc=0
    say "sentinel run dir: $RUN_DIR/sentinel"
    for port in $(sentinel_data_ports); do
        dir="$(data_dir "$port")"
        pid="not started by this script"
        check_pidfile "$dir" && pid="pid $OWN_PID"
        role="$(info_field "$(rcli "$port" info replication)" role)" || role="down"
        say "  redis    127.0.0.1:$port $role ($pid)"
    done
    for port in $(sentinel_ports); do
        dir="$(sentinel_dir "$port")"
        pid="not started by this script"
        check_pidfile "$dir" && pid="pid $OWN_PID"
        redis_ping "$port" && role=up || role=down
        say "  sentinel 127.0.0.1:$port $role ($pid)"
    done
    if problem="$(sentinel_problem)"; then
        say "sentinel: healthy"
        sentinel_summary
    else
        say "sentinel: NOT healthy: $problem"
        rc=3
    fi
    return "$rc"
}

sentinel_stop() {
    local port
    local -a dirs=()
    # Sentinels first, so that stopping the primary starts no failover.
    for port in $(sentinel_ports); do dirs+=("$(sentinel_dir "$port")"); done
    stop_dirs sentinels "${dirs[@]}"
    dirs=()
    for port in $(sentinel_data_ports); do dirs+=("$(data_dir "$port")"); done
    stop_dirs "sentinel redis" "${dirs[@]}"
}

print_env() {
    say "SYNAPSE_TEST_REDIS_CLUSTER_URL=redis://127.0.0.1:$REDIS_CLUSTER_BASE_PORT"
    say "SYNAPSE_TEST_REDIS_SENTINELS=$(sentinel_addrs)"
    say "SYNAPSE_TEST_REDIS_SENTINEL_MASTER=$REDIS_SENTINEL_MASTER"
}

# ---------------------------------------------------------------------------------------------

main() {
    local cmd="${1:-}" rc=0
    case "$cmd" in
        cluster-start | cluster-stop | cluster-status | sentinel-start | sentinel-stop | sentinel-status | stop | status | purge | env) ;;
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
    if [[ $cmd == env ]]; then
        print_env
        return 0
    fi
    require_binaries
    prepare_run_dir
    [[ $cmd == *status ]] || take_lock
    case "$cmd" in
        cluster-start) cluster_start ;;
        cluster-stop) cluster_stop ;;
        cluster-status) cluster_status ;;
        sentinel-start) sentinel_start ;;
        sentinel-stop) sentinel_stop ;;
        sentinel-status) sentinel_status ;;
        stop)
            cluster_stop || rc=1
            sentinel_stop || rc=1
            return "$rc"
            ;;
        status)
            cluster_status || rc=3
            sentinel_status || rc=3
            return "$rc"
            ;;
        purge)
            cluster_stop
            sentinel_stop
            rm -rf "$RUN_DIR/cluster" "$RUN_DIR/sentinel"
            rm -f "$RUN_DIR/.topology.lock"
            rmdir "$RUN_DIR" 2>/dev/null || true
            say "purged $RUN_DIR"
            ;;
    esac
}

main "$@"
