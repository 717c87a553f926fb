#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan+UBSan) and runs each for SECONDS from its committed
# seed corpus. Exits non-zero at the first target that crashes, leaks, hangs (-timeout), runs out
# of memory or fails an invariant; the input is saved as BUILD_DIR/crash-TARGET-*.
# New inputs the fuzzer finds go to a scratch dir, never into fuzz/corpus/.
# Usage: fuzz/run.sh [SECONDS] [BUILD_DIR] [TARGET...]   (defaults: 20, build-fuzz, all targets)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}
build=${2:-build-fuzz}
shift $(( $# < 2 ? $# : 2 ))
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(wire router http replay config sse decode llm)

CC=clang CXX=clang++ cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLP_FUZZ=ON \
  -DLP_WERROR=ON -DLP_BUILD_TESTS=OFF >/dev/null
cmake --build "$build" -j2 --target fuzz_targets

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for t in "${targets[@]}"; do
  mkdir -p "$scratch/$t"
  log="$build/fuzz_$t.log"
  # stdin from /dev/null: a fuzzed config may name /dev/stdin as its ca_file.
  if ! "$build/bin/fuzz_$t" -max_total_time="$seconds" -max_len=8192 -timeout=10 \
      -rss_limit_mb=2048 -malloc_limit_mb=512 -print_final_stats=1 \
      -artifact_prefix="$build/crash-$t-" "$scratch/$t" "fuzz/corpus/$t" </dev/null >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "fuzz/run.sh: fuzz_$t failed; input saved as $build/crash-$t-*, log in $log" >&2
    exit 1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  echo "fuzz_$t: ${runs:-?} executions in ${seconds} s, no crash"
done
