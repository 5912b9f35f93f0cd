#!/usr/bin/env bash
# boot.sh GUEST_SCRIPT [TIMEOUT_SECONDS]
#
# Boot the QEMU guest (q35, TCG, one emulated Intel 82576 "igb" SR-IOV NIC)
# with GUEST_SCRIPT packed into the initramfs as /test.sh. The guest's /init
# runs it with busybox sh and powers off. The serial console is streamed to
# stdout and to target/qemu-guest/logs/<script>-<time>.log (last.log points
# at the newest). Exit status: the guest script's exit status, 124 when the
# timeout (default 180 s) killed QEMU before the guest reported one, 125 when
# QEMU ended without the VFGUARD-GUEST-EXIT sentinel (kernel panic, crash...).
#
# Environment:
#   GUEST_MODULES     modules /init loads (with dependencies) before /test.sh,
#                     comma- or space-separated; default "igb,igbvf,aer_inject";
#                     "-" loads none (the script can call `modload NAME...`)
#   GUEST_FILES       extra files for the guest: "HOSTPATH:GUESTPATH ..."
#   GUEST_APPEND      extra kernel command-line words
#   GUEST_LOGLEVEL    console loglevel (default 4: only errors and worse
#                     interleave with the test output; dmesg has everything)
#   QEMU_EXTRA_ARGS   extra QEMU arguments (word-split)
#   VFGUARD_QEMU_NO_BUILD=1  do not run build-guest.sh first
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT=$ROOT/target/qemu-guest

usage() { echo "usage: $0 GUEST_SCRIPT [TIMEOUT_SECONDS]" >&2; exit 2; }
[ $# -ge 1 ] && [ $# -le 2 ] || usage
SCRIPT=$1
TIMEOUT=${2:-180}
[ -f "$SCRIPT" ] || { echo "boot.sh: no such guest script: $SCRIPT" >&2; exit 2; }
case $TIMEOUT in '' | *[!0-9]*) usage ;; esac

if [ "${VFGUARD_QEMU_NO_BUILD:-0}" != 1 ]; then
    VFGUARD_QEMU_QUIET=1 "$HERE/build-guest.sh"
fi
for f in vmlinuz base.cpio.gz vfguard.cpio.gz; do
    [ -f "$OUT/$f" ] || { echo "boot.sh: $OUT/$f missing: run tests/qemu/build-guest.sh" >&2; exit 2; }
done

name=$(basename "$SCRIPT"); name=${name%.sh}
stamp=$(date +%Y%m%d-%H%M%S)
RUN=$(mktemp -d "$OUT/run.XXXXXX")
trap 'rm -rf "$RUN"' EXIT
mkdir -p "$OUT/logs"
LOG=$OUT/logs/$name-$stamp.log

# Per-run initramfs layer: /test.sh plus GUEST_FILES. The kernel unpacks
# concatenated cpio archives in order, so this layer overlays the others.
mkdir -p "$RUN/root"
cp "$SCRIPT" "$RUN/root/test.sh"
chmod 755 "$RUN/root/test.sh"
for spec in ${GUEST_FILES:-}; do
    src=${spec%%:*}; dst=${spec#*:}
    [ "$src" != "$spec" ] && [ -e "$src" ] || { echo "boot.sh: bad GUEST_FILES entry: $spec" >&2; exit 2; }
    mkdir -p "$RUN/root$(dirname "$dst")"
    cp -a "$src" "$RUN/root$dst"
done
(cd "$RUN/root" && find . -mindepth 1 | LC_ALL=C sort |
    cpio --quiet -o -H newc --owner=0:0) | gzip -1 -n >"$RUN/test.cpio.gz"
cat "$OUT/base.cpio.gz" "$OUT/vfguard.cpio.gz" "$RUN/test.cpio.gz" >"$RUN/initrd.img"

mods=$(echo "${GUEST_MODULES:-igb,igbvf,aer_inject}" | tr ' ' ',')
# "quiet" is not used: the kernel log level alone keeps the console readable.
APPEND="console=ttyS0 panic=-1 oops=panic loglevel=${GUEST_LOGLEVEL:-4} GUEST_MODULES=$mods ${GUEST_APPEND:-}"

# No -enable-kvm (TCG only), -smp 1 (QEMU 10 aborted on VF reset with -smp 2),
# user networking restricted so the guest can reach nothing.
# shellcheck disable=SC2054 # commas are QEMU option syntax
QEMU=(qemu-system-x86_64
    -machine q35 -accel tcg -smp 1 -m 1024
    -nographic -no-reboot -nodefaults -serial mon:stdio
    -kernel "$OUT/vmlinuz" -initrd "$RUN/initrd.img" -append "$APPEND"
    -netdev user,id=n0,restrict=on
    -device pcie-root-port,id=rp0,slot=1
    -device igb,bus=rp0,netdev=n0)
# shellcheck disable=SC2206
[ -z "${QEMU_EXTRA_ARGS:-}" ] || QEMU+=(${QEMU_EXTRA_ARGS})

echo "boot.sh: $SCRIPT, timeout ${TIMEOUT}s, log $LOG" >&2
ln -sfn "$(basename "$LOG")" "$OUT/logs/last.log"
# Keep the 50 newest logs.
{ ls -1t "$OUT"/logs/*-*.log 2>/dev/null || true; } | tail -n +51 | xargs -r rm -f
start=$(date +%s.%N)
set +e
# The guest console uses CRLF; strip the CRs for the stream and the log.
timeout -k 5 "$TIMEOUT" "${QEMU[@]}" </dev/null 2>&1 | sed -u 's/\r$//' | tee "$LOG"
qrc=${PIPESTATUS[0]}
set -e
end=$(date +%s.%N)
elapsed=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')

code=$(grep -aoE 'VFGUARD-GUEST-EXIT=[0-9]+' "$LOG" | tail -n 1 | cut -d= -f2 || true)
if [ -n "$code" ]; then
    [ "$qrc" != 124 ] && [ "$qrc" != 137 ] ||
        echo "boot.sh: warning: QEMU had to be killed after the guest reported its exit status" >&2
    echo "boot.sh: guest exit status $code after ${elapsed}s (log $LOG)" >&2
    exit "$code"
elif [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then
    echo "boot.sh: TIMEOUT after ${TIMEOUT}s (log $LOG)" >&2
    exit 124
else
    echo "boot.sh: no VFGUARD-GUEST-EXIT sentinel; QEMU exited $qrc after ${elapsed}s (log $LOG)" >&2
    exit 125
fi
