#!/usr/bin/env bash
# The logging-proxy soak run (issue 6): mixed traffic for a long time with capture on; the
# proxy's and log-server's RSS and fd counts must stay flat and no capture may go missing.
# Run by hand, never in CI. Everything listens on 127.0.0.1 (ports picked by the kernel).
#
#   bench/soak/soak.sh                   30 minutes, results in bench/results/soak-DATE.{csv,md}
#   bench/soak/soak.sh --duration 3m     a short check of the whole thing
# Options:
#   --duration D       load time: 1800, 180s, 3m, 1h (default 30m)
#   --build-dir DIR    Release build with logging-proxy, log-server and mock_upstream
#                      (default: build-soak; built there if a binary is missing)
#   --concurrency N    driver worker threads (default 8)
#   --rate R           cap on exchange starts per second (default 30)
#   --large-interval S one large body (20-50 MiB down, 10 MiB up, or an abort) every S s (20)
#   --results-dir DIR  where soak-DATE.{csv,md} go (default: bench/results)
#   --keep             keep the temp dir (configs, process output, captured data)
# Exit status: 0 when the driver's verdict is PASS, 1 when FAIL, 2 when something is missing.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SOAK="$ROOT/bench/soak"
BUILD_DIR="$ROOT/build-soak"
DURATION=30m
CONCURRENCY=8
RATE=30
LARGE_INTERVAL=20
RESULTS_DIR="$ROOT/bench/results"
KEEP=0

while [[ $# -gt 0 ]]; do
  case "$1" in
    --duration) DURATION="$2"; shift ;;
    --build-dir) BUILD_DIR=$(realpath -m "$2"); shift ;;
    --concurrency) CONCURRENCY="$2"; shift ;;
    --rate) RATE="$2"; shift ;;
    --large-interval) LARGE_INTERVAL="$2"; shift ;;
    --results-dir) RESULTS_DIR=$(realpath -m "$2"); shift ;;
    --keep) KEEP=1 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "soak.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

log() { printf '[soak %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { echo "soak.sh: $*" >&2; exit 2; }

case "$DURATION" in
  *h) SECS=$((${DURATION%h} * 3600)) ;;
  *m) SECS=$((${DURATION%m} * 60)) ;;
  *s) SECS=${DURATION%s} ;;
  *) SECS=$DURATION ;;
esac
[[ $SECS =~ ^[0-9]+$ && $SECS -ge 30 ]] || die "--duration $DURATION: need at least 30 s (e.g. 180, 3m, 30m)"

PY=$(command -v python3 || true)
[[ -n $PY ]] || die "python3 (3.11+) is missing"
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || die "python3 is older than 3.11"

BIN="$BUILD_DIR/bin"
if [[ ! -x $BIN/logging-proxy || ! -x $BIN/log-server || ! -x $BIN/mock_upstream ]]; then
  log "building Release logging-proxy, log-server, mock_upstream into $BUILD_DIR"
  # LP_WERROR=OFF: g++ 12 at -O3 raises false warnings; tests on: mock_upstream lives there.
  cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DLP_BUILD_BENCH=ON \
    -DLP_BUILD_TESTS=ON -DLP_WERROR=OFF >/dev/null
  cmake --build "$BUILD_DIR" -j2 --target logging-proxy log-server mock_upstream >/dev/null
fi
for b in logging-proxy log-server mock_upstream; do
  [[ -x $BIN/$b ]] || die "$BIN/$b is missing after the build"
done

# ---------------------------------------------------------------- processes
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
TMP=$(mktemp -d /tmp/lp-soak.XXXXXX)
declare -A PID URL
STARTED=()

# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
  local p
  for p in "${STARTED[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${STARTED[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$p" 2>/dev/null || true
  done
  if [[ $KEEP -eq 1 ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start NAME OUTFILE REGEX CMD...: runs CMD in the background, waits (<= 15 s) for REGEX in
# OUTFILE, sets PID[NAME] and URL[NAME] from the first http://HOST:PORT or "http=PORT" in it.
start() {
  local name=$1 out=$2 ready=$3; shift 3
  "$@" >"$out" 2>&1 </dev/null &
  local p=$!
  STARTED+=("$p")
  PID[$name]=$p
  for _ in $(seq 150); do
    if grep -qE "$ready" "$out" 2>/dev/null; then
      local u
      u=$(grep -m1 -oE 'http://[0-9.]+:[0-9]+' "$out" || true)
      [[ -n $u ]] || u="http://127.0.0.1:$(grep -m1 -oE 'http=[0-9]+' "$out" | cut -d= -f2)"
      URL[$name]=$u
      return 0
    fi
    kill -0 "$p" 2>/dev/null || break
    sleep 0.1
  done
  echo "soak.sh: $name did not start; its output:" >&2
  cat "$out" >&2
  exit 2
}

start upstream "$TMP/upstream.out" 'http=[0-9]+' "$BIN/mock_upstream" --ignore-stdin --threads 64
[[ ${URL[upstream]} =~ :[1-9][0-9]*$ ]] || die "mock_upstream printed no port: $(cat "$TMP/upstream.out")"

mkdir -m 700 -p "$TMP/logs" "$TMP/spool"  # what the servers would create: no data-dir mode warning
cat >"$TMP/log-server.yaml" <<EOF
log_server:
  host: "127.0.0.1"
  port: 0
  data_dir: "$TMP/logs"
EOF
start logserver "$TMP/log-server.out" 'listening on http://' \
  "$BIN/log-server" --config "$TMP/log-server.yaml"

cat >"$TMP/proxy.yaml" <<EOF
server:
  host: "127.0.0.1"
  port: 0
logging:
  console: true
  server_url: "${URL[logserver]}"
  default: true
  spool_dir: "$TMP/spool"
routes:
  soak:
    pattern: "/"
    destination: "${URL[upstream]}/"
EOF
start proxy "$TMP/proxy.out" 'listening on http://' "$BIN/logging-proxy" --config "$TMP/proxy.yaml"
log "upstream ${URL[upstream]} (pid ${PID[upstream]}), log-server ${URL[logserver]}" \
  "(pid ${PID[logserver]}), proxy ${URL[proxy]} (pid ${PID[proxy]}); temp $TMP"

# ---------------------------------------------------------------- the run
COMMIT=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)
DIRTY=$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null | wc -l)
STAMP=$(date -u +%Y-%m-%dT%H-%M-%SZ)
log "soak for $SECS s (commit ${COMMIT:0:12}); results: $RESULTS_DIR/soak-$STAMP.{csv,md}"
set +e
"$PY" "$SOAK/soak_driver.py" --proxy "${URL[proxy]}" --logserver "${URL[logserver]}" \
  --spool-dir "$TMP/spool" --watch "proxy=${PID[proxy]}" --watch "logserver=${PID[logserver]}" \
  --watch "upstream=${PID[upstream]}" --duration "$SECS" --concurrency "$CONCURRENCY" \
  --rate "$RATE" --large-interval "$LARGE_INTERVAL" --results-dir "$RESULTS_DIR" \
  --stamp "$STAMP" --verbose \
  --tag "commit $COMMIT (build $BUILD_DIR; $DIRTY modified tracked files)" \
  --tag "machine: $(nproc) vCPU, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM, load average at start $(cut -d' ' -f1-3 /proc/loadavg)" \
  --tag "binaries: $BIN (mock upstream: tests/e2e/mock_upstream)"
RC=$?
set -e
for n in proxy logserver upstream; do
  kill -0 "${PID[$n]}" 2>/dev/null || { log "$n (pid ${PID[$n]}) died; its output:"; tail -20 "$TMP/$([[ $n == logserver ]] && echo log-server || echo "$n").out" >&2; RC=1; }
done
grep -iE 'error|warn' "$TMP/log-server.out" | head -5 >&2 || true
log "captured data: $(du -sh "$TMP/logs" | cut -f1); load average at end $(cut -d' ' -f1-3 /proc/loadavg)"
exit $RC
