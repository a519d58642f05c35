#!/usr/bin/env bash
# The Windows agent end to end, under Wine, against a real parc-server (the Linux build) over
# gRPC-Web on its HTTPS port: an agent pinned to another CA refuses the server before sending
# anything; the agent's own MSI installs with msiexec (PARC_SERVER, PARC_TOKEN, PARC_CA,
# PARC_PUBLISHER_KEY), writes its configuration and starts the ParcAgent service, which enrolls
# the device with its WMI inventory; a signed bundle holding a real MSI (built here with wixl),
# a zip, a setup.exe and a command package is rolled out, installed by msiexec, libarchive,
# CreateProcess and cmd, and reported; the installed product is then inventoried from the
# registry; the next bundle drops the MSI (removed by msiexec /x) and upgrades the zip.
#   agent_wine_test.sh WINDOWS_BUILD_DIR LINUX_BUILD_DIR
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WIN=$(cd "$1" && pwd)
LINUX=$(cd "$2" && pwd)
AGENT=$WIN/agent/parc-agent.exe
AGENT_MSI=$(ls "$WIN"/parc-agent-*-x64.msi 2>/dev/null | head -1)
[ -n "$AGENT_MSI" ] || { echo "missing the agent's MSI in $WIN: build with tools/build-windows.sh"; exit 1; }
CTL=$LINUX/tools/parcctl/parcctl
for bin in "$LINUX/server/parc-server" "$CTL" "$LINUX/tools/bundle/parc-bundle"; do
  [ -x "$bin" ] || { echo "missing $bin: build the Linux programs first (tools/test.sh)"; exit 1; }
