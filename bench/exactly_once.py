#!/usr/bin/env python3
"""Capture completeness under sustained load: S1 (1 KiB POST, 64 connections) through a
capture-ON proxy for DURATION seconds, the log server on the same machine; then, once the
proxy's queue and spool have drained, every exchange the proxy counted must be in the log
server's index exactly once, complete, and none truncated.

    bench/exactly_once.py [--bin build-bench/bin] [--duration 60] [-c 64] [--spool-max-bytes 4GiB] [--queue-bytes 128MiB]

Run by hand (it is a benchmark, not a test): prints one report, exit 0 when every check holds.
"""
import argparse
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request

ap = argparse.ArgumentParser()
ap.add_argument("--bin", default=os.path.join(os.path.dirname(__file__), "..", "build-bench", "bin"))
ap.add_argument("--duration", type=int, default=60)
ap.add_argument("-c", "--connections", type=int, default=64)
ap.add_argument("--batch-bytes", default="", help="logging.batch_bytes for the proxy (e.g. 4MiB)")
ap.add_argument("--queue-bytes", default="", help="logging.queue_bytes for the proxy (default 24MiB)")
ap.add_argument("--spool-max-bytes", default="",
                help="logging.spool_max_bytes for the proxy (default 1GiB; e.g. 4GiB)")
a = ap.parse_args()
BIN = os.path.abspath(a.bin)
tmp = tempfile.mkdtemp(prefix="lp-once.")
procs = []


def start(name, args):
    out = open(os.path.join(tmp, name + ".out"), "w+")
    p = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=tmp)
    procs.append(p)
    deadline = time.time() + 15
    while time.time() < deadline:
        out.seek(0)
        text = out.read()
        m = re.search(r"listening on (http://[0-9.]+:[0-9]+)", text)
        if m:
            return p, m.group(1), out
        if p.poll() is not None:
            break
        time.sleep(0.1)
    sys.exit(f"{name} did not start:\n{text}")


def admin_port(out):
    deadline = time.time() + 10
    while time.time() < deadline:
        out.seek(0)
        m = re.search(r"admin on http://[0-9.]+:([0-9]+)", out.read())
        if m:
            return int(m.group(1))
        time.sleep(0.1)
    sys.exit("no admin listener line")


