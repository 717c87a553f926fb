#!/usr/bin/env bash
# The logging-proxy benchmark: direct vs nginx vs logging-proxy (capture off, on,
# on with the log server down), scenarios S1-S6, interleaved, one table + one JSON file.
# Run by hand, as root or with sudo available for apt-get; never part of the test suite.
# Everything listens on 127.0.0.1 only; every load is bounded in count and time.
#
#   bench/run.sh                full run (~8-12 min), results in bench/results/DATE.{json,md}
#   bench/run.sh --quick        short run (~2-3 min), same table, smaller counts
#   bench/run.sh --smoke        the pipeline only (~1 min, tiny counts, no waiting for a quiet
#                               machine), then bench/smoke_check.py: every scenario ran for every
#                               target without an error or a lost event. No figure is judged.
#                               The test suite runs it (ctest -R bench:smoke) with --build-dir
#                               its own tree: a tree given that lacks a tool is an error, never
#                               rebuilt (only the default build-bench/ is built when missing).
#   bench/run.sh --profile      no scenarios: perf profile of proxy-on under S1 at 64
#                               connections (perf record -g), summary in bench/results/
#                               (--profile-target proxy-off|proxy-down profiles another one)
# Options:
#   --build-dir DIR    where the Release build with -DLP_BUILD_BENCH=ON lives or is made
#                      (default: build-bench)
#   --scenarios "S1 S2 S3 S4 S5 S6"   subset to run (S6, 8,000 streams, is not in the default
#                      set: it needs `ulimit -n` of 20,000 or more and ~2 min per target)
#   --targets "direct nginx proxy-off proxy-on proxy-down"   subset (direct is always kept)
#   --max-load X       wait while the 1-min load average is above X *and* the machine is busy
#                      while the benchmark is idle (default 1.5; 30 s steps, 15 min per run)
#   --cpus LIST        run the load client, the mock upstream, nginx and the proxies on these
#                      CPUs only (taskset list, e.g. 0); default: all, as the scheduler likes
#   --log-server-cpus LIST   the log server on these CPUs only (e.g. 1): "the log server on
#                      other cores" measured on one machine (S2 at 1 connection fits on one
#                      core; S1 at 64 connections does not)
#   --busy-cpus LIST   a spin loop at nice 19 on each of these CPUs for the whole run: every
#                      target then meets a busy neighbour core, not only proxy-on (whose log
#                      server is busy ingesting while it is measured); a control for
#                      --log-server-cpus
#   --keep             keep the temp dir (configs, logs, raw samples)
#   --no-install       do not apt-get anything
#   --out DIR          where the results go (default: bench/results)
set -Eeuo pipefail
# Any command that stops the run names itself: under set -e a failed assignment or test
# would otherwise end the run without a word. (Failures inside $(...) are the caller's to
# report: a pgrep that finds nothing there is no error.)
trap 'rc=$?; ((BASH_SUBSHELL > 0)) || echo "run.sh: line $LINENO: $BASH_COMMAND: exit $rc" >&2' ERR

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH="$ROOT/bench"
MODE=full
OUT_DIR="$BENCH/results"
BUILD_DIR_GIVEN=0
BUILD_DIR="$ROOT/build-bench"
SCENARIOS="S1 S2 S3 S4 S5"
TARGETS="direct nginx proxy-off proxy-on proxy-down"
MAX_LOAD=1.5
KEEP=0
INSTALL=1
PROFILE_TARGET=proxy-on
CPUS=""
LS_CPUS=""
BUSY_CPUS=""

while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) MODE=quick ;;
    --smoke) MODE=smoke ;;
    --out) OUT_DIR=$(realpath -m "$2"); shift ;;
    --profile) MODE=profile ;;
    --profile-target) PROFILE_TARGET="$2"; shift ;;
    --build-dir) BUILD_DIR=$(realpath -m "$2"); BUILD_DIR_GIVEN=1; shift ;;
    --scenarios) SCENARIOS="$2"; shift ;;
    --targets) TARGETS="$2"; shift ;;
    --max-load) MAX_LOAD="$2"; shift ;;
    --cpus) CPUS="$2"; shift ;;
    --log-server-cpus) LS_CPUS="$2"; shift ;;
    --busy-cpus) BUSY_CPUS="$2"; shift ;;
    --keep) KEEP=1 ;;
    --no-install) INSTALL=0 ;;
    -h|--help) sed -n '2,/^set -Eeuo pipefail/{/^#/p}' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
