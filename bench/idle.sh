#!/usr/bin/env bash
# Idle cost of the agent: `vfguard run --sim` on a host with 1024 VFs (16 PFs x 64 VFs, 256 VMs
# holding 4 VFs each, all benign), in real time: VF tables and AER counters sampled at 1 Hz, the
# host map re-read every 5 s. Measures CPU (utime+stime of the whole process, simulator included)
# and RSS over SECONDS after a warm-up.
#
# Usage: bench/idle.sh [SECONDS]   (default 20)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-20}
out=bench/out
mkdir -p "$out"
sc="$out/idle-1024.toml"
{
  printf '[scenario]\nname = "idle-1024"\nseed = 1\nduration_ms = %d\n' $(( (secs + 30) * 1000 ))
  for p in $(seq 0 15); do
    printf '\n[[pf]]\nbdf = "0000:%02x:00.0"\ndriver = "i40e"\nnetdev = "pf%d"\nnumvfs = 64\ntotalvfs = 64\n' $(( 0x10 + p * 2 )) "$p"
  done
  for v in $(seq 0 255); do
    p=$(( v / 16 )); base=$(( (v % 16) * 4 ))
    printf '\n[[vm]]\nname = "vm%d"\nfunctions = [' "$v"
    for k in 0 1 2 3; do printf '"0000:%02x:00.0/vf%d"%s' $(( 0x10 + p * 2 )) $(( base + k )) "$([ $k -lt 3 ] && echo ,)"; done
    printf ']\n\n[[behaviour]]\nowner = "vm%d"\nkind = "benign"\n' "$v"
  done
} > "$sc"
cargo build --release --quiet -p vfguard
cfg="$out/idle.toml"
printf 'stats_every = "1s"\ntopology_every = "5s"\n' > "$cfg"
rm -f "$out/idle.db"*
target/release/vfguard run --config "$cfg" --sim "$sc" --speed 1 --journal "$out/idle.db" 2> "$out/idle.log" &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
# Wait until the simulated host's tree is built (15 s for this size) and the loop runs, then a
# little more for the first map read.
for _ in $(seq 600); do grep -q "running on the simulated host" "$out/idle.log" && break; sleep 0.1; done
sleep 3
ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
hz=$(getconf CLK_TCK)
t0=$(ticks); s0=$(date +%s.%N)
sleep "$secs"
t1=$(ticks); s1=$(date +%s.%N)
rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
kill -TERM $pid; wait $pid || true
trap - EXIT
awk -v t0="$t0" -v t1="$t1" -v s0="$s0" -v s1="$s1" -v hz="$hz" -v rss="$rss" -v hwm="$hwm" 'BEGIN {
  cpu = (t1 - t0) / hz / (s1 - s0) * 100
  printf "idle, 1024 VFs, 256 VMs, 1 Hz sampling: CPU %.2f%% of one core (simulator included), RSS %d MiB (peak %d MiB)\n", cpu, rss / 1024, hwm / 1024
}'
