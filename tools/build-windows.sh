#!/usr/bin/env bash
# Cross-builds the Windows agent from Debian with MinGW-w64 and, with --test, runs its tests
# under Wine. Installs its own Debian packages. Debian ships no MinGW build of Abseil, protobuf,
# SQLite or libarchive: this script builds each from its Debian source package (apt-get source, the version
# pinned below) and keeps the result in a cache keyed by that version, so only the first run on a
# machine pays for it.
#
#   tools/build-windows.sh            # build/windows: the agent, its tests
#   tools/build-windows.sh --test     # ... and run the tests under Wine
#   PARC_WINDOWS_CACHE=dir tools/build-windows.sh   # default ~/.cache/parc-windows
#   WINDOWS_BUILD_DIR=dir tools/build-windows.sh    # default build/windows
#   LINUX_BUILD_DIR=dir tools/build-windows.sh --test   # Linux server for the end-to-end
#                                                        # test (default build/asan)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

ABSEIL_VERSION=20220623.1-1+deb12u2
PROTOBUF_VERSION=3.21.12-3+deb12u1
SQLITE_VERSION=3.40.1-2+deb12u2
LIBARCHIVE_VERSION=3.6.2-1+deb12u5

RUN_TESTS=0
[ "${1:-}" = "--test" ] && RUN_TESTS=1
JOBS=${JOBS:-$(nproc)}
CACHE=${PARC_WINDOWS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/parc-windows}
BUILD_DIR=${WINDOWS_BUILD_DIR:-build/windows}
LINUX_DIR=${LINUX_BUILD_DIR:-build/asan}
# Relative directories are taken from the repository's root.
case $BUILD_DIR in /*) ;; *) BUILD_DIR=$ROOT/$BUILD_DIR ;; esac
case $LINUX_DIR in /*) ;; *) LINUX_DIR=$ROOT/$LINUX_DIR ;; esac
TOOLCHAIN=$ROOT/cmake/mingw-w64.cmake

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive

# --- Debian packages -------------------------------------------------------------------------
PACKAGES=(g++-mingw-w64-x86-64-posix wine wine64 wixl msitools libgcrypt-mingw-w64-dev
          libz-mingw-w64-dev python3
          cmake ninja-build ccache dpkg-dev tcl protobuf-compiler libprotobuf-dev googletest
          libcli11-dev libasio-dev libtomlplusplus-dev libspdlog-dev libfmt-dev xz-utils)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "build-windows.sh: installing ${missing[*]}" >&2
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- Libraries from Debian source packages, cached by version ---------------------------------
ensure_deb_src() {
  if grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ || grep -qs '^deb-src' /etc/apt/sources.list; then
    return
  fi
  # The same mirrors as the binary packages, for source packages.
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources |
      $SUDO tee /etc/apt/sources.list.d/parc-deb-src.sources >/dev/null
  else
    sed -n 's/^deb \(.*\)/deb-src \1/p' /etc/apt/sources.list |
      $SUDO tee /etc/apt/sources.list.d/parc-deb-src.list >/dev/null
  fi
  $SUDO apt-get update -qq
}

# fetch_source NAME VERSION: unpacks the pinned Debian source package into $work/src-NAME
# and prints that directory.
fetch_source() {
  local name=$1 version=$2 dir=$work/src-$1
  mkdir -p "$dir"
  (cd "$dir" && apt-get source -qq "$name=$version" >/dev/null 2>&1) ||
    { echo "build-windows.sh: apt-get source $name=$version failed" >&2; return 1; }
  find "$dir" -maxdepth 1 -mindepth 1 -type d -name "$name-*" | head -1
}

cross_cmake() {  # cross_cmake SRC BUILD PREFIX [options...]
  local src=$1 build=$2 prefix=$3
  shift 3
  cmake -S "$src" -B "$build" -G Ninja -DCMAKE_TOOLCHAIN_FILE="$TOOLCHAIN" \
    -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$prefix" -DBUILD_SHARED_LIBS=OFF \
    -DCMAKE_POSITION_INDEPENDENT_CODE=OFF "$@" >/dev/null
  cmake --build "$build" -j "$JOBS" >/dev/null
  cmake --install "$build" >/dev/null
}

# cached NAME SOURCE_PACKAGE VERSION STEP: adds $CACHE/NAME-VERSION to PARC_WINDOWS_PREFIX
# and, unless it is complete, queues "STEP SRC PREFIX" on the unpacked source package to
# install it there (build_queued runs the queue).
QUEUED=()
cached() {
  local prefix=$CACHE/$1-$3
  PARC_WINDOWS_PREFIX=${PARC_WINDOWS_PREFIX:+$PARC_WINDOWS_PREFIX:}$prefix
  [ -f "$prefix/.complete" ] || QUEUED+=("$*")
}

# build_queued: builds the queued libraries side by side. Most of their cold time is serial
# (CMake's configure checks, libarchive's several hundred above all, and SQLite's one large
# file), so one after another they left a core idle for most of ten minutes.
build_queued() {
  [ ${#QUEUED[@]} -eq 0 ] && return
  ensure_deb_src
  local entry pids=() failed=0 pid
  for entry in "${QUEUED[@]}"; do
    (
      set -euo pipefail
      # shellcheck disable=SC2086 # NAME SOURCE_PACKAGE VERSION STEP, none with spaces
      set -- $entry
      prefix=$CACHE/$1-$3
      echo "build-windows.sh: building $1 $3 for Windows (once per machine)" >&2
      src=$(fetch_source "$2" "$3")
      rm -rf "$prefix"
      "$4" "$src" "$prefix"
      touch "$prefix/.complete"
    ) &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
  [ "$failed" = 0 ] || { echo "build-windows.sh: a library failed to build (above)" >&2; exit 1; }
}

abseil_step() {
  cross_cmake "$1" "$work/abseil-build" "$2" -DCMAKE_CXX_STANDARD=17 \
    -DABSL_PROPAGATE_CXX_STD=ON -DBUILD_TESTING=OFF -DABSL_ENABLE_INSTALL=ON
}

protobuf_step() {  # the runtime only: .proto files are compiled by the host's protoc
  cross_cmake "$1/cmake" "$work/protobuf-build" "$2" -Dprotobuf_BUILD_TESTS=OFF \
    -Dprotobuf_BUILD_PROTOC_BINARIES=OFF -Dprotobuf_WITH_ZLIB=OFF -Dprotobuf_BUILD_EXAMPLES=OFF
}

sqlite_step() {
  local src=$1 prefix=$2
  # The amalgamation is generated by host tools (lemon, tclsh), then cross-compiled.
  (cd "$src" && ./configure -q >/dev/null && make -s sqlite3.c >/dev/null 2>&1)
  mkdir -p "$prefix/include" "$prefix/lib"
  x86_64-w64-mingw32-gcc-posix -O2 -c "$src/sqlite3.c" -o "$work/sqlite3.o" \
    -DSQLITE_THREADSAFE=1 -DSQLITE_DEFAULT_WAL_SYNCHRONOUS=1 -DSQLITE_OMIT_LOAD_EXTENSION \
    -DSQLITE_ENABLE_JSON1 -DSQLITE_WIN64=1
  x86_64-w64-mingw32-ar rcs "$prefix/lib/libsqlite3.a" "$work/sqlite3.o"
  cp "$src/sqlite3.h" "$src/sqlite3ext.h" "$prefix/include/"
}

libarchive_step() {  # zip and tar (gzip via Debian's MinGW zlib); no other library, no tools
  cross_cmake "$1" "$work/libarchive-build" "$2" -DENABLE_TEST=OFF -DENABLE_TAR=OFF \
    -DENABLE_CPIO=OFF -DENABLE_CAT=OFF -DENABLE_OPENSSL=OFF -DENABLE_MBEDTLS=OFF \
    -DENABLE_NETTLE=OFF -DENABLE_CNG=OFF -DENABLE_LIBB2=OFF -DENABLE_LZ4=OFF -DENABLE_LZO=OFF \
    -DENABLE_LZMA=OFF -DENABLE_ZSTD=OFF -DENABLE_BZip2=OFF -DENABLE_LIBXML2=OFF \
    -DENABLE_EXPAT=OFF -DENABLE_PCREPOSIX=OFF -DENABLE_LIBGCC=OFF -DPOSIX_REGEX_LIB=NONE \
    -DENABLE_XATTR=OFF -DENABLE_ACL=OFF -DENABLE_ICONV=OFF \
    -DZLIB_LIBRARY=/usr/x86_64-w64-mingw32/lib/libz.a \
    -DZLIB_INCLUDE_DIR=/usr/x86_64-w64-mingw32/include
}

mkdir -p "$CACHE"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
PARC_WINDOWS_PREFIX=""
cached abseil abseil "$ABSEIL_VERSION" abseil_step
cached protobuf protobuf "$PROTOBUF_VERSION" protobuf_step
cached sqlite sqlite3 "$SQLITE_VERSION" sqlite_step
cached libarchive libarchive "$LIBARCHIVE_VERSION" libarchive_step
build_queued
export PARC_WINDOWS_PREFIX

# --- Debian's header-only libraries, copied out of /usr/include --------------------------------
HEADERS=$BUILD_DIR/host-headers
mkdir -p "$HEADERS"
for h in toml++ CLI asio asio.hpp spdlog fmt; do
  [ -e "$HEADERS/$h" ] || cp -r "/usr/include/$h" "$HEADERS/"
done

# --- The agent --------------------------------------------------------------------------------
# The end-to-end test runs the Linux parc-server, parcctl and parc-bundle of LINUX_BUILD_DIR
# (tools/test.sh builds them there first).
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_TOOLCHAIN_FILE="$TOOLCHAIN" \
  -DCMAKE_BUILD_TYPE=Release -DPARC_WERROR=ON -DPARC_HOST_HEADERS="$HEADERS" \
  -DPARC_LINUX_BUILD_DIR="$LINUX_DIR" >/dev/null
cmake --build "$BUILD_DIR" -j "$JOBS"

# --- The agent's MSI --------------------------------------------------------------------------
VERSION=$(sed -n 's/^project(parc VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
STAGE=$BUILD_DIR/msi
rm -rf "$STAGE" && mkdir -p "$STAGE"
x86_64-w64-mingw32-strip -o "$STAGE/parc-agent.exe" "$BUILD_DIR/agent/parc-agent.exe"
cp packaging/windows/parc-agent.wxs "$STAGE/"
# wixl resolves File sources relative to the working directory.
(cd "$STAGE" && wixl -a x64 -D Version="$VERSION" -D AgentExe=parc-agent.exe \
  -o "parc-agent-$VERSION-x64.msi" parc-agent.wxs)
mv "$STAGE/parc-agent-$VERSION-x64.msi" "$BUILD_DIR/"
echo "build-windows.sh: $BUILD_DIR/agent/parc-agent.exe, $BUILD_DIR/parc-agent-$VERSION-x64.msi" \
  "($(du -k "$BUILD_DIR/parc-agent-$VERSION-x64.msi" | cut -f1) KiB)"

if [ "$RUN_TESTS" = 1 ]; then
  # One Wine prefix for the whole run (its first start takes seconds), removed afterwards.
  WINEPREFIX=$(mktemp -d)
  export WINEPREFIX WINEDEBUG=-all
  trap 'wineserver -k >/dev/null 2>&1 || true; rm -rf "$work" "$WINEPREFIX"' EXIT
  wineboot -i >/dev/null 2>&1 || true
  # Wine reports Windows 7 unless told otherwise; the fleet runs Windows 10 and 11.
  wine winecfg -v win10 >/dev/null 2>&1 || true
  ctest --test-dir "$BUILD_DIR" --output-on-failure --timeout 600
fi
