#!/usr/bin/env bash
# Installs the Debian packages needed to build, run and test logging-proxy.
# One list, used by the README's set-up commands, .ci/run and the Dockerfile.
# Usage: scripts/install-deps.sh [build|runtime|test]   (default: test = build + test tools)
set -euo pipefail
what=${1:-test}
build_pkgs=(g++ cmake make pkg-config libcpp-httplib-dev libssl-dev libyaml-cpp-dev
  nlohmann-json3-dev libsqlite3-dev zlib1g-dev libbrotli-dev libzstd-dev doctest-dev
  libboost1.81-dev)
runtime_pkgs=(libcpp-httplib0.11 libssl3 libyaml-cpp0.7 libsqlite3-0 zlib1g libbrotli1 libzstd1 ca-certificates)
# docker-compose: CI validates docker-compose.yml with `docker-compose config` (no engine needed).
# The SDK client tests (tests/clients) also need Node.js >= 20 and npm, which are on the
# machines already (Debian 12's own nodejs is 18, too old for the SDKs): scripts/test.sh checks.
# chromium: the web UI's browser test (tests/ui, driven by playwright-core from npm).
# nginx-light: the benchmark's peer, which the bench:smoke test runs (bench/run.sh --smoke).
# util-linux: taskset, for bench/run.sh --cpus.
test_pkgs=(curl openssl clang-format procps docker-compose clang libclang-rt-14-dev sqlite3
  chromium nginx-light util-linux)
case "$what" in
  build) pkgs=("${build_pkgs[@]}") ;;
  runtime) pkgs=("${runtime_pkgs[@]}") ;;
  test) pkgs=("${build_pkgs[@]}" "${test_pkgs[@]}") ;;
  *) echo "usage: $0 [build|runtime|test]" >&2; exit 2 ;;
esac
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
