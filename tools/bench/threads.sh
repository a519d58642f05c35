#!/usr/bin/env bash
# Where a later inventory's server CPU goes, per thread, for one or two parc-server binaries
# alternated on copies of one kept P3 database: tells apart changes that move the server's CPU
# by less than run.sh's run-to-run spread (~10 %).
#
#   PARC_BENCH_KEEP=/tmp/p3 tools/bench/run.sh P3        # once: the fleet and its database
#   tools/bench/threads.sh /tmp/p3 build/release/server/parc-server [other/parc-server]
#
# Each measurement: the kept server-tls data copied, the server started on it, every device's
# round-1 inventory sent once (warms the server's caches and the page cache, as a server in
# service is), then round-2 inventories (each a new history row) for MEASURE_SECONDS seconds at 128
# in flight, the server's threads' CPU (/proc) read before and after. Prints µs of CPU per
# inventory for the writer, the answerer, the checkpointer, the check-in flusher and the rest
# (gRPC's threads with Parc's handlers), the total and the rate. Env: REPS (alternations, 2),
# MEASURE_SECONDS (20), BUILD_DIR (parc-sim's, build/release).
#
# FIRST=1 measures first inventories instead (each device's first, as P3's first row): KEPT is
# then a fleet enrolled without inventories (PARC_BENCH_KEEP=KEPT run.sh P1), the warm pass is
# one check-in per device, and the measured calls are round-0 inventories of distinct devices.
set -euo pipefail
cd "$(dirname "$0")/../.."

KEPT=${1:?usage: threads.sh KEPT_DIR SERVER [SERVER]}
shift
[ $# -ge 1 ] || { echo "usage: threads.sh KEPT_DIR SERVER [SERVER]" >&2; exit 2; }
BINARIES=("$@")
REPS=${REPS:-2}
FIRST=${FIRST:-0}
DURATION=${MEASURE_SECONDS:-20}
SIM=${BUILD_DIR:-build/release}/tools/sim/parc-sim
[ -x "$SIM" ] || { echo "threads.sh: $SIM missing (build parc-sim)" >&2; exit 2; }
[ -d "$KEPT/server-tls" ] && [ -d "$KEPT/fleet" ] ||
  { echo "threads.sh: $KEPT has no server-tls/ and fleet/ (PARC_BENCH_KEEP=... run.sh P3)" >&2; exit 2; }
DEVICES=$(wc -l <"$KEPT/fleet/fleet.tsv")
TICK_US=$((1000000 / $(getconf CLK_TCK)))

WORK=$(mktemp -d)
SERVER_PID=""
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

# "name ticks" for every thread of the process (utime + stime).
thread_ticks() {
  local t
  for t in /proc/"$1"/task/*; do
    printf '%s %s\n' "$(cat "$t/comm" 2>/dev/null || echo gone)" \
      "$(awk '{print $14 + $15}' "$t/stat" 2>/dev/null || echo 0)"
  done
}

measure() {  # binary -> one line of figures
  local bin=$1 data=$WORK/server port=$WORK/port
  rm -rf "$data" "$port"
  cp -a "$KEPT/server-tls" "$data"
  rm -f "$data/parc-server.lock"
  "$bin" --data-dir "$data" --listen 127.0.0.1:0 --port-file "$port" \
    --artifact-listen 127.0.0.1:0 --log-level warn --checkin-interval 1h >"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 300); do [ -s "$port" ] && break; sleep 0.1; done
  [ -s "$port" ] || { cat "$WORK/server.log" >&2; exit 1; }
  local addr=127.0.0.1:$(cat "$port") conn=(--ca "$data/tls/ca.pem")
  local warm=(--workload inventory --round 1) run=(--round 2)
  [ "$FIRST" = 1 ] && warm=(--workload checkin) run=(--round 0)
  "$SIM" load --server "$addr" "${conn[@]}" --fleet "$KEPT/fleet" "${warm[@]}" \
    --concurrency 32 --calls "$DEVICES" >"$WORK/warm.json"
  thread_ticks "$SERVER_PID" >"$WORK/before"
  "$SIM" load --server "$addr" "${conn[@]}" --fleet "$KEPT/fleet" --workload inventory \
    --concurrency 128 --duration "$DURATION" --warmup 0 "${run[@]}" >"$WORK/run.json"
  thread_ticks "$SERVER_PID" >"$WORK/after"
  kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
  python3 - "$WORK/before" "$WORK/after" "$WORK/run.json" "$TICK_US" "$bin" <<'EOF'
import collections, json, sys
def ticks(path):
    by = collections.Counter()
    for line in open(path):
        name, t = line.rsplit(" ", 1)
        by[name] += int(t)
    return by
before, after = ticks(sys.argv[1]), ticks(sys.argv[2])
result = json.load(open(sys.argv[3]))["result"]
calls, tick_us = result["calls"], int(sys.argv[4])
groups = collections.Counter()
named = {"parc-writer": "writer", "parc-answers": "answerer", "parc-checkpoint": "checkpointer",
         "parc-checkins": "flusher"}
for name in after:
    groups[named.get(name, "grpc+other")] += after[name] - before.get(name, 0)
us = {g: groups[g] * tick_us / max(calls, 1) for g in groups}
total = sum(us.values())
cols = ["writer", "checkpointer", "answerer", "flusher", "grpc+other"]
print(f"{sys.argv[5][-40:]:>40}  " + "  ".join(f"{c} {us.get(c, 0):6.1f}" for c in cols) +
      f"  total {total:6.1f} µs  {result['throughput']:.0f}/s  errors {result['errors']}")
EOF
}

echo "threads.sh: $DEVICES devices, $([ "$FIRST" = 1 ] && echo first || echo later) inventories, ${DURATION} s per measurement, $REPS alternations"
for rep in $(seq 1 "$REPS"); do
  for bin in "${BINARIES[@]}"; do measure "$bin"; done
done
