#!/usr/bin/env bash
# The fleet's bus for tests and demos: Debian's nats-server with JetStream, on loopback only.
#
#   scripts/nats.sh install        install Debian's nats-server when missing (needs root)
#   scripts/nats.sh start [PORT]   start one on 127.0.0.1:PORT (default 4222) with JetStream,
#                                  its store and pid under ${VFGUARD_NATS_DIR:-/tmp/vfguard-nats};
#                                  prints its URL
#   scripts/nats.sh stop           stop the one `start` started
#
# The tests (crates/fleet/tests, crates/vfguard/tests/fleet_cli.rs) start their own server on a
# free port through vfguard_fleet::local_server; they only need it installed. scripts/test.sh
# runs `install` first.
set -euo pipefail
dir=${VFGUARD_NATS_DIR:-/tmp/vfguard-nats}

find_server() {
    command -v nats-server 2>/dev/null || { [ -x /usr/sbin/nats-server ] && echo /usr/sbin/nats-server; } || true
}

case "${1:-}" in
install)
    if [ -n "$(find_server)" ]; then
        exit 0
    fi
    if [ "$(id -u)" != 0 ]; then
        echo "nats.sh: nats-server is missing; run as root (it installs Debian's nats-server) or install it" >&2
        exit 1
    fi
    echo "nats.sh: installing Debian's nats-server"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nats-server >/dev/null \
        || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nats-server >/dev/null; }
    # The package enables a system service; the tests and demos run their own on loopback.
    systemctl disable --now nats-server >/dev/null 2>&1 || true
    ;;
start)
    port=${2:-4222}
    server=$(find_server)
    [ -n "$server" ] || { echo "nats.sh: nats-server is missing; run: sudo scripts/nats.sh install" >&2; exit 1; }
    mkdir -p "$dir/store"
    if [ -f "$dir/pid" ] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
        echo "nats://127.0.0.1:$(cat "$dir/port")"
        exit 0
    fi
    "$server" -a 127.0.0.1 -p "$port" -js -sd "$dir/store" >"$dir/log" 2>&1 &
    echo $! >"$dir/pid"
    echo "$port" >"$dir/port"
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "nats://127.0.0.1:$port"
            exit 0
        fi
        sleep 0.1
    done
    echo "nats.sh: nats-server did not listen on 127.0.0.1:$port; see $dir/log" >&2
    exit 1
    ;;
stop)
    if [ -f "$dir/pid" ]; then
        kill "$(cat "$dir/pid")" 2>/dev/null || true
        rm -f "$dir/pid"
    fi
    ;;
*)
    sed -n '2,12p' "$0" >&2
    exit 2
    ;;
esac
