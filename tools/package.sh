#!/usr/bin/env bash
# Builds the Debian packages (parc-agent, parc-server, parc-relay) with CPack and checks them:
# file lists, maintainer scripts, lintian (no errors), systemd-analyze verify of the units,
# and the extracted packages at work: parc-agent inventories a fixture and enrolls against the
# extracted parc-server, parc-relay-setup writes a site nginx accepts and the extracted relay
# serves an artifact of the extracted server; then tools/package-install-test.sh installs,
# upgrades and purges them
# in a Debian 12 chroot (PARC_SKIP_CHROOT=1 skips that). Installs its own dependencies (Debian
# 12, as root or with sudo).
#   tools/package.sh            packages in build/release/*.deb
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
tools/deps.sh --package
BUILD_DIR=${BUILD_DIR:-build/release}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPARC_BUILD_TESTS=OFF \
  >/dev/null
cmake --build "$BUILD_DIR" -j "$(nproc)"
rm -f "$BUILD_DIR"/*.deb
(cd "$BUILD_DIR" && cpack -G DEB >/dev/null)
AGENT_DEB=$(ls "$BUILD_DIR"/parc-agent_*.deb)
SERVER_DEB=$(ls "$BUILD_DIR"/parc-server_*.deb)
RELAY_DEB=$(ls "$BUILD_DIR"/parc-relay_*_all.deb)
echo "built: $(basename "$AGENT_DEB") $(basename "$SERVER_DEB") $(basename "$RELAY_DEB")"

WORK=$(mktemp -d /tmp/parc-package.XXXXXX)
PID=""
cleanup() {
  [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT
fail() { echo "package check FAILED: $*" >&2; exit 1; }
pass=0
ok() { echo "ok: $*"; pass=$((pass + 1)); }

# 1. File lists.
expect_files() {  # deb file...
  local deb=$1; shift
  local listing; listing=$(dpkg-deb -c "$deb" | awk '{print $6}')
  for f in "$@"; do
    grep -qx "./$f" <<<"$listing" || fail "$(basename "$deb") lacks /$f"
  done
}
expect_files "$AGENT_DEB" usr/bin/parc-agent usr/lib/parc/parc-agent-full usr/lib/parc/parc-agentd lib/systemd/system/parc-agent.service \
  etc/parc/agent.toml usr/share/doc/parc-agent/copyright \
  usr/share/doc/parc-agent/changelog.Debian.gz usr/share/doc/parc-agent/technician-guide.md
expect_files "$SERVER_DEB" usr/bin/parc-server usr/bin/parcctl usr/bin/parc-bundle \
  lib/systemd/system/parc-server.service etc/parc/server.env etc/parc/parcctl.toml \
  usr/share/doc/parc-server/copyright usr/share/doc/parc-server/operator-guide.md
expect_files "$RELAY_DEB" usr/sbin/parc-relay-setup usr/bin/parc-relay-sync \
  usr/share/parc-relay/parc-relay.conf lib/systemd/system/parc-relay-sync.service \
  lib/systemd/system/parc-relay-sync.timer etc/parc-relay/sync.env \
  usr/share/doc/parc-relay/copyright usr/share/doc/parc-relay/README.md
dpkg-deb -f "$RELAY_DEB" Depends | grep -q nginx || fail "parc-relay does not depend on nginx"
if dpkg-deb -c "$RELAY_DEB" | awk '{print $6}' | grep -q '^./var/cache'; then
  fail "parc-relay ships a cache (it must be created, never shipped)"
fi
if dpkg-deb -c "$AGENT_DEB" | awk '{print $6}' | grep -q '^./var/lib'; then
  fail "parc-agent ships files in /var/lib (state must be created, never shipped)"
fi
ok "file lists"

# 2. Control files and maintainer scripts.
for deb in "$AGENT_DEB" "$SERVER_DEB" "$RELAY_DEB"; do
  name=$(dpkg-deb -f "$deb" Package)
  mkdir -p "$WORK/control/$name"
  dpkg-deb -e "$deb" "$WORK/control/$name"
  for script in postinst prerm postrm; do
    f="$WORK/control/$name/$script"
    [ -x "$f" ] || fail "$name: $script missing or not executable"
    sh -n "$f" || fail "$name: $script has a syntax error"
    grep -q '^set -e' "$f" || fail "$name: $script does not set -e"
  done
  while read -r conffile; do
    dpkg-deb -c "$deb" | awk '{print $6}' | grep -qx ".$conffile" ||
      fail "$name: conffile $conffile is not in the package"
  done <"$WORK/control/$name/conffiles"
done
grep -q 'adduser --system' "$WORK/control/parc-server/postinst" || fail "no system user for the server"
grep -q 'rm -rf /var/lib/parc-server' "$WORK/control/parc-server/postrm" || fail "purge keeps server state"
grep -q 'rm -rf /var/lib/parc-agent' "$WORK/control/parc-agent/postrm" || fail "purge keeps agent state"
dpkg-deb -f "$SERVER_DEB" Depends | grep -q adduser || fail "parc-server does not depend on adduser"
grep -q 'rm -rf /var/cache/parc-relay /etc/parc-relay' "$WORK/control/parc-relay/postrm" ||
  fail "purge keeps the relay's cache or token"
grep -q 'enable parc-relay-sync.timer' "$WORK/control/parc-relay/postinst" ||
  fail "the relay's timer is not enabled"
ok "maintainer scripts and conffiles"

# 3. lintian: no errors.
lintian --suppress-tags maintainer-script-calls-systemctl "$AGENT_DEB" "$SERVER_DEB" "$RELAY_DEB" \
  >"$WORK/lintian.txt" 2>&1 || true
cat "$WORK/lintian.txt"
if grep -q '^E:' "$WORK/lintian.txt"; then fail "lintian reports errors"; fi
ok "lintian: no errors"

# 4. The packages at work, extracted (dpkg -x), without installing anything.
dpkg -x "$AGENT_DEB" "$WORK/root"
dpkg -x "$SERVER_DEB" "$WORK/root"
dpkg -x "$RELAY_DEB" "$WORK/root"
for unit in parc-agent parc-server parc-relay-sync; do
  sed "s|/usr/bin/|$WORK/root/usr/bin/|g" "$WORK/root/lib/systemd/system/$unit.service" \
    >"$WORK/$unit.service"
done
cp "$WORK/root/lib/systemd/system/parc-relay-sync.timer" "$WORK/"
systemd-analyze verify --man=no "$WORK/parc-agent.service" "$WORK/parc-server.service" \
  "$WORK/parc-relay-sync.service" "$WORK/parc-relay-sync.timer" ||
  fail "systemd-analyze verify"
ok "systemd-analyze verify"
"$WORK/root/usr/bin/parc-agent" inventory --root tests/data/laptop --config /dev/null \
  | grep -q "HP ProBook x360 11 G7" || fail "extracted parc-agent cannot inventory"
"$WORK/root/usr/bin/parc-agent" --version | grep -q . || fail "parc-agent --version"
ok "extracted parc-agent inventories"
"$WORK/root/usr/bin/parc-server" --data-dir "$WORK/server" --listen 127.0.0.1:0 \
  --port-file "$WORK/port" --artifact-listen 127.0.0.1:0 --log-level warn >"$WORK/server.log" 2>&1 &
PID=$!
for _ in $(seq 1 100); do [ -s "$WORK/port" ] && break; sleep 0.1; done
[ -s "$WORK/port" ] || { cat "$WORK/server.log"; fail "extracted parc-server did not start"; }
export PARC_SERVER=127.0.0.1:$(cat "$WORK/port") PARC_CA="$WORK/server/tls/ca.pem"
export PARC_TOKEN_FILE="$WORK/server/admin.token"
CTL="$WORK/root/usr/bin/parcctl"
"$CTL" establishments import tests/data/annuaire-occitanie.csv >/dev/null
TOKEN=$("$CTL" tokens create --uai 0310036W --json | sed -n 's/.*"token": "\(.*\)".*/\1/p')
"$WORK/root/usr/bin/parc-agent" enroll --check --root tests/data/laptop --server "$PARC_SERVER" \
  --ca "$PARC_CA" --token "$TOKEN" --config /dev/null | grep -q '^OK' || fail "enroll --check"
