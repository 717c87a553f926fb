#!/usr/bin/env bash
# Installs what is missing, builds, and starts logging-proxy (and the log server, once it
# exists) on config/config.yaml. Ctrl-C stops them.
# Usage: scripts/run.sh [CONFIG]
set -euo pipefail
cd "$(dirname "$0")/.."
config=${1:-config/config.yaml}
scripts/install-deps.sh build
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DLP_BUILD_TESTS=OFF >/dev/null
cmake --build build -j2
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait' INT TERM EXIT
if [ -x build/bin/log-server ]; then
  build/bin/log-server --config "$config" & pids+=($!)
fi
build/bin/logging-proxy --config "$config" & pids+=($!)
wait -n
