#!/usr/bin/env bash
# A two-host fleet on simulated hosts, in one command: a nats-server with JetStream on
# loopback (scripts/nats.sh), two agents (hv-1, hv-2) each running a simulated host and
# publishing to it, then `vfguard fleet` showing both hosts' incidents and the VM (one libvirt
# UUID) that flooded MDD on both, as after a live migration.
#
#   scripts/fleet-demo.sh            (installs Debian's nats-server first when missing: root)
#   VFGUARD_NATS_PORT=14222 scripts/fleet-demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
port=${VFGUARD_NATS_PORT:-14222}
export VFGUARD_NATS_DIR=${VFGUARD_NATS_DIR:-$(mktemp -d /tmp/vfguard-fleet-demo.XXXXXX)}
scripts/nats.sh install
cargo build --release --quiet
vfguard=target/release/vfguard
url=$(scripts/nats.sh start "$port")
trap 'scripts/nats.sh stop' EXIT
echo "== the bus: $url (JetStream, store in $VFGUARD_NATS_DIR)"
for host in hv-1 hv-2; do
    echo "== $host: a simulated i40e host; the tenant evil-2 floods Malicious Driver Detection"
    "$vfguard" run --sim testdata/scenarios/mdd-flood-i40e.toml --speed 0 \
        --journal "$VFGUARD_NATS_DIR/$host.db" --socket "$VFGUARD_NATS_DIR/$host.sock" \
        --log-format text --fleet "$url" --site demo --fleet-host "$host" 2>&1 |
        grep -E "CONTAINED|publishing to the fleet" || true
done
echo "== vfguard fleet --url $url"
"$vfguard" fleet --url "$url"
