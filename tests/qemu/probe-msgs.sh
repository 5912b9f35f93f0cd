#!/bin/sh
# Guest script (busybox sh): make igb print "VF 0 attempted to override
# administratively set MAC address" and dump the raw /dev/kmsg records
# (with their SUBSYSTEM=/DEVICE= dictionary lines) of igb/igbvf messages.
# Run with: tests/qemu/boot.sh tests/qemu/probe-msgs.sh 180
# Exit 0 only if the override warning was logged.

wait_carrier() { # wait_carrier NETDEV: up to 5 s
    i=0
    while [ "$(cat "/sys/class/net/$1/carrier" 2>/dev/null)" != 1 ] && [ $i -lt 50 ]; do
        sleep 0.1; i=$((i + 1))
    done
    echo "== $1 carrier=$(cat "/sys/class/net/$1/carrier" 2>/dev/null) at uptime $(uptime_s)s"
}

modload igb igbvf || exit 1
pf=$(find_pci_dev 8086 10c9) || { echo "FAIL: no 82576 PF"; exit 1; }
pfdev=$(netdev_of "$pf")
echo "== PF $pf ($pfdev)"
ip link set "$pfdev" up
wait_carrier "$pfdev"
echo 2 >"/sys/bus/pci/devices/$pf/sriov_numvfs" || exit 1
wait_carrier "$pfdev"
vf0=$(basename "$(readlink "/sys/bus/pci/devices/$pf/virtfn0")")
vfdev=$(netdev_of "$vf0")
echo "== VF 0 is $vf0 ($vfdev)"

# Let igbvf finish its reset handshake now that the PF is up.
ip link set "$vfdev" up
sleep 1
ip link set "$vfdev" down

echo "== PF sets VF 0 MAC (uptime $(uptime_s)s)"
ip link set "$pfdev" vf 0 mac 52:54:00:12:34:56
echo "rc=$?"
ip link show "$pfdev" | grep 'vf 0'

echo "== VF netdev $vfdev changes its own MAC, down (uptime $(uptime_s)s)"
ip link set "$vfdev" address 52:54:00:aa:bb:cc
echo "rc=$?"
echo "== VF netdev $vfdev changes its own MAC, up"
ip link set "$vfdev" up
ip link set "$vfdev" address 52:54:00:aa:bb:dd
echo "rc=$?"
ip link show "$vfdev"
sleep 0.5

kmsg_dump >/tmp/kmsg
echo "== /dev/kmsg records from igb/igbvf (raw, with dictionary lines)"
awk '/^[^ ]/ { keep = ($0 ~ /;igb/) } keep' /tmp/kmsg
echo "== end of kmsg records"

if grep -q 'attempted to override administratively set MAC address' /tmp/kmsg; then
    echo "PASS: override warning logged"
    exit 0
fi
echo "FAIL: no override warning"
exit 1
