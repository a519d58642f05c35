#!/usr/bin/env bash
# Browser test of the dashboard: starts parc-server with a little fleet (two départements, a
# rollout), creates a département viewer, then runs dashboard.test.mjs in headless Chromium.
#   run.sh BUILD_DIR [SCREENSHOT_DIR]
# Exits 77 (skipped) when Chromium, Node.js or playwright-core are missing.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD=$(cd "$1" && pwd)
SHOTS=${2:-}
if ! command -v node >/dev/null || ! [ -x "${CHROMIUM:-/usr/bin/chromium}" ] ||
   ! [ -d "$HERE/node_modules/playwright-core" ]; then
  echo "skipped: needs node, /usr/bin/chromium and playwright-core (tools/test.sh installs them)"
  exit 77
fi
WORK=$(mktemp -d /tmp/parc-browser.XXXXXX)
PID=""
cleanup() {
  if [ -n "$PID" ] && kill "$PID" 2>/dev/null; then
    # parc-server stops within seconds on SIGTERM; one that does not is shown (threads) and
    # killed, so that a stuck shutdown is visible in the log rather than a test timeout.
    for _ in $(seq 1 150); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$PID" 2>/dev/null; then
      echo "parc-server did not stop within 15 s of SIGTERM; its threads:" >&2
      command -v gdb >/dev/null && gdb -p "$PID" -batch -ex "thread apply all bt 12" 2>&1 |
        grep -E '^Thread|^#' >&2
      tail -20 "$WORK/server.log" >&2
      kill -9 "$PID" 2>/dev/null
    fi
    wait "$PID" 2>/dev/null
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
CTL="$BUILD/tools/parcctl/parcctl"
AGENT="$BUILD/agent/parc-agent"
"$BUILD/tools/bundle/parc-bundle" keygen --out "$WORK/key" >/dev/null
"$BUILD/server/parc-server" --data-dir "$WORK/server" --listen 127.0.0.1:0 \
  --port-file "$WORK/port" --artifact-listen 127.0.0.1:0 --publisher-key "$WORK/key.pub" \
  --rollout-interval 1s --log-level warn >"$WORK/server.log" 2>&1 &
PID=$!
for _ in $(seq 1 100); do [ -s "$WORK/port" ] && break; sleep 0.1; done
export PARC_SERVER=127.0.0.1:$(cat "$WORK/port") PARC_CA="$WORK/server/tls/ca.pem"
export PARC_TOKEN_FILE="$WORK/server/admin.token"
"$CTL" establishments import "$ROOT/tests/data/annuaire-occitanie.csv" >/dev/null
printf 'publisher_keys = ["%s"]\n' "$WORK/key.pub" >"$WORK/agent.toml"
token() { "$CTL" tokens create --uai "$1" --json | sed -n 's/.*"token": "\(.*\)".*/\1/p'; }
enroll() {  # name fixture uai [extra]
  "$AGENT" enroll --root "$ROOT/tests/data/$2" --state-dir "$WORK/$1" --server "$PARC_SERVER" \
    --ca "$PARC_CA" --token "$(token "$3")" --config "$WORK/agent.toml" "${@:4}" >/dev/null
}
enroll laptop laptop 0310036W
# A device whose every self-reported string is hostile markup (a student's doing).
HOSTILE="$WORK/hostile-root"
cp -a "$ROOT/tests/data/laptop" "$HOSTILE"
printf '%s\n' '<meta http-equiv="refresh" content="0;url=https://evil.example/">' \
  >"$HOSTILE/sys/class/dmi/id/product_name"
printf '%s\n' '<img src=x onerror="alert(1)">' >"$HOSTILE/sys/class/dmi/id/sys_vendor"
printf '%s\n' '=HYPERLINK("https://evil.example";"x")' >"$HOSTILE/sys/class/dmi/id/product_serial"
printf '%s\n' '4c4c4544-0000-0000-0000-0000deadbeef' >"$HOSTILE/sys/class/dmi/id/product_uuid"
printf '%s\n' '<script>alert(2)</script>' >"$HOSTILE/proc/sys/kernel/hostname"
printf 'PRETTY_NAME="<iframe src=https://evil.example>"\nID=debian\n' >"$HOSTILE/etc/os-release"
"$AGENT" enroll --root "$HOSTILE" --state-dir "$WORK/hostile" --server "$PARC_SERVER" \
  --ca "$PARC_CA" --token "$(token 0310036W)" --config "$WORK/agent.toml" >/dev/null
enroll display desktop 0311234Y --kind display
enroll tablet tablet 0340001S
echo "x" >"$WORK/x.txt"
cat >"$WORK/spec.toml" <<SPEC
name = "mcnl"
version = "2026.1"
sequence = 1
expires = "365d"
[[packages]]
id = "ressources"
version = "1"
artifact = "x.txt"
type = "command"
install = ["true"]
SPEC
"$BUILD/tools/bundle/parc-bundle" build "$WORK/spec.toml" --key "$WORK/key.key" \
  --out "$WORK/bundle" >/dev/null
"$CTL" bundles publish "$WORK/bundle" >/dev/null
ROLLOUT=$("$CTL" rollouts create --bundle mcnl@2026.1 --target departement:31 --json |
  sed -n 's/.*"id": "\(r[0-9a-f]*\)".*/\1/p')
"$CTL" rollouts start "$ROLLOUT" >/dev/null
"$AGENT" run --once --root "$ROOT/tests/data/laptop" --state-dir "$WORK/laptop" \
  --config "$WORK/agent.toml" >/dev/null
"$AGENT" run --once --root "$ROOT/tests/data/tablet" --state-dir "$WORK/tablet" \
  --config "$WORK/agent.toml" >/dev/null
"$AGENT" run --once --root "$HOSTILE" --state-dir "$WORK/hostile" --config "$WORK/agent.toml" \
  >/dev/null
export HOSTILE_DEVICE=$("$CTL" devices list --uai 0310036W --json |
  sed -n 's/.*"id": "\(d[0-9a-f]*\)".*/\1/p' | while read -r id; do
    "$CTL" devices show "$id" --json | grep -q 'evil.example' && echo "$id"; done | head -1)
export VIEWER_TOKEN=$("$CTL" operators create --name cd31 --role viewer \
  --scope departement:31 --json | sed -n 's/.*"token": "\(.*\)".*/\1/p')
export DEVICE_34=$("$CTL" devices list --departement 34 --json |
  sed -n 's/.*"id": "\(d[0-9a-f]*\)".*/\1/p' | head -1)
export ROLLOUT_ID=$ROLLOUT
PORT=$(sed -n 's/.*dashboard at https:\/\/localhost:\([0-9]*\).*/\1/p' "$WORK/server.log")
export WEB_URL="https://localhost:$PORT/"
export SCREENSHOTS="$SHOTS"
cd "$HERE"
node --test --test-reporter=tap dashboard.test.mjs
