#!/usr/bin/env bash
# The metrics, the alert rules and the dashboard against Prometheus's own tools:
#   1. `vfguard run --sim demo` on a temporary socket; its /metrics must pass
#      `promtool check metrics` and hold every family docs/metrics.md lists;
#   2. deploy/prometheus/vfguard-alerts.yml must pass `promtool check rules` and its unit tests
#      (`promtool test rules`);
#   3. every vfguard_* series the rules and the Grafana dashboard query must be one the agent
#      exposes.
# promtool comes from Debian's prometheus package, installed here when missing (needs root).
set -euo pipefail
cd "$(dirname "$0")/../.."

need() {
    local tool=$1 pkg=$2
    command -v "$tool" >/dev/null && return
    if [ "$(id -u)" != 0 ]; then
        echo "prometheus test: $tool is missing; run as root (it installs Debian's $pkg) or install $pkg" >&2
        exit 1
    fi
    echo "prometheus test: installing $pkg for $tool"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$pkg" >/dev/null \
        || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$pkg" >/dev/null; }
}
need promtool prometheus
need curl curl

cargo build -q --locked -p vfguard
bin=target/debug/vfguard
tmp=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
fail() { echo "prometheus test: FAIL: $*" >&2; exit 1; }

"$bin" run --sim demo --speed 20 --linger --journal "$tmp/j.db" --socket "$tmp/s.sock" --log-format json \
    2>"$tmp/log" &
pid=$!
# Wait for the scenario's end (45 virtual seconds); --linger keeps the daemon serving after it.
now=0
for _ in $(seq 1 300); do
    now=$("$bin" status --socket "$tmp/s.sock" --json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin).get("now_ms", 0))' 2>/dev/null || echo 0)
    [ "$now" -ge 45000 ] && break
    sleep 0.1
done
[ "$now" -ge 45000 ] || fail "the daemon did not reach the scenario's end; its log: $(tail -5 "$tmp/log")"
curl -sf --unix-socket "$tmp/s.sock" http://vfguard/metrics >"$tmp/metrics" || fail "GET /metrics"

echo "== promtool check metrics"
promtool check metrics <"$tmp/metrics" || fail "promtool check metrics"
for family in fault_events_total attributions_total actions_total action_duration_seconds \
    detect_to_action_seconds kmsg_records_read_total kmsg_records_lost_total incidents_open \
    topology_version vf_link_enabled vf_spoof_check vf_in_incident build_info; do
    grep -q "^vfguard_$family" "$tmp/metrics" || fail "/metrics has no vfguard_$family"
done
grep -q '^vfguard_actions_total{action="detach",result="ok"} 1$' "$tmp/metrics" \
    || fail "the demo's detach is not counted: $(grep actions_total "$tmp/metrics")"
grep -q '"message":"running on the simulated host' "$tmp/log" || fail "the log is not JSON lines: $(head -2 "$tmp/log")"
curl -sf -H 'Accept: application/openmetrics-text; version=1.0.0' --unix-socket "$tmp/s.sock" \
    http://vfguard/metrics >"$tmp/openmetrics" || fail "GET /metrics (OpenMetrics)"
[ "$(tail -1 "$tmp/openmetrics")" = "# EOF" ] || fail "the OpenMetrics exposition does not end with # EOF"
diff <(grep -v '^#' "$tmp/metrics") <(grep -v '^#' "$tmp/openmetrics") >/dev/null \
    || fail "the two formats hold different samples"

echo "== promtool check rules / test rules"
promtool check rules deploy/prometheus/vfguard-alerts.yml || fail "promtool check rules"
(cd deploy/prometheus && promtool test rules vfguard-alerts.test.yml) || fail "promtool test rules"

echo "== the rules and the dashboard query what the agent exposes"
# Sample names and family names (a histogram family is named in the rules' prose).
exposed=$(sed -n 's/^\(# TYPE \)\{0,1\}\(vfguard_[a-z_]*\).*/\2/p' "$tmp/metrics" | sort -u)
for used in $(grep -oh 'vfguard_[a-z_]*' deploy/prometheus/vfguard-alerts.yml deploy/grafana/vfguard-dashboard.json | sort -u); do
    grep -qx "$used" <<<"$exposed" || fail "$used is queried but the agent does not expose it"
done
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["panels"], "no panels"' \
    deploy/grafana/vfguard-dashboard.json || fail "the dashboard is not valid JSON"
echo "prometheus test: passed"
