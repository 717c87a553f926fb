#!/usr/bin/env bash
# bench/ab.sh: two logging-proxy binaries, A and B, against each other on S1 (1 KiB JSON POSTs,
# keep-alive) with capture off, in interleaved rounds, so a change's cost (e.g. the metrics)
# is a ratio measured in one run on one machine, not a comparison of two runs. --capture: with
# capture on, each binary shipping to its own log server (that build's log-server binary).
#
#   bench/ab.sh A_BIN B_BIN [--rounds 5] [--seconds 5] [--bench-dir build-bench] [--capture]
#
# Needs bench_load and mock_upstream_fast (cmake -DLP_BUILD_BENCH=ON, in --bench-dir/bin).
# Prints one line per round and target and, per concurrency, the median requests/s of each
# and B/A. Everything listens on 127.0.0.1 on free ports and is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

A_BIN=$(realpath "$1")
B_BIN=$(realpath "$2")
shift 2
ROUNDS=5
SECONDS_PER_RUN=5
BENCH_DIR=build-bench
CAPTURE=false
while [ $# -gt 0 ]; do
  case "$1" in
    --capture) CAPTURE=true; shift ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --seconds) SECONDS_PER_RUN=$2; shift 2 ;;
    --bench-dir) BENCH_DIR=$2; shift 2 ;;
    *) echo "bench/ab.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
BIN=$(realpath "$BENCH_DIR/bin")
TMP=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$TMP"' EXIT

# Starts a program and waits (up to 10 s) for its "listening on http://HOST:PORT" line, which
# it leaves in STARTED_URL (not printed: a $(...) subshell would lose the pid for the trap).
start() {  # NAME OUT PROGRAM ARGS...
  local name=$1 out=$2
  shift 2
  "$@" >"$out" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do
    if grep -qo 'listening on http://[^ ]*' "$out"; then
      STARTED_URL=$(grep -o 'listening on http://[^ ]*' "$out" | head -1 | sed 's/listening on //')
      return
    fi
    sleep 0.1
  done
  echo "bench/ab.sh: $name did not start:" >&2
  cat "$out" >&2
  exit 1
}

start upstream "$TMP/up.out" "$BIN/mock_upstream_fast" --port 0
UP=$STARTED_URL
for t in A B; do
  server_url="http://127.0.0.1:9"
  if [ "$CAPTURE" = true ]; then
    mkdir -p "$TMP/logs-$t"
    printf 'log_server: {host: "127.0.0.1", port: 0, data_dir: "%s"}\n' "$TMP/logs-$t" >"$TMP/ls-$t.yaml"
    start "log-server-$t" "$TMP/ls-$t.out" "$BIN/log-server" --config "$TMP/ls-$t.yaml"
    server_url=$STARTED_URL
  fi
  cat >"$TMP/$t.yaml" <<EOF
server: {host: "127.0.0.1", port: 0}
logging: {console: true, default: $CAPTURE, server_url: "$server_url", spool_dir: "$TMP/spool-$t"}
routes:
  bench: {pattern: "/", destination: "$UP/"}
EOF
done
start A "$TMP/A.out" "$A_BIN" --config "$TMP/A.yaml"
URL_A=$STARTED_URL
start B "$TMP/B.out" "$B_BIN" --config "$TMP/B.yaml"
URL_B=$STARTED_URL

run() {  # URL CONNECTIONS -> requests/s
  "$BIN/bench_load" --url "$1" --mode http --method POST --path /json --body-bytes 1024 \
    -c "$2" --warmup 1 --duration "$SECONDS_PER_RUN" |
    python3 -c 'import json,sys; print(round(json.load(sys.stdin)["rps"]))'
}

for c in 64 1; do
  : >"$TMP/c$c.A"
  : >"$TMP/c$c.B"
  for r in $(seq "$ROUNDS"); do
    # The order alternates each round, so drift hits both alike.
    if [ $((r % 2)) -eq 1 ]; then order="A B"; else order="B A"; fi
    for t in $order; do
      url_var="URL_$t"
      rps=$(run "${!url_var}" "$c")
      echo "c=$c round $r $t: $rps req/s"
      echo "$rps" >>"$TMP/c$c.$t"
    done
  done
  python3 - "$TMP/c$c.A" "$TMP/c$c.B" "$c" <<'EOF'
import statistics, sys
a = [float(x) for x in open(sys.argv[1])]
b = [float(x) for x in open(sys.argv[2])]
ma, mb = statistics.median(a), statistics.median(b)
print(f"c={sys.argv[3]}: A median {ma:.0f} req/s, B median {mb:.0f} req/s, B/A {mb / ma:.3f} "
      f"(A {min(a):.0f}-{max(a):.0f}, B {min(b):.0f}-{max(b):.0f})")
EOF
done
