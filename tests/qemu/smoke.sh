#!/bin/sh
# Guest script (busybox sh): prove the bed boots to 2 igb VFs and runs vfguard.
# Run with: tests/qemu/boot.sh tests/qemu/smoke.sh 180
up() { read u _ </proc/uptime; echo "$u"; }
echo "== smoke: kernel $(uname -r), uptime $(up)s"

modload igb igbvf || { echo "FAIL: modload igb igbvf"; exit 1; }

# The igb PF: Ethernet class, Intel 82576 (8086:10c9).
pf=
for d in /sys/bus/pci/devices/*; do
    [ "$(cat "$d/class")" = 0x020000 ] || continue
    [ "$(cat "$d/vendor")" = 0x8086 ] || continue
    [ "$(cat "$d/device")" = 0x10c9 ] || continue
    pf=${d##*/}
    break
done
[ -n "$pf" ] || { echo "FAIL: no 82576 PF found"; lspci 2>/dev/null; exit 1; }
pfdir=/sys/bus/pci/devices/$pf
pfdev=$(ls "$pfdir/net" 2>/dev/null | head -n 1)
echo "== PF $pf netdev=${pfdev:-none} driver=$(basename "$(readlink "$pfdir/driver")") sriov_totalvfs=$(cat "$pfdir/sriov_totalvfs")"

# PF up first: igbvf's reset handshake needs the PF's mailbox interrupt.
ip link set "$pfdev" up
i=0
while [ "$(cat "/sys/class/net/$pfdev/carrier" 2>/dev/null)" != 1 ] && [ $i -lt 50 ]; do
    sleep 0.1; i=$((i + 1))
done
echo "== PF $pfdev carrier=$(cat "/sys/class/net/$pfdev/carrier" 2>/dev/null) at uptime $(up)s"
echo "== enabling 2 VFs at uptime $(up)s ($(ip -V))"
echo 2 >"$pfdir/sriov_numvfs" || { echo "FAIL: writing sriov_numvfs"; dmesg | tail -30; exit 1; }
echo "== sriov_numvfs=$(cat "$pfdir/sriov_numvfs") at uptime $(up)s"

echo "== virtfn links"
n=0
for l in "$pfdir"/virtfn*; do
    [ -e "$l" ] || continue
    vf=$(basename "$(readlink "$l")")
    echo "${l##*/} -> $vf driver=$(basename "$(readlink "/sys/bus/pci/devices/$vf/driver" 2>/dev/null)" 2>/dev/null) net=$(ls "/sys/bus/pci/devices/$vf/net" 2>/dev/null)"
    n=$((n + 1))
done

echo "== ip -d link show $pfdev"
ip -d link show "$pfdev"

echo "== /vfguard --version"
/vfguard --version
echo "== /vfguard catalog --anchors | head -3"
/vfguard catalog --anchors | head -3

echo "== dmesg | tail -30"
dmesg | tail -30

echo "== smoke: $n VFs, uptime $(up)s"
[ "$n" -eq 2 ] || { echo "FAIL: expected 2 VFs, got $n"; exit 1; }
echo "PASS"
exit 0