done
WORK=$(mktemp -d /tmp/parc-wine.XXXXXX)
PID=""
cleanup() {
  [ -n "$PID" ] && kill "$PID" 2>/dev/null
  wineserver -k 2>/dev/null || true
  wait 2>/dev/null || true
  [ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT
export WINEDEBUG=-all
[ -n "${WINEPREFIX:-}" ] || { export WINEPREFIX=$WORK/wine; wineboot -i >/dev/null 2>&1; }
wine winecfg -v win10 >/dev/null 2>&1  # as the fleet: Windows 10 and 11
# Wine ends services when its server exits (a few seconds after the last program): keep it
# up while the test runs, so that the ParcAgent service lives as on Windows.
wineserver -k 2>/dev/null || true
wineserver -p </dev/null >/dev/null 2>&1
winpath() { printf 'Z:%s' "${1//\//\\}"; }
# retry N CMD...: runs CMD until it succeeds, N times at most, 0.5 s apart.
retry() {
  local n=$1
  shift
  for _ in $(seq 1 "$n"); do "$@" && return 0; sleep 0.5; done
  return 1
}
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

# 2. The agent's MSI, as a GPO deploys it: the service starts and enrolls the device.
T2=$(token)
wine msiexec /i "$(winpath "$AGENT_MSI")" /qn PARC_SERVER="https://localhost:$HTTPS_PORT" \
  PARC_CA="$(winpath "$PARC_CA")" PARC_TOKEN="$T2" \
  PARC_PUBLISHER_KEY="$(winpath "$WORK/toulouse.pub")" /l*v "$(winpath "$WORK/agent-msi.log")" ||
  fail "the agent's MSI did not install: $(iconv -f utf-16 -t utf-8 "$WORK/agent-msi.log" 2>/dev/null | grep -i 'error\|return value 3' | head -5)"
C=$WINEPREFIX/drive_c
[ -f "$C/Program Files/Parc/parc-agent.exe" ] || fail "parc-agent.exe not under Program Files"
grep -q "^server = 'https://localhost:$HTTPS_PORT'" "$C/ProgramData/Parc/agent.toml" ||
  fail "no configuration: $(cat "$C/ProgramData/Parc/agent.toml" 2>&1)"
grep -q "^enrollment_token = '$T2'" "$C/ProgramData/Parc/agent.toml" || fail "no token configured"
if iconv -f utf-16 -t utf-8 "$WORK/agent-msi.log" 2>/dev/null | grep -q "$T2"; then
  fail "the enrollment token is in the MSI log"
fi
wine reg query 'HKLM\System\CurrentControlSet\Services\ParcAgent' 2>/dev/null | grep -q "service" ||
  fail "the ParcAgent service is not registered"
DEVICE=""
enrolled() {
  DEVICE=$("$CTL" devices list --json | python3 -c 'import json,sys; d=json.load(sys.stdin)["devices"]; print(d[0]["id"] if d else "")')
  [ -n "$DEVICE" ]
}
retry 120 enrolled || fail "the service enrolled nothing: $(cat "$C/ProgramData/Parc/logs/agent.log" 2>&1 | tail -5)"
# The service's first cycle reports the inventory.
inventoried() {
  "$CTL" devices show "$DEVICE" >"$WORK/device.txt"
  grep -q "Microsoft Windows 10" "$WORK/device.txt"
}
retry 60 inventoried || fail "no Windows inventory: $(cat "$WORK/device.txt")"
grep -q "0310036W" "$WORK/device.txt" || fail "device not in its establishment"
# From here a technician's console runs the cycles: the service steps aside.
wine net stop ParcAgent >/dev/null 2>&1 || true
INSTALLED="C:\\Program Files\\Parc\\parc-agent.exe"
agent() { wine "$INSTALLED" "$@"; }

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
printf '@echo off\r\necho %%1> "%%ProgramData%%\\ressources-mcnl.txt"\r\n' >"$WORK/ressources.cmd"
(cd "$WORK" && wixl -a x64 -o geogebra.msi geogebra.wxs)
# A zip for an archive package, and a vendor's setup.exe for an exe package.
zip_of() {  # zip_of OUT NAME=CONTENT...
  python3 - "$@" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_DEFLATED) as z:
    for arg in sys.argv[2:]:
        name, content = arg.split("=", 1)
        z.writestr(name, content)
PY
}
zip_of "$WORK/atlas-1.zip" "atlas/atlas.html=Atlas 1" "atlas/only-in-1.txt=old"
zip_of "$WORK/atlas-2.zip" "atlas/atlas.html=Atlas 2"
SETUP=$(find "$WIN" -name parc_test_setup.exe | head -1)
[ -n "$SETUP" ] || fail "parc_test_setup.exe not built"
cp "$SETUP" "$WORK/setup-ent.exe"
ATLAS="$C/Program Files/MCNL/Atlas"
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
id = "ressources-mcnl"
version = "2026.1"
artifact = "ressources.cmd"
type = "command"
install = ["cmd", "/c", "{artifact}", "{version}"]

[[packages]]
id = "atlas"
version = "1.0"
artifact = "atlas-1.zip"
type = "archive"
target_dir = 'C:\Program Files\MCNL\Atlas'

[[packages]]
id = "atlas-linux"
version = "1.0"
artifact = "atlas-1.zip"
type = "archive"
target_dir = "/opt/mcnl/atlas"

[[packages]]
id = "ent-setup"
version = "4.2"
artifact = "setup-ent.exe"
type = "exe"
args = ["/S", '/LOG=C:\ProgramData\ent-setup.txt', "/V={version}"]

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
# The WinHTTP artifact fetcher on its own against the server's HTTPS port: a download, a Range
# resume, a partial file of other bytes, a body longer than declared, a server outside the CA.
FETCH_TEST=$(find "$WIN" -name winhttp_fetcher_test.exe | head -1)
[ -n "$FETCH_TEST" ] || fail "winhttp_fetcher_test.exe not built"
PARC_TEST_ARTIFACT_URL="https://localhost:$HTTPS_PORT/artifacts/$(sha256sum "$WORK/geogebra.msi" | cut -d' ' -f1)" \
  PARC_TEST_ARTIFACT=$(winpath "$WORK/geogebra.msi") PARC_TEST_CA=$(winpath "$PARC_CA") \
  PARC_TEST_OTHER_CA=$(winpath "$WORK/other.pem") wine "$FETCH_TEST" >"$WORK/fetch.out" 2>&1 ||
  fail "WinHTTP fetcher: $(tail -40 "$WORK/fetch.out")"
grep -q "PASSED.*5 tests" "$WORK/fetch.out" && ! grep -q SKIPPED "$WORK/fetch.out" ||
  fail "WinHTTP fetcher tests did not all run: $(tail -20 "$WORK/fetch.out")"
ROLLOUT=$("$CTL" rollouts create --bundle mcnl@2026.1 --target uai:0310036W --waves 100 --json |
  sed -n 's/.*"id": "\(r[0-9a-f]*\)".*/\1/p')
"$CTL" rollouts start "$ROLLOUT" >/dev/null
agent run --once >"$WORK/run2.out" 2>&1 || fail "run: $(cat "$WORK/run2.out")"
agent bundles >"$WORK/bundles.out" 2>&1 || true
grep -q "geogebra.*installed" "$WORK/bundles.out" || fail "not installed: $(cat "$WORK/bundles.out" "$WORK/run2.out")"
[ -f "$C/Program Files/GeoGebra Test/README.txt" ] || fail "the MSI's file is missing"
grep -q "2026.1" "$C/ProgramData/ressources-mcnl.txt" || fail "the command package did not run"
grep -q "ressources-mcnl.*installed" "$WORK/bundles.out" || fail "command package not reported"
[ "$(cat "$ATLAS/atlas/atlas.html")" = "Atlas 1" ] || fail "the zip was not unpacked"
grep -q "atlas .*installed" "$WORK/bundles.out" || fail "archive package not reported"
grep -q "atlas-linux.*installed" "$WORK/bundles.out" && fail "a Linux archive installed on Windows"
[ "$(tr -d '\r' <"$C/ProgramData/ent-setup.txt")" = "$(printf '/S\n/LOG=C:\\ProgramData\\ent-setup.txt\n/V=4.2')" ] ||
  fail "setup.exe ran with: $(cat "$C/ProgramData/ent-setup.txt" 2>&1)"
rollout_done() {
  "$CTL" rollouts status "$ROLLOUT" >"$WORK/rollout.txt"
  grep -q "every targeted device (1) installed" "$WORK/rollout.txt"
}
retry 20 rollout_done || fail "rollout status: $(cat "$WORK/rollout.txt")"
# 4. The next inventory lists the product from the registry's Uninstall keys.
agent inventory --json >"$WORK/inventory.json" 2>&1 || true
grep -q "GeoGebra Classic (test)" "$WORK/inventory.json" || fail "product not inventoried"
# 5. The next bundle drops the MSI (msiexec /x removes it) and upgrades the zip (swapped whole).
sed -e '0,/^version = "2026.1"/s//version = "2026.2"/' -e 's/^sequence = 1/sequence = 2/' \
  -e 's/atlas-1.zip/atlas-2.zip/' "$WORK/mcnl.toml" |
  awk 'BEGIN{RS=""; ORS="\n\n"} !/id = "geogebra"/' >"$WORK/mcnl2.toml"
sed -i '/^id = "atlas"$/{n;s/1.0/2.0/}' "$WORK/mcnl2.toml"
"$LINUX/tools/bundle/parc-bundle" build "$WORK/mcnl2.toml" --key "$WORK/toulouse.key" \
  --out "$WORK/bundle2" >/dev/null
"$CTL" bundles publish "$WORK/bundle2" >/dev/null
ROLLOUT2=$("$CTL" rollouts create --bundle mcnl@2026.2 --target uai:0310036W --waves 100 --json |
  sed -n 's/.*"id": "\(r[0-9a-f]*\)".*/\1/p')
"$CTL" rollouts start "$ROLLOUT2" >/dev/null
agent run --once >"$WORK/run3.out" 2>&1 || fail "run: $(cat "$WORK/run3.out")"
[ ! -e "$C/Program Files/GeoGebra Test/README.txt" ] || fail "the dropped MSI is still installed"
wine reg query 'HKLM\Software\Microsoft\Windows\CurrentVersion\Uninstall' /s 2>/dev/null |
  grep -q "GeoGebra Classic (test)" && fail "the dropped MSI is still in Apps & features"
[ "$(cat "$ATLAS/atlas/atlas.html")" = "Atlas 2" ] || fail "the zip was not upgraded"
[ ! -e "$ATLAS/atlas/only-in-1.txt" ] || fail "a file of the previous zip stayed"
[ "$(cat "$ATLAS/.parc-version")" = "2.0" ] || fail "archive version file"
[ "$(grep -c '^/S' "$C/ProgramData/ent-setup.txt")" = 1 ] || fail "setup.exe ran again"
agent bundles >"$WORK/bundles2.out" 2>&1 || true
grep -q "geogebra .*installed" "$WORK/bundles2.out" && fail "the dropped MSI is still reported: $(cat "$WORK/bundles2.out")"

# 6. An upgrade: a newer MSI without properties replaces the agent, keeps its configuration.
UP=$WORK/upgrade
mkdir -p "$UP"
cp "$WIN/msi/parc-agent.exe" "$WIN/msi/parc-agent.wxs" "$UP/"
(cd "$UP" && wixl -a x64 -D Version=99.0.0 -D AgentExe=parc-agent.exe -o up.msi parc-agent.wxs)
wine net stop ParcAgent >/dev/null 2>&1 || true
wine msiexec /i "$(winpath "$UP/up.msi")" /qn >/dev/null 2>&1 || fail "the upgrade failed"
grep -q "^enrollment_token = '$T2'" "$C/ProgramData/Parc/agent.toml" || fail "upgrade lost the configuration"
PRODUCTS=$(wine reg query 'HKLM\Software\Microsoft\Windows\CurrentVersion\Uninstall' /s 2>/dev/null |
  grep -c "DisplayName.*Parc agent" || true)
[ "$PRODUCTS" = 1 ] || fail "$PRODUCTS Parc agents installed after the upgrade"
wine reg query 'HKLM\Software\Microsoft\Windows\CurrentVersion\Uninstall' /s 2>/dev/null |
  grep -q "DisplayVersion.*99.0.0" || fail "the upgrade did not install the new version"
wine "$INSTALLED" status >"$WORK/status.out" 2>&1 || fail "status after upgrade: $(cat "$WORK/status.out")"
grep -q "$DEVICE" "$WORK/status.out" || fail "the enrollment was lost: $(cat "$WORK/status.out")"
echo "agent_wine_test: refused a foreign CA; agent MSI installed, service enrolled over gRPC-Web;"
echo "  WinHTTP fetcher: download, Range resume, foreign partial file, oversized body, foreign CA;"
echo "  bundle (MSI, zip, setup.exe, command) installed and reported, the Linux packages skipped;"
echo "  product inventoried from the registry; the next bundle removed the dropped MSI (msiexec /x)"
echo "  and swapped the zip's new version in; the agent upgraded by a newer MSI, its"
echo "  configuration and enrollment kept"
