#!/usr/bin/env bash
# /metrics of a running parc-server, after some traffic, must pass `promtool check metrics`
# (Debian's prometheus package). Exits 77 (skipped) without promtool.
#   metrics_check.sh BUILD_DIR
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "$1" && pwd)
command -v promtool >/dev/null || { echo "skipped: promtool not installed"; exit 77; }
WORK=$(mktemp -d /tmp/parc-metrics.XXXXXX)
PID=""
trap '[ -n "$PID" ] && kill $PID 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"' EXIT
"$BUILD/server/parc-server" --data-dir "$WORK/server" --listen 127.0.0.1:0 \
  --port-file "$WORK/port" --artifact-listen 127.0.0.1:0 --log-level warn >"$WORK/log" 2>&1 &
PID=$!
for _ in $(seq 1 100); do [ -s "$WORK/port" ] && break; sleep 0.1; done
export PARC_SERVER=127.0.0.1:$(cat "$WORK/port") PARC_CA="$WORK/server/tls/ca.pem"
export PARC_TOKEN_FILE="$WORK/server/admin.token"
# Traffic: successes and errors, so that every family has samples.
"$BUILD/tools/parcctl/parcctl" establishments import "$ROOT/tests/data/annuaire-occitanie.csv" >/dev/null
"$BUILD/tools/parcctl/parcctl" devices show nope >/dev/null 2>&1 || true
TOKEN=$("$BUILD/tools/parcctl/parcctl" tokens create --uai 0310036W --json |
  sed -n 's/.*"token": "\(.*\)".*/\1/p')
"$BUILD/agent/parc-agent" enroll --root "$ROOT/tests/data/laptop" --state-dir "$WORK/agent" \
  --server "$PARC_SERVER" --ca "$PARC_CA" --token "$TOKEN" --config /dev/null >/dev/null
"$BUILD/agent/parc-agent" run --once --root "$ROOT/tests/data/laptop" --state-dir "$WORK/agent" \
  --config /dev/null >/dev/null
PORT=$(sed -n 's/.*dashboard at https:\/\/localhost:\([0-9]*\).*/\1/p' "$WORK/log")
curl -sf --cacert "$PARC_CA" "https://localhost:$PORT/healthz" | grep -qx ok
curl -sf --cacert "$PARC_CA" "https://localhost:$PORT/metrics" >"$WORK/metrics"
grep -q 'parc_rpcs_total{method="CheckIn",code="OK"} 1' "$WORK/metrics"
grep -q 'parc_rpcs_total{method="GetDevice",code="NOT_FOUND"} 1' "$WORK/metrics"
grep -q "^parc_store_commit_seconds_count [1-9]" "$WORK/metrics" || { cat "$WORK/metrics"; exit 1; }
grep -q '^parc_rpc_duration_seconds_count{method="CheckIn"} 1$' "$WORK/metrics" ||
  { cat "$WORK/metrics"; exit 1; }
grep -q '^parc_rpc_duration_seconds_bucket{method="CheckIn",le="+Inf"} 1$' "$WORK/metrics"
grep -q '^parc_checkin_cache_lookups_total{result="miss"} [1-9]' "$WORK/metrics" ||
  { cat "$WORK/metrics"; exit 1; }
promtool check metrics <"$WORK/metrics"
echo "metrics: promtool accepts $(grep -vc '^#' "$WORK/metrics") samples"
