#!/usr/bin/env bash
# The project's test command (README): Debian's nats-server installed for the fleet's tests
# (scripts/nats.sh), everything `cargo test` covers, then the metrics, alert
# rules and dashboard against Prometheus's promtool (tests/prometheus/run.sh), then issue 13's
# attacks replayed against a running daemon (tests/abuse/run.sh), then the end-to-end
# test against the real igb/igbvf drivers in a QEMU guest (tests/qemu/run.sh). Both install what
# they need (Debian's prometheus; QEMU and a guest kernel) on a fresh machine, which needs root.
# Anything a test needs is installed here, never by hand.
#
#   scripts/test.sh [CARGO TEST ARGS]   with arguments, only `cargo test` with them
#   VFGUARD_NO_QEMU=1 scripts/test.sh   everything but the QEMU test
set -euo pipefail
cd "$(dirname "$0")/.."
# The fleet's tests run their own nats-server on loopback: it must be installed.
scripts/nats.sh install
cargo test --workspace --locked "$@"
[ $# -eq 0 ] || exit 0
if [ "$(id -u)" = 0 ] || command -v promtool >/dev/null; then
    echo "== tests/prometheus/run.sh"
    tests/prometheus/run.sh
else
    echo "test.sh: the promtool test was not run: it needs root to install Debian's prometheus;" \
        "run: sudo tests/prometheus/run.sh" >&2
fi
echo "== tests/abuse/run.sh"
tests/abuse/run.sh
if [ "${VFGUARD_NO_QEMU:-0}" = 1 ]; then
    echo "test.sh: the QEMU test was not run (VFGUARD_NO_QEMU=1)"
elif [ "$(id -u)" != 0 ]; then
    echo "test.sh: the QEMU test was not run: it needs root (it installs QEMU and a guest kernel with apt);" \
        "run: sudo tests/qemu/run.sh" >&2
else
    echo "== tests/qemu/run.sh"
    tests/qemu/run.sh
fi
