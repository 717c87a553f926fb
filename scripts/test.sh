#!/usr/bin/env bash
# Installs what is missing, checks formatting and the Docker files (docker-compose config, no
# engine needed), installs the SDK client and UI tests' npm packages (npm ci, tests/clients and
# tests/ui), builds,
# and runs the whole test suite: unit, end-to-end and SDK client tests in a normal build, then
# the unit tests under ASan+UBSan.
# Usage: scripts/test.sh            (build dirs: build/ and build-asan/)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh test

echo "== clang-format"
git ls-files -z '*.cc' '*.h' | xargs -0 -r clang-format --dry-run -Werror

echo "== Docker: packages only from install-deps.sh; docker-compose.yml valid (no engine needed)"
scripts/check-docker-packages.sh
docker-compose -f docker-compose.yml config -q

echo "== SDK client tests: npm packages from tests/clients/package-lock.json"
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -ge 20 ]; then
  (cd tests/clients && npm ci --no-audit --no-fund)
  (cd tests/ui && npm ci --no-audit --no-fund)  # playwright-core for the ui:browser test
elif [ "${CI:-}" = "true" ]; then
  echo "test.sh: the SDK client tests need Node.js >= 20 with npm (found: $(node --version 2>&1 || echo none))" >&2
  exit 1
else
  # Debian 12's own nodejs is 18; the openai SDK needs 20. Everything else still runs.
  echo "test.sh: WARNING: Node.js >= 20 not found; the SDK client tests (clients:sdk) will be SKIPPED" >&2
fi

echo "== build and test"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLP_WERROR=ON >/dev/null
cmake --build build -j2
# Tests open many sockets (1,000 concurrent streams through the proxy).
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
ctest --test-dir build --output-on-failure -j2

echo "== unit tests under AddressSanitizer + UndefinedBehaviorSanitizer"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DLP_SANITIZE=ON -DLP_WERROR=ON >/dev/null
cmake --build build-asan -j2 --target unit_tests
ctest --test-dir build-asan --output-on-failure -j2 -R '^unit_'

# ---------------------------------------------------------------------------------------------
echo "== fuzzing: every libFuzzer target in fuzz/ for 20 s from its committed corpus (build-fuzz/)"
# clang + ASan/UBSan; fails on any crash, leak, hang, OOM or broken invariant (fuzz/README.md).
fuzz/run.sh 20 build-fuzz