def metric(port, name):
    """The sum of every sample of family `name` on the proxy's /metrics."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


try:
    _, up, _ = start("upstream", [f"{BIN}/mock_upstream_fast", "--host", "127.0.0.1", "--port", "0"])
    with open(os.path.join(tmp, "log-server.yaml"), "w") as f:
        f.write(f'log_server:\n  host: "127.0.0.1"\n  port: 0\n  data_dir: "{tmp}/logs"\n')
    lsp, ls, _ = start("log-server", [f"{BIN}/log-server", "--config", f"{tmp}/log-server.yaml"])
    with open(os.path.join(tmp, "proxy.yaml"), "w") as f:
        f.write(f'server:\n  host: "127.0.0.1"\n  port: 0\n  admin_port: 0\n'
                f'logging:\n  console: false\n  server_url: "{ls}"\n  spool_dir: "{tmp}/spool"\n'
                + (f'  batch_bytes: {a.batch_bytes}\n' if a.batch_bytes else '')
                + (f'  spool_max_bytes: {a.spool_max_bytes}\n' if a.spool_max_bytes else '')
                + (f'  queue_bytes: {a.queue_bytes}\n' if a.queue_bytes else '')
                + f'routes:\n  bench:\n    pattern: "/"\n    destination: "{up}/"\n')
    proxy, purl, pout = start("proxy", [f"{BIN}/logging-proxy", "--config", f"{tmp}/proxy.yaml"])
    admin = admin_port(pout)

    load = subprocess.Popen(
        [f"{BIN}/bench_load", "--url", purl, "--mode", "http", "--method", "POST", "--path", "/json",
         "--body-bytes", "1024", "-c", str(a.connections), "--duration", str(a.duration),
         "--watch", f"proxy={proxy.pid}", "--watch", f"logserver={lsp.pid}"],
        stdout=subprocess.PIPE, text=True)
    t0 = time.time()
    while load.poll() is None:  # the backlog as it grows: a line every 5 s
        time.sleep(5)
        rss = int(re.search(r"VmRSS:\s+(\d+)", open(f"/proc/{proxy.pid}/status").read()).group(1))
        print(f"  {time.time() - t0:4.0f} s: queue {metric(admin, 'logging_proxy_capture_queue_bytes') / 2**20:5.1f} MiB, "
              f"spool {metric(admin, 'logging_proxy_spool_bytes') / 2**20:6.1f} MiB, "
              f"truncated {metric(admin, 'logging_proxy_truncated_exchanges_total'):.0f}, "
              f"proxy RSS {rss / 1024:.0f} MB", flush=True)
    r = json.loads(load.stdout.read())

    # Drained: no exchange in flight, nothing queued, nothing spooled, no batch in flight.
    load_end = time.time()

    def cpu_s(pid):
        f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")

    ls_cpu_at_end = cpu_s(lsp.pid)
    spooled_at_end = metric(admin, "logging_proxy_spool_bytes")
    deadline = time.time() + 900
    while time.time() < deadline:
        busy = (metric(admin, "logging_proxy_exchanges_in_flight")
                + metric(admin, "logging_proxy_capture_queue_bytes")
                + metric(admin, "logging_proxy_spool_batches")
                + metric(admin, "logging_proxy_batches_in_flight"))
        if busy == 0:
            break
        time.sleep(0.5)
    drain_s = time.time() - load_end
    drain_cpu = (cpu_s(lsp.pid) - ls_cpu_at_end) / max(drain_s, 0.1) * 100
    counted = metric(admin, "logging_proxy_exchanges_total")
    truncated = metric(admin, "logging_proxy_truncated_exchanges_total")
    overflowed = metric(admin, "logging_proxy_batches_overflowed_total")
    proxy.send_signal(signal.SIGTERM)
    proxy.wait(30)
    ls_text = urllib.request.urlopen(f"{ls}/metrics", timeout=5).read().decode()

    def ls_metric(name):
        m = re.search(rf"^{name} ([0-9.e+]+)$", ls_text, re.M)
        return float(m.group(1)) if m else None
    applied = ls_metric("log_server_batches_applied_total")
    commits = ls_metric("log_server_ingest_commits_total")

    db = sqlite3.connect(f"file:{tmp}/logs/index.sqlite?mode=ro", uri=True)
    rows = db.execute("SELECT COUNT(*), COUNT(DISTINCT id), "
                      "SUM(outcome = 'complete'), SUM(outcome = 'truncated') FROM exchanges").fetchone()
    ok = rows[0] == counted and rows[1] == rows[0] and rows[2] == rows[0] and truncated == 0
    print(f"S1 c={a.connections} capture ON for {a.duration} s: {r['requests']} responses in the "
          f"window ({r['rps']:.0f} req/s), {r['errors']} errors; the proxy counted {counted:.0f} "
          f"exchanges, {truncated:.0f} truncated, {overflowed:.0f} batches overflowed to the spool; "
          f"the log server holds {rows[0]} rows ({rows[1]} distinct ids), {rows[2]} complete, "
          f"{rows[3]} truncated; proxy peak RSS {r['procs']['proxy']['hwm_kb'] / 1024:.1f} MB, CPU "
          f"{r['procs']['proxy']['cpu_pct']:.0f} %, log server CPU {r['procs']['logserver']['cpu_pct']:.0f} % "
          f"(of one core, during the load); the {spooled_at_end / 2**20:.0f} MiB spooled at the end "
          f"drained in {drain_s:.1f} s ({spooled_at_end / 2**20 / max(drain_s, 0.1):.1f} MiB/s, log server CPU {drain_cpu:.0f} %)"
          + (f"; {applied:.0f} batches applied in {commits:.0f} transactions" if commits else "")
          + ". "
          + ("OK: every exchange once, complete." if ok else "FAILED."))
    sys.exit(0 if ok else 1)
finally:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
