#!/usr/bin/env bash
# tests/qemu/run.sh [-v] [TIMEOUT_SECONDS]
#
# The QEMU end-to-end test of vfguard against the real igb/igbvf drivers (issue 8): builds
# vfguard (cargo build --release -p vfguard --locked) and the guest (build-guest.sh: installs
# QEMU and the rest on a fresh machine; root needed), boots the guest once with checks.sh and
# the two policy files, and turns its PASS/FAIL/SKIP lines into a summary:
#
#   qemu: 6 passed, 0 failed, 0 skipped (42.0 s)
#
# Exit status: 0 when every check passed or skipped, 1 when one failed or is missing (the guest
# crashed or timed out first), 2 on a usage or build error.
#
# Environment:
#   VFGUARD_BIN               binary to test (default target/release/vfguard, built first)
#   VFGUARD_QEMU_NO_CARGO=1   do not run cargo build (use the binary as it is)
#   plus boot.sh's and build-guest.sh's knobs (tests/qemu/README.md)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CHECKS=(inventory netlink fault_action evict aer forged_line)

verbose=0
if [ "${1:-}" = -v ]; then verbose=1; shift; fi
TIMEOUT=${1:-300}
case $TIMEOUT in '' | *[!0-9]*) echo "usage: $0 [-v] [TIMEOUT_SECONDS]" >&2; exit 2 ;; esac

start=$(date +%s.%N)
elapsed() { awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

if [ -z "${VFGUARD_BIN:-}" ] && [ "${VFGUARD_QEMU_NO_CARGO:-0}" != 1 ]; then
    echo "run.sh: cargo build --release -p vfguard" >&2
    (cd "$ROOT" && cargo build --release -p vfguard --locked --quiet) || { echo "run.sh: cargo build failed" >&2; exit 2; }
fi
export VFGUARD_BIN=${VFGUARD_BIN:-$ROOT/target/release/vfguard}
[ -x "$VFGUARD_BIN" ] || { echo "run.sh: $VFGUARD_BIN missing" >&2; exit 2; }

# build-guest.sh: a no-op when the guest is up to date. Run here (not left to boot.sh) so that
# its time is reported apart from the boot's.
t0=$(date +%s.%N)
"$HERE/build-guest.sh" || { echo "run.sh: build-guest.sh failed" >&2; exit 2; }
build_s=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')

export VFGUARD_QEMU_NO_BUILD=1
export GUEST_MODULES=igb,igbvf,aer_inject
export GUEST_FILES="$HERE/policy-act.toml:/etc/vfguard/act.toml $HERE/policy-evict.toml:/etc/vfguard/evict.toml $HERE/policy-observe.toml:/etc/vfguard/observe.toml ${GUEST_FILES:-}"
[ "$verbose" = 0 ] || export GUEST_APPEND="${GUEST_APPEND:-} VFG_VERBOSE=1"

OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT
t0=$(date +%s.%N)
set +e
"$HERE/boot.sh" "$HERE/checks.sh" "$TIMEOUT" | tee "$OUT"
brc=${PIPESTATUS[0]}
set -e
boot_s=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')

# One result line per check, at the start of a line: PASS name | FAIL name: why | SKIP name: why.
pass=0 fail=0 skip=0
summary=()
for c in "${CHECKS[@]}"; do
    line=$(grep -aE "^(PASS|FAIL|SKIP) $c(:|\$)" "$OUT" | tail -n 1 || true)
    if [ -z "$line" ]; then
        case $brc in
            124) why="no result: the boot timed out after ${TIMEOUT}s" ;;
            125) why="no result: the guest ended without an exit status (panic or crash; see the log)" ;;
            *) why="no result from the guest (guest exit status $brc)" ;;
        esac
        line="FAIL $c: $why"
    fi
    case $line in
        PASS*) pass=$((pass + 1)) ;;
        SKIP*) skip=$((skip + 1)) ;;
        *) fail=$((fail + 1)) ;;
    esac
    summary+=("$line")
done
# The guest's own verdict must agree (it exits non-zero on any failure).
if [ "$fail" = 0 ] && [ "$brc" != 0 ]; then
    summary+=("FAIL guest: exit status $brc with every check passed or skipped")
    fail=$((fail + 1))
fi

echo
echo "run.sh: results (guest build ${build_s}s, boot and checks ${boot_s}s; log target/qemu-guest/logs/last.log)"
printf '  %s\n' "${summary[@]}"
echo "qemu: $pass passed, $fail failed, $skip skipped ($(elapsed) s)"
[ "$fail" = 0 ]
