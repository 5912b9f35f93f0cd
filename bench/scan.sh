#!/usr/bin/env bash
# Benchmark: `vfguard scan --json` against `rg -c` (ripgrep, Debian's package) on the same large
# realistic kernel log, one core each, with an equivalent pattern set: the very literals vfguard's
# prefilter searches for (`vfguard catalog --anchors`). vfguard also frames every candidate line,
# matches the catalog and writes every field as JSON; rg only counts matching lines.
#
# Usage: bench/scan.sh [SIZE_MIB]   (default 400; the log is cached in bench/out/)
# Prints one line per run and the ratio of the best times (rg / vfguard: > 1 means vfguard is
# faster).
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:-400}
out=bench/out
mkdir -p "$out"
log="$out/host-${size}MiB.log"

if ! command -v rg >/dev/null; then
  echo "installing ripgrep (Debian package)..." >&2
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq >/dev/null && apt-get install -y -qq ripgrep >/dev/null
  else
    echo "bench/scan.sh: ripgrep is missing; run as root or: sudo apt-get install ripgrep" >&2
    exit 2
  fi
fi

cargo build --release --quiet -p vfguard --bin vfguard --example genlog
bin=target/release/vfguard
if [ ! -s "$log" ]; then
  echo "generating $log ..." >&2
  target/release/examples/genlog "$size" > "$log"
fi
"$bin" catalog --anchors > "$out/anchors.txt"
cat "$log" > /dev/null   # warm the page cache for both

best() { sort -n | head -1; }
time_it() {  # prints seconds of one run of "$@" with stdout discarded
  local t0 t1
  t0=$(date +%s.%N)
  "$@" > /dev/null || [ $? -eq 1 ]   # both exit 1 on a match
  t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f\n", b - a }' 
}
runs=${RUNS:-5}
rg_times=(); vf_times=()
for i in $(seq "$runs"); do
  rg_times+=("$(time_it taskset -c 0 rg -c -F -f "$out/anchors.txt" "$log")")
  vf_times+=("$(time_it taskset -c 0 "$bin" scan --json "$log")")
done
rg_best=$(printf '%s\n' "${rg_times[@]}" | best)
vf_best=$(printf '%s\n' "${vf_times[@]}" | best)
mib=$(( $(stat -c %s "$log") >> 20 ))
lines=$(wc -l < "$log")
rg_count=$(rg -c -F -f "$out/anchors.txt" "$log")
events=$("$bin" scan --json "$log" | wc -l || true)
printf 'input: %s (%d MiB, %d lines, %d anchor lines, %d events, %d anchors)\n' \
  "$log" "$mib" "$lines" "$rg_count" "$events" "$(wc -l < "$out/anchors.txt")"
printf 'rg -c -F (1 core):       best %.3f s  %6.0f MiB/s\n' "$rg_best" "$(awk -v m="$mib" -v t="$rg_best" 'BEGIN { print m / t }')"
printf 'vfguard scan --json:     best %.3f s  %6.0f MiB/s\n' "$vf_best" "$(awk -v m="$mib" -v t="$vf_best" 'BEGIN { print m / t }')"
printf 'ratio rg/vfguard: %.2f (>1: vfguard faster)\n' "$(awk -v a="$rg_best" -v b="$vf_best" 'BEGIN { print a / b }')"
