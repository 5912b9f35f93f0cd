#!/bin/sh
# Guest script (busybox sh) for tests/qemu/run.sh: vfguard against the real igb/igbvf drivers.
#
# Prints one line per check, at the start of a line:
#   PASS <name>            FAIL <name>: <why>            SKIP <name>: <why>
# for the checks inventory, netlink, fault_action, evict, aer, forged_line (in that order of
# results; aer runs last because its non-fatal recovery resets the PF and its VFs).
# Exit status: 0 when nothing failed (SKIPs allowed), 1 otherwise.
#
# Needs /etc/vfguard/act.toml, /etc/vfguard/evict.toml and /etc/vfguard/observe.toml (run.sh
# packs tests/qemu/policy-act.toml, policy-evict.toml and policy-observe.toml there) and modules
# igb, igbvf, aer_inject.
# Kernel command-line word VFG_VERBOSE=1 (run.sh -v) prints every intermediate file.

VERBOSE=${VFG_VERBOSE:-0}
RESULTS=/tmp/results
: >"$RESULTS"
FAILED=0

# Only our own lines on the console: the kernel log is read from /dev/kmsg instead, and a
# panic (KERN_EMERG) still shows.
dmesg -n 1 2>/dev/null

say() { echo "== [$(uptime_s)s] $*"; }

# result STATUS NAME [WHY]: one result line (reasons on one line, trimmed to 400 characters).
result() {
    _why=$(printf '%s' "${3:-}" | tr '\n' ' ' | sed 's/  */ /g; s/ $//' | cut -c1-400)
    case $1 in
        PASS) _l="PASS $2" ;;
        *) _l="$1 $2: ${_why:-no reason given}" ;;
    esac
    [ "$1" = FAIL ] && FAILED=1
    echo "$_l" >>"$RESULTS"
    echo "$_l"
}

# show TITLE FILE [LINES]: print a file for the human reader (the tail, when long).
show() {
    echo "---- $1"
    if [ -s "$2" ]; then tail -n "${3:-40}" "$2" | sed 's/^/    /'; else echo "    (empty)"; fi
}

# wait_for TENTHS CMD...: run CMD every 0.1 s until it succeeds; 1 if it never did.
wait_for() {
    _n=$1; shift
    until "$@"; do
        _n=$((_n - 1))
        [ "$_n" -gt 0 ] || return 1
        sleep 0.1
    done
}

