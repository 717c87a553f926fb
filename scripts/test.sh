#!/usr/bin/env bash
# Installs what is missing, checks formatting, builds, and runs the whole test suite:
# unit and end-to-end tests in a normal build, then the unit tests under ASan+UBSan.
# Usage: scripts/test.sh            (build dirs: build/ and build-asan/)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh test

echo "== clang-format"
git ls-files -z '*.cc' '*.h' | xargs -0 -r clang-format --dry-run -Werror

echo "== build and test"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j2
# Tests open many sockets (1,000 concurrent streams through the proxy).
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
ctest --test-dir build --output-on-failure -j2

echo "== unit tests under AddressSanitizer + UndefinedBehaviorSanitizer"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DLP_SANITIZE=ON >/dev/null
cmake --build build-asan -j2 --target unit_tests
ctest --test-dir build-asan --output-on-failure -j2 -R '^unit_'