[[ " $TARGETS " == *" direct "* ]] || TARGETS="direct $TARGETS"

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# ---------------------------------------------------------------- dependencies and build
need_pkgs=()
command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]] || need_pkgs+=(nginx-light)
[[ -x /usr/bin/python3 ]] || need_pkgs+=(python3-minimal)
if [[ $MODE == profile ]]; then command -v perf >/dev/null 2>&1 || need_pkgs+=(linux-perf); fi
if [[ ${#need_pkgs[@]} -gt 0 ]]; then
  if [[ $INSTALL -eq 0 ]]; then echo "run.sh: missing ${need_pkgs[*]}" >&2; exit 2; fi
  SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO=sudo
  log "installing ${need_pkgs[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
PY=/usr/bin/python3

BIN="$BUILD_DIR/bin"
missing=""
for b in logging-proxy log-server mock_upstream_fast bench_load; do
  [[ -x $BIN/$b ]] || missing="$missing $b"
done
# The smoke on a build it was given (the test suite's) never reconfigures that one.
if [[ -n $missing && $MODE == smoke && $BUILD_DIR_GIVEN -eq 1 ]]; then
  echo "run.sh: --smoke needs$missing in $BIN (build the tree first)" >&2
  exit 2
fi
if [[ -n $missing ]]; then
  log "building Release into $BUILD_DIR"
  # LP_WERROR=OFF: g++ 12 at -O3 raises a false -Wrestrict in std::string (common/url.cc).
  cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DLP_BUILD_BENCH=ON \
    -DLP_BUILD_TESTS=OFF -DLP_WERROR=OFF >/dev/null
  cmake --build "$BUILD_DIR" -j"$(nproc)" >/dev/null
fi

# ---------------------------------------------------------------- parameters per mode
if [[ $MODE == smoke ]]; then
  S1_ROUNDS=1; S1_SECS=0.5; S1_WARM=0
  S2_ROUNDS=1; S2_REQS=100
  S3_ROUNDS=1; S3_EVENTS=10; S3_MS=5; S3_MANY=20; S3_MANY_EVENTS=5
  S4_GET=$((8 * 1024 * 1024)); S4_PUT=$((4 * 1024 * 1024))
  S5_STREAMS=20; S5_EVENTS=2
  S6_STREAMS=100; S6_EVENTS=10
elif [[ $MODE == quick ]]; then
  S1_ROUNDS=1; S1_SECS=2; S1_WARM=0.5
  S2_ROUNDS=4; S2_REQS=300
  S3_ROUNDS=1; S3_EVENTS=100; S3_MS=20; S3_MANY=500; S3_MANY_EVENTS=50
  S4_GET=$((256 * 1024 * 1024)); S4_PUT=$((64 * 1024 * 1024))
  S5_STREAMS=1000; S5_EVENTS=3
  S6_STREAMS=2000; S6_EVENTS=15
else
  S1_ROUNDS=2; S1_SECS=5; S1_WARM=1
  S2_ROUNDS=10; S2_REQS=500
  S3_ROUNDS=3; S3_EVENTS=100; S3_MS=20; S3_MANY=500; S3_MANY_EVENTS=100
  S4_GET=$((1024 * 1024 * 1024)); S4_PUT=$((200 * 1024 * 1024))
  S5_STREAMS=1000; S5_EVENTS=10
  S6_STREAMS=8000; S6_EVENTS=60
fi
[[ $MODE == profile ]] && S1_SECS=15

# ---------------------------------------------------------------- processes
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
TMP=$(mktemp -d "${TMPDIR:-/tmp}/lp-bench.XXXXXX")
RAW="$TMP/raw"; mkdir -p "$RAW"
RESULTS="$TMP/results.jsonl"; : >"$RESULTS"
declare -A PID URL
STARTED=()

cleanup() {
  local rc=$? p f
  if [[ $rc -ne 0 && -d ${TMP:-} ]]; then
    echo "run.sh: stopped with exit $rc; the last lines each process wrote:" >&2
    for f in "$TMP"/*.out "$TMP"/nginx/error.log; do
      [[ -s $f ]] || continue
      echo "--- ${f#"$TMP"/}" >&2
      tail -n 5 "$f" >&2
    done
  fi
  for p in "${STARTED[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.5
  for p in "${STARTED[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  if [[ $KEEP -eq 1 ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# pin PID CPUS: every thread of PID (and the threads it starts later) on CPUS; a no-op
# without CPUS.
pin() {
  [[ -n $2 ]] || return 0
  taskset -a -p -c "$2" "$1" >/dev/null
}
# The load client runs through this: taskset on --cpus, or as it is.
CLIENT=()
[[ -n $CPUS ]] && CLIENT=(taskset -c "$CPUS")
# A taskset list (0,2-3) as one CPU per line.
cpu_list() {
  "$PY" -c 'import sys
for part in filter(None, sys.argv[1].split(",")):
    lo, _, hi = part.partition("-")
    print(*range(int(lo), int(hi or lo) + 1), sep="\n")' "$1"
}
for cpu in $(cpu_list "$BUSY_CPUS"); do
  nice -n 19 taskset -c "$cpu" "$PY" -c 'while True: pass' &
  STARTED+=("$!")
done

# start NAME OUTFILE CMD...: runs CMD in the background, waits (<= 15 s) for "listening on
# http://..." in OUTFILE, sets PID[NAME] and URL[NAME].
start() {
  local name=$1 out=$2; shift 2
  # Emptied before the process starts, not by its own redirection: a restarted proxy reuses
  # its file, and the wait below must never read the previous process's address.
  : >"$out"
  "$@" >>"$out" 2>&1 &
  local p=$!
  STARTED+=("$p")
  PID[$name]=$p
  local i
  for ((i = 0; i < 150; i++)); do
    if grep -q 'listening on http://' "$out" 2>/dev/null; then
      URL[$name]=$(grep -m1 -o 'http://[0-9.]*:[0-9]*' "$out")
      if [[ $name == logserver ]]; then pin "$p" "$LS_CPUS"; else pin "$p" "$CPUS"; fi
      return 0
    fi
    kill -0 "$p" 2>/dev/null || break
    sleep 0.1
  done
  echo "run.sh: $name did not start; its output:" >&2
  cat "$out" >&2
  exit 1
}

start upstream "$TMP/upstream.out" "$BIN/mock_upstream_fast" --host 127.0.0.1 --port 0
UP=${URL[upstream]}
UP_PORT=${UP##*:}

# nginx: reverse proxy, proxy_buffering off, HTTP/1.1 + keep-alive upstream, access log on.
NG_PORT=$(free_port)
mkdir -p "$TMP/nginx/tmp"
cat >"$TMP/nginx/nginx.conf" <<EOF
worker_processes auto;
worker_rlimit_nofile 20000;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
$( [[ $(id -u) -eq 0 ]] && echo "user root;" )
events { worker_connections 20000; }
http {
  access_log $TMP/nginx/access.log;
  client_body_temp_path $TMP/nginx/tmp/body;
  proxy_temp_path $TMP/nginx/tmp/proxy;
  fastcgi_temp_path $TMP/nginx/tmp/fastcgi;
  uwsgi_temp_path $TMP/nginx/tmp/uwsgi;
  scgi_temp_path $TMP/nginx/tmp/scgi;
  keepalive_requests 1000000;
  keepalive_timeout 65s;
  client_max_body_size 0;
  upstream bench_upstream {
    server 127.0.0.1:$UP_PORT;
    keepalive 1024;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
  }
  server {
    listen 127.0.0.1:$NG_PORT backlog=4096;
    location / {
      proxy_pass http://bench_upstream;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_request_buffering off;
      proxy_read_timeout 300s;
      proxy_send_timeout 300s;
    }
  }
}
EOF
if [[ " $TARGETS " == *" nginx "* ]]; then
  "$NGINX" -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx/error.log" \
    -g 'daemon off;' >"$TMP/nginx/stdout" 2>&1 &
  PID[nginx]=$!
  STARTED+=("${PID[nginx]}")
  for ((i = 0; i < 100; i++)); do
    "$PY" -c "import socket,sys; socket.create_connection(('127.0.0.1',$NG_PORT),0.2)" \
      2>/dev/null && break
    kill -0 "${PID[nginx]}" 2>/dev/null || i=100
    sleep 0.1
  done
  if ((i >= 100)); then  # e.g. its port, free a moment ago, taken since
    echo "run.sh: nginx did not start on port $NG_PORT (its error log follows)" >&2
    exit 1
  fi
  URL[nginx]="http://127.0.0.1:$NG_PORT"
  for p in "${PID[nginx]}" $(pgrep -P "${PID[nginx]}"); do pin "$p" "$CPUS"; done
fi

# log server for proxy-on
mkdir -p "$TMP/logs"
cat >"$TMP/log-server.yaml" <<EOF
log_server:
  host: "127.0.0.1"
  port: 0
  data_dir: "$TMP/logs"
EOF
start logserver "$TMP/log-server.out" "$BIN/log-server" --config "$TMP/log-server.yaml"
DEAD_PORT=$(free_port)

proxy_config() {  # NAME CAPTURE SERVER_URL
  cat <<EOF
server:
  host: "127.0.0.1"
  port: 0
logging:
  console: true
  server_url: "$3"
  default: $2
  spool_dir: "$TMP/spool-$1"
routes:
  bench:
    pattern: "/"
    destination: "http://127.0.0.1:$UP_PORT/"
EOF
}
proxy_config off false "${URL[logserver]}" >"$TMP/proxy-off.yaml"
proxy_config on true "${URL[logserver]}" >"$TMP/proxy-on.yaml"
proxy_config down true "http://127.0.0.1:$DEAD_PORT" >"$TMP/proxy-down.yaml"
# (Re)starts the three proxies: each scenario group measures fresh processes, so a peak RSS
# belongs to its scenario (glibc keeps freed heap and exited threads' stacks resident).
restart_proxies() {
  local t p i
  for t in proxy-off proxy-on proxy-down; do
    [[ " $TARGETS " == *" $t "* ]] || continue
    p=${PID[$t]:-}
    if [[ -n $p ]] && kill -0 "$p" 2>/dev/null; then
      kill -TERM "$p"
      for ((i = 0; i < 200; i++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$p" 2>/dev/null && kill -9 "$p"
      wait "$p" 2>/dev/null || true
    fi
    # Console lines go to a file, as they would to a terminal or a journal.
    start "$t" "$TMP/$t.out" "$BIN/logging-proxy" --config "$TMP/$t.yaml"
  done
}
restart_proxies
URL[direct]=$UP
PID[direct]=${PID[upstream]}

# The PIDs whose CPU and memory are "the target" (nginx: master + workers).
target_pids() {
  case $1 in
    direct) echo "${PID[upstream]}" ;;
    nginx) echo "${PID[nginx]},$(pgrep -P "${PID[nginx]}" | paste -sd, -)" ;;
    *) echo "${PID[$1]}" ;;
  esac
}
watch_args() {  # TARGET -> --watch arguments
  local t=$1
  echo "--watch target=$(target_pids "$t")"
  [[ $t != direct ]] && echo "--watch upstream=${PID[upstream]}"
  [[ $t == proxy-on ]] && echo "--watch logserver=${PID[logserver]}"
}
all_pids() {
  local t out="${PID[upstream]},${PID[logserver]}"
  for t in nginx proxy-off proxy-on proxy-down; do
    [[ -n ${PID[$t]:-} ]] && out="$out,$(target_pids "$t")"
  done
  echo "$out"
}

# ---------------------------------------------------------------- machine load
load1() { cut -d' ' -f1 /proc/loadavg; }
# Busy cores over 2 s (from /proc/stat) while the benchmark itself is idle: others' work.
# With --busy-cpus, time at a nice value (the spin loops') is not counted.
busy_cores() {
  "$PY" - "${BUSY_CPUS:+skip-nice}" <<'EOF'
import sys, time
def busy():
    f = open('/proc/stat').readline().split()[1:]
    v = list(map(int, f))
    idle = v[3] + v[4] + (v[1] if sys.argv[1:] == ["skip-nice"] else 0)
    return sum(v[:8]) - idle
a = busy(); time.sleep(2); b = busy()
import os
print(f"{(b - a) / os.sysconf('SC_CLK_TCK') / 2:.2f}")
EOF
}
SCEN_LOAD="" SCEN_BUSY=""
WAITED=0  # one budget of 15 min for the whole run, not per check
wait_for_quiet() {
  local l b
  if [[ $MODE == smoke ]]; then  # figures are not judged: measure whatever the machine does
    SCEN_LOAD=$(load1) SCEN_BUSY=-
    return 0
  fi
  while true; do
    l=$(load1)
    b=$(busy_cores)
    # Our own previous scenario inflates the load average; what matters is whether someone
    # else is using the CPU now, while we are idle.
    if awk -v l="$l" -v m="$MAX_LOAD" -v b="$b" 'BEGIN{exit !(l <= m || b < 0.3)}'; then break; fi
    if ((WAITED >= 900)); then
      log "machine still busy (load $l, others use $b cores), waited 15 min: measuring anyway"
      break
    fi
    log "machine busy (load $l, others use $b cores): waiting 30 s"
    sleep 30
    WAITED=$((WAITED + 30))
  done
  SCEN_LOAD=$l SCEN_BUSY=$b
}

# Waits (<= 60 s) until the proxies and the log server are idle (the shipper may still be
# sending the last scenario's captures, the spool writing them).
settle() {
  "$PY" - "$(all_pids)" <<'EOF'
import sys, time, os
pids = [int(p) for p in sys.argv[1].split(',') if p]
tick = os.sysconf('SC_CLK_TCK')
def cpu():
    t = 0
    for p in pids:
        try:
            f = open(f'/proc/{p}/stat').read().rsplit(')', 1)[1].split()
            t += int(f[11]) + int(f[12])
        except OSError:
            pass
    return t / tick
end = time.time() + 60
while time.time() < end:
    a = cpu(); time.sleep(0.3); b = cpu()
    if b - a < 0.3 * 0.05:
        break
EOF
}

rotate() {  # ROUND: the targets, rotated so each target follows a different one each round
  local r=$1 arr=($TARGETS) n i out=()
  n=${#arr[@]}
  for ((i = 0; i < n; i++)); do out+=("${arr[$(((i + r) % n))]}"); done
  echo "${out[@]}"
}

# measure SCENARIO TARGET ROUND [bench_load args...]
measure() {
  local scen=$1 target=$2 round=$3; shift 3
  local raw="$RAW/$scen-$target-r$round"
  local out
  out=$("${CLIENT[@]}" "$BIN/bench_load" --url "${URL[$target]}" $(watch_args "$target") --raw "$raw" \
    --tag scenario="$scen" --tag target="$target" --tag round="$round" \
    --tag raw="$raw" --tag cpus="${CPUS:-all}" --tag log_server_cpus="${LS_CPUS:-all}" \
    --tag busy_cpus="${BUSY_CPUS:-none}" \
    --tag load1="$(load1)" --tag busy_before="$SCEN_BUSY" "$@")
  settle
  if [[ $scen == S4-* && $target == proxy-on ]]; then
    # The log server's peak from the window's start (bench_load reset it) until it had ingested
    # the whole capture, spooled batches included: settle waited for that.
    local hwm
    hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/${PID[logserver]}/status")
    out=$("$PY" -c 'import json,sys; d=json.loads(sys.argv[1]); d["logserver_peak_after_mb"]=int(sys.argv[2])/1024; print(json.dumps(d))' "$out" "$hwm")
  fi
  echo "$out" >>"$RESULTS"
  "$PY" "$BENCH/report.py" --line "$out" >&2
}

# ---------------------------------------------------------------- profile mode
if [[ $MODE == profile ]]; then
  command -v perf >/dev/null || { echo "run.sh: perf missing" >&2; exit 2; }
  mkdir -p "$OUT_DIR"
  STAMP=$(date -u +%Y-%m-%dT%H-%M-%SZ)-$PROFILE_TARGET
  P="${PID[$PROFILE_TARGET]}"
  wait_for_quiet
  log "profiling $PROFILE_TARGET (pid $P) under S1 c=64 for ${S1_SECS}s (load $SCEN_LOAD, others $SCEN_BUSY cores)"
  perf record -F 499 -g --call-graph dwarf,16384 -p "$P" -o "$TMP/perf.data" -- sleep "$S1_SECS" \
    >"$TMP/perf-record.log" 2>&1 &
  PERF=$!
  sleep 0.5
  "$BIN/bench_load" --url "${URL[$PROFILE_TARGET]}" --mode http --method POST --path /json \
    --body-bytes 1024 -c 64 --duration $((S1_SECS - 2)) $(watch_args "$PROFILE_TARGET") \
    --tag scenario=profile --tag target="$PROFILE_TARGET" --tag load1="$SCEN_LOAD" \
    --tag busy_before="$SCEN_BUSY" >"$TMP/profile-load.json"
  wait "$PERF" || true
  OUTP="$OUT_DIR/profile-$STAMP"
  cp "$TMP/profile-load.json" "$OUTP.load.json"
  perf report -i "$TMP/perf.data" --no-children --sort comm,dso,sym --stdio -g none \
    --percent-limit 0.3 >"$OUTP.self.txt" 2>/dev/null
  perf report -i "$TMP/perf.data" --children --sort sym --stdio -g none \
    --percent-limit 1 >"$OUTP.children.txt" 2>/dev/null
  perf script -i "$TMP/perf.data" -F tid,period,ip,sym 2>/dev/null |
    "$PY" "$BENCH/perf_summary.py" >"$OUTP.summary.txt"
  "$PY" "$BENCH/report.py" --line "$(cat "$OUTP.load.json")" >&2
  log "profile: $OUTP.{summary,self,children}.txt"
  [[ $KEEP -eq 1 ]] && log "perf data: $TMP/perf.data"
  exit 0
fi

# ---------------------------------------------------------------- scenarios
T0=$(date +%s)
log "mode $MODE; cpus ${CPUS:-all}, log server on ${LS_CPUS:-all}, busy ${BUSY_CPUS:-none}; targets: $TARGETS; upstream $UP, nginx ${URL[nginx]:-}, proxies" \
  "${URL[proxy-off]:-} ${URL[proxy-on]:-} ${URL[proxy-down]:-}"

if [[ " $SCENARIOS " == *" S1 "* ]]; then
  for c in 1 64; do
    wait_for_quiet
    log "S1 throughput, 1 KiB JSON POST, $c connection(s), ${S1_ROUNDS}x${S1_SECS}s (load $SCEN_LOAD, others $SCEN_BUSY cores)"
    for ((r = 1; r <= S1_ROUNDS; r++)); do
      for t in $(rotate $r); do
        measure "S1-c$c" "$t" "$r" --mode http --method POST --path /json --body-bytes 1024 \
          -c "$c" --warmup "$S1_WARM" --duration "$S1_SECS"
      done
    done
  done
fi

if [[ " $SCENARIOS " == *" S2 "* ]]; then
  restart_proxies
  wait_for_quiet
  log "S2 added latency, 1 connection, ${S2_ROUNDS}x${S2_REQS} requests (load $SCEN_LOAD, others $SCEN_BUSY cores)"
  for ((r = 1; r <= S2_ROUNDS; r++)); do
    for t in $(rotate $r); do
      measure S2 "$t" "$r" --mode http --method POST --path /json --body-bytes 1024 -c 1 \
        --warmup-requests 50 --requests "$S2_REQS"
    done
  done
fi

if [[ " $SCENARIOS " == *" S3 "* ]]; then
  restart_proxies
  wait_for_quiet
  log "S3 streaming: 1 stream of $S3_EVENTS events ${S3_MS} ms apart, ${S3_ROUNDS} rounds (load $SCEN_LOAD, others $SCEN_BUSY cores)"
  for ((r = 1; r <= S3_ROUNDS; r++)); do
    for t in $(rotate $r); do
      measure S3-one "$t" "$r" --mode sse --path "/sse?n=$S3_EVENTS&ms=$S3_MS" -c 1 \
        --requests 1 --timeout 30
    done
  done
  restart_proxies
  wait_for_quiet
  log "S3 streaming: $S3_MANY streams at once (load $SCEN_LOAD, others $SCEN_BUSY cores)"
  for t in $(rotate 0); do
    measure S3-many "$t" 1 --mode sse --path "/sse?n=$S3_MANY_EVENTS&ms=$S3_MS" \
      -c "$S3_MANY" --timeout 60
  done
fi

if [[ " $SCENARIOS " == *" S4 "* ]]; then
  restart_proxies
  wait_for_quiet
  log "S4 large bodies: GET $((S4_GET >> 20)) MiB, POST $((S4_PUT >> 20)) MiB (load $SCEN_LOAD, others $SCEN_BUSY cores)"
  for t in $(rotate 0); do
    measure S4-get "$t" 1 --mode http --method GET --path "/large?bytes=$S4_GET" -c 1 \
      --requests 1 --timeout 120
  done
  restart_proxies
  for t in $(rotate 1); do
    measure S4-put "$t" 1 --mode http --method POST --path /upload --body-bytes "$S4_PUT" -c 1 \
      --requests 1 --timeout 120
  done
fi

if [[ " $SCENARIOS " == *" S5 "* ]]; then
  restart_proxies
  wait_for_quiet
  log "S5 $S5_STREAMS slow streams, 1 event/s, $S5_EVENTS s (load $SCEN_LOAD, others $SCEN_BUSY cores)"
  for t in $(rotate 0); do
    measure S5 "$t" 1 --mode sse --path "/sse?n=$S5_EVENTS&ms=1000" -c "$S5_STREAMS" \
      --timeout $((S5_EVENTS + 30)) --late-ms 50
  done
fi

if [[ " $SCENARIOS " == *" S6 "* ]]; then
  restart_proxies
  wait_for_quiet
  log "S6 $S6_STREAMS streams, 1 event/s, $S6_EVENTS s, a GET every 100 ms beside them (load $SCEN_LOAD, others $SCEN_BUSY cores)"
  for t in $(rotate 0); do
    [[ $t == proxy-down ]] && continue
    # The probe starts once the streams are being opened and stops before they end.
    measure S6-get "$t" 1 --mode http --method GET --path "/sse?n=1&ms=0" -c 1 \
      --interval-ms 100 --warmup 3 --duration $((S6_EVENTS - 8)) --timeout $((S6_EVENTS + 30)) &
    GETTER=$!
    measure S6 "$t" 1 --mode sse --path "/sse?n=$S6_EVENTS&ms=1000" -c "$S6_STREAMS" \
      --timeout $((S6_EVENTS + 60)) --late-ms 50
    wait "$GETTER"
  done
fi

# ---------------------------------------------------------------- report
mkdir -p "$OUT_DIR"
STAMP=$(date -u +%Y-%m-%dT%H-%M-%SZ)
[[ $MODE == quick || $MODE == smoke ]] && STAMP="$STAMP-$MODE"
"$PY" "$BENCH/report.py" --results "$RESULTS" --mode "$MODE" --root "$ROOT" \
  --duration $(($(date +%s) - T0)) --json "$OUT_DIR/$STAMP.json" \
  --markdown "$OUT_DIR/$STAMP.md"
log "wrote $OUT_DIR/$STAMP.json and .md"
if [[ $MODE == smoke ]]; then
  "$PY" "$BENCH/smoke_check.py" --json "$OUT_DIR/$STAMP.json" --scenarios "$SCENARIOS" \
    --targets "$TARGETS"
fi