"$WORK/root/usr/bin/parc-agent" enroll --root tests/data/laptop --state-dir "$WORK/agent" \
  --server "$PARC_SERVER" --ca "$PARC_CA" --token "$TOKEN" --config /dev/null
"$WORK/root/usr/bin/parc-agent" run --once --root tests/data/laptop --state-dir "$WORK/agent" \
  --config /dev/null >/dev/null
"$CTL" devices list | grep -q "5CD1234ABC  0310036W" || fail "the enrolled device is not listed"
ok "extracted parc-agent enrolls against the extracted parc-server"

# The extracted relay: its certificate from the extracted server, the site parc-relay-setup
# writes, nginx serving it in front of the extracted server's artifact port.
ART_URL=$(sed -n 's|.*artifacts served at \(https://[^/ ]*\).*|\1|p' "$WORK/server.log")
[ -n "$ART_URL" ] || fail "no artifact URL in the server's log"
"$WORK/root/usr/bin/parc-server" relay-cert --data-dir "$WORK/server" --name localhost \
  --out "$WORK/relay-tls" >/dev/null || fail "parc-server relay-cert"
RELAY_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
setup() {
  "$WORK/root/usr/sbin/parc-relay-setup" --cert "$WORK/relay-tls/relay.pem" \
    --key "$WORK/relay-tls/relay.key" --upstream "$ART_URL" --upstream-ca "$WORK/server/tls/ca.pem" \
    --listen "127.0.0.1:$RELAY_PORT" --cache-dir "$WORK/relay-cache" --out "$WORK/relay-site.conf" "$@"
}
if setup --name relais.example.fr 2>"$WORK/setup.err"; then fail "parc-relay-setup took a certificate for another name"; fi
grep -q 'not a certificate for relais.example.fr' "$WORK/setup.err" || fail "parc-relay-setup's error: $(cat "$WORK/setup.err")"
setup --name localhost >/dev/null || fail "parc-relay-setup"
mkdir -p "$WORK/nginx-tmp"
cat >"$WORK/nginx.conf" <<NGINX
master_process off;
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections 64; }
http {
  client_body_temp_path $WORK/nginx-tmp/body;
  proxy_temp_path $WORK/nginx-tmp/proxy;
  fastcgi_temp_path $WORK/nginx-tmp/fastcgi;
  uwsgi_temp_path $WORK/nginx-tmp/uwsgi;
  scgi_temp_path $WORK/nginx-tmp/scgi;
  include $WORK/relay-site.conf;
}
NGINX
nginx -t -q -c "$WORK/nginx.conf" || fail "nginx -t rejects the site parc-relay-setup wrote"
nginx -c "$WORK/nginx.conf" &
NGINX_PID=$!
RELAY="https://localhost:$RELAY_PORT"
for _ in $(seq 1 50); do curl -sf --cacert "$WORK/server/tls/ca.pem" "$RELAY/healthz" >/dev/null && break; sleep 0.1; done
[ "$(curl -sf --cacert "$WORK/server/tls/ca.pem" "$RELAY/healthz")" = ok ] || fail "relay /healthz"
# An unknown artifact: the central server's 404 through the relay (a TLS failure to the
# upstream would be a 502).
code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$WORK/server/tls/ca.pem" \
  "$RELAY/artifacts/$(printf '0%.0s' $(seq 1 64))")
kill "$NGINX_PID"; wait "$NGINX_PID" 2>/dev/null || true
[ "$code" = 404 ] || { cat "$WORK/nginx-error.log"; fail "relay to the central server: HTTP $code"; }
ok "extracted parc-relay: setup checks the certificate, nginx serves the site, reaches the centre"
echo "package checks: $pass passed, 0 failed"

# 6. The packages installed, upgraded and purged for real in a Debian 12 chroot.
if [ "${PARC_SKIP_CHROOT:-}" != 1 ]; then
  tools/package-install-test.sh "$AGENT_DEB" "$SERVER_DEB" "$RELAY_DEB"
fi
