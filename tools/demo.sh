#!/usr/bin/env bash
# Parc in one command: builds, starts parc-server on a temporary data directory (TLS, SQLite),
# imports establishments, enrolls three agents from the fixture trees into two
# establishments, runs one check-in cycle on each, prints the device list; then generates a
# publisher key, builds and signs a small MCNL bundle, publishes it, rolls it out in two waves
# (the lycée first, then the collège), prints the rollout status, and stops everything.
# Installs its own dependencies (Debian 12, as root or with sudo).
#
#   tools/demo.sh            run the demo, then stop everything
#   tools/demo.sh --serve    keep the server running for the web dashboard (Ctrl-C stops it)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SERVE=0
[ "${1:-}" = "--serve" ] && SERVE=1

tools/deps.sh
BUILD_DIR=${BUILD_DIR:-build/release}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPARC_BUILD_TESTS=OFF \
  >/dev/null
cmake --build "$BUILD_DIR" -j "$(nproc)" --target parc-server parc-agent parcctl parc-bundle
SERVER_BIN=$ROOT/$BUILD_DIR/server/parc-server
AGENT_BIN=$ROOT/$BUILD_DIR/agent/parc-agent
CTL_BIN=$ROOT/$BUILD_DIR/tools/parcctl/parcctl
BUNDLE_BIN=$ROOT/$BUILD_DIR/tools/bundle/parc-bundle

WORK=$(mktemp -d /tmp/parc-demo.XXXXXX)
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

step "The académies' publisher key (kept offline in real life)"
run "$BUNDLE_BIN" keygen --out "$WORK/keys/toulouse"

step "Start parc-server (TLS with a private CA generated in the data directory)"
"$SERVER_BIN" --data-dir "$WORK/server" --listen 127.0.0.1:0 --port-file "$WORK/port" \
  --artifact-listen 127.0.0.1:0 --publisher-key "$WORK/keys/toulouse.pub" \
  --rollout-interval 1s --log-level warn >"$WORK/server.log" 2>&1 &
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

# The agents' configuration pins the publisher key.
printf 'publisher_keys = ["%s"]\n' "$WORK/keys/toulouse.pub" >"$WORK/agent.toml"
agent() { run "$AGENT_BIN" "$@" --config "$WORK/agent.toml"; }
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

step "Build and sign a small MCNL bundle from files created here"
mkdir -p "$WORK/mcnl/geogebra" "$WORK/installed"
echo "GeoGebra Classic (demo)" >"$WORK/mcnl/geogebra/README"
tar czf "$WORK/mcnl/geogebra.tar.gz" -C "$WORK/mcnl" geogebra
printf '#!/bin/sh\necho "Ressources MCNL $1"\necho "$1" > "%s/ressources-mcnl"\n' \
  "$WORK/installed" >"$WORK/mcnl/ressources.sh"
cat >"$WORK/mcnl/mcnl.toml" <<SPEC
name = "mcnl"
version = "2026.1"
sequence = 1
expires = "365d"

# What a device needs to take it (fleet health: "cannot take the bundle").
[requirements]
installed_size = "2 GiB"
min_ram = "2 GiB"

[[packages]]
id = "geogebra"
version = "6.0.820"
kinds = ["laptop", "tablet"]
artifact = "geogebra.tar.gz"
type = "archive"
target_dir = "$WORK/installed/geogebra"

[[packages]]
id = "ressources-mcnl"
version = "2026.1"
artifact = "ressources.sh"
type = "command"
install = ["sh", "{artifact}", "{version}"]
detect = ["grep", "-qx", "{version}", "$WORK/installed/ressources-mcnl"]
SPEC
run "$BUNDLE_BIN" build "$WORK/mcnl/mcnl.toml" --key "$WORK/keys/toulouse.key" --out "$WORK/bundle"
run "$BUNDLE_BIN" verify "$WORK/bundle" --pub "$WORK/keys/toulouse.pub"

step "Publish it and roll it out in two waves: the lycée first, then the collège"
ctl bundles publish "$WORK/bundle"
ROLLOUT=$("$CTL_BIN" rollouts create --bundle mcnl@2026.1 --target uai:0310036W,0340123Z \
  --pilot 0310036W --waves 100 --max-failures 20% --json | sed -n 's/.*"id": "\(r[0-9a-f]*\)".*/\1/p')
ctl rollouts start "$ROLLOUT"

step "Wave 1: the lycée's devices check in, download over HTTPS, verify and install"
agent run --once --root tests/data/laptop --state-dir "$WORK/agents/laptop"
agent run --once --root tests/data/desktop --state-dir "$WORK/agents/display"
agent bundles --state-dir "$WORK/agents/laptop"
for _ in $(seq 1 50); do
  "$CTL_BIN" rollouts status "$ROLLOUT" --json | grep -q '"current_wave": 1' && break
  sleep 0.2
done

step "Wave 2: the collège's tablet"
agent run --once --root tests/data/tablet --state-dir "$WORK/agents/tablet"
sleep 1
ctl rollouts status "$ROLLOUT"

step "Fleet health by establishment (batteries, age, end of support, free space for the bundle)"
ctl report health --by establishment
ctl os-support list

if [ "$SERVE" = 1 ]; then
  step "Dashboard"
  VIEWER=$("$CTL_BIN" operators create --name "viewer-cd31" --role viewer \
    --scope collectivite:departement:31 --json | sed -n 's/.*"token": "\(.*\)".*/\1/p')
  ALL=$("$CTL_BIN" operators create --name "viewer-region" --role viewer --scope region --json |
    sed -n 's/.*"token": "\(.*\)".*/\1/p')
  WEB=$(sed -n 's/.*dashboard at \(https:[^ ]*\).*/\1/p' "$WORK/server.log")
  cat <<INFO

  Dashboard:            $WEB
  (the certificate is from the demo's private CA: $PARC_CA)
  Viewer, whole region: $ALL
  Viewer, collèges of the Haute-Garonne (Conseil départemental 31):
                        $VIEWER
  Metrics:              ${WEB}metrics

  The server keeps running with the demo data; Ctrl-C stops it and removes the data.
INFO
  wait "$SERVER_PID"
fi

step "Done: server stopped, temporary data removed"
