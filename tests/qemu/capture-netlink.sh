#!/bin/sh
# Guest script: capture the RTM_NEWLINK message (with IFLA_VFINFO_LIST) the real igb driver
# returns for its PF with 2 configured VFs, and `ip -j -d link show` of the same PF, for
# testdata/netlink/. Run with: tests/qemu/boot.sh tests/qemu/capture-netlink.sh 180
pf=
for d in /sys/bus/pci/devices/*; do
    [ "$(cat "$d/vendor")" = 0x8086 ] && [ "$(cat "$d/device")" = 0x10c9 ] && { pf=${d##*/}; break; }
done
[ -n "$pf" ] || { echo "FAIL: no 82576 PF"; exit 1; }
pfdev=$(ls "/sys/bus/pci/devices/$pf/net" | head -n 1)
ip link set "$pfdev" up
i=0
while [ "$(cat "/sys/class/net/$pfdev/carrier" 2>/dev/null)" != 1 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
echo 2 >"/sys/bus/pci/devices/$pf/sriov_numvfs" || exit 1
sleep 2
ip link set "$pfdev" vf 0 mac 52:54:00:12:34:56
ip link set "$pfdev" vf 1 vlan 42 qos 3
ip link set "$pfdev" vf 1 spoofchk off
ip link set "$pfdev" vf 0 trust on
ip link set "$pfdev" vf 1 max_tx_rate 100 || echo "(max_tx_rate refused)"
ip link set "$pfdev" vf 0 state disable || echo "(link state refused, as igb has no ndo_set_vf_link_state)"
echo "== BEGIN NETLINK HEX $pfdev $pf"
/vfguard debug netlink-capture "$pfdev" 2>/tmp/decoded || exit 1
echo "== END NETLINK HEX"
echo "== BEGIN DECODED"
cat /tmp/decoded
echo "== END DECODED"
echo "== BEGIN IP JSON"
ip -j -d link show "$pfdev"
echo
echo "== END IP JSON"
