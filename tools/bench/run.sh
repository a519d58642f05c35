#!/usr/bin/env bash
# Benchmarks P1-P10 of docs/performance.md, each figure next to a reference measured in the same run
# on the same machine, and the ratio. Results: a table on stdout and build/bench/results.json.
#
#   tools/bench/run.sh            full size: 300,000 devices, 1 GiB artifact (about 15 minutes)
#   tools/bench/run.sh --quick    tiny sizes, only to prove the benchmarks still work (CI)
#   tools/bench/run.sh P1 P6      only some rows (with or without --quick)
#   PARC_BENCH_DEVICES=50000 tools/bench/run.sh P2    another fleet size
#   PARC_BENCH_INVENTORY_CONCURRENCY=32 tools/bench/run.sh P3   fewer inventories in flight
#   PARC_BENCH_KEEP=/tmp/bench300k tools/bench/run.sh P16   keep the data (profiling)
#   tools/bench/run.sh P13        SQLite and PostgreSQL side by side (P1, P3, P5 on each)
#   tools/bench/run.sh P11        central egress with an establishment relay (nginx) and without
#   tools/bench/run.sh P12        2,000 concurrent artifact downloads: parc-server, nginx, both
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
QUICK=0
ROWS=()
for a in "$@"; do
  case "$a" in
    --quick) QUICK=1 ;;
    P*) ROWS+=("$a") ;;
    *) echo "usage: $0 [--quick] [P1 ... P13 P15 P16]" >&2; exit 2 ;;
  esac
