#!/usr/bin/env bash
# A cluster to try on one machine: one etcd and three nodes on loopback.
#
#   scripts/local-cluster.sh start    # builds the etcd-capable binary, starts etcd and n1..n3
#   scripts/local-cluster.sh status   # what runs, and the cluster's node list
#   scripts/local-cluster.sh stop     # stops the nodes (gracefully) and etcd
#
# Needs `etcd` on the PATH (Debian: apt-get install etcd-server) and, to build, `protoc`
# (protobuf-compiler). Settings (environment):
#   HG_CLUSTER_DIR  where data, logs and pid files go   [target/local-cluster]
#   HG_ETCD_PORT    etcd's client port (peer port: +1)  [2379]
#   HG_BASE_PORT    node i listens on BASE+i            [8080: n1 on 8081 …]
#   HG_NODES        how many nodes                      [3]
#   HETEROGEN_BIN   a heterogen binary built with the etcd feature [build one]
# Nodes run with --open (no login): this is for trying it on your own machine only.
set -euo pipefail
cd "$(dirname "$0")/.."

dir="${HG_CLUSTER_DIR:-target/local-cluster}"
etcd_port="${HG_ETCD_PORT:-2379}"
base_port="${HG_BASE_PORT:-8080}"
nodes="${HG_NODES:-3}"
bin="${HETEROGEN_BIN:-}"

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

wait_for() { # URL, what
    for _ in $(seq 1 200); do
        curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
        sleep 0.05
    done
    echo "local-cluster: $2 did not answer at $1; see $dir/*.log" >&2
    return 1
}

start() {
    command -v etcd >/dev/null || { echo "local-cluster: etcd is missing (apt-get install etcd-server)" >&2; exit 1; }
    if [ -z "$bin" ]; then
        cargo build --release --features etcd
        bin=target/release/heterogen
    fi
    mkdir -p "$dir"
    if alive "$dir/etcd.pid"; then
        echo "local-cluster: already running (scripts/local-cluster.sh stop first)" >&2
        exit 1
    fi
    local client="http://127.0.0.1:$etcd_port" peer="http://127.0.0.1:$((etcd_port + 1))"
    etcd --name local --data-dir "$dir/etcd" \
        --listen-client-urls "$client" --advertise-client-urls "$client" \
        --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \
        --initial-cluster "local=$peer" --max-request-bytes 1638400 \
        --logger zap --log-level warn >"$dir/etcd.log" 2>&1 &
    echo $! >"$dir/etcd.pid"
    wait_for "$client/health" etcd
    for i in $(seq 1 "$nodes"); do
        local port=$((base_port + i))
        "$bin" serve --store "etcd://127.0.0.1:$etcd_port" --nid "n$i" --open \
            --listen "127.0.0.1:$port" --data-dir "$dir/n$i" >"$dir/n$i.out" 2>"$dir/n$i.log" &
        echo $! >"$dir/n$i.pid"
        wait_for "http://127.0.0.1:$port/" "node n$i"
        echo "n$i: http://127.0.0.1:$port/console/  (ws://127.0.0.1:$port)"
    done
    echo "etcd: $client · logs and data in $dir · stop with: scripts/local-cluster.sh stop"
}

status() {
    alive "$dir/etcd.pid" && echo "etcd: running (pid $(cat "$dir/etcd.pid"))" || echo "etcd: stopped"
    local first=""
    for pid in "$dir"/n*.pid; do
        [ -e "$pid" ] || continue
        local name; name="$(basename "$pid" .pid)"
        if alive "$pid"; then
            echo "$name: running (pid $(cat "$pid"))"
            first="${first:-$name}"
        else
            echo "$name: stopped"
        fi
    done
    if [ -n "$first" ]; then
        local port=$((base_port + ${first#n}))
        curl -fsS -X POST "http://127.0.0.1:$port/" -H 'content-type: application/json' \
            -d '{"webfix":"1.0","method":"listNodes","body":{}}'
        echo
    fi
}

stop() {
    for pid in "$dir"/n*.pid "$dir/etcd.pid"; do
        [ -e "$pid" ] || continue
        if alive "$pid"; then
            kill -TERM "$(cat "$pid")"
            for _ in $(seq 1 100); do alive "$pid" || break; sleep 0.1; done
            alive "$pid" && kill -KILL "$(cat "$pid")"
        fi
        rm -f "$pid"
    done
    echo "local-cluster: stopped (data kept in $dir)"
}

case "${1:-}" in
    start) start ;;
    status) status ;;
    stop) stop ;;
    *) echo "usage: scripts/local-cluster.sh start|status|stop" >&2; exit 2 ;;
esac
