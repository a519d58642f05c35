#!/usr/bin/env bash
# Installs Parc's build dependencies from Debian 12 packages; with --test, also what the
# script tests use (Chromium for the dashboard, promtool for /metrics, Node.js); with
# --package, what building and checking the Debian packages needs; with --bench, what
# tools/bench/run.sh uses; with --fuzz, clang and libFuzzer for tools/fuzz.sh. Idempotent:
# packages already present are not fetched again. Needs root (or sudo) when some are missing.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config ccache git
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libasio-dev libsqlite3-dev sqlite3 libcurl4-openssl-dev libssl-dev openssl
  libgtest-dev libgmock-dev libcli11-dev libcpp-httplib-dev libarchive-dev
  libspdlog-dev libtomlplusplus-dev libpq-dev libjemalloc-dev
)
if [ "${1:-}" = "--package" ]; then
  PACKAGES+=(lintian help2man systemd fakeroot dpkg-dev mmdebstrap nginx curl openssl python3)
fi
if [ "${1:-}" = "--bench" ]; then
  PACKAGES+=(curl bc time python3 procps postgresql haproxy nginx)
fi
if [ "${1:-}" = "--fuzz" ]; then
  PACKAGES+=(clang-14 libclang-rt-14-dev)
fi
if [ "${1:-}" = "--test" ]; then
  PACKAGES+=(chromium prometheus curl postgresql haproxy tinyproxy nginx)
  command -v node >/dev/null || PACKAGES+=(nodejs npm)
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
echo "deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
