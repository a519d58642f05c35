#!/usr/bin/env bash
# The Windows agent end to end, under Wine, against a real parc-server (the Linux build) over
# gRPC-Web on its HTTPS port: enrollment with a token, a check-in cycle with the WMI inventory,
# a signed bundle holding a real MSI (built here with wixl) rolled out and installed by msiexec,
# the installed product seen in the registry by the next inventory, and an agent pinned to
# another CA refusing the server before sending anything.
#   agent_wine_test.sh WINDOWS_BUILD_DIR LINUX_BUILD_DIR
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WIN=$(cd "$1" && pwd)
LINUX=$(cd "$2" && pwd)
AGENT=$WIN/agent/parc-agent.exe
CTL=$LINUX/tools/parcctl/parcctl
for bin in "$LINUX/server/parc-server" "$CTL" "$LINUX/tools/bundle/parc-bundle"; do
  [ -x "$bin" ] || { echo "missing $bin: build the Linux programs first (tools/test.sh)"; exit 1; }
done
WORK=$(mktemp -d /tmp/parc-wine.XXXXXX)
PID=""
cleanup() {
  [ -n "$PID" ] && kill "$PID" 2>/dev/null
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
export WINEDEBUG=-all
[ -n "${WINEPREFIX:-}" ] || { export WINEPREFIX=$WORK/wine; wineboot -i >/dev/null 2>&1; }
wine winecfg -v win10 >/dev/null 2>&1  # as the fleet: Windows 10 and 11
winpath() { printf 'Z:%s' "${1//\//\\}"; }
fail() { echo "FAIL: $*"; echo "--- server log"; tail -20 "$WORK/server.log"; exit 1; }

"$LINUX/tools/bundle/parc-bundle" keygen --out "$WORK/toulouse" >/dev/null
"$LINUX/server/parc-server" --data-dir "$WORK/server" --listen 127.0.0.1:0 \
  --port-file "$WORK/port" --artifact-listen 127.0.0.1:0 --publisher-key "$WORK/toulouse.pub" \
  --rollout-interval 1s --log-level info >"$WORK/server.log" 2>&1 &
PID=$!
for _ in $(seq 1 100); do [ -s "$WORK/port" ] && break; sleep 0.1; done
[ -s "$WORK/port" ] || fail "parc-server did not start"
HTTPS_PORT=""
for _ in $(seq 1 50); do
  HTTPS_PORT=$(sed -n 's/.*dashboard at https:\/\/localhost:\([0-9]*\).*/\1/p' "$WORK/server.log")
  [ -n "$HTTPS_PORT" ] && break
  sleep 0.1
done
export PARC_SERVER=127.0.0.1:$(cat "$WORK/port") PARC_CA=$WORK/server/tls/ca.pem
export PARC_TOKEN_FILE=$WORK/server/admin.token
"$CTL" establishments import "$ROOT/tests/data/annuaire-occitanie.csv" >/dev/null
token() {
  "$CTL" tokens create --uai 0310036W --json | sed -n 's/.*"token": "\(.*\)".*/\1/p'
}
printf 'publisher_keys = ["%s"]\n' "$(winpath "$WORK/toulouse.pub" | sed 's/\\/\\\\/g')" \
  >"$WORK/agent.toml"
STATE=$(winpath "$WORK/state")
agent() { wine "$AGENT" "$@" --config "$(winpath "$WORK/agent.toml")" --state-dir "$STATE"; }

# 1. An agent pinned to another CA refuses the server: nothing enrolled, the token unused.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=other \
  -keyout "$WORK/other.key" -out "$WORK/other.pem" 2>/dev/null
T1=$(token)
if wine "$AGENT" enroll --server "https://localhost:$HTTPS_PORT" --ca "$(winpath "$WORK/other.pem")" \
  --token "$T1" --config "$(winpath "$WORK/agent.toml")" --state-dir "$(winpath "$WORK/other")" \
  >"$WORK/refused.out" 2>&1; then
  fail "enrolled with a server outside the pinned CA"
fi
grep -q "not issued by the CA this agent trusts" "$WORK/refused.out" ||
  fail "unclear refusal: $(cat "$WORK/refused.out")"
"$CTL" tokens list --json | grep -q '"uses": 1' && fail "the refused agent used its token"

# 2. Enrollment and one cycle over gRPC-Web, inventory from WMI.
agent enroll --server "https://localhost:$HTTPS_PORT" --ca "$(winpath "$PARC_CA")" \
  --token "$(token)" >"$WORK/enroll.out" 2>&1 || fail "enroll: $(cat "$WORK/enroll.out")"
agent run --once >"$WORK/run1.out" 2>&1 || fail "run: $(cat "$WORK/run1.out")"
DEVICE=$("$CTL" devices list --json | python3 -c 'import json,sys; d=json.load(sys.stdin)["devices"]; print(d[0]["id"] if d else "")')
[ -n "$DEVICE" ] || fail "no device on the server"
"$CTL" devices show "$DEVICE" >"$WORK/device.txt"
grep -q "Microsoft Windows 10" "$WORK/device.txt" || fail "no Windows inventory: $(cat "$WORK/device.txt")"
grep -q "0310036W" "$WORK/device.txt" || fail "device not in its establishment"

# 3. A signed bundle with a real MSI, rolled out, installed by msiexec.
PRODUCT="{6D1B2C3A-4E5F-4A6B-8C7D-9E0F1A2B3C4D}"
cat >"$WORK/geogebra.wxs" <<WXS
<?xml version="1.0" encoding="utf-8"?>
<Wix xmlns="http://schemas.microsoft.com/wix/2006/wi">
  <Product Id="$PRODUCT" Name="GeoGebra Classic (test)" Language="1036" Version="6.0.820"
           Manufacturer="International GeoGebra Institute"
           UpgradeCode="{1A2B3C4D-5E6F-4071-8293-A4B5C6D7E8F9}">
    <Package InstallerVersion="200" Compressed="yes" InstallScope="perMachine"/>
    <Media Id="1" Cabinet="g.cab" EmbedCab="yes"/>
    <Directory Id="TARGETDIR" Name="SourceDir">
      <Directory Id="ProgramFiles64Folder">
        <Directory Id="INSTALLDIR" Name="GeoGebra Test">
          <Component Id="Readme" Guid="{0B1C2D3E-4F50-4617-8293-A4B5C6D7E8F0}" Win64="yes">
            <File Id="ReadmeFile" Name="README.txt" Source="README.txt"/>
          </Component>
        </Directory>
      </Directory>
    </Directory>
    <Feature Id="Main" Level="1"><ComponentRef Id="Readme"/></Feature>
  </Product>
</Wix>
WXS
echo "GeoGebra Classic (test)" >"$WORK/README.txt"
(cd "$WORK" && wixl -a x64 -o geogebra.msi geogebra.wxs)
cat >"$WORK/mcnl.toml" <<SPEC
name = "mcnl"
version = "2026.1"
sequence = 1
expires = "30d"

[[packages]]
id = "geogebra"
version = "6.0.820"
artifact = "geogebra.msi"
type = "msi"
product_code = "$PRODUCT"

[[packages]]
id = "ressources-debian"
version = "1.0"
artifact = "README.txt"
type = "deb"
deb_package = "ressources-mcnl"
SPEC
"$LINUX/tools/bundle/parc-bundle" build "$WORK/mcnl.toml" --key "$WORK/toulouse.key" \
  --out "$WORK/bundle" >/dev/null
"$CTL" bundles publish "$WORK/bundle" >/dev/null
ROLLOUT=$("$CTL" rollouts create --bundle mcnl@2026.1 --target uai:0310036W --waves 100 --json |
  sed -n 's/.*"id": "\(r[0-9a-f]*\)".*/\1/p')
"$CTL" rollouts start "$ROLLOUT" >/dev/null
agent run --once >"$WORK/run2.out" 2>&1 || fail "run: $(cat "$WORK/run2.out")"
agent bundles >"$WORK/bundles.out" 2>&1 || true
grep -q "geogebra.*installed" "$WORK/bundles.out" || fail "not installed: $(cat "$WORK/bundles.out" "$WORK/run2.out")"
[ -f "$WINEPREFIX/drive_c/Program Files/GeoGebra Test/README.txt" ] || fail "the MSI's file is missing"
# 4. The next inventory lists the product from the registry's Uninstall keys.
agent inventory --json >"$WORK/inventory.json" 2>&1 || true
grep -q "GeoGebra Classic (test)" "$WORK/inventory.json" || fail "product not inventoried"
echo "agent_wine_test: enrolled over gRPC-Web, inventoried, installed an MSI, refused a foreign CA"
