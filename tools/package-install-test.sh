#!/usr/bin/env bash
# Installs, upgrades and purges the Debian packages for real, in a minimal Debian 12 chroot
# built with mmdebstrap: the maintainer scripts run, dependencies come from Debian, the
# configuration a technician edited survives the upgrade, purge removes the state.
#   tools/package-install-test.sh AGENT.deb SERVER.deb RELAY.deb
# Needs root (chroot) and Debian's package mirror. The bare chroot is cached in
# ${PARC_CACHE:-/var/cache/parc-ci}/bookworm-chroot.tar, keyed by this script's chroot recipe.
set -euo pipefail
AGENT_DEB=$(readlink -f "$1")
SERVER_DEB=$(readlink -f "$2")
RELAY_DEB=$(readlink -f "$3")
CACHE=${PARC_CACHE:-/var/cache/parc-ci}
MIRROR=${PARC_DEBIAN_MIRROR:-http://deb.debian.org/debian}
RECIPE="bookworm apt-variant v1"
TARBALL="$CACHE/bookworm-chroot-$(echo "$RECIPE" | sha256sum | cut -c1-12).tar"

if ! command -v mmdebstrap >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mmdebstrap \
    >/dev/null
fi
mkdir -p "$CACHE"
if [ ! -s "$TARBALL" ]; then
  mmdebstrap --quiet --variant=apt --format=tar bookworm "$TARBALL.part" "$MIRROR"
  mv "$TARBALL.part" "$TARBALL"
fi

ROOT=$(mktemp -d /tmp/parc-chroot.XXXXXX)
cleanup() {
  for m in proc dev; do umount -l "$ROOT/$m" 2>/dev/null || true; done
  rm -rf "$ROOT"
}
trap cleanup EXIT
tar -xf "$TARBALL" -C "$ROOT"
mount -t proc proc "$ROOT/proc"
mount --bind /dev "$ROOT/dev"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true
# No daemon starts in the chroot (nginx's postinst would start one on the host's port 80).
printf '#!/bin/sh\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d"
chmod 755 "$ROOT/usr/sbin/policy-rc.d"
in_root() { chroot "$ROOT" /usr/bin/env DEBIAN_FRONTEND=noninteractive PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"; }
fail() { echo "package install test FAILED: $*" >&2; exit 1; }
pass=0
ok() { echo "ok: $*"; pass=$((pass + 1)); }

# Version 1, as built.
mkdir -p "$ROOT/debs"
cp "$AGENT_DEB" "$SERVER_DEB" "$RELAY_DEB" "$ROOT/debs/"
in_root apt-get update -qq >/dev/null
in_root apt-get install -y -qq --no-install-recommends \
  "/debs/$(basename "$AGENT_DEB")" "/debs/$(basename "$SERVER_DEB")" \
  "/debs/$(basename "$RELAY_DEB")" >/dev/null 2>&1 || fail "apt-get install of the packages"
in_root dpkg-query -W -f='${Status}\n' parc-agent parc-server parc-relay |
  grep -c 'install ok installed' | grep -qx 3 || fail "the three packages installed"
ok "installed with their dependencies from Debian"
[ "$(stat -c %a "$ROOT/var/lib/parc-agent")" = 700 ] || fail "/var/lib/parc-agent is not 0700"
[ "$(stat -c %a "$ROOT/etc/parc/agent.toml")" = 600 ] || fail "/etc/parc/agent.toml is not 0600"
in_root getent passwd parc >/dev/null || fail "system user parc"
[ "$(in_root stat -c %U /var/lib/parc-server)" = parc ] || fail "/var/lib/parc-server owner"
ok "postinst: state directories, 0600 agent configuration, system user parc"
in_root parc-agent --version >/dev/null || fail "parc-agent runs"
in_root parcctl --help >/dev/null || fail "parcctl runs"
in_root parc-server --help >/dev/null || fail "parc-server runs"
ok "the installed programs run"
[ "$(in_root stat -c '%U %a' /var/cache/parc-relay)" = "www-data 750" ] ||
  fail "/var/cache/parc-relay is not www-data's, 0750"
[ "$(in_root stat -c '%G %a' /etc/parc-relay)" = "www-data 750" ] || fail "/etc/parc-relay mode"
# The relay on its installed nginx: a certificate for its name (openssl, a dependency), the
# site from parc-relay-setup, nginx -t (which resolves the upstream's host: an address here).
in_root openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
  -subj /CN=relais.example.fr -addext subjectAltName=DNS:relais.example.fr \
  -keyout /etc/parc-relay/relay.key -out /etc/parc-relay/relay.pem >/dev/null 2>&1 ||
  fail "openssl in the chroot"
cp "$ROOT/etc/parc-relay/relay.pem" "$ROOT/etc/parc-relay/ca.pem"
in_root parc-relay-setup --name relais.example.fr --cert /etc/parc-relay/relay.pem \
  --key /etc/parc-relay/relay.key --upstream https://127.0.0.1:8444 \
  --upstream-name parc.example.fr --upstream-ca /etc/parc-relay/ca.pem >/dev/null ||
  fail "parc-relay-setup in the chroot"
in_root nginx -t -q || fail "the installed nginx rejects the relay site"
ok "parc-relay: cache and configuration directories, a site the installed nginx accepts"

# A technician edits the configuration; an upgrade (same files, version 2) keeps it.
echo 'server = "parc.example.fr:8443"' >>"$ROOT/etc/parc/agent.toml"
bump() {  # deb -> the same package as version <upstream>-2
  local deb=$1 dir; dir=$(mktemp -d "$ROOT/tmp/bump.XXXXXX")
  dpkg-deb -R "$deb" "$dir/pkg"
  sed -i 's/^Version: \(.*\)-1$/Version: \1-2/' "$dir/pkg/DEBIAN/control"
  dpkg-deb -b "$dir/pkg" "$ROOT/debs/" >/dev/null
  rm -rf "$dir"
}
bump "$AGENT_DEB"
bump "$SERVER_DEB"
bump "$RELAY_DEB"
echo 'CACHE_MAX_BYTES=1073741824' >>"$ROOT/etc/parc-relay/sync.env"
NEW_RELAY=$(cd "$ROOT/debs" && ls parc-relay_*-2_*.deb)
NEW_AGENT=$(cd "$ROOT/debs" && ls parc-agent_*-2_*.deb)
NEW_SERVER=$(cd "$ROOT/debs" && ls parc-server_*-2_*.deb)
in_root apt-get install -y -qq -o Dpkg::Options::=--force-confold "/debs/$NEW_AGENT" \
  "/debs/$NEW_SERVER" "/debs/$NEW_RELAY" >/dev/null 2>&1 || fail "upgrade"
in_root dpkg-query -W -f='${Version}\n' parc-agent | grep -q -- '-2$' || fail "upgraded version"
grep -q 'parc.example.fr' "$ROOT/etc/parc/agent.toml" || fail "conffile kept on upgrade"
grep -q 'CACHE_MAX_BYTES=1073741824' "$ROOT/etc/parc-relay/sync.env" || fail "sync.env kept on upgrade"
[ "$(stat -c %a "$ROOT/etc/parc/agent.toml")" = 600 ] || fail "agent.toml 0600 after upgrade"
ok "upgrade keeps the edited configuration (0600)"

# Purge removes the state, the configuration and the user.
echo "state" >"$ROOT/var/lib/parc-agent/agent.db"
in_root apt-get purge -y -qq parc-agent parc-server parc-relay >/dev/null 2>&1 || fail "purge"
[ ! -e "$ROOT/var/cache/parc-relay" ] || fail "/var/cache/parc-relay left after purge"
[ ! -e "$ROOT/etc/parc-relay" ] || fail "/etc/parc-relay left after purge"
[ ! -e "$ROOT/etc/nginx/sites-enabled/parc-relay" ] || fail "the relay's nginx site left after purge"
[ ! -e "$ROOT/var/lib/parc-agent" ] || fail "/var/lib/parc-agent left after purge"
[ ! -e "$ROOT/var/lib/parc-server" ] || fail "/var/lib/parc-server left after purge"
[ ! -e "$ROOT/etc/parc/agent.toml" ] || fail "/etc/parc/agent.toml left after purge"
! in_root getent passwd parc >/dev/null || fail "user parc left after purge"
ok "purge removes state, configuration and the system user"
echo "package install checks: $pass passed, 0 failed"
