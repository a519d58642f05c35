#!/usr/bin/env bash
# Parc in one command: builds, starts parc-server on a temporary data directory (TLS, SQLite),
# imports establishments, enrolls three agents from the fixture trees into two
# establishments, runs one check-in cycle on each, prints the device list, stops everything.
# Installs its own dependencies (Debian 12, as root or with sudo).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

tools/deps.sh
BUILD_DIR=${BUILD_DIR:-build/release}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPARC_BUILD_TESTS=OFF \
  >/dev/null
cmake --build "$BUILD_DIR" -j "$(nproc)" --target parc-server parc-agent parcctl
SERVER_BIN=$ROOT/$BUILD_DIR/server/parc-server
AGENT_BIN=$ROOT/$BUILD_DIR/agent/parc-agent
CTL_BIN=$ROOT/$BUILD_DIR/tools/parcctl/parcctl

WORK=$(mktemp -d /tmp/parc-demo.XXXXXX)
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

step "Start parc-server (TLS with a private CA generated in the data directory)"
"$SERVER_BIN" --data-dir "$WORK/server" --listen 127.0.0.1:0 --port-file "$WORK/port" \
  --log-level warn >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do [ -s "$WORK/port" ] && break; sleep 0.1; done
[ -s "$WORK/port" ] || { cat "$WORK/server.log"; exit 1; }
cat "$WORK/server.log"

export PARC_SERVER=127.0.0.1:$(cat "$WORK/port")
export PARC_CA=$WORK/server/tls/ca.pem
export PARC_TOKEN_FILE=$WORK/server/admin.token
ctl() { run "$CTL_BIN" "$@"; }

step "Import establishments (annuaire de l'éducation export)"
ctl establishments import tests/data/annuaire-occitanie.csv

step "Import the supplier's delivery list (serial number → lycée)"
printf 'numero_de_serie;uai\n5CD1234ABC;0310036W\n8J2KLM3;0310036W\n' >"$WORK/livraison.csv"
ctl devices preassign "$WORK/livraison.csv"

step "Create enrollment tokens: region-wide (for the master image) and one collège's"
REGION_TOKEN=$("$CTL_BIN" tokens create --region --note "image loRdi 2026" --json |
  sed -n 's/.*"token": "\(.*\)".*/\1/p')
COLLEGE_TOKEN=$("$CTL_BIN" tokens create --uai 0340123Z --max-uses 30 --note "chariot 1" --json |
  sed -n 's/.*"token": "\(.*\)".*/\1/p')
ctl tokens list

agent() { run "$AGENT_BIN" "$@" --config /dev/null; }
step "Enroll three devices (each agent reads its own fixture tree and state directory)"
agent enroll --root tests/data/laptop --state-dir "$WORK/agents/laptop" \
  --server "$PARC_SERVER" --ca "$PARC_CA" --token "$REGION_TOKEN"
agent enroll --root tests/data/desktop --state-dir "$WORK/agents/display" \
  --server "$PARC_SERVER" --ca "$PARC_CA" --token "$REGION_TOKEN" --kind display
agent enroll --root tests/data/tablet --state-dir "$WORK/agents/tablet" \
  --server "$PARC_SERVER" --ca "$PARC_CA" --token "$COLLEGE_TOKEN"

step "One check-in cycle on each agent (check-in, then inventory when the server asks)"
for a in laptop:laptop display:desktop tablet:tablet; do
  agent run --once --root "tests/data/${a#*:}" --state-dir "$WORK/agents/${a%%:*}"
done
agent status --root tests/data/laptop --state-dir "$WORK/agents/laptop"

step "Devices seen by the server"
ctl devices list
ctl establishments list --departement 31

step "Done: server stopped, temporary data removed"