done
[ ${#ROWS[@]} -eq 0 ] && ROWS=(P1 P2 P3 P4 P5 P6 P7 P8 P9 P10 P11 P12 P13 P15 P16)
want() { local r; for r in "${ROWS[@]}"; do [ "$r" = "$1" ] && return 0; done; return 1; }

if [ "$QUICK" = 1 ]; then
  DEVICES=2000; DURATION=3s; WARMUP=1s; OPEN_RATE=500; ARTIFACT_MIB=32; RUNS=1
  P3_DURATION=3s; P3_WARMUP=1s
else
  DEVICES=300000; DURATION=20s; WARMUP=3s; OPEN_RATE=5000; ARTIFACT_MIB=1024; RUNS=3
  # P3's runs alternate (inventory_load): each a third of the fleet, 12 s at ~5,500/s is
  # ~66,000 of its 100,000 devices.
  P3_DURATION=10s; P3_WARMUP=2s
fi
DEVICES=${PARC_BENCH_DEVICES:-$DEVICES}
# P3's calls in flight (Parc and the echo alike): 128, as P1's check-ins and the minimal client.
INVENTORY_CONCURRENCY=${PARC_BENCH_INVENTORY_CONCURRENCY:-128}

tools/deps.sh --bench >/dev/null
BUILD=${BUILD_DIR:-build/release}
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPARC_BUILD_TESTS=OFF >/dev/null
cmake --build "$BUILD" -j "$(nproc)" --target parc-server parcctl parc-agent parc-sim parc-bundle \
  parc-bench-client parc-bench-download >/dev/null
SERVER=$ROOT/$BUILD/server/parc-server
CTL=$ROOT/$BUILD/tools/parcctl/parcctl
AGENT=$ROOT/$BUILD/agent/parc-agent
SIM=$ROOT/$BUILD/tools/sim/parc-sim
BUNDLE=$ROOT/$BUILD/tools/bundle/parc-bundle
MIN_CLIENT=$ROOT/$BUILD/tools/parc-bench-client
DOWNLOAD_CLIENT=$ROOT/$BUILD/tools/parc-bench-download

OUT=$ROOT/build/bench
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/parc-bench.XXXXXX)
PIDS=()
PG_STOP=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ ${#PG_STOP[@]} -eq 0 ] || "${PG_STOP[@]}" >/dev/null 2>&1 || true
  # PARC_BENCH_KEEP=DIR keeps the fleet and the servers' data there (to profile a page).
  if [ -n "${PARC_BENCH_KEEP:-}" ]; then rm -rf "$PARC_BENCH_KEEP"; mv "$WORK" "$PARC_BENCH_KEEP"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
RESULTS=()
json() { python3 -c "import json,sys; d=json.loads(sys.argv[1]); print(eval(sys.argv[2], {}, {'d': d}))" "$@"; }
row() {  # id what figure reference ratio target verdict
  printf '%-4s %-52s %-20s %-26s %-8s %-18s %s\n' "$@"
  RESULTS+=("$(python3 -c 'import json,sys; print(json.dumps(dict(zip(["row","what","figure","reference","ratio","target","verdict"], sys.argv[1:]))))' "$@")")
}
# At the quick size the figures only prove the benchmark runs: no verdict.
verdict() {
  if [ "$QUICK" = 1 ]; then echo "(quick size)"; return; fi
  python3 -c "import sys; print('met' if $1 else 'NOT MET')"
}

start_server() {  # name tls|insecure [extra args...] -> sets S_ADDR S_DATA S_PID S_WEB
  local name=$1 mode=$2; shift 2
  S_DATA=$WORK/$name
  local flags=(--data-dir "$S_DATA" --listen 127.0.0.1:0 --port-file "$WORK/$name.port"
               --artifact-listen 127.0.0.1:0 --log-level warn --checkin-interval 1h "$@")
  [ "$mode" = insecure ] && flags+=(--insecure)
  rm -f "$WORK/$name.port"
  "$SERVER" "${flags[@]}" >"$WORK/$name.log" 2>&1 &
  S_PID=$!
  PIDS+=("$S_PID")
  for _ in $(seq 1 200); do [ -s "$WORK/$name.port" ] && break; sleep 0.1; done
  S_ADDR=127.0.0.1:$(cat "$WORK/$name.port")
  S_WEB=$(sed -n 's/.*dashboard at \(https\{0,1\}:\/\/[^ ]*\).*/\1/p' "$WORK/$name.log")
  if [ "$mode" = insecure ]; then S_CONN=(--insecure); else S_CONN=(--ca "$S_DATA/tls/ca.pem"); fi
}
# A private PostgreSQL for P13 (initdb in WORK, Unix socket only, durable as configured by
# default: fsync on), run as the user postgres when root. -> PG_URI
start_postgres() {
  local bin; bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  local dir=$WORK/pg as=()
  mkdir -p "$dir"
  if [ "$(id -u)" = 0 ]; then chmod 711 "$WORK"; chown postgres "$dir"; as=(runuser -u postgres --); fi
  "${as[@]}" "$bin/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 >/dev/null
  "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -w -s -l "$dir/log" \
    -o "-k $dir -c listen_addresses='' -c shared_buffers=512MB" start
  PG_STOP=("${as[@]}" "$bin/pg_ctl" -D "$dir/data" -m fast -s stop)
  PG_PSQL=("${as[@]}" "$bin/psql" -h "$dir" -U postgres -d parc)
  "${as[@]}" "$bin/psql" -h "$dir" -U postgres -qc "CREATE DATABASE parc" >/dev/null
  PG_URI="host=$dir user=postgres dbname=parc"
}
# Sum and count of the server's GetDeploymentReport times (its own histogram).
report_seconds_at() {  # dashboard URL
  curl -sk "${1%/}/metrics" | awk '/^parc_rpc_duration_seconds_(sum|count)\{method="GetDeploymentReport"\}/ {print $2}' | tr '\n' ' '
}
pg_cpu_ticks() {  # user+system ticks of every PostgreSQL process (backends included)
  local t=0 p
  for p in $(pgrep -u postgres postgres); do
    t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
  done
  echo "$t"
}
ctl() { "$CTL" --server "$S_ADDR" "${S_CONN[@]}" --token-file "$S_DATA/admin.token" "$@"; }
prepare_fleet() {  # region, annuaire, delivery list, region token, enrollment of every device
  [ -d "$WORK/fleet" ] || "$SIM" region --devices "$DEVICES" --out "$WORK/fleet" >/dev/null
  ctl establishments import "$WORK/fleet/annuaire.csv" >/dev/null
  local t0 t1; t0=$(date +%s%N)
  ctl devices preassign "$WORK/fleet/delivery.csv" >/dev/null
  t1=$(date +%s%N); PREASSIGN_MS=$(( (t1 - t0) / 1000000 ))
  local token; token=$(ctl tokens create --region --max-uses 1000000 --json | sed -n 's/.*"token": "\(.*\)".*/\1/p')
  ENROLL_JSON=$("$SIM" enroll --server "$S_ADDR" "${S_CONN[@]}" --fleet "$WORK/fleet" \
    --token "$token" --concurrency 128)
}
start_echo() {  # tls|insecure -> E_ADDR
  local flags=(--listen 127.0.0.1:0 --port-file "$WORK/echo.port")
  [ "$1" = tls ] && flags+=(--tls-cert "$S_DATA/tls/server.pem" --tls-key "$S_DATA/tls/server.key")
  rm -f "$WORK/echo.port"
  "$SIM" echo-server "${flags[@]}" >/dev/null 2>&1 &
  E_PID=$!
  PIDS+=("$E_PID")
  for _ in $(seq 1 100); do [ -s "$WORK/echo.port" ] && break; sleep 0.1; done
  E_ADDR=127.0.0.1:$(cat "$WORK/echo.port")
}
load() {  # addr workload concurrency [extra]
  local addr=$1 workload=$2 conc=$3; shift 3
  "$SIM" load --server "$addr" "${S_CONN[@]}" --fleet "$WORK/fleet" --workload "$workload" \
    --concurrency "$conc" --duration "$DURATION" --warmup "$WARMUP" "$@"
}
# P3: Parc's inventories alternated with echo runs of the same bytes, RUNS of Parc's (3 at full
# size, 1 quick): echo, Parc, echo, Parc, ..., echo. Each Parc run calls its own shard of the
# fleet (--shard K/RUNS), so that a run of first inventories sends each device its first once,
# and is set against the mean of the two echo runs beside it. On this VM an echo's CPU per call
# moved from 64 to 125 µs between runs minutes apart, and Parc's first inventory from 147 to
# 221 µs between hours (docs/performance.md): one bracket read part of that drift as Parc's
# own, the median over alternated runs much less. [extra load args] -> p ps pc (Parc's rate,
# server and client µs per call: medians over its runs), e es ec (the echo's, medians over its
# runs), rate_ratio cpu_ratio (medians of each Parc run's ratio to its bracket), cpu_ratios
# (each run's), es_range (the echo runs' server µs), errors (Parc's, all runs).
inventory_load() {
  local DURATION=$P3_DURATION WARMUP=$P3_WARMUP k run parc
  local -a echoes=() parcs=()
  echo_inventory_load run "$@"; echoes+=("$run")
  for k in $(seq 0 $((RUNS - 1))); do
    parc=$(load "$S_ADDR" inventory "$INVENTORY_CONCURRENCY" --server-pid "$S_PID" \
      --shard "$k/$RUNS" "$@")
    parcs+=("$parc")
    echo_inventory_load run "$@"; echoes+=("$run")
  done
  eval "$(python3 - "$RUNS" "${parcs[@]}" "${echoes[@]}" <<'EOF'
import json, statistics, sys
n = int(sys.argv[1])
parcs = [json.loads(a) for a in sys.argv[2:2 + n]]
echoes = [json.loads(a)["result"] for a in sys.argv[2 + n:]]
med = statistics.median
def field(runs, f): return [r[f] for r in runs]
pr = [r["result"] for r in parcs]
def ratios(f):  # each Parc run's figure over the mean of the two echo runs beside it
    return [r[f] / ((echoes[i][f] + echoes[i + 1][f]) / 2) for i, r in enumerate(pr)]
cpu = ratios("server_cpu_us_per_call")
rate = ratios("throughput")
# A run that started more calls than its shard has devices called some device twice.
wrapped = any(r["result"]["started"] > r["shard_devices"] for r in parcs)
out = {
    "p": med(field(pr, "throughput")), "ps": med(field(pr, "server_cpu_us_per_call")),
    "pc": med(field(pr, "client_cpu_us_per_call")), "e": med(field(echoes, "throughput")),
    "es": med(field(echoes, "server_cpu_us_per_call")),
    "ec": med(field(echoes, "client_cpu_us_per_call")), "rate_ratio": round(med(rate), 2),
    "cpu_ratio": round(med(cpu), 2), "cpu_ratios": "/".join(f"{c:.2f}" for c in cpu),
    "es_range": "/".join(f"{e['server_cpu_us_per_call']:.0f}" for e in echoes),
    "errors": sum(r["errors"] for r in pr), "wrapped": int(wrapped)}
for k, v in out.items(): print(f"{k}='{v}'")
EOF
)"
  if [ "$wrapped" = 1 ] && [ "$QUICK" = 0 ]; then
    echo "P3: a run started more calls than its shard has devices (some devices called twice):" \
      "shorten P3_DURATION or enlarge the fleet" >&2
    exit 1
  fi
}
echo_inventory_load() {  # variable [extra load args]: one echo run of P3's bytes into $variable
  local var=$1; shift
  start_echo tls
  local out
  out=$(load "$E_ADDR" inventory "$INVENTORY_CONCURRENCY" --server-pid "$E_PID" "$@")
  kill "$E_PID"; wait "$E_PID" 2>/dev/null || true
  printf -v "$var" '%s' "$out"
}
rss_mib() { awk '/VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$1/status"; }

echo "Parc benchmarks ($([ $QUICK = 1 ] && echo quick || echo full): $DEVICES devices) on $(nproc) cores, $(free -g | awk '/Mem/ {print $2}') GiB, $(date -u +%F)"
printf '%-4s %-52s %-20s %-26s %-8s %-18s %s\n' row what figure reference ratio target verdict

# P1, P2, P3, P4, P5, P10, P15, P16 share servers with an enrolled fleet.
if want P1 || want P2 || want P3 || want P4 || want P5 || want P10 || want P15 || want P16; then
  for mode in insecure tls; do
    want P1 || [ "$mode" = tls ] || continue
    start_server "server-$mode" "$mode"
    prepare_fleet
    if want P1; then
      # CPU per call of the server (--server-pid) and of the load generator, next to each rate.
      # Cold: most devices check in for the first time since the server started.
      cold=$(load "$S_ADDR" checkin 128 --server-pid "$S_PID")
      # Steady state: every device has checked in once since (as within any hour of a fleet).
      "$SIM" load --server "$S_ADDR" "${S_CONN[@]}" --fleet "$WORK/fleet" --workload checkin \
        --concurrency 128 --calls "$DEVICES" >/dev/null
      parc=$(load "$S_ADDR" checkin 128 --server-pid "$S_PID")
      start_echo "$mode"
      echo_=$(load "$E_ADDR" checkin 128 --server-pid "$E_PID")
      # The least a client can spend per call: the minimal async client, same bytes, same echo.
      pl=$("$SIM" payload --fleet "$WORK/fleet")
      min=$("$MIN_CLIENT" --server "$E_ADDR" "${S_CONN[@]}" --method "$(json "$pl" "d['method']")" \
        --request-hex "$(json "$pl" "d['request_hex']")" --bearer "$(json "$pl" "d['bearer']")" \
        --concurrency 128 --duration "$DURATION" --warmup "$WARMUP")
      kill "$E_PID"; wait "$E_PID" 2>/dev/null || true
      p=$(json "$parc" "d['result']['throughput']"); e=$(json "$echo_" "d['result']['throughput']")
      ps=$(json "$parc" "d['result']['server_cpu_us_per_call']"); pc=$(json "$parc" "d['result']['client_cpu_us_per_call']")
      es=$(json "$echo_" "d['result']['server_cpu_us_per_call']"); ec=$(json "$echo_" "d['result']['client_cpu_us_per_call']")
      mc=$(json "$min" "d['client_cpu_us_per_call']"); mt=$(json "$min" "d['throughput']")
      tls=$([ $mode = tls ] && echo on || echo off)
      ratio=$(python3 -c "print(round($p / $e, 2))")
      row P1 "check-ins/s, $DEVICES devices enrolled, steady state, TLS $tls" \
        "$(printf '%.0f/s (srv %.0f, cli %.0f µs)' "$p" "$ps" "$pc")" \
        "$(printf 'echo %.0f/s (srv %.0f, cli %.0f µs)' "$e" "$es" "$ec")" \
        "$ratio" "≥ 0.6×" "$(verdict "$ratio >= 0.6")"
      cp_=$(json "$cold" "d['result']['throughput']"); cs=$(json "$cold" "d['result']['server_cpu_us_per_call']")
      row P1 "check-ins/s, cold (first check-in since start), TLS $tls" \
        "$(printf '%.0f/s (srv %.0f µs)' "$cp_" "$cs")" "$(printf 'echo %.0f/s' "$e")" \
        "$(python3 -c "print(round($cp_ / $e, 2))")" "-" "-"
      row P1 "server CPU per check-in / per echo call, TLS $tls" "$(printf '%.0f µs' "$ps")" \
        "$(printf 'echo %.0f µs' "$es")" "$(python3 -c "print(round($ps / $es, 2))")" "≤ 2×" \
        "$(verdict "$ps <= 2 * $es")"
      row P1 "load generator CPU per call (echo), TLS $tls" "$(printf 'parc-sim %.0f µs' "$ec")" \
        "$(printf 'minimal client %.0f µs, %.0f/s' "$mc" "$mt")" "$(python3 -c "print(round($ec / $mc, 2))")" \
        "≤ 1.2×" "$(verdict "$ec <= 1.2 * $mc")"
    fi
    [ "$mode" = tls ] || { kill "$S_PID"; wait "$S_PID" 2>/dev/null || true; }
  done
  if want P2; then
    r=$(load "$S_ADDR" checkin 0 --rate "$OPEN_RATE")
    p99=$(json "$r" "d['result']['p99_ms']"); p999=$(json "$r" "d['result']['p999_ms']")
    errors=$(json "$r" "d['result']['errors']")
    # Reference: the same open loop against the no-op echo server (the machine's own tail).
    start_echo tls
    e=$(load "$E_ADDR" checkin 0 --rate "$OPEN_RATE")
    kill "$E_PID"; wait "$E_PID" 2>/dev/null || true
    ep99=$(json "$e" "d['result']['p99_ms']"); ep999=$(json "$e" "d['result']['p999_ms']")
    row P2 "check-in latency, open loop at $OPEN_RATE/s, TLS" "p99 ${p99}, p99.9 ${p999} ms" \
      "echo p99 ${ep99}, p99.9 ${ep999}" "${errors} err" "p99<10, p99.9<50" \
      "$(verdict "$p99 < 10 and $p999 < 50 and $errors == 0")"
  fi
  if want P3; then
    if ! want P1; then
      # An agent checks in before it delivers its outbox (agent/core/daemon.cc), so the server
      # has just read the device's credential when its inventory arrives: one check-in per
      # device first, as P1's passes leave the server when P1 runs before (without it, every
      # first inventory read its device from the database: 220-280 µs of server CPU against
      # 180-190 after P1, 2026-12-03).
      "$SIM" load --server "$S_ADDR" "${S_CONN[@]}" --fleet "$WORK/fleet" --workload checkin \
        --concurrency 128 --calls "$DEVICES" >/dev/null
    fi
    inventory_load
    row P3 "full inventories (~1,000 packages) ingested/s, TLS" \
      "$(printf '%.0f/s (srv %.0f, cli %.0f µs)' "$p" "$ps" "$pc")" \
      "$(printf 'echo %.0f/s (srv %.0f, cli %.0f µs)' "$e" "$es" "$ec")" \
      "$rate_ratio" "≥ 2,500/s, ≥ 0.4×" "$(verdict "$p >= 2500 and $rate_ratio >= 0.4")"
    row P3 "server CPU per inventory / per echo of the same bytes" \
      "$(printf '%.0f µs (runs %s)' "$ps" "$cpu_ratios")" \
      "$(printf 'echo %.0f µs (%s)' "$es" "$es_range")" "$cpu_ratio" "≤ 2×" \
      "$(verdict "$cpu_ratio <= 2")"
  fi
  if want P3 || want P4 || want P10 || want P5 || want P15 || want P16; then
    # Every device reports one full inventory (the fleet's first day).
    "$SIM" load --server "$S_ADDR" "${S_CONN[@]}" --fleet "$WORK/fleet" --workload inventory \
      --concurrency 32 --calls "$DEVICES" >"$WORK/inventory-pass.json"
  fi
  if want P4; then
    db=$(du -cb "$S_DATA"/parc.db* | awk 'END {print $1}')
    # Naive: every device × every package stored as its own row (name, version, arch and two
    # keys, ~64 bytes with SQLite's overhead).
    naive=$(python3 -c "print($DEVICES * 1000 * 64)")
    row P4 "database size, $DEVICES devices with inventories" "$(python3 -c "print(f'{$db/2**20:.0f} MiB')")" \
      "naive $(python3 -c "print(f'{$naive/2**30:.1f} GiB')")" "$(python3 -c "print(round($db / $naive, 3))")" \
      "≤ 1 GB (at 300k)" "$(verdict "$db * 300000 / $DEVICES <= 1e9")"
  fi
  if want P3; then
    # The fleet's steady state: each device's next inventory (new hash, its firmware version
    # moved, same software list), after every device reported its first (after P4,
    # which measures the database with one inventory per device). Same echo, same bytes.
    inventory_load --round 1
    # At any size, a later inventory the server refuses is a failure, not a figure.
    [ "$errors" = 0 ] || { echo "P3: $errors later inventories failed" >&2; exit 1; }
    row P3 "later inventories/s (each device's second), TLS" \
      "$(printf '%.0f/s (srv %.0f, cli %.0f µs)' "$p" "$ps" "$pc")" \
      "$(printf 'echo %.0f/s (srv %.0f, cli %.0f µs)' "$e" "$es" "$ec")" \
      "$rate_ratio" "≥ 0.6×" "$(verdict "$rate_ratio >= 0.6")"
    row P3 "server CPU per later inventory / per echo" \
      "$(printf '%.0f µs (runs %s)' "$ps" "$cpu_ratios")" \
      "$(printf 'echo %.0f µs (%s)' "$es" "$es_range")" "$cpu_ratio" "≤ 2×" \
      "$(verdict "$cpu_ratio <= 2")"
  fi
  if want P5 || want P15 || want P16; then
    echo "x" >"$WORK/x.txt"
    # Requirements: fleet health counts the devices that cannot take it (P15).
    printf 'name = "mcnl"\nversion = "2026.1"\nsequence = 1\nexpires = "365d"\n[requirements]\ninstalled_size = "12 GiB"\nmin_ram = "6 GiB"\n[[packages]]\nid = "x"\nversion = "1"\nartifact = "x.txt"\ntype = "command"\ninstall = ["true"]\n' >"$WORK/spec.toml"
    "$BUNDLE" keygen --out "$WORK/key" >/dev/null
    "$BUNDLE" build "$WORK/spec.toml" --key "$WORK/key.key" --out "$WORK/bundle" >/dev/null
    PEAK_RSS=$(rss_mib "$S_PID")  # the server that carried P1-P4
    kill "$S_PID"; wait "$S_PID" 2>/dev/null || true
    start_server server-tls tls --publisher-key "$WORK/key.pub"
    ctl bundles publish "$WORK/bundle" >/dev/null
    rid=$(ctl rollouts create --bundle mcnl@2026.1 --target all --json | sed -n 's/.*"id": "\(r[0-9a-f]*\)".*/\1/p')
    ctl rollouts start "$rid" >/dev/null
    # Every device checks in, gets the assignment and reports it installed.
    "$SIM" load --server "$S_ADDR" "${S_CONN[@]}" --fleet "$WORK/fleet" --workload cycle \
      --concurrency 64 --calls $((DEVICES * 2)) >/dev/null
  fi
  if want P5; then
    # Server time from its own histogram (sum and count of GetDeploymentReport).
    report_seconds() {
      curl -sk "${S_WEB%/}/metrics" | awk '/^parc_rpc_duration_seconds_(sum|count)\{method="GetDeploymentReport"\}/ {print $2}' | tr '\n' ' '
    }
    read -r sum0 count0 <<<"$(report_seconds) 0 0"
    times=()
    for _ in 1 2 3 4 5; do
      # The operator's view: the default table, one line per establishment (6,000+ at full size).
      t0=$(date +%s%N); ctl report deployment --bundle mcnl --by establishment >/dev/null
      t1=$(date +%s%N); times+=($(( (t1 - t0) / 1000000 )))
    done
    ref=()
    for _ in 1 2 3 4 5; do
      t0=$(date +%s%N); ctl bundles list >/dev/null; t1=$(date +%s%N); ref+=($(( (t1 - t0) / 1000000 )))
    done
    read -r sum1 count1 <<<"$(report_seconds)"
    server_ms=$(python3 -c "print(round(($sum1 - $sum0) * 1000 / ($count1 - $count0)))")
    med=$(printf '%s\n' "${times[@]}" | sort -n | sed -n 3p)
    rmed=$(printf '%s\n' "${ref[@]}" | sort -n | sed -n 3p)
    up=$(ctl report deployment --bundle mcnl --by region --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["total"]["up_to_date"])')
    row P5 "region report by establishment, server time ($up up to date)" "${server_ms} ms" \
      "wall ${med} ms, trivial call ${rmed} ms" "-" "< 100 ms" "$(verdict "$server_ms < 100")"
  fi
  if want P15; then
    # Fleet health: server time of GetHealthReport from its own histogram, by département (the
    # overview's table) and by establishment (the longest: one row per establishment).
    health_seconds() {
      curl -sk "${S_WEB%/}/metrics" | awk '/^parc_rpc_duration_seconds_(sum|count)\{method="GetHealthReport"\}/ {print $2}' | tr '\n' ' '
    }
    for by in departement establishment; do
      read -r sum0 count0 _ <<<"$(health_seconds) 0 0"
      times=()
      for _ in 1 2 3 4 5; do
        t0=$(date +%s%N); ctl report health --by "$by" >/dev/null
        t1=$(date +%s%N); times+=($(( (t1 - t0) / 1000000 )))
      done
      read -r sum1 count1 <<<"$(health_seconds)"
      server_ms=$(python3 -c "print(round(($sum1 - $sum0) * 1000 / ($count1 - $count0)))")
      med=$(printf '%s\n' "${times[@]}" | sort -n | sed -n 3p)
      summary=$(ctl report health --by region --json | python3 -c '
import json, sys
t = json.load(sys.stdin)["total"]
print("%d devices, %d cannot take the bundle, %d OS out of support" % (
    t.get("devices", 0), t.get("cannotTakeBundle", t.get("cannot_take_bundle", 0)),
    t.get("osUnsupported", t.get("os_unsupported", 0))))')
      row P15 "health report by $by, server time ($summary)" "${server_ms} ms" \
        "wall ${med} ms" "-" "< 100 ms" "$(verdict "$server_ms < 100")"
    done
  fi
  if want P16; then
    # The dashboard as a collectivité's staff see it: every page type, signed in as a region
    # viewer and as a département viewer; server time = curl's total minus its connection and
    # TLS set-up (loopback), median of 5, gzip accepted as by a browser.
    viewer() {  # scope -> cookie jar path
      local tok jar=$WORK/jar-${1//[:\/]/_}
      tok=$(ctl operators create --name "bench-${1//[:\/]/-}" --role viewer --scope "$1" --json |
        sed -n 's/.*"token": "\(.*\)".*/\1/p')
      curl -sk -c "$jar" -o /dev/null --data-urlencode "jeton=$tok" --data-urlencode "suite=/" \
        "${S_WEB%/}/connexion"
      echo "$jar"
    }
    page() {  # jar path -> "median_ms size_kb status"
      local i out=()
      for i in 1 2 3 4 5; do
        out+=("$(curl -sk -b "$1" --compressed -o /dev/null \
          -w '%{time_pretransfer} %{time_total} %{size_download} %{http_code}' "${S_WEB%/}$2")")
      done
      printf '%s\n' "${out[@]}" | python3 -c '
import sys
rows = [l.split() for l in sys.stdin if l.strip()]
ms = sorted((float(r[1]) - float(r[0])) * 1000 for r in rows)
print(round(ms[len(ms) // 2]), round(int(rows[-1][2]) / 1024), rows[-1][3])'
    }
    region_jar=$(viewer region)
    dep_jar=$(viewer departement:31)
    # The largest establishment of the Haute-Garonne and one of its devices.
    big=$(ctl report deployment --bundle mcnl --by establishment --json | python3 -c '
import json, sys
rows = [r for r in json.load(sys.stdin)["rows"] if r["group"].startswith("031")]
print(max(rows, key=lambda r: int(r.get("devices", 0)))["group"])')
    dev=$(ctl devices list --uai "$big" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["devices"][0]["id"])')
    commune=$(ctl establishments list --departement 31 --json | python3 -c '
import json, sys
print([e for e in json.load(sys.stdin)["establishments"] if e["uai"] == sys.argv[1]][0]["commune_code"])' "$big")
    read -r ref_ms _ _ <<<"$(page "$region_jar" /healthz)"
    pages=("/" "/?format=csv" "/departement/31" "/departement/31?format=csv"
           "/etablissement/$big" "/etablissement/$big?format=csv" "/appareil/$dev" "/deploiements"
           "/commune/$commune" "/sante" "/sante?format=csv" "/sante/departement/31"
           "/sante/etablissement/$big" "/sante/etablissement/$big?indicateur=battery-60")
    for who in region departement:31; do
      jar=$region_jar; [ "$who" = region ] || jar=$dep_jar
      for path in "${pages[@]}"; do
        read -r ms kb code <<<"$(page "$jar" "$path")"
        row P16 "dashboard $path ($who viewer)" "${ms} ms, ${kb} KiB" "/healthz ${ref_ms} ms" \
          "HTTP $code" "< 200 ms, ≤ 300 KiB" "$(verdict "$ms < 200 and $kb <= 300 and $code == 200")"
      done
    done
  fi
  if want P10; then
    rss=$(rss_mib "$S_PID")
    [ "${PEAK_RSS:-0}" -gt "$rss" ] && rss=$PEAK_RSS
    row P10 "server peak RSS, $DEVICES devices after the runs" "${rss} MiB" "-" "-" \
      "≤ 1.5 GB (at 300k)" "$(verdict "$rss * 300000 / $DEVICES <= 1536")"
  fi
fi

# P13: the same server on SQLite and on PostgreSQL, in the same run: check-ins, inventories and
# the region report on each engine (PostgreSQL's own CPU counted apart).
if want P13; then
  start_postgres
  declare -A P13_CHECKIN P13_SRV P13_PG P13_INV P13_REPORT P13_REPORT_SRV P13_RSS P13_SIZE P13_PREASSIGN P13_LAT
  # PARC_BENCH_ENGINES="postgresql" measures PostgreSQL alone (at 1,000,000 devices, say);
  # PARC_BENCH_INVENTORY_PASS=1 first has every device report a full inventory (P4's fleet).
  ENGINES=${PARC_BENCH_ENGINES:-sqlite postgresql}
  for engine in $ENGINES; do
    extra=(--publisher-key "$WORK/p13key.pub")
    [ -f "$WORK/p13key.pub" ] || "$BUNDLE" keygen --out "$WORK/p13key" >/dev/null
    [ "$engine" = postgresql ] && extra+=(--database "$PG_URI")
    start_server "p13-$engine" tls "${extra[@]}"
    prepare_fleet
    P13_PREASSIGN[$engine]=$PREASSIGN_MS
    "$SIM" load --server "$S_ADDR" "${S_CONN[@]}" --fleet "$WORK/fleet" --workload checkin \
      --concurrency 128 --calls "$DEVICES" >/dev/null
    pg0=$(pg_cpu_ticks)
    r=$(load "$S_ADDR" checkin 128 --server-pid "$S_PID")
    pg1=$(pg_cpu_ticks)
    calls=$(json "$r" "d['result']['calls']")
    P13_CHECKIN[$engine]=$(json "$r" "d['result']['throughput']")
    P13_SRV[$engine]=$(json "$r" "d['result']['server_cpu_us_per_call']")
    P13_PG[$engine]=$(python3 -c "print(($pg1 - $pg0) * 1e6 / $(getconf CLK_TCK) / max($calls, 1))")
    # P2 on this engine: the same open loop of check-ins as P2's.
    r=$(load "$S_ADDR" checkin 0 --rate "$OPEN_RATE")
    P13_LAT[$engine]=$(json "$r" "'%s %s %s' % (d['result']['p99_ms'], d['result']['p999_ms'], d['result']['errors'])")
    r=$(load "$S_ADDR" inventory 32 --server-pid "$S_PID")
    P13_INV[$engine]=$(json "$r" "d['result']['throughput']")
    if [ "${PARC_BENCH_INVENTORY_PASS:-0}" = 1 ]; then
      "$SIM" load --server "$S_ADDR" "${S_CONN[@]}" --fleet "$WORK/fleet" --workload inventory \
        --concurrency 32 --calls "$DEVICES" >/dev/null
    fi
    # The region report after a rollout every device installed.
    echo "x" >"$WORK/x13.txt"
    printf 'name = "mcnl"\nversion = "2026.1"\nsequence = 1\nexpires = "365d"\n[[packages]]\nid = "x"\nversion = "1"\nartifact = "x13.txt"\ntype = "command"\ninstall = ["true"]\n' >"$WORK/spec13.toml"
    [ -d "$WORK/bundle13" ] || "$BUNDLE" build "$WORK/spec13.toml" --key "$WORK/p13key.key" --out "$WORK/bundle13" >/dev/null
    ctl bundles publish "$WORK/bundle13" >/dev/null
    rid=$(ctl rollouts create --bundle mcnl@2026.1 --target all --json | sed -n 's/.*"id": "\(r[0-9a-f]*\)".*/\1/p')
    ctl rollouts start "$rid" >/dev/null
    "$SIM" load --server "$S_ADDR" "${S_CONN[@]}" --fleet "$WORK/fleet" --workload cycle \
      --concurrency 64 --calls $((DEVICES * 2)) >/dev/null
    times=()
    read -r sum0 count0 <<<"$(report_seconds_at "$S_WEB") 0 0"
    for _ in 1 2 3 4 5; do
      t0=$(date +%s%N); ctl report deployment --bundle mcnl --by establishment >/dev/null
      t1=$(date +%s%N); times+=($(( (t1 - t0) / 1000000 )))
    done
    read -r sum1 count1 <<<"$(report_seconds_at "$S_WEB")"
    P13_REPORT_SRV[$engine]=$(python3 -c "print(round(($sum1 - $sum0) * 1000 / max($count1 - $count0, 1)))")
    P13_REPORT[$engine]=$(printf '%s\n' "${times[@]}" | sort -n | sed -n 3p)
    if [ "$engine" = postgresql ]; then
      P13_SIZE[$engine]=$("${PG_PSQL[@]}" -tAc "SELECT pg_database_size('parc')")
    else
      P13_SIZE[$engine]=$(du -cb "$S_DATA"/parc.db* | awk 'END {print $1}')
    fi
    P13_RSS[$engine]=$(rss_mib "$S_PID")
    kill "$S_PID"; wait "$S_PID" 2>/dev/null || true
  done
  # Two nodes on the same PostgreSQL database (the fleet the run above enrolled, its
  # certificate on both), each driven by its own parc-sim for its half of the fleet (a device
  # talks to one node at a time), with half the calls in flight; each node's caches warmed by
  # one check-in of each of its devices first, as the one node's were. On
  # one machine the nodes, PostgreSQL and the clients share the same cores: this measures what
  # sharing a database costs, not how far a second machine would carry.
  if [[ " $ENGINES " == *" postgresql "* ]] && [ "${PARC_BENCH_TWO_NODES:-1}" = 1 ]; then
  PG_HOME=$WORK/p13-postgresql
  node_args=(tls --database "$PG_URI" --publisher-key "$WORK/p13key.pub"
             --tls-cert "$PG_HOME/tls/server.pem" --tls-key "$PG_HOME/tls/server.key")
  start_server p13-node1 "${node_args[@]}"; N1_ADDR=$S_ADDR; N1_PID=$S_PID
  start_server p13-node2 "${node_args[@]}"; N2_ADDR=$S_ADDR; N2_PID=$S_PID
  S_CONN=(--ca "$PG_HOME/tls/ca.pem")
  half=$(( (DEVICES + 1) / 2 ))
  "$SIM" load --server "$N1_ADDR" "${S_CONN[@]}" --fleet "$WORK/fleet" --workload checkin \
    --concurrency 64 --calls "$half" --shard 0/2 >/dev/null &
  l1=$!
  "$SIM" load --server "$N2_ADDR" "${S_CONN[@]}" --fleet "$WORK/fleet" --workload checkin \
    --concurrency 64 --calls "$half" --shard 1/2 >/dev/null &
  l2=$!
  wait "$l1" "$l2"
  # One load on both nodes at once, each on its half of the fleet -> n1.json, n2.json.
  load_both() {  # workload concurrency [extra]
    load "$N1_ADDR" "$@" --server-pid "$N1_PID" --shard 0/2 >"$WORK/n1.json" &
    local p1=$!
    load "$N2_ADDR" "$@" --server-pid "$N2_PID" --shard 1/2 >"$WORK/n2.json" &
    local p2=$!
    wait "$p1" "$p2"
  }
  load_both checkin 64
  two=$(python3 -c "import json; a, b = (json.load(open(f))['result'] for f in ('$WORK/n1.json', '$WORK/n2.json')); print(a['throughput'] + b['throughput'], (a['server_cpu_us_per_call'] + b['server_cpu_us_per_call']) / 2)")
  read -r two_tput two_srv <<<"$two"
  # P2 through both nodes: the same open loop as P2's, half its rate on each node, the worse
  # node's percentiles; then P3 (full inventories, each node its half of the fleet), in the
  # order of the one-node run (an inventory load leaves PostgreSQL writing for a while).
  load_both checkin 0 --rate $((OPEN_RATE / 2))
  two_lat=$(python3 -c "import json; a, b = (json.load(open(f))['result'] for f in ('$WORK/n1.json', '$WORK/n2.json')); print(max(a['p99_ms'], b['p99_ms']), max(a['p999_ms'], b['p999_ms']), a['errors'] + b['errors'])")
  load_both inventory 16
  two_inv=$(python3 -c "import json; print(sum(json.load(open(f))['result']['throughput'] for f in ('$WORK/n1.json', '$WORK/n2.json')))")
  times=()
  for _ in 1 2 3 4 5; do
    t0=$(date +%s%N)
    "$CTL" --server "$N2_ADDR" "${S_CONN[@]}" --token-file "$PG_HOME/admin.token" \
      report deployment --bundle mcnl --by establishment >/dev/null
    t1=$(date +%s%N); times+=($(( (t1 - t0) / 1000000 )))
  done
  two_report=$(printf '%s\n' "${times[@]}" | sort -n | sed -n 3p)
  n1_rss=$(rss_mib "$N1_PID"); n2_rss=$(rss_mib "$N2_PID")
  kill "$N1_PID" "$N2_PID"; wait "$N1_PID" "$N2_PID" 2>/dev/null || true
  fi
  if [ -n "${P13_CHECKIN[sqlite]:-}" ] && [ -n "${P13_CHECKIN[postgresql]:-}" ]; then
    s=${P13_CHECKIN[sqlite]}; p=${P13_CHECKIN[postgresql]}
    ratio=$(python3 -c "print(round($p / $s, 2))")
    row P13 "check-ins/s, $DEVICES devices, TLS, PostgreSQL vs SQLite" \
      "$(printf '%.0f/s (srv %.0f µs, pg %.0f µs)' "$p" "${P13_SRV[postgresql]}" "${P13_PG[postgresql]}")" \
      "$(printf 'SQLite %.0f/s (srv %.0f µs)' "$s" "${P13_SRV[sqlite]}")" "$ratio" "≥ 0.7×" \
      "$(verdict "$ratio >= 0.7")"
    s=${P13_INV[sqlite]}; p=${P13_INV[postgresql]}
    row P13 "full inventories/s, TLS, PostgreSQL vs SQLite" "$(printf '%.0f/s' "$p")" \
      "$(printf 'SQLite %.0f/s' "$s")" "$(python3 -c "print(round($p / $s, 2))")" "-" "-"
    read -r p99 p999 errors <<<"${P13_LAT[postgresql]}"
    read -r s99 s999 _ <<<"${P13_LAT[sqlite]}"
    row P13 "check-in latency, open loop at $OPEN_RATE/s, PostgreSQL vs SQLite" \
      "p99 ${p99}, p99.9 ${p999} ms" "SQLite p99 ${s99}, p99.9 ${s999}" "${errors} err" \
      "p99<10, p99.9<50" "$(verdict "$p99 < 10 and $p999 < 50 and $errors == 0")"
    s=${P13_REPORT[sqlite]}; p=${P13_REPORT[postgresql]}
    row P13 "region report by establishment, wall, PostgreSQL vs SQLite" "${p} ms" "SQLite ${s} ms" \
      "$(python3 -c "print(round($p / max($s, 1), 2))")" "< 100 ms" "$(verdict "$p < 100")"
  fi
  for engine in $ENGINES; do
    # One engine alone (PARC_BENCH_ENGINES): its own rates, with no comparison.
    if [ -z "${P13_CHECKIN[sqlite]:-}" ] || [ -z "${P13_CHECKIN[postgresql]:-}" ]; then
      row P13 "check-ins/s and full inventories/s, TLS, $engine alone" \
        "$(printf '%.0f/s (srv %.0f µs); %.0f/s' "${P13_CHECKIN[$engine]}" "${P13_SRV[$engine]}" "${P13_INV[$engine]}")" \
        "-" "-" "-" "(reported)"
    fi
    row P13 "delivery list of $DEVICES lines imported, $engine" "${P13_PREASSIGN[$engine]} ms" "-" "-" "-" "-"
    row P13 "database size and region report server time, $engine" \
      "$(python3 -c "print(f'{${P13_SIZE[$engine]}/2**20:.0f} MiB, {${P13_REPORT_SRV[$engine]}} ms')")" \
      "wall ${P13_REPORT[$engine]} ms" "-" "< 100 ms server" "$(verdict "${P13_REPORT_SRV[$engine]} < 100")"
  done
  if [ -n "${two_tput:-}" ]; then
    p=${P13_CHECKIN[postgresql]}
    row P13 "check-ins/s, two PostgreSQL nodes on this machine vs one" \
      "$(printf '%.0f/s (srv %.0f µs)' "$two_tput" "$two_srv")" "$(printf 'one node %.0f/s' "$p")" \
      "$(python3 -c "print(round($two_tput / $p, 2))")" "-" "-"
    row P13 "full inventories/s, two PostgreSQL nodes vs one" "$(printf '%.0f/s' "$two_inv")" \
      "$(printf 'one node %.0f/s' "${P13_INV[postgresql]}")" \
      "$(python3 -c "print(round($two_inv / ${P13_INV[postgresql]}, 2))")" "-" "-"
    read -r p99 p999 errors <<<"$two_lat"
    row P13 "check-in latency, two nodes, $((OPEN_RATE / 2))/s on each" \
      "p99 ${p99}, p99.9 ${p999} ms" "one node p99 ${P13_LAT[postgresql]%% *} ms" "${errors} err" \
      "p99<10, p99.9<50" "$(verdict "$p99 < 10 and $p999 < 50 and $errors == 0")"
    row P13 "region report through the second node, wall" "${two_report} ms" \
      "one node ${P13_REPORT[postgresql]} ms" \
      "$(python3 -c "print(round($two_report / max(${P13_REPORT[postgresql]}, 1), 2))")" "< 100 ms" \
      "$(verdict "$two_report < 100")"
    row P13 "server RSS: SQLite, one PostgreSQL node, two nodes" \
      "${P13_RSS[sqlite]:--} / ${P13_RSS[postgresql]} / ${n1_rss}+${n2_rss} MiB" "-" "-" "-" "-"
  fi
fi

if want P11; then
  # One lycée's devices fetch the bundle at once, through the lycée's relay (nginx with the
  # site Parc ships), then another lycée's without a relay: the central server's own byte
  # counter (parc_artifact_bytes_sent_total) in both cases, real agents, same run.
  if [ "$QUICK" = 1 ]; then P11_DEVICES=4; P11_MIB=8; else P11_DEVICES=30; P11_MIB=200; fi
  "$BUNDLE" keygen --out "$WORK/p11key" >/dev/null
  start_server p11 tls --publisher-key "$WORK/p11key.pub"
  ctl establishments import tests/data/annuaire-occitanie.csv >/dev/null
  mkdir -p "$WORK/p11src"
  head -c $((P11_MIB * 3 / 4 << 20)) /dev/urandom >"$WORK/p11src/manuels.bin"
  head -c $((P11_MIB / 4 << 20)) /dev/urandom >"$WORK/p11src/geogebra.bin"
  cat >"$WORK/p11src/spec.toml" <<SPEC
name = "mcnl"
version = "2026.1"
sequence = 1
expires = "365d"
[[packages]]
id = "manuels"
version = "1"
artifact = "manuels.bin"
type = "command"
install = ["true"]
[[packages]]
id = "geogebra"
version = "1"
artifact = "geogebra.bin"
type = "command"
install = ["true"]
SPEC
  "$BUNDLE" build "$WORK/p11src/spec.toml" --key "$WORK/p11key.key" --out "$WORK/p11bundle" >/dev/null
  ctl bundles publish "$WORK/p11bundle" >/dev/null
  bundle_bytes=$(( (P11_MIB * 3 / 4 << 20) + (P11_MIB / 4 << 20) ))
  # The relay, on this machine, one nginx process.
  R=$WORK/relay; mkdir -p "$R/tmp"
  "$SERVER" relay-cert --data-dir "$S_DATA" --name 127.0.0.1 --out "$R" >/dev/null
  relay_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  packaging/relay/parc-relay-setup --listen "127.0.0.1:$relay_port" --name 127.0.0.1 \
    --cert "$R/relay.pem" --key "$R/relay.key" --upstream "${S_WEB%/}" --upstream-name localhost \
    --upstream-ca "$S_DATA/tls/ca.pem" --cache-dir "$R/cache" --cache-max 2g --out "$R/site.conf" >/dev/null
  printf 'master_process off;\ndaemon off;\npid %s/nginx.pid;\nerror_log %s/error.log;\nevents { worker_connections 1024; }\nhttp {\n client_body_temp_path %s/tmp/body;\n proxy_temp_path %s/tmp/proxy;\n fastcgi_temp_path %s/tmp/f;\n uwsgi_temp_path %s/tmp/u;\n scgi_temp_path %s/tmp/s;\n include %s/site.conf;\n}\n' \
    "$R" "$R" "$R" "$R" "$R" "$R" "$R" "$R" >"$R/nginx.conf"
  /usr/sbin/nginx -p "$R" -c "$R/nginx.conf" -e "$R/error.log" &
  PIDS+=($!)
  for _ in $(seq 1 100); do curl -sf --cacert "$S_DATA/tls/ca.pem" "https://127.0.0.1:$relay_port/healthz" >/dev/null && break; sleep 0.1; done
  ctl relays add --url "https://127.0.0.1:$relay_port/artifacts" --uai 0310036W >/dev/null
  central_bytes() { curl -sf --cacert "$S_DATA/tls/ca.pem" "${S_WEB}metrics" | awk '/^parc_artifact_bytes_sent_total/ {print $2}'; }
  p11_phase() {  # uai tag -> seconds for every device to install; P11_BYTES: central egress
    local uai=$1 tag=$2 token i pids=() t0 t1 b0
    token=$(ctl tokens create --uai "$uai" --json | sed -n 's/.*"token": "\(.*\)".*/\1/p')
    printf 'publisher_keys = ["%s"]\n' "$WORK/p11key.pub" >"$WORK/p11agent.toml"
    for i in $(seq 1 "$P11_DEVICES"); do
      local root=$WORK/p11dev/$tag$i
      mkdir -p "$root"; cp -r tests/data/laptop/. "$root"
      echo "P11$tag$i" >"$root/sys/class/dmi/id/product_serial"
      echo "4c4c4544-0000-0000-0000-$(printf '%012x' $((i + 4096 * ${#tag})))" >"$root/sys/class/dmi/id/product_uuid"
      "$AGENT" enroll --root "$root" --state-dir "$root.state" --server "$S_ADDR" --token "$token" \
        --ca "$S_DATA/tls/ca.pem" --config "$WORK/p11agent.toml" >/dev/null 2>&1
    done
    local rid; rid=$(ctl rollouts create --bundle mcnl@2026.1 --target "uai:$uai" --json | sed -n 's/.*"id": "\(r[0-9a-f]*\)".*/\1/p')
    ctl rollouts start "$rid" >/dev/null
    b0=$(central_bytes); t0=$(date +%s%N)
    for i in $(seq 1 "$P11_DEVICES"); do
      "$AGENT" run --once --root "$WORK/p11dev/$tag$i" --state-dir "$WORK/p11dev/$tag$i.state" \
        --config "$WORK/p11agent.toml" >"$WORK/p11dev/$tag$i.log" 2>&1 &
      pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p" || true; done
    t1=$(date +%s%N)
    P11_BYTES=$(( $(central_bytes) - b0 ))
    P11_SECONDS=$(python3 -c "print(round(($t1 - $t0) / 1e9, 1))")
    P11_INSTALLED=$(ctl rollouts status "$rid" | sed -n 's/^Total: \([0-9]*\) of.*/\1/p')
    rm -rf "$WORK"/p11dev/"$tag"*.state/cache  # the disk, for the next phase
  }
  p11_phase 0310036W relay; with=$P11_BYTES; with_s=$P11_SECONDS; with_n=$P11_INSTALLED
  p11_phase 0340001S central; without=$P11_BYTES; without_s=$P11_SECONDS; without_n=$P11_INSTALLED
  ratio=$(python3 -c "print(round($with / $bundle_bytes, 3))")
  row P11 "central egress, $P11_DEVICES devices, ${P11_MIB} MiB bundle, with relay" \
    "$(python3 -c "print(f'{$with / 2**20:.0f} MiB ({$with_n} installed, {$with_s} s)')")" \
    "$(python3 -c "print(f'no relay {$without / 2**20:.0f} MiB ({$without_n} installed, {$without_s} s), {$without / $bundle_bytes:.1f}x')")" \
    "$ratio" "≤ 1.05× the bundle" "$(verdict "$ratio <= 1.05")"
  kill "$S_PID"
fi

if want P12; then
  # 2,000 devices download the bundle's artifacts at the same moment over HTTPS, each on its own
  # connection (parc-bench-download), from: parc-server's own artifact port (its connection
  # limits raised to hold them all); nginx serving the same files from disk (the reference);
  # and nginx with the site parc-relay ships in front of parc-server (artifact serving handed
  # to nginx, Parc keeping the API). Peak RSS and throughput of each, in the same run.
  if [ "$QUICK" = 1 ]; then P12_CONC=200; P12_MIB=1; else P12_CONC=2000; P12_MIB=4; fi
  ulimit -n "$(ulimit -Hn)"
  "$BUNDLE" keygen --out "$WORK/p12key" >/dev/null
  mkdir -p "$WORK/p12src" "$WORK/p12static/artifacts"
  printf 'name = "mcnl"\nversion = "2026.1"\nsequence = 1\nexpires = "365d"\n' >"$WORK/p12src/spec.toml"
  for i in 1 2 3 4; do
    head -c $((P12_MIB << 20)) /dev/urandom >"$WORK/p12src/a$i.bin"
    sha=$(sha256sum "$WORK/p12src/a$i.bin" | cut -c1-64)
    cp "$WORK/p12src/a$i.bin" "$WORK/p12static/artifacts/$sha"
    printf '[[packages]]\nid = "a%s"\nversion = "1"\nartifact = "a%s.bin"\ntype = "command"\ninstall = ["true"]\n' \
      "$i" "$i" >>"$WORK/p12src/spec.toml"
  done
  "$BUNDLE" build "$WORK/p12src/spec.toml" --key "$WORK/p12key.key" --out "$WORK/p12bundle" >/dev/null
  p12_limits=(--http-max-connections $((P12_CONC + 100)) --http-max-downloads $((P12_CONC + 50)))
  start_server p12 tls --publisher-key "$WORK/p12key.pub" "${p12_limits[@]}"
  ctl bundles publish "$WORK/p12bundle" >/dev/null
  # A fresh process, so that its peak RSS is the downloads' alone.
  kill "$S_PID"; wait "$S_PID" 2>/dev/null || true
  start_server p12 tls --publisher-key "$WORK/p12key.pub" "${p12_limits[@]}"
  free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
  # nginx as Debian runs it (a master, one worker per core), the server's own certificate.
  start_nginx() {  # dir extra-http-config -> NGINX_PID
    local d=$1; mkdir -p "$d/tmp"
    printf 'user root;\nworker_processes auto;\ndaemon off;\npid %s/nginx.pid;\nerror_log %s/error.log;\nworker_rlimit_nofile 20000;\nevents { worker_connections %s; }\nhttp {\n access_log off;\n client_body_temp_path %s/tmp/body;\n proxy_temp_path %s/tmp/proxy;\n fastcgi_temp_path %s/tmp/f;\n uwsgi_temp_path %s/tmp/u;\n scgi_temp_path %s/tmp/s;\n%s\n}\n' \
      "$d" "$d" $((P12_CONC * 2 + 100)) "$d" "$d" "$d" "$d" "$d" "$2" >"$d/nginx.conf"
    /usr/sbin/nginx -p "$d" -c "$d/nginx.conf" -e "$d/error.log" &
    NGINX_PID=$!
    PIDS+=("$NGINX_PID")
  }
  tree_rss() {  # pid VmRSS|VmHWM -> KiB over the process and its children
    local k=0 p
    for p in "$1" $(pgrep -P "$1"); do
      k=$((k + $(awk -v f="$2:" '$1 == f {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)))
    done
    echo "$k"
  }
  urls() {  # base -> --url arguments for the four artifacts
    local f; for f in "$WORK"/p12static/artifacts/*; do printf -- '--url\n%s/artifacts/%s\n' "$1" "$(basename "$f")"; done
  }
  p12_run() {  # base pid -> P12_JSON P12_IDLE P12_PEAK (KiB)
    local base=$1 pid=$2 args
    for _ in $(seq 1 100); do curl -sf -o /dev/null --cacert "$S_DATA/tls/ca.pem" "$base/artifacts/$(ls "$WORK/p12static/artifacts" | head -1)" && break; sleep 0.1; done
    P12_IDLE=$(tree_rss "$pid" VmRSS)
    mapfile -t args < <(urls "$base")
    P12_JSON=$("$DOWNLOAD_CLIENT" "${args[@]}" --ca "$S_DATA/tls/ca.pem" --concurrency "$P12_CONC") ||
      echo "P12: some downloads failed from $base" >&2
    P12_PEAK=$(tree_rss "$pid" VmHWM)
  }
  parc_base=${S_WEB%/}
  p12_run "$parc_base" "$S_PID"; parc_json=$P12_JSON; parc_idle=$P12_IDLE; parc_peak=$P12_PEAK
  port=$(free_port)
  start_nginx "$WORK/p12nginx" " server {
  listen 127.0.0.1:$port ssl;
  ssl_certificate $S_DATA/tls/server.pem;
  ssl_certificate_key $S_DATA/tls/server.key;
  location /artifacts/ { root $WORK/p12static; }
 }"
  p12_run "https://localhost:$port" "$NGINX_PID"; nginx_json=$P12_JSON; nginx_idle=$P12_IDLE; nginx_peak=$P12_PEAK
  kill "$NGINX_PID"; wait "$NGINX_PID" 2>/dev/null || true
  central_bytes() { curl -sf --cacert "$S_DATA/tls/ca.pem" "${S_WEB}metrics" | awk '/^parc_artifact_bytes_sent_total/ {print $2}'; }
  # parc-server afresh behind nginx: its own peak RSS there.
  kill "$S_PID"; wait "$S_PID" 2>/dev/null || true
  start_server p12 tls --publisher-key "$WORK/p12key.pub" "${p12_limits[@]}"
  parc_base=${S_WEB%/}
  port=$(free_port)
  packaging/relay/parc-relay-setup --listen "127.0.0.1:$port" --name localhost \
    --cert "$S_DATA/tls/server.pem" --key "$S_DATA/tls/server.key" --upstream "$parc_base" \
    --upstream-ca "$S_DATA/tls/ca.pem" --cache-dir "$WORK/p12front/cache" --cache-max 2g \
    --out "$WORK/p12front.conf" >/dev/null
  b0=$(central_bytes)
  start_nginx "$WORK/p12front" " include $WORK/p12front.conf;"
  behind_idle=$(tree_rss "$S_PID" VmRSS)
  p12_run "https://localhost:$port" "$NGINX_PID"; front_json=$P12_JSON; front_idle=$P12_IDLE; front_peak=$P12_PEAK
  behind_peak=$(tree_rss "$S_PID" VmHWM)
  front_parc_bytes=$(( $(central_bytes) - b0 ))
  kill "$NGINX_PID"; wait "$NGINX_PID" 2>/dev/null || true
  field() { json "$1" "d['$2']"; }
  nginx_rate=$(field "$nginx_json" mib_per_s)
  mib() { python3 -c "print(f'{$1 / 1024:.0f}')"; }
  for who in parc front; do
    if [ "$who" = parc ]; then j=$parc_json; peak=$parc_peak; idle=$parc_idle
      what="$P12_CONC concurrent ${P12_MIB} MiB downloads, parc-server's own port"
      extra="RSS $(mib "$idle") → $(mib "$peak") MiB"
    else j=$front_json; peak=$behind_peak; idle=$behind_idle
      what="$P12_CONC concurrent downloads, nginx (parc-relay site) in front"
      extra="Parc RSS $(mib "$idle") → $(mib "$peak") MiB, sent $(python3 -c "print(f'{$front_parc_bytes / 2**20:.0f}')") MiB; nginx RSS $(mib "$front_idle") → $(mib "$front_peak") MiB"
    fi
    rate=$(field "$j" mib_per_s); done_n=$(field "$j" completed)
    ratio=$(python3 -c "print(round($rate / $nginx_rate, 2))")
    # Flat: parc-server's peak within 1.5x its idle RSS plus what nginx itself needs for the
    # same connections (nginx's growth serving the files, same run).
    row P12 "$what" "$done_n/$P12_CONC done, $rate MiB/s, $extra" \
      "nginx static $nginx_rate MiB/s, RSS $(mib "$nginx_idle") → $(mib "$nginx_peak") MiB" "$ratio" \
      "all; ≥ 0.8×; RSS flat" \
      "$(verdict "$done_n == $P12_CONC and $ratio >= 0.8 and $peak <= 1.5 * $idle + ($nginx_peak - $nginx_idle)")"
  done
  kill "$S_PID"
fi

if want P6; then
  parc_times=(); parc_rss=0
  for _ in $(seq 1 $((RUNS * 3))); do
    /usr/bin/time -f '%e %M' -o "$WORK/t" "$AGENT" inventory --json --config /dev/null >"$WORK/parc-inv.json"
    read -r t m <"$WORK/t"; parc_times+=("$t"); parc_rss=$m
  done
  pt=$(printf '%s\n' "${parc_times[@]}" | sort -n | sed -n "$(( (${#parc_times[@]} + 1) / 2 ))p")
  if command -v fusioninventory-inventory >/dev/null; then
    fi_times=()
    for _ in $(seq 1 $((RUNS * 3))); do
      /usr/bin/time -f '%e %M' -o "$WORK/t" fusioninventory-inventory >"$WORK/fi.xml" 2>/dev/null
      read -r t m <"$WORK/t"; fi_times+=("$t"); fi_rss=$m
    done
    ft=$(printf '%s\n' "${fi_times[@]}" | sort -n | sed -n "$(( (${#fi_times[@]} + 1) / 2 ))p")
    fields=$(python3 "$ROOT/tools/bench/compare_inventory.py" "$WORK/parc-inv.json" "$WORK/fi.xml")
    row P6 "agent inventory wall time ($fields)" "${pt} s" "fusioninventory ${ft} s" \
      "$(python3 -c "print(round($pt / $ft, 3))")" "≤ 0.05×" "$(verdict "$pt <= $ft / 20")"
    row P6 "agent inventory peak RSS" "$((parc_rss / 1024)) MiB" "fusioninventory $((fi_rss / 1024)) MiB" \
      "$(python3 -c "print(round($parc_rss / $fi_rss, 3))")" "≤ 0.125×" "$(verdict "$parc_rss <= $fi_rss / 8")"
  else
    row P6 "agent inventory wall time / peak RSS" "${pt} s / $((parc_rss / 1024)) MiB" \
      "fusioninventory not installed" "-" "≤ 0.05× / ≤ 0.125×" "no reference"
  fi
fi

if want P7; then
  start_server agent-idle tls
  token=$(ctl tokens create --region --json | sed -n 's/.*"token": "\(.*\)".*/\1/p')
  printf 'server = "%s"\nca = "%s"\nenrollment_token = "%s"\n' "$S_ADDR" "$S_DATA/tls/ca.pem" "$token" >"$WORK/agent.toml"
  "$AGENT" run --config "$WORK/agent.toml" --state-dir "$WORK/agent-state" --root tests/data/laptop --splay 0s >/dev/null 2>&1 &
  A_PID=$!; PIDS+=("$A_PID")
  sleep 5  # enrolled, first check-in and inventory done; the next is an hour away
  c0=$(awk '/voluntary_ctxt_switches/ && !/non/ {print $2}' "/proc/$A_PID/status")
  w0=$(awk '{s += $2} END {print s}' /proc/"$A_PID"/task/*/schedstat 2>/dev/null || echo 0)
  sleep $([ $QUICK = 1 ] && echo 5 || echo 30)
  c1=$(awk '/voluntary_ctxt_switches/ && !/non/ {print $2}' "/proc/$A_PID/status")
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$A_PID/status")
  threads=$(ls /proc/"$A_PID"/task | wc -l)
  wakeups=0
  for t in /proc/"$A_PID"/task/*; do :; done
  wakes=$(for t in /proc/"$A_PID"/task/*/status; do awk '/^voluntary_ctxt_switches/ {print $2}' "$t"; done | paste -sd+ | bc)
  sleep 5
  wakes2=$(for t in /proc/"$A_PID"/task/*/status; do awk '/^voluntary_ctxt_switches/ {print $2}' "$t"; done | paste -sd+ | bc)
  row P7 "agent daemon idle RSS ($threads threads)" "$((rss / 1024)) MiB" "osquery watchdog 200 MB" \
    "$(python3 -c "print(round($rss / 1024 / 200, 3))")" "≤ 10 MB" "$(verdict "$rss <= 10 * 1024")"
  row P7 "agent daemon wake-ups while idle (all threads)" "$((wakes2 - wakes)) in 5 s" "-" "-" "none" \
    "$(verdict "$((wakes2 - wakes)) == 0")"
  kill "$A_PID"; kill "$S_PID"
fi

if want P8; then
  start_server artifacts tls
  head -c $((ARTIFACT_MIB << 20)) /dev/urandom >"$WORK/artifact.bin"
  sha=$(sha256sum "$WORK/artifact.bin" | cut -d' ' -f1)
  cp "$WORK/artifact.bin" "$S_DATA/artifacts/$sha"
  url="${S_WEB}artifacts/$sha"
  parc_t=(); ref_t=()
  for _ in $(seq 1 "$RUNS"); do
    rm -f "$WORK/dl" "$WORK/dl.part"
    t0=$(date +%s%N)
    "$SIM" download --url "$url" --ca "$S_DATA/tls/ca.pem" --sha256 "$sha" \
      --size $((ARTIFACT_MIB << 20)) --out "$WORK/dl" >/dev/null
    t1=$(date +%s%N); parc_t+=($(( (t1 - t0) / 1000000 )))
    rm -f "$WORK/ref"
    t0=$(date +%s%N)
    curl -s --cacert "$S_DATA/tls/ca.pem" -o "$WORK/ref" "$url" && sha256sum "$WORK/ref" >/dev/null
    t1=$(date +%s%N); ref_t+=($(( (t1 - t0) / 1000000 )))
  done
  pm=$(printf '%s\n' "${parc_t[@]}" | sort -n | sed -n "$(( (RUNS + 1) / 2 ))p")
  rm_=$(printf '%s\n' "${ref_t[@]}" | sort -n | sed -n "$(( (RUNS + 1) / 2 ))p")
  ratio=$(python3 -c "print(round($rm_ / $pm, 2))")
  row P8 "download + verify ${ARTIFACT_MIB} MiB over loopback HTTPS" \
    "$(python3 -c "print(f'{$ARTIFACT_MIB / ($pm / 1000):.0f} MiB/s')")" \
    "$(python3 -c "print(f'curl+sha256sum {$ARTIFACT_MIB / ($rm_ / 1000):.0f} MiB/s')")" "$ratio" \
    "≥ 0.9×" "$(verdict "$ratio >= 0.9")"
  kill "$S_PID"
fi

if want P9; then
  r=$("$SIM" resume --size $((ARTIFACT_MIB << 20)))
  pct=$(json "$r" "d['percent_twice']")
  row P9 "downloaded twice after a drop at 50% (${ARTIFACT_MIB} MiB)" "${pct} %" "-" "-" "≤ 1 %" \
    "$(verdict "$pct <= 1")"
fi

printf '%s\n' "${RESULTS[@]}" | python3 -c 'import json,sys; print(json.dumps([json.loads(l) for l in sys.stdin], indent=1, ensure_ascii=False))' >"$OUT/results.json"
echo "results: $OUT/results.json"
