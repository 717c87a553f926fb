#!/bin/bash
# Where the machine's CPU goes under S1 (1 KiB POST, 64 connections unless told): for proxy-off,
# proxy-on (log server beside it) and proxy-down (log server unreachable, all spooled), the
# share of the window each process took (all its threads; the load client, the mock upstream,
# the proxy, the log server) and each kind of kernel thread (kworker, jbd2, ...), in % of one
# core, and the req/s. Divide a share by the req/s for the CPU each request costs there: what
# S1's ratios are made of on a machine whose cores all of them share. Run by hand:
#   bench/cpu_split.sh [--build-dir build-bench] [--nice N] [--targets "off on down"]
#                      [--connections 64]
# Needs the Release tree bench/run.sh builds (-DLP_BUILD_BENCH=ON). Temp files under $TMPDIR.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=build-bench NICE=10 TARGETS="off on down" SECS=5 CONNS=64
while [[ $# -gt 0 ]]; do
  case $1 in
    --build-dir) BUILD_DIR=$2; shift ;;
    --nice) NICE=$2; shift ;;
    --targets) TARGETS=$2; shift ;;
    --connections) CONNS=$2; shift ;;
    *) echo "cpu_split.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
BIN=$(realpath "$BUILD_DIR")/bin
for b in mock_upstream_fast log-server logging-proxy bench_load; do
  [[ -x $BIN/$b ]] || { echo "cpu_split.sh: $BIN/$b missing (bench/run.sh builds it)" >&2; exit 1; }
done
T=$(mktemp -d "${TMPDIR:-/tmp}/lp-cpu-split.XXXXXX")
trap 'kill $(jobs -p) 2>/dev/null || true; sleep 0.5; rm -rf "$T"' EXIT

# snapshot FILE LABEL=PID...: CPU ticks (utime+stime, all threads) per labelled process, per
# other process or kernel thread by name (digits dropped: kworker/0:1 -> kworker), and the
# machine's totals from /proc/stat (as @user, @system, @idle, ...). The proxy's and the log
# server's threads are also counted by name (proxy:lp-loop, proxy:lp-ship, ...).
snapshot() {
  python3 - "$@" <<'PY'
import json, os, re, sys, time
labels = {pid: label for label, pid in (a.split("=") for a in sys.argv[2:])}
out = {}
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                s = f.read()
            comm = s[s.index("(") + 1 : s.rindex(")")]
            fields = s[s.rindex(")") + 2 :].split()
            name = labels.get(pid) or re.sub(r"[/:].*$", "", re.sub(r"\d+", "", comm)) or comm
            ticks = int(fields[11]) + int(fields[12])
            out[name] = out.get(name, 0) + ticks
            if labels.get(pid) in ("proxy", "log-server"):  # and by thread name, digits dropped
                part = "  " + labels[pid] + ":" + re.sub(r"-?\d+$", "", comm)
                out[part] = out.get(part, 0) + ticks
    except (FileNotFoundError, ProcessLookupError, ValueError):
        pass  # exited meanwhile
out["@@t"] = time.clock_gettime(time.CLOCK_MONOTONIC)  # the window is between two of these
with open("/proc/stat") as f:
    ticks = f.readline().split()[1:9]
for n, v in zip("user nice system idle iowait irq softirq steal".split(), ticks):
    out["@" + n] = int(v)
json.dump(out, open(sys.argv[1], "w"))
PY
}
report() {  # BEFORE AFTER
  python3 - "$@" <<'PY'
import json, os, sys
a, b = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
secs = b.pop("@@t") - a.pop("@@t")  # measured: a snapshot itself can take most of a second
hz = os.sysconf("SC_CLK_TCK")
pct = {k: (b[k] - a.get(k, 0)) * 100.0 / hz / secs for k in b}
for k in sorted((k for k in pct if not k.startswith(" ")), key=lambda k: -pct[k]):
    if pct[k] >= 1.0:
        print(f"  {k:24s} {pct[k]:6.1f} %")
        # its threads by name, under it
        for t in sorted((t for t in pct if t.startswith(f"  {k}:")), key=lambda t: -pct[t]):
            if pct[t] >= 0.5:
                print(f"  {t:24s} {pct[t]:6.1f} %")
PY
}
url_of() {  # OUTFILE: waits (<= 15 s) for "listening on http://..."
  local i
  for ((i = 0; i < 150; i++)); do
    grep -m1 -o 'http://[0-9.]*:[0-9]*' "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "cpu_split.sh: no 'listening on' in $1:" >&2; cat "$1" >&2; exit 1
}

"$BIN/mock_upstream_fast" --host 127.0.0.1 --port 0 >"$T/up.out" 2>&1 &
UP_PID=$!
UP=$(url_of "$T/up.out")
mkdir -p "$T/logs"
printf 'log_server:\n  host: "127.0.0.1"\n  port: 0\n  data_dir: "%s/logs"\n  nice: %s\n' \
  "$T" "$NICE" >"$T/ls.yaml"
"$BIN/log-server" --config "$T/ls.yaml" >"$T/ls.out" 2>&1 &
LS_PID=$!
LS=$(url_of "$T/ls.out")
proxy_config() {  # NAME CAPTURE SERVER_URL
  printf 'server:\n  host: "127.0.0.1"\n  port: 0\nlogging:\n  console: true\n  server_url: "%s"\n  default: %s\n  spool_dir: "%s/spool-%s"\nroutes:\n  bench:\n    pattern: "/"\n    destination: "%s/"\n' \
    "$3" "$2" "$T" "$1" "$UP"
}
proxy_config off false "$LS" >"$T/off.yaml"
proxy_config on true "$LS" >"$T/on.yaml"
proxy_config down true "http://127.0.0.1:1" >"$T/down.yaml"
ls_ticks() { awk '{print $14 + $15}' "/proc/$LS_PID/stat"; }

for t in $TARGETS; do
  "$BIN/logging-proxy" --config "$T/$t.yaml" >"$T/$t.out" 2>&1 &
  P=$!
  U=$(url_of "$T/$t.out")
  # The window is the middle SECS of the load, so every process is alive at both snapshots
  # (a snapshot is a Python start on a saturated machine: it can take most of a second).
  "$BIN/bench_load" --url "$U" --mode http --method POST --path /json --body-bytes 1024 -c "$CONNS" \
    --duration $((SECS + 4)) >"$T/load.json" &
  L=$!
  sleep 1
  snapshot "$T/a.json" proxy=$P log-server=$LS_PID mock=$UP_PID client=$L
  sleep "$SECS"
  snapshot "$T/b.json" proxy=$P log-server=$LS_PID mock=$UP_PID client=$L
  wait $L
  echo "== proxy-$t, $CONNS connections (log_server.nice $NICE): $(python3 -c "import json,sys; print(round(json.load(open(sys.argv[1]))['rps']), 'req/s')" "$T/load.json")"
  report "$T/a.json" "$T/b.json"
  kill $P
  wait $P 2>/dev/null || true
  # Before the next target: the log server idle again (it ingests what proxy-on shipped).
  for ((i = 0; i < 300; i++)); do
    a=$(ls_ticks); sleep 1; b=$(ls_ticks)
    ((b - a < 5)) && break
  done
done