carrier_up() { [ "$(cat "/sys/class/net/$1/carrier" 2>/dev/null)" = 1 ]; }
vf_ready() { # vf_ready PF N: virtfnN exists, bound to igbvf, has a netdev
    _v=$(readlink "/sys/bus/pci/devices/$1/virtfn$2" 2>/dev/null) || return 1
    _v=${_v##*/}
    [ "$(basename "$(readlink "/sys/bus/pci/devices/$_v/driver" 2>/dev/null)")" = igbvf ] &&
        [ -n "$(netdev_of "$_v")" ]
}

# jq_problems FILTER ARGS...: jq -r printing one problem per line; empty output means none.
# A jq error is itself a problem.
jq_problems() {
    _f=$1; shift
    jq -r "$@" "$_f" 2>&1 || echo "jq failed on $*"
}

# Every check fails with the same reason (setup went wrong); exit.
all_fail() {
    for c in inventory netlink fault_action evict aer forged_line; do result FAIL "$c" "$1"; done
    kmsg_dump | grep -E 'igb|aer|AER|pcieport' | tail -n 30 | sed 's/^/    /'
    exit 1
}

# agent_start CONFIG JOURNAL LOG: start `vfguard run` in the background; AGENT=pid.
agent_start() {
    /vfguard run --config "$1" --journal "$2" 2>"$3" &
    AGENT=$!
    if ! wait_for 150 grep -q 'running; journal' "$3"; then
        show "vfguard run log" "$3"
        return 1
    fi
}

# agent_stop: SIGTERM, wait up to 10 s (SIGKILL after); AGENT_RC=exit status.
agent_stop() {
    kill -TERM "$AGENT" 2>/dev/null
    _n=100
    while kill -0 "$AGENT" 2>/dev/null && [ $_n -gt 0 ]; do sleep 0.1; _n=$((_n - 1)); done
    if kill -0 "$AGENT" 2>/dev/null; then
        kill -KILL "$AGENT" 2>/dev/null
        wait "$AGENT" 2>/dev/null
        AGENT_RC=killed
    else
        wait "$AGENT"
        AGENT_RC=$?
    fi
}

# incidents JOURNAL PREFIX: explain every incident as PREFIX.N.json (and .txt); prints the count.
incidents() {
    _i=1
    while /vfguard explain --journal "$1" "$_i" --json >"$2.$_i.json" 2>/dev/null; do
        /vfguard explain --journal "$1" "$_i" >"$2.$_i.txt" 2>&1
        _i=$((_i + 1))
    done
    rm -f "$2.$_i.json"
    echo $((_i - 1))
}

# incident_of JOURNAL_PREFIX COUNT FUNCTION: print the number of the first incident on FUNCTION.
incident_of() {
    _i=1
    while [ "$_i" -le "$2" ]; do
        if [ "$(jq -r .function "$1.$_i.json")" = "$3" ]; then echo "$_i"; return 0; fi
        _i=$((_i + 1))
    done
    return 1
}

# ---------------------------------------------------------------- setup

say "checks: kernel $(uname -r), $(ip -V)"
pf=$(find_pci_dev 8086 10c9) || all_fail "setup: no 82576 PF (8086:10c9) in /sys/bus/pci/devices"
pfdev=$(netdev_of "$pf")
[ -n "$pfdev" ] || all_fail "setup: PF $pf has no netdev (igb not bound?)"
pfdir=/sys/bus/pci/devices/$pf
ip link set "$pfdev" up
wait_for 100 carrier_up "$pfdev" || all_fail "setup: PF $pfdev has no carrier after 10 s"
echo 2 >"$pfdir/sriov_numvfs" || all_fail "setup: writing 2 to $pfdir/sriov_numvfs failed"
wait_for 150 vf_ready "$pf" 0 && wait_for 150 vf_ready "$pf" 1 ||
    all_fail "setup: VFs not bound to igbvf with a netdev within 15 s"
# Enabling SR-IOV resets the PF: its link drops and returns about 1.5 s later.
sleep 0.5
wait_for 100 carrier_up "$pfdev" || all_fail "setup: PF $pfdev lost its carrier after enabling VFs"
vf0=$(basename "$(readlink "$pfdir/virtfn0")")
vf1=$(basename "$(readlink "$pfdir/virtfn1")")
vf0dev=$(netdev_of "$vf0")
vf1dev=$(netdev_of "$vf1")
# igbvf finishes its reset handshake with the PF (mailbox) once up with the PF up.
ip link set "$vf0dev" up
ip link set "$vf1dev" up
sleep 1
ip link set "$vf0dev" down
ip link set "$vf1dev" down
say "PF $pf ($pfdev), VF 0 $vf0 ($vf0dev), VF 1 $vf1 ($vf1dev)"

# ---------------------------------------------------------------- 1. inventory
# The host map from sysfs (virtfnN links, driver links) and namespaces: VF 0's netdev moved into
# tenant-a, VF 1's into tenant-b, both named network namespaces (/run/netns/NAME).

say "check inventory"
err=
mkdir -p /run/netns
for t in "tenant-a $vf0dev" "tenant-b $vf1dev"; do
    set -- $t
    out=$(ip netns add "$1" 2>&1) || err="$err ip netns add $1: $out;"
    out=$(ip link set "$2" netns "$1" 2>&1) || err="$err ip link set $2 netns $1: $out;"
done
if [ -n "$err" ]; then
    result FAIL inventory "$err"
else
    /vfguard inventory --json >/tmp/inventory.json 2>/tmp/inventory.err
    rc=$?
    [ "$VERBOSE" = 1 ] && show "inventory --json" /tmp/inventory.json 200
    /vfguard inventory 2>&1 | sed 's/^/    /'
    if [ $rc != 0 ]; then
        result FAIL inventory "vfguard inventory --json exit $rc: $(cat /tmp/inventory.err)"
    else
        problems=$(jq_problems /tmp/inventory.json --arg pf "$pf" --arg vf0 "$vf0" --arg vf1 "$vf1" '
            def want(c; msg): if c then empty else msg end;
            [.pfs[] | select(.bdf == $pf)] as $p
            | if ($p | length) != 1 then "PF \($pf) listed \($p | length) times" else
              $p[0] as $p
              | want($p.driver == "igb"; "PF driver \($p.driver) (want igb)"),
                want($p.numvfs == 2; "PF numvfs \($p.numvfs) (want 2)"),
                want(($p.vfs | length) == 2; "\($p.vfs | length) VFs listed (want 2)"),
                ([[0, $vf0, "tenant-a"], [1, $vf1, "tenant-b"]][] as [$i, $bdf, $ns]
                 | ([$p.vfs[] | select(.index == $i)][0]) as $v
                 | if $v == null then "VF \($i) not listed" else
                   want($v.bdf == $bdf; "VF \($i) bdf \($v.bdf) but virtfn\($i) -> \($bdf)"),
                   want($v.driver == "igbvf"; "VF \($i) driver \($v.driver) (want igbvf)"),
                   want($v.owner.kind == "netns" and $v.owner.name == $ns;
                        "VF \($i) owner \($v.owner.kind):\($v.owner.name) (want netns:\($ns))"),
                   want(any($v.owner.evidence[]?; contains("/run/netns/\($ns)"));
                        "VF \($i) owner evidence does not name /run/netns/\($ns): \($v.owner.evidence)")
                   end)
              end')
        if [ -z "$problems" ]; then result PASS inventory; else result FAIL inventory "$problems"; fi
    fi
fi

# ---------------------------------------------------------------- 2. netlink
# VF state as vfguard reads it over rtnetlink equals what iproute2 shows, after the
# administrator changed VF 1 (mac, vlan/qos, spoofchk, trust).

say "check netlink"
err=
for a in "mac 52:54:00:00:01:01" "vlan 42 qos 3" "spoofchk off" "trust on"; do
    out=$(ip link set "$pfdev" vf 1 $a 2>&1) || err="$err ip link set $pfdev vf 1 $a: $out;"
done
ip -j -d link show "$pfdev" >/tmp/ip-link.json 2>&1
/vfguard inventory --json >/tmp/inventory2.json 2>/tmp/inventory2.err
[ "$VERBOSE" = 1 ] && show "ip -j -d link show $pfdev" /tmp/ip-link.json
if [ -n "$err" ]; then
    result FAIL netlink "$err"
else
    problems=$( (
        # iproute2 must show what was set (else the comparison proves little).
        jq -r '.[0].vfinfo_list[] | select(.vf == 1)
            | if .address == "52:54:00:00:01:01" and .vlan_list[0].vlan == 42 and .vlan_list[0].qos == 3
                 and .spoofchk == false and .trust == true then empty
              else "ip does not show the VF 1 settings: \(tojson)" end' /tmp/ip-link.json 2>&1
        jq -rn --slurpfile ip /tmp/ip-link.json --slurpfile inv /tmp/inventory2.json --arg pf "$pf" '
            ([$inv[0].pfs[] | select(.bdf == $pf)][0].vfs) as $vfs
            | if ($vfs | length) != ($ip[0][0].vfinfo_list | length) then
                "vfguard lists \($vfs | length) VFs, ip \($ip[0][0].vfinfo_list | length)" else empty end,
              ($ip[0][0].vfinfo_list[]
               | {index: .vf, mac: .address, vlan: (.vlan_list[0].vlan // 0), qos: (.vlan_list[0].qos // 0),
                  spoofchk, trust, link_state, max_tx_rate: .rate.max_tx, min_tx_rate: .rate.min_tx} as $want
               | ([$vfs[] | select(.index == $want.index)][0].state) as $s
               | if $s == null then "VF \($want.index): no state from vfguard"
                 else ($want | keys_unsorted[] as $k
                       | if $s[$k] == $want[$k] then empty
                         else "VF \($want.index) \($k): ip \($want[$k] | tojson), vfguard \($s[$k] | tojson)" end)
                 end)' 2>&1
    ) )
    if [ -z "$problems" ]; then
        result PASS netlink
        jq -c '.pfs[].vfs[] | {index, state: (.state | del(.stats))}' /tmp/inventory2.json | sed 's/^/    /'
    else
        result FAIL netlink "$problems"
    fi
fi

# ---------------------------------------------------------------- 3. fault_action (+ 5. forged_line)
# The administrator pins VF 0's MAC; the agent starts; VF 0's own driver (its netdev is in
# tenant-a) asks the PF for another MAC; igb refuses and logs the override. The agent must
# attribute it to VF 0 / netns:tenant-a, try vf_disable (EOPNOTSUPP on igb) and fall back to
# quarantine_vlan 4094. While it runs, forged lines naming VF 1 are written to /dev/kmsg.

say "check fault_action"
fa_err=
out=$(ip link set "$pfdev" vf 0 mac 52:54:00:12:34:56 2>&1) || fa_err="ip link set $pfdev vf 0 mac: $out"
AGENT=
if [ -z "$fa_err" ] && ! agent_start /etc/vfguard/act.toml /tmp/act.db /tmp/act.log; then
    fa_err="vfguard run did not report running within 15 s"
fi
vf0_vlan() { ip -j -d link show "$pfdev" | jq -r '.[0].vfinfo_list[] | select(.vf == 0) | .vlan_list[0].vlan // 0'; }
quarantined() { [ "$(vf0_vlan)" = 4094 ]; }
if [ -z "$fa_err" ]; then
    say "tenant-a's VF driver changes its MAC ($vf0dev in tenant-a)"
    # Refused by the PF: igbvf answers EADDRNOTAVAIL, igb logs the override (expected).
    ip -n tenant-a link set "$vf0dev" address 52:54:00:aa:bb:cc 2>&1 | sed 's/^/    ip: /'
    if ! wait_for 200 quarantined; then
        fa_err="VF 0 vlan is $(vf0_vlan) 20 s after the override, not 4094"
    fi
    say "VF 0 vlan $(vf0_vlan)"
fi

# 5. forged_line, with the agent still running: a tenant (any root process in the guest)
# writes driver-looking lines to /dev/kmsg. They get facility LOG_USER, never 0.
say "check forged_line (agent running)"
fl_err=
forged1="igb $pf: Spoof event(s) detected on VF 1"
forged2="i40e $pf: TX driver issue detected on VF 1"
if [ -n "$AGENT" ]; then
    echo "<3>$forged1" >/dev/kmsg || fl_err="writing to /dev/kmsg failed"
    echo "<3>$forged2" >/dev/kmsg || fl_err="writing to /dev/kmsg failed"
    # A real record after the forged ones: once the agent has journalled it, it has read past
    # the forged lines. VF 0's driver tries its MAC once more.
    ip -n tenant-a link set "$vf0dev" address 52:54:00:aa:bb:dd 2>/dev/null
    overrides_seen() {
        n=$(incidents /tmp/act.db /tmp/act-live)
        i=$(incident_of /tmp/act-live "$n" "$vf0") || return 1
        [ "$(grep -c 'attempted to override' "/tmp/act-live.$i.txt")" -ge 2 ]
    }
    wait_for 100 overrides_seen || fl_err="${fl_err}the agent did not journal the override written after the forged lines within 10 s; "
    sleep 1
else
    fl_err="the agent is not running (see fault_action)"
fi
[ -n "$AGENT" ] && agent_stop
say "vfguard run stopped (exit $AGENT_RC)"
show "vfguard run log (fault_action, forged_line)" /tmp/act.log
n=$(incidents /tmp/act.db /tmp/act)
say "$n incident(s) in /tmp/act.db"
i=1
while [ "$i" -le "$n" ]; do head -n 1 "/tmp/act.$i.txt" | sed 's/^/    /'; i=$((i + 1)); done

kmsg_dump >/tmp/kmsg-1.txt

# 3. fault_action: the kernel's record, then the journal's evidence chain.
if [ -z "$fa_err" ]; then
    # One record per refused change, from the kernel (facility 0: PRI = level 4 alone), with the
    # PF in its dictionary.
    rec=$(awk -v dev=" DEVICE=+pci:$pf" '
        /^[0-9]/ { hit = ($0 ~ /^4,[0-9]+,[0-9]+,[^;]*;igb .*: VF 0 attempted to override administratively set MAC address/) ; next }
        hit && $0 == dev { n++; hit = 0 }
        END { print n + 0 }' /tmp/kmsg-1.txt)
    [ "$rec" -ge 1 ] || fa_err="no kernel record 'VF 0 attempted to override ...' (PRI 4, DEVICE=+pci:$pf) in /dev/kmsg; "
    say "$rec kernel record(s) of VF 0's MAC override (PRI 4, DEVICE=+pci:$pf)"
    [ "$AGENT_RC" = 0 ] || fa_err="vfguard run exited $AGENT_RC on SIGTERM; "
    if i=$(incident_of /tmp/act "$n" "$vf0"); then
        show "vfguard explain --journal /tmp/act.db $i" "/tmp/act.$i.txt" 60
        [ "$VERBOSE" = 1 ] && show "explain --json $i" "/tmp/act.$i.json" 400
        fa_err="$fa_err$(jq_problems "/tmp/act.$i.json" --arg pf "$pf" '
            def want(c; msg): if c then empty else msg end;
            want(.owner.kind == "netns" and .owner.name == "tenant-a";
                 "incident owner \(.owner.kind):\(.owner.name) (want netns:tenant-a)"),
            want(.pf == $pf; "incident PF \(.pf)"),
            want(any(.observations[].observation; .kind == "mac_override" and .pf == $pf and .vf == 0
                     and .trusted == true and .trust == "kernel_record");
                 "no trusted mac_override line on PF \($pf) VF 0 in the evidence"),
            want(any(.decisions[].decision; .decision == "attributed" and .confidence >= 0.5
                     and (.evidence | test("mac_override .*VF 0; owner netns:tenant-a")));
                 "the mac_override line is not attributed to VF 0 / netns:tenant-a with confidence >= 0.5"),
            ([.actions[] | select(.action.kind.args.knob == "link_state")][0]) as $dis
            | ([.actions[] | select(.action.kind.args.knob == "vlan")][0]) as $q
            | want($dis != null; "no vf_disable (set_vf link_state) action"),
              want($dis == null or $dis.outcome.error == "EOPNOTSUPP";
                   "vf_disable outcome \($dis.outcome.error // "ok") (want EOPNOTSUPP)"),
              want($q != null; "no quarantine_vlan (set_vf vlan) action"),
              want($q == null or ($q.action.rule | test("fallback"));
                   "quarantine_vlan rule \($q.action.rule) (want a fallback)"),
              want($q == null or ($q.outcome != null and $q.outcome.error == null);
                   "quarantine_vlan outcome \($q.outcome)"),
              want([.actions[].action.vf] | all(. == 0); "actions on other VFs: \([.actions[].action.vf])")
            ' | tr '\n' ';')"
        grep -q 'failed: EOPNOTSUPP' "/tmp/act.$i.txt" || fa_err="${fa_err}explain text lacks 'failed: EOPNOTSUPP'; "
        grep -q 'fallback' "/tmp/act.$i.txt" || fa_err="${fa_err}explain text lacks the fallback; "
    else
        fa_err="${fa_err}no incident on VF 0 ($vf0) in the journal"
    fi
fi
if [ -z "$fa_err" ]; then result PASS fault_action; else result FAIL fault_action "$fa_err"; fi

# 5. forged_line: verdicts (after the agent stopped).
/vfguard scan --format kmsg --json /tmp/kmsg-1.txt >/tmp/scan-1.json 2>/tmp/scan-1.err
# Control: the same texts as kernel records (facility 0) are recognised and trusted.
printf '3,1,1000000,-;%s\n SUBSYSTEM=pci\n DEVICE=+pci:%s\n3,2,1000001,-;%s\n' \
    "$forged1" "$pf" "$forged2" >/tmp/control.kmsg
/vfguard scan --format kmsg --json /tmp/control.kmsg >/tmp/scan-control.json 2>&1
if [ -z "$fl_err" ]; then
    fl_err=$( (
        jq -rs --arg a "${forged1#*: }" --arg b "${forged2#*: }" '
            [.[] | select(.message == $a or .message == $b)] as $f
            | if ($f | length) != 2 then "scan of /dev/kmsg finds \($f | length) of the 2 forged lines"
              else ($f[] | select(.trusted != false) | "forged line trusted by scan: \(tojson)") end' /tmp/scan-1.json 2>&1
        jq -rs 'if length != 2 or any(.[]; .trusted != true or .vf != 1) then
                  "control (same lines as kernel records) not recognised as trusted VF 1 events: \(tojson)"
                else empty end' /tmp/scan-control.json 2>&1
        # No incident on VF 1 at all (igbvf's own "PF still resetting" from VF 1's probe is an
        # Info VF reset and opens none), none holds a forged line as evidence, and nothing was
        # done to VF 1.
        i=1
        while [ "$i" -le "$n" ]; do
            jq -r --arg vf1 "$vf1" --arg i "$i" --arg a "${forged1#*: }" --arg b "${forged2#*: }" '
                (select(.function == $vf1) | "incident \($i) is on VF 1 (\(.observations | length) observations)"),
                (.observations[].observation | select(.trusted == false or .message == $a or .message == $b)
                 | "incident \($i) holds a forged line as evidence: \(.message) (seq \(.seq))"),
                (.actions[] | select(.action.vf == 1 or .action.function == $vf1)
                 | "incident \($i) acted on VF 1: \(.action.kind | tojson) (rule \(.action.rule))")' "/tmp/act.$i.json" 2>&1
            i=$((i + 1))
        done
        grep -E "#[0-9]+ .* on $vf1" /tmp/act.log | sed 's/^/agent log: action on VF 1: /'
        ip -j -d link show "$pfdev" | jq -r '.[0].vfinfo_list[] | select(.vf == 1)
            | if .vlan_list[0].vlan == 42 and .link_state == "auto" then empty
              else "VF 1 state changed: \(tojson)" end'
    ) | tr '\n' ';')
fi
[ "$VERBOSE" = 1 ] && show "scan of /dev/kmsg (forged lines)" /tmp/scan-1.json
if [ -z "$fl_err" ]; then FL_RESULT="PASS"; else FL_RESULT="FAIL"; fi
jq -c 'select(.trusted == false) | {seq, kind, vf, trusted, trust, message}' /tmp/scan-1.json | sed 's/^/    /'

# ---------------------------------------------------------------- evict
# VF 0's netdev is still in tenant-a (VLAN 4094 since fault_action), up there as a pod's would
# be. A second agent, whose ladder is vf_disable then detach (policy-evict), starts; VF 0's driver
# overrides its MAC once more. vf_disable fails (EOPNOTSUPP on igb) and detach, for a netns
# owner, evicts the netdev: it must come back to the host's namespace, down, out of tenant-a,
# with VF 1 left in tenant-b.

say "check evict"
ev_err=
ip -n tenant-a link set "$vf0dev" up 2>&1 | sed 's/^/    ip: /'
ip -n tenant-a link show "$vf0dev" >/tmp/evict-before.txt 2>&1 ||
    ev_err="VF 0's netdev $vf0dev is not in tenant-a before the check: $(cat /tmp/evict-before.txt); "
sed 's/^/    tenant-a: /' /tmp/evict-before.txt
AGENT=
if [ -z "$ev_err" ] && ! agent_start /etc/vfguard/evict.toml /tmp/evict.db /tmp/evict.log; then
    ev_err="vfguard run (evict) did not report running within 15 s; "
fi
in_host() { [ -n "$(netdev_of "$vf0")" ]; }
if [ -z "$ev_err" ]; then
    say "tenant-a's VF driver changes its MAC again ($vf0dev up in tenant-a)"
    ip -n tenant-a link set "$vf0dev" address 52:54:00:aa:bb:ee 2>&1 | sed 's/^/    ip: /'
    wait_for 200 in_host || ev_err="VF 0 ($vf0) has no netdev in the host namespace 20 s after the override; "
fi
[ -n "$AGENT" ] && agent_stop
say "vfguard run (evict) stopped (exit $AGENT_RC)"
show "vfguard run log (evict)" /tmp/evict.log
if [ -z "$ev_err" ]; then
    evdev=$(netdev_of "$vf0")
    ip -j link show dev "$evdev" >/tmp/evict-link.json 2>&1
    say "VF 0 in the host namespace: $(ip -br link show dev "$evdev" 2>&1)"
    n=$(incidents /tmp/evict.db /tmp/evict)
    i=$(incident_of /tmp/evict "$n" "$vf0") && show "vfguard explain --journal /tmp/evict.db $i" "/tmp/evict.$i.txt" 40
    [ "$VERBOSE" = 1 ] && [ -n "$i" ] && show "explain --json $i" "/tmp/evict.$i.json" 300
    ev_err=$( (
        [ "$AGENT_RC" = 0 ] || echo "vfguard run exited $AGENT_RC on SIGTERM"
        jq -r 'if (.[0].flags | index("UP")) == null then empty
               else "VF 0 netdev is up in the host namespace: \(.[0].flags)" end' /tmp/evict-link.json 2>&1
        out=$(ip -n tenant-a -br link show 2>&1)
        ! ip -n tenant-a link show "$evdev" >/dev/null 2>&1 || echo "tenant-a still has $evdev: $out"
        ip -n tenant-b link show "$vf1dev" >/dev/null 2>&1 ||
            echo "VF 1's netdev $vf1dev left tenant-b: $(ip -n tenant-b -br link show 2>&1)"
        /vfguard inventory --json >/tmp/inventory3.json 2>&1
        jq -r --arg pf "$pf" '[.pfs[] | select(.bdf == $pf)][0].vfs[]
            | if .index == 0 and .owner.kind != "host" then "inventory: VF 0 owner \(.owner.kind):\(.owner.name) (want host)"
              elif .index == 1 and .owner.name != "tenant-b" then "inventory: VF 1 owner \(.owner.kind):\(.owner.name) (want netns:tenant-b)"
              else empty end' /tmp/inventory3.json 2>&1
        if [ -z "$i" ]; then
            echo "no incident on VF 0 ($vf0) in /tmp/evict.db ($n incidents)"
        else
            jq -r '
                def want(c; msg): if c then empty else msg end;
                ([.actions[] | select(.action.kind.args.knob == "link_state")][0]) as $dis
                | ([.actions[] | select(.action.kind.action == "detach")][0]) as $det
                | want(.owner.kind == "netns" and .owner.name == "tenant-a";
                       "incident owner \(.owner.kind):\(.owner.name) (want netns:tenant-a)"),
                  want($dis != null and $dis.outcome.error == "EOPNOTSUPP";
                       "vf_disable: \($dis.outcome // "no such action") (want failed: EOPNOTSUPP)"),
                  want($det != null; "no detach action"),
                  want($det == null or ($det.outcome != null and $det.outcome.error == null);
                       "detach outcome \($det.outcome) (want ok)"),
                  want($det == null or $det.action.owner.kind == "netns";
                       "detach decided for owner \($det.action.owner.kind) (want netns)"),
                  want([.actions[].action.vf] | all(. == 0); "actions on other VFs: \([.actions[].action.vf])")
                ' "/tmp/evict.$i.json" 2>&1
        fi
    ) | tr '\n' ';')
fi
if [ -z "$ev_err" ]; then result PASS evict; else result FAIL evict "$ev_err"; fi

# ---------------------------------------------------------------- 4. aer
# A correctable and a non-fatal error injected (aer_inject) on VF 1; the agent (observe mode)
# and scan must attribute them to VF 1 from the log, and the sysfs counters must have moved
# on VF 1 only (the agent turns counter deltas into observations of that function too).

say "check aer"
aer_err=
aer_skip=
aer_failed_early=
bus_of() { echo $((0x$(echo "$1" | cut -d: -f2))); }
slot_of() { echo $((0x$(echo "$1" | cut -d: -f3 | cut -d. -f1))); }
fn_of() { echo "$1" | cut -d. -f2; }
# u32le N: the 4 bytes of N, little-endian, as printf octal escapes.
u32le() { printf '\\%03o\\%03o\\%03o\\%03o' $(($1 & 255)) $((($1 >> 8) & 255)) $((($1 >> 16) & 255)) $((($1 >> 24) & 255)); }
# aer_inject BDF UNCOR COR: write struct aer_error_inj (drivers/pci/pcie/aer_inject.c: u8 bus,
# dev, fn, pad; u32 uncor_status, cor_status, header_log0..3, domain: 32 bytes) in one write.
aer_inject() {
    _dom=$((0x$(echo "$1" | cut -d: -f1)))
    printf "$(printf '\\%03o\\%03o\\%03o\\000' "$(bus_of "$1")" "$(slot_of "$1")" "$(fn_of "$1")")$(u32le "$2")$(u32le "$3")$(u32le 0)$(u32le 0)$(u32le 0)$(u32le 0)$(u32le "$_dom")" >/tmp/einj.bin
    [ "$(wc -c </tmp/einj.bin)" = 32 ] || { echo "struct is $(wc -c </tmp/einj.bin) bytes"; return 1; }
    # Prints nothing when the kernel accepted it, else dd's error (the errno text).
    dd if=/tmp/einj.bin of=/dev/aer_inject bs=32 count=1 2>/tmp/dd.err >/dev/null ||
        { grep -v -e 'records' -e 'copied' /tmp/dd.err || echo "dd failed"; return 1; }
}
aer_total() { # aer_total BDF FILE: the TOTAL_ERR_* count of an AER counter file
    awk '/^TOTAL_ERR_/ { print $2 }' "/sys/bus/pci/devices/$1/$2" 2>/dev/null
}
counters() { # counters BDF: "cor nonfatal fatal"
    echo "$(aer_total "$1" aer_dev_correctable) $(aer_total "$1" aer_dev_nonfatal) $(aer_total "$1" aer_dev_fatal)"
}
[ -c /dev/aer_inject ] || modload aer_inject
if [ ! -c /dev/aer_inject ]; then
    aer_skip="no /dev/aer_inject (aer_inject module: $(grep -c aer_inject /proc/modules) loaded)"
elif [ ! -e "/sys/bus/pci/devices/$vf1/aer_dev_correctable" ]; then
    aer_skip="VF 1 ($vf1) has no AER counters in sysfs: no AER capability"
fi
if [ -z "$aer_skip" ]; then
    agent_start /etc/vfguard/observe.toml /tmp/aer.db /tmp/aer.log || aer_err="vfguard run (observe) did not start; "
    sleep 1.2 # the agent's first counter sample is its baseline
    before_vf=$(counters "$vf1"); before_pf=$(counters "$pf"); before_vf0=$(counters "$vf0")
    say "VF 1 counters (cor nonfatal fatal) before: $before_vf; PF: $before_pf"
    # Correctable: Receiver Error (bit 0; unmasked by default, Advisory Non-Fatal is masked).
    # VFG_AER_COR (kernel command line) overrides the correctable bits, to exercise this path
    # (0x2000, Advisory Non-Fatal, is masked by default: EINVAL).
    out=$(aer_inject "$vf1" 0 "${VFG_AER_COR:-0x1}" | tr '\n' ' ')
    if [ -n "$out" ]; then
        # Injection refused: say why (the kernel logs the reason), and try the PF, whose path
        # to the root port is the same. Without an AER capability on the device or the root
        # port aer_inject answers EPROTONOSUPPORT, without the root port's AER service ENODEV:
        # those make the check SKIP; anything else is a failure.
        pf_out=$(aer_inject "$pf" 0 "${VFG_AER_COR:-0x1}" | tr '\n' ' ')
        why="injecting a correctable error on VF 1 $vf1 failed: $out; on the PF $pf: ${pf_out:-accepted}; kernel: $(kmsg_dump | grep -E 'aer_inject: |AER: ' | tail -n 3 | sed 's/^[^;]*;//' | tr '\n' ' ')"
        case $out in
            *'not supported'* | *'No such device'*) aer_skip=$why ;;
            *) aer_err=$why; aer_failed_early=1 ;;
        esac
    else
        cor_moved() { [ "$(aer_total "$vf1" aer_dev_correctable)" != "${before_vf%% *}" ]; }
        wait_for 50 cor_moved || aer_err="${aer_err}VF 1 aer_dev_correctable did not move within 5 s; "
        # Non-fatal: Completion Timeout (bit 14; not in the default severity mask, so non-fatal).
        out=$(aer_inject "$vf1" 0x4000 0 | tr '\n' ' ')
        [ -z "$out" ] || aer_err="${aer_err}injecting a non-fatal error failed: $out; "
        nf_moved() { [ "$(aer_total "$vf1" aer_dev_nonfatal)" != "$(echo "$before_vf" | cut -d' ' -f2)" ]; }
        wait_for 100 nf_moved || aer_err="${aer_err}VF 1 aer_dev_nonfatal did not move within 10 s; "
        recovered() { kmsg_dump | grep -q 'device recovery'; }
        wait_for 5 recovered
        sleep 1.5 # two counter samples by the agent
    fi
    after_vf=$(counters "$vf1"); after_pf=$(counters "$pf"); after_vf0=$(counters "$vf0")
    say "VF 1 counters after: $after_vf; PF: $after_pf; VF 0: $after_vf0"
    agent_stop
    show "vfguard run log (aer)" /tmp/aer.log
fi
if [ -z "$aer_skip" ] && [ -z "$aer_failed_early" ]; then
    kmsg_dump >/tmp/kmsg-2.txt
    kmsg_dump_aer() { grep -E 'AER: |aer_inject: |PCIe Bus Error|error status' /tmp/kmsg-2.txt | sed 's/^[^;]*;//'; }
    echo "---- kernel AER lines"; kmsg_dump_aer | tail -n 20 | sed 's/^/    /'
    /vfguard scan --format kmsg --root / --json /tmp/kmsg-2.txt >/tmp/scan-2.json 2>/tmp/scan-2.err
    jq -c 'select(.kind | startswith("aer")) | {seq, kind, function, pf, vf, catalog_id, trusted, owner: (.owner.kind + ":" + .owner.name)}' /tmp/scan-2.json 2>/dev/null | sed 's/^/    scan: /'
    [ "$VERBOSE" = 1 ] && show "scan --json" /tmp/scan-2.json 100
    n2=$(incidents /tmp/aer.db /tmp/aer)
    i=$(incident_of /tmp/aer "$n2" "$vf1") && show "vfguard explain --journal /tmp/aer.db $i" "/tmp/aer.$i.txt" 40
    [ "$VERBOSE" = 1 ] && [ -n "$i" ] && show "explain --json $i" "/tmp/aer.$i.json" 300
    aer_err="$aer_err$( (
        # the counters: VF 1's moved by one correctable and one non-fatal, the PF's and VF 0's did not
        set -- $before_vf; b1=$1; b2=$2
        set -- $after_vf
        [ "$1" = $((b1 + 1)) ] || echo "VF 1 correctable counter $b1 -> $1 (want +1)"
        [ "$2" = $((b2 + 1)) ] || echo "VF 1 non-fatal counter $b2 -> $2 (want +1)"
        [ "$before_pf" = "$after_pf" ] || echo "PF counters moved: $before_pf -> $after_pf"
        [ "$before_vf0" = "$after_vf0" ] || echo "VF 0 counters moved: $before_vf0 -> $after_vf0"
        # the log, read by scan: both errors attributed to VF 1's BDF, from kernel records
        jq -rs --arg vf1 "$vf1" '
            def want(c; msg): if c then empty else msg end;
            [.[] | select(.function == $vf1 and .trusted == true)] as $e
            | want(any($e[]; .kind == "aer_correctable"); "scan: no trusted aer_correctable on \($vf1)"),
              want(any($e[]; .kind == "aer_nonfatal"); "scan: no trusted aer_nonfatal on \($vf1)"),
              want(all($e[]; .owner.kind == "netns" and .owner.name == "tenant-b");
                   "scan: owner of \($vf1) events is not netns:tenant-b")' /tmp/scan-2.json 2>&1
        # the agent: an incident on VF 1 (owner tenant-b), both errors attributed there, and an
        # observation from the counters of that function
        if [ -z "$i" ]; then
            echo "no incident on VF 1 ($vf1) in the agent's journal ($n2 incidents)"
        else
            jq -r --arg vf1 "$vf1" '
                def want(c; msg): if c then empty else msg end;
                [.observations[].observation] as $o
                | want(.owner.kind == "netns" and .owner.name == "tenant-b";
                       "journal: incident owner \(.owner.kind):\(.owner.name) (want netns:tenant-b)"),
                  want(any($o[]; .kind == "aer_correctable" and .function == $vf1 and .trusted == true);
                       "journal: no aer_correctable line attributed to \($vf1)"),
                  want(any($o[]; .kind == "aer_nonfatal" and .function == $vf1 and .trusted == true);
                       "journal: no aer_nonfatal line attributed to \($vf1)"),
                  want(any($o[]; .type == "aer" and .function == $vf1 and .nonfatal >= 1);
                       "journal: no observation from the AER counters of \($vf1) (non-fatal delta)"),
                  want(any(.decisions[].decision; .decision == "attributed" and .confidence >= 0.5);
                       "journal: no attribution with confidence >= 0.5")' "/tmp/aer.$i.json" 2>&1
        fi
    ) | tr '\n' ';')"
fi
if [ -n "$aer_skip" ]; then
    result SKIP aer "$aer_skip"
elif [ -n "$aer_err" ]; then
    result FAIL aer "$aer_err"
else
    result PASS aer
fi

if [ "$FL_RESULT" = PASS ]; then result PASS forged_line; else result FAIL forged_line "$fl_err"; fi

say "checks done: $(grep -c '^PASS' "$RESULTS") passed, $(grep -c '^FAIL' "$RESULTS") failed, $(grep -c '^SKIP' "$RESULTS") skipped"
exit $FAILED
