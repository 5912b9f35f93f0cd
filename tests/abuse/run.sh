#!/usr/bin/env bash
# Replays the attacks of issue 13 against `vfguard run --sim demo` and checks that the daemon
# still contains the demo's culprits: API floods and malformed requests (attacks.py, on the Unix
# socket only), a FIFO as token file (config check must not hang), a second daemon on the same
# journal (refused), hostile record files (scan must finish and count them). Every step is
# bounded in time; the daemon is stopped with SIGTERM and must exit promptly.
#
#   tests/abuse/run.sh        builds vfguard (debug) if needed; prints "abuse: N passed, M failed"
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build -q -p vfguard
V=${CARGO_TARGET_DIR:-$PWD/target}/debug/vfguard
T=$(mktemp -d)
pass=0 fail=0
ok() { echo "ok $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1: $2"; fail=$((fail + 1)); }
cleanup() {
    [ -n "${daemon:-}" ] && kill "$daemon" 2>/dev/null || true
    rm -rf "$T"
}
trap cleanup EXIT

# The demo runs 45 s of virtual time; at 3x it ends after 15 s and lingers.
"$V" run --sim demo --speed 3 --linger --socket "$T/s.sock" --journal "$T/j.db" \
    --log-format json >"$T/daemon.log" 2>&1 &
daemon=$!
for _ in $(seq 100); do [ -S "$T/s.sock" ] && break; sleep 0.1; done
[ -S "$T/s.sock" ] || { cat "$T/daemon.log"; echo "abuse: the daemon did not start"; exit 1; }

# API attacks while the culprits are being contained.
if out=$(timeout 120 python3 tests/abuse/attacks.py "$T/s.sock" "$daemon"); then :; fi
while read -r verdict name rest; do
    case $verdict in ok) ok "$name" ;; FAIL) bad "${name%:}" "$rest" ;; esac
done <<<"$out"

# A second daemon on the same journal is refused at once.
if timeout 20 "$V" run --sim demo --speed 0 --socket "$T/s2.sock" --journal "$T/j.db" \
    >"$T/second.log" 2>&1; then
    bad second_daemon_refused "a second daemon ran on the same journal"
elif grep -qi "in use" "$T/second.log"; then
    ok second_daemon_refused
else
    bad second_daemon_refused "$(tail -n 2 "$T/second.log")"
fi

# A FIFO as token file: config check answers at once instead of blocking.
mkfifo "$T/token"
printf '[api]\nlisten = "127.0.0.1:9477"\ntoken_file = "%s"\n' "$T/token" >"$T/fifo.toml"
rc=0
timeout 10 "$V" config check "$T/fifo.toml" >"$T/fifo.out" 2>&1 || rc=$?
if [ "$rc" = 124 ]; then
    bad fifo_token_refused "config check hung"
elif [ "$rc" = 0 ]; then
    bad fifo_token_refused "config check accepted a FIFO"
elif grep -q "not a regular file" "$T/fifo.out"; then
    ok fifo_token_refused
else
    bad fifo_token_refused "$(cat "$T/fifo.out")"
fi

# Hostile record files: a 100 KiB record, a sequence number past i64::MAX, a priority that
# would wrap to the kernel's facility: scan finishes and trusts none of them.
{
    printf '3,1,10,-;%s\n' "$(head -c 100000 /dev/zero | tr '\0' x)"
    printf '3,18446744073709551615,20,-;ixgbe 0000:08:00.0: Malicious event on VF 2 tx:4 rx:0\n'
    printf '2051,3,30,-;ixgbe 0000:08:00.0: Malicious event on VF 1 tx:4 rx:0\n'
} >"$T/hostile.kmsg"
rc=0
timeout 20 "$V" scan --format kmsg --json "$T/hostile.kmsg" >"$T/scan.json" 2>"$T/scan.err" || rc=$?
if [ "$rc" -gt 1 ]; then
    bad hostile_records "scan exited $rc: $(tail -n 2 "$T/scan.err")"
elif python3 -c '
import json, sys
trusted = [e for e in map(json.loads, open(sys.argv[1])) if e.get("trusted") and e.get("vf") == 1]
sys.exit(1 if trusted else 0)' "$T/scan.json"; then
    ok hostile_records
else
    bad hostile_records "a priority past 2047 was trusted as the kernel's"
fi

# The scenario has ended by now (15 s at 3x); its culprits must be contained.
sleep_left=$((20 - SECONDS))
[ "$sleep_left" -gt 0 ] && sleep "$sleep_left"
"$V" incidents --socket "$T/s.sock" --json >"$T/incidents.json"
for c in mallory legacy-app firewall; do
    state=$(python3 -c '
import json, sys
rows = [r for r in json.load(open(sys.argv[1])) if (r.get("owner") or {}).get("name") == sys.argv[2]]
print(",".join(sorted({r["state"] for r in rows})) or "none")' "$T/incidents.json" "$c")
    case $state in
        *contained*|*restored*) ok "culprit_${c}_contained" ;;
        *) bad "culprit_${c}_contained" "its incidents are: $state" ;;
    esac
done

# SIGTERM stops it promptly.
kill -TERM "$daemon"
for _ in $(seq 50); do kill -0 "$daemon" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$daemon" 2>/dev/null; then
    bad sigterm_stops_the_daemon "still running 5 s after SIGTERM"
else
    ok sigterm_stops_the_daemon
fi
daemon=

echo "abuse: $pass passed, $fail failed"
[ "$fail" = 0 ]
