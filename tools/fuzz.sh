#!/usr/bin/env bash
# Builds the libFuzzer harnesses of fuzz/ with clang, AddressSanitizer and UndefinedBehavior-
# Sanitizer, and runs each one from its corpus in the tree (fuzz/corpus/<harness>), the new
# inputs going to a scratch copy. Installs its own dependencies (Debian 12).
#
#   tools/fuzz.sh                   # every harness, 10 s each (what .ci/run does)
#   tools/fuzz.sh --seconds 600     # longer
#   tools/fuzz.sh --runs 1000000    # a number of executions per harness
#   tools/fuzz.sh fuzz_csv          # only some harnesses
# Prints one line per harness: executions, executions per second, corpus size; exits non-zero
# on any crash, leak or sanitizer report (the reproducer is kept in build/fuzz/crashes/).
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_EACH=10
RUNS=""
HARNESSES=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) SECONDS_EACH=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    *) HARNESSES+=("$1"); shift ;;
  esac
done

tools/deps.sh --fuzz
BUILD_DIR=${BUILD_DIR:-build/fuzz}
# -O1 with line tables only, as libFuzzer's documentation advises: stack traces keep their
# file:line, and a cold build takes far less than at -O2 -g.
CC=clang-14 CXX=clang++-14 cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only -DNDEBUG" \
  -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only -DNDEBUG" \
  -DPARC_FUZZ=ON -DPARC_BUILD_TESTS=OFF -DPARC_SANITIZE=address,undefined \
  -DCMAKE_CXX_FLAGS="-fsanitize=fuzzer-no-link" >/dev/null
cmake --build "$BUILD_DIR" -j "${JOBS:-$(nproc)}" --target fuzzers

if [ ${#HARNESSES[@]} -eq 0 ]; then
  HARNESSES=(fuzz_csv fuzz_manifest fuzz_bundle_spec fuzz_agent_config fuzz_reports
             fuzz_collectors fuzz_archive fuzz_grpc_web)
fi
mkdir -p "$BUILD_DIR/crashes"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
failed=0
printf '%-20s %12s %10s %8s\n' harness executions "exec/s" corpus
for h in "${HARNESSES[@]}"; do
  work="$BUILD_DIR/corpus/$h"
  mkdir -p "$work"
  limit=(-max_total_time="$SECONDS_EACH")
  [ -n "$RUNS" ] && limit=(-runs="$RUNS")
  log="$BUILD_DIR/$h.log"
  if ! "$BUILD_DIR/fuzz/$h" "${limit[@]}" -max_len=65536 -rss_limit_mb=2048 -timeout=10 \
      -print_final_stats=1 -artifact_prefix="$BUILD_DIR/crashes/$h-" \
      "$work" "fuzz/corpus/$h" >"$log" 2>&1; then
    echo "$h: FAILED (see $log and $BUILD_DIR/crashes/)"
    tail -30 "$log"
    failed=1
    continue
  fi
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  corpus=$(ls "$work" "fuzz/corpus/$h" 2>/dev/null | wc -l)
  printf '%-20s %12s %10s %8s\n' "$h" "${execs:-?}" "${rate:-?}" "$corpus"
done
exit $failed
