#!/usr/bin/env python3
"""The reading side's costs, run by hand (never in the test suite):

  ingest   exchanges/s through POST /ingest for a log-server with deriving (this build) and,
           if --baseline is given, a log-server built before deriving existed, same batches,
           same machine, interleaved; then how long the deriver takes to catch up, as
           exchanges/s and MB of stored stream per second.
  stats    GET /stats over an index of --rows rows (bulk-inserted with derived columns):
           p50/p95 over 20 calls for each group_by, once the log server has built the hourly
           rollups (how long that took is printed; --no-rollup-wait measures before); also the
           first /requests page.
  ingest-1k  exchanges/s through POST /ingest alone, of 1 KiB exchanges (begin, request head
           + 512-byte body, response head + 512-byte body, end; --per-batch per POST, ~1 MiB
           batches by default as the proxy sends them), with the log server's peak RSS
           (VmHWM). Each round starts a fresh log server. --perf-out FILE records a perf
           profile (perf record -g) of the last round.
  export   GET /export?format=har|jsonl&limit=N of N ingested exchanges, streamed to nowhere,
           with the log server's peak RSS (VmHWM) before and after.
  ui       the web UI's time to first paint (bench/ui_first_paint.mjs: chromium through
           tests/ui's playwright-core) over an index of --rows rows and over an empty one.

  bench/reading_bench.py --log-server build-rel/bin/log-server [--baseline OLD/log-server]
                         [--exchanges 20000] [--rows 1000000] [--export 100000] [--only ...]

Every exchange is a streamed OpenAI chat completion of --events events (default 20) with
usage, as the proxy ships it (begin, heads, one body frame per event with its arrival, end).
"""
import argparse
import http.client
import json
import os
import re
import shutil
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time
import uuid


def frame(ftype, meta, data=b""):
    # Sorted keys, no spaces: the bytes the proxy's JSON writer gives (common/json_writer.h).
    m = json.dumps(meta, separators=(",", ":"), sort_keys=True).encode()
    return struct.pack(">BII", ftype, len(m), len(data)) + m + data


def batch(proxy_id, seq, exchanges):
    out = [b"LPCB", bytes([1]), frame(1, {"proxy_id": proxy_id, "seq": seq})]
    for x in exchanges:
        out.append(x)
    return b"".join(out)


def exchange_frames(xid, started_at, events):
    body = json.dumps({"model": "gpt-4o", "stream": True,
                       "stream_options": {"include_usage": True},
                       "messages": [{"role": "user", "content": "x" * 600}]}).encode()
    head = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: api.openai.com\r\n"
            b"Content-Type: application/json\r\nX-Proxy-Path: /openai/v1/chat/completions\r\n\r\n")
    parts = [frame(2, {"id": xid, "route": "openai", "method": "POST",
                       "proxy_path": "/openai/v1/chat/completions",
                       "destination": "https://api.openai.com/v1/chat/completions",
                       "client_ip": "127.0.0.1", "started_at": started_at}),
             frame(3, {"id": xid}, head), frame(4, {"id": xid}, body),
             frame(5, {"id": xid, "t_us": 1000},
                   b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n")]
    size = 0
    for i in range(events):
        c = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
             "model": "gpt-4o-2024-08-06",
             "choices": [{"index": 0, "delta": {"content": "word%d " % i},
                          "finish_reason": None}]}
        ev = b"data: " + json.dumps(c).encode() + b"\n\n"
        parts.append(frame(6, {"id": xid, "t_us": 2000 + i * 1000}, ev))
        size += len(ev)
    u = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
         "model": "gpt-4o-2024-08-06", "choices": [],
         "usage": {"prompt_tokens": 10, "completion_tokens": events, "total_tokens": 10 + events}}
    tail = b"data: " + json.dumps(u).encode() + b"\n\ndata: [DONE]\n\n"
    parts.append(frame(6, {"id": xid, "t_us": 3000 + events * 1000}, tail))
    size += len(tail)
    parts.append(frame(7, {"id": xid, "outcome": "complete", "status": 200,
                           "request_bytes": len(body), "response_bytes": size,
                           "timings": {"request_forwarded_us": 100, "upstream_headers_us": 900,
                                       "first_byte_us": 1000, "total_us": 5000 + events * 1000}}))
    return b"".join(parts), size


class LogServer:
    def __init__(self, exe, extra=""):
        self.dir = tempfile.mkdtemp(prefix="readbench-")
        self.exe = exe
        with open(os.path.join(self.dir, "config.yaml"), "w") as f:
            f.write("log_server:\n  host: localhost\n  port: 0\n  data_dir: %s/data\n%s"
                    % (self.dir, extra))
        self.start()

    def start(self):
        self.proc = subprocess.Popen([self.exe, "--config", os.path.join(self.dir, "config.yaml")],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()
        m = re.search(r":(\d+)$", line.strip())
        if not m:
            raise SystemExit("log-server did not start: " + line)
        self.port = int(m.group(1))

    def stop(self):
        self.proc.terminate()
        self.proc.wait(30)

    def conn(self):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)

    def status(self, key):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024.0
        return 0.0

    def metric(self, name):
        c = self.conn()
        c.request("GET", "/metrics")
        body = c.getresponse().read().decode()
        for line in body.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return None

    def cleanup(self):
        try:
            self.stop()
        except Exception:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


def make_batches(n, per_batch, events, seq0=1):
    batches = []
    stream_bytes = 0
    t = time.time()
    for b in range(0, n, per_batch):
        frames = []
        for i in range(b, min(n, b + per_batch)):
            started = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t - 3600 + i * 0.001))
            started += ".%06dZ" % ((i * 1000) % 1000000)
            f, size = exchange_frames(str(uuid.UUID(int=(seq0 << 64) + i)), started, events)
            frames.append(f)
            stream_bytes += size
        batches.append(batch("bench", seq0 + len(batches), frames))
    return batches, stream_bytes


def ingest_run(exe, batches, n, stream_bytes, derive_wait=True):
    ls = LogServer(exe)
    try:
        c = ls.conn()
        t0 = time.monotonic()
        for body in batches:
            c.request("POST", "/ingest", body, {"Content-Type": "application/octet-stream"})
            r = c.getresponse()
            r.read()
            if r.status != 200:
                raise SystemExit("ingest answered %d" % r.status)
        ingest_s = time.monotonic() - t0
        result = {"ingest_per_s": n / ingest_s, "ingest_s": ingest_s,
                  "rss_mb": ls.status("VmHWM")}
        if derive_wait and ls.metric("log_server_derived_total") is not None:
            while (ls.metric("log_server_derived_total") or 0) < n:
                if time.monotonic() - t0 > 600:
                    raise SystemExit("deriver did not catch up in 600 s")
                time.sleep(0.05)
            total_s = time.monotonic() - t0
            result["all_derived_s"] = total_s
            result["derive_lag_s"] = total_s - ingest_s
        return result
    finally:
        ls.cleanup()


def bench_ingest(args):
    batches, stream_bytes = make_batches(args.exchanges, args.per_batch, args.events)
    mb = stream_bytes / 1e6
    print("ingest: %d exchanges of %d events, %d per batch, %.1f MB of stream"
          % (args.exchanges, args.events, args.per_batch, mb))
    rows = []
    for rnd in range(args.rounds):
        targets = [("deriving", args.log_server)]
        if args.baseline:
            targets.append(("before (no deriving)", args.baseline))
        if rnd % 2:
            targets.reverse()
        for name, exe in targets:
            r = ingest_run(exe, batches, args.exchanges, stream_bytes)
            r["target"] = name
            rows.append(r)
            print("  round %d %-22s %8.0f exchanges/s ingest%s" % (
                rnd + 1, name, r["ingest_per_s"],
                ("; all derived %.2f s after the first POST (%.2f s after the last)"
                 % (r["all_derived_s"], r["derive_lag_s"])) if "all_derived_s" in r else ""))
    # The deriver alone: reindex of the same data, no ingest competing.
    ls = LogServer(args.log_server)
    try:
        c = ls.conn()
        for body in batches:
            c.request("POST", "/ingest", body, {"Content-Type": "application/octet-stream"})
            c.getresponse().read()
        while (ls.metric("log_server_derived_total") or 0) < args.exchanges:
            time.sleep(0.05)
        ls.stop()
        t0 = time.monotonic()
        out = subprocess.run([args.log_server, "reindex", "--config",
                              os.path.join(ls.dir, "config.yaml")],
                             capture_output=True, text=True, check=True)
        dt = time.monotonic() - t0
        print("  reindex (the deriver's work alone): %.2f s = %.0f exchanges/s, %.1f MB/s of "
              "stored stream, %.1f ms per MB" % (dt, args.exchanges / dt, mb / dt, dt * 1000 / mb))
        print("   ", out.stdout.strip())
    finally:
        ls.cleanup()
    return rows


def exchange_1k(xid, started_at):
    head = (b"POST /api/items HTTP/1.1\r\nHost: upstream.local\r\n"
            b"Content-Type: application/json\r\n\r\n")
    rhead = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n"
    body = b"{" + b"x" * 510 + b"}"
    return b"".join([
        frame(2, {"id": xid, "route": "api", "method": "POST", "proxy_path": "/api/items",
                  "destination": "http://upstream.local/api/items", "client_ip": "127.0.0.1",
                  "started_at": started_at}),
        frame(3, {"id": xid}, head), frame(4, {"id": xid}, body),
        frame(5, {"id": xid, "t_us": 900}, rhead), frame(6, {"id": xid, "t_us": 1000}, body),
        frame(7, {"id": xid, "outcome": "complete", "status": 200, "request_bytes": len(body),
                  "response_bytes": len(body),
                  "timings": {"request_forwarded_us": 100, "upstream_headers_us": 900,
                              "first_byte_us": 1000, "total_us": 1200}})])


def thread_cpu(pid):
    """CPU seconds (utime + stime) of each live thread of `pid`, highest first."""
    out = []
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                st = f.read().rsplit(")", 1)[1].split()
            tick = os.sysconf("SC_CLK_TCK")
            out.append(((int(st[11]) + int(st[12])) / tick, int(st[11]) / tick,
                        int(st[12]) / tick))
        except OSError:
            pass
    return sorted(out, reverse=True)


def bench_ingest_1k(args):
    per_batch = args.per_batch if args.per_batch != 200 else 700
    t = time.time()
    batches = []
    for b in range(0, args.exchanges, per_batch):
        frames = []
        for i in range(b, min(args.exchanges, b + per_batch)):
            us = int((t - 3600) * 1e6) + i * 37
            started = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(us // 1000000))
            started += ".%06dZ" % (us % 1000000)
            frames.append(exchange_1k(str(uuid.UUID(int=(7 << 64) + i)), started))
        batches.append(batch("bench1k", 1 + len(batches), frames))
    size = sum(len(b) for b in batches)
    print("ingest-1k: %d exchanges, %d per batch, %d batches of %.2f MB on average"
          % (args.exchanges, per_batch, len(batches), size / len(batches) / 1e6))
    rows = []
    for rnd in range(args.rounds):
        # ext4 without a journal (this machine) scans past every inode freed in the last 5 s
        # when it allocates one: the previous round's deleted files would slow this one.
        time.sleep(6)
        ls = LogServer(args.log_server)
        perf = None
        try:
            if args.perf_out and rnd == args.rounds - 1:
                # PERF_CALLGRAPH=dwarf: user-space call chains (the build has no frame
                # pointers), at the cost of a much bigger perf.data.
                graph = ["--call-graph", os.environ["PERF_CALLGRAPH"]] \
                    if os.environ.get("PERF_CALLGRAPH") else ["-g"]
                perf = subprocess.Popen(["perf", "record"] + graph + ["-o", args.perf_out,
                                         "-p", str(ls.proc.pid)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(0.5)
            c = ls.conn()
            rss0 = ls.status("VmRSS")
            t0 = time.monotonic()
            for body in batches:
                c.request("POST", "/ingest", body, {"Content-Type": "application/octet-stream"})
                r = c.getresponse()
                r.read()
                if r.status != 200:
                    raise SystemExit("ingest answered %d" % r.status)
            dt = time.monotonic() - t0
            c.close()
            if perf:
                perf.send_signal(2)
                perf.wait(60)
            cpu = 0.0
            with open("/proc/%d/stat" % ls.proc.pid) as f:
                st = f.read().rsplit(")", 1)[1].split()
                cpu = (int(st[11]) + int(st[12])) / os.sysconf("SC_CLK_TCK")
            threads = thread_cpu(ls.proc.pid)
            row = {"per_s": args.exchanges / dt, "s": dt, "rss0_mb": rss0,
                   "peak_rss_mb": ls.status("VmHWM"), "cpu_s": cpu, "threads": threads,
                   "load1": os.getloadavg()[0]}
            rows.append(row)
            print("  round %d: %8.0f exchanges/s (%.2f s), log-server CPU %.2f s "
                  "(%.0f exchanges per CPU-second), RSS at start %.1f MB, peak RSS %.1f MB, "
                  "load1 %.1f"
                  % (rnd + 1, row["per_s"], dt, cpu, args.exchanges / cpu if cpu else 0,
                     rss0, row["peak_rss_mb"], row["load1"]))
            # The busiest thread is the HTTP worker that ran /ingest, the next the deriver.
            print("           busiest threads, CPU s (user+sys): %s; ingest thread alone: "
                  "%.0f exchanges per CPU-second"
                  % (", ".join("%.2f (%.2f+%.2f)" % t for t in threads[:3]),
                     args.exchanges / threads[0][0] if threads and threads[0][0] else 0))
            sizes = blob_sizes(os.path.join(ls.dir, "data"))
        finally:
            if perf and perf.poll() is None:
                perf.kill()
                perf.wait()
            ls.cleanup()
        # The peer: the same files created and synced by a program that does nothing else.
        time.sleep(6)
        floor = file_floor(args, per_batch, sizes)
        row["floor"] = floor
        print("           file floor (bench_file_floor, same files, one syncfs per batch): "
              "%.0f exchanges/s, %.1f us CPU each; /ingest = %.2fx the floor"
              % (floor["per_s"], floor["cpu_us_per_exchange"], row["per_s"] / floor["per_s"]))
    return rows


def blob_sizes(data_dir):
    """The mean size of the request and of the response files under data_dir's day dirs."""
    total = {"request": [0, 0], "response": [0, 0]}
    for day in os.listdir(data_dir):
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", day):
            continue
        for name in os.listdir(os.path.join(data_dir, day)):
            kind = "request" if name.endswith("_request.bin") else "response"
            total[kind][0] += os.path.getsize(os.path.join(data_dir, day, name))
            total[kind][1] += 1
    return [total[k][0] // max(total[k][1], 1) for k in ("request", "response")]


def file_floor(args, per_batch, sizes):
    exe = args.file_floor or os.path.join(os.path.dirname(os.path.abspath(args.log_server)),
                                          "bench_file_floor")
    d = tempfile.mkdtemp(prefix="filefloor-")
    try:
        out = subprocess.run([exe, os.path.join(d, "data"), str(args.exchanges), str(per_batch),
                              str(sizes[0]), str(sizes[1])],
                             check=True, capture_output=True, text=True).stdout
        return json.loads(out)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def fill_index(ls, n):
    """Stops `ls`, bulk-inserts n ended exchanges with derived columns into its index (one
    every 2 s up to now, ids shaped like uuid4), and returns the newest one's short id."""
    ls.stop()
    db = sqlite3.connect(os.path.join(ls.dir, "data", "index.sqlite"))
    models = ["gpt-4o", "gpt-4o-mini", "claude-sonnet", "gemini-2.5-flash", "llama3", None]
    routes = ["openai", "anthropic", "openrouter", "gemini", "lmstudio"]
    t_end = int(time.time() * 1e6)
    t0 = time.monotonic()
    rows = []
    newest = None

    def flush():
        db.executemany("INSERT INTO exchanges (id, short_id, started_at, started_us, route, "
                       "method, proxy_path, destination, client_ip, status, outcome, "
                       "request_bytes, response_bytes, total_us, request_file, response_file, "
                       "request_file_size, response_file_size, request_head_size, "
                       "response_head_size, proxy_id, ingested_at, derived_version, provider, "
                       "model, input_tokens, output_tokens, cached_input_tokens, cost, ttft_us, "
                       "llm_error) VALUES (%s)" % ",".join("?" * 31), rows)
        rows.clear()

    for i in range(n):
        started = t_end - (n - i) * 2_000_000
        m = models[i % len(models)]
        xid = str(uuid.UUID(int=((i + 1) * 0x9E3779B97F4A7C15F39CC0605CEDC835) % (1 << 128)))
        newest = xid[:8]
        started_at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(started // 1_000_000)) + \
            ".%06dZ" % (started % 1_000_000)
        rows.append((xid, xid[:8], started_at, started, routes[i % 5], "POST",
                     "/%s/v1/chat/completions" % routes[i % 5], "http://x/",
                     "127.0.0.1", 200 if i % 17 else 500, "complete", 1000, 2000,
                     1000 + (i * 7919) % 90000, "f", "g", 10, 10, 5, 5, "bench", "now",
                     1, None if m is None else "openai", m,
                     None if m is None else 100 + i % 50, None if m is None else 20 + i % 30,
                     None if m is None else i % 10, None,
                     None if m is None else 200 + (i * 31) % 2000, 0))
        if len(rows) == 50000:
            flush()
    if rows:
        flush()
    db.commit()
    db.execute("ANALYZE")
    db.close()
    print("%d rows inserted in %.1f s" % (n, time.monotonic() - t0))
    ls.start()
    return newest


def wait_rollups(ls):
    """Every ended hour is dirty after a bulk insert, as after an upgrade: waits until the
    deriver's thread has rolled them all up, and says how long that took."""
    if ls.metric("log_server_stats_hours_pending") is None:
        return  # a log server from before the rollups
    t0 = time.monotonic()
    while True:
        pending = ls.metric("log_server_stats_hours_pending")
        built = ls.metric("log_server_stats_hours_built_total") or 0
        if built > 0 and pending == 0:
            break
        if time.monotonic() - t0 > 600:
            raise SystemExit("rollups not built in 600 s")
        time.sleep(0.05)
    built_s = time.monotonic() - t0
    ro = sqlite3.connect("file:%s?mode=ro" % os.path.join(ls.dir, "data", "index.sqlite"),
                         uri=True)
    parts, blob_bytes = ro.execute(
        "SELECT count(*), sum(length(durations) + length(ttfts) + length(cost)) "
        "FROM stats_hourly").fetchone()
    ro.close()
    print("  hourly rollups: %d hours built in %.1f s after the start; %d rollup rows, "
          "%.1f MB of stored values" % (built, built_s, parts, (blob_bytes or 0) / 1e6))


def bench_stats(args):
    ls = LogServer(args.log_server)
    print("stats: ", end="")
    fill_index(ls, args.rows)
    try:
        if not args.no_rollup_wait:
            wait_rollups(ls)
        c = ls.conn()
        for path in ["/requests?limit=50", "/stats?group_by=model", "/stats?group_by=route",
                     "/stats?group_by=day", "/stats?group_by=hour",
                     "/stats?group_by=model&route=openai",
                     "/stats?group_by=model&since=" + time.strftime(
                         "%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 86400))]:
            times = []
            for _ in range(20):
                t = time.monotonic()
                c.request("GET", path)
                r = c.getresponse()
                r.read()
                times.append((time.monotonic() - t) * 1000)
            times.sort()
            print("  %-45s p50 %7.1f ms  p95 %7.1f ms  (status %d)"
                  % (path[:45], times[9], times[18], r.status))
        print("  log-server peak RSS %.1f MB" % ls.status("VmHWM"))
    finally:
        ls.cleanup()


def bench_ui(args):
    """Time to first paint of the web UI's feed over an index of --rows rows, and over an
    empty index in the same run (the peer: what the browser costs anyway)."""
    here = os.path.dirname(os.path.abspath(__file__))
    script = os.path.join(here, "ui_first_paint.mjs")
    for label, rows in [("empty index", 0), ("%d rows" % args.rows, args.rows)]:
        ls = LogServer(args.log_server)
        try:
            newest = "No captures yet"  # what the empty feed says
            if rows:
                print("ui: ", end="")
                newest = fill_index(ls, rows)
                wait_rollups(ls)
            print("ui: %s" % label)
            out = subprocess.run(["node", script, "http://127.0.0.1:%d/" % ls.port, newest,
                                  str(args.ui_runs)], capture_output=True, text=True)
            if out.returncode != 0:
                raise SystemExit("ui_first_paint.mjs failed:\n" + out.stdout + out.stderr)
            print(out.stdout.rstrip())
        finally:
            ls.cleanup()


def bench_export(args):
    batches, stream_bytes = make_batches(args.export, args.per_batch, args.events, seq0=7)
    ls = LogServer(args.log_server)
    try:
        c = ls.conn()
        for body in batches:
            c.request("POST", "/ingest", body, {"Content-Type": "application/octet-stream"})
            c.getresponse().read()
        while (ls.metric("log_server_derived_total") or 0) < args.export:
            time.sleep(0.1)
        before = ls.status("VmHWM")
        for fmt in ["har", "jsonl"]:
            t = time.monotonic()
            c.request("GET", "/export?format=%s&limit=%d" % (fmt, args.export))
            r = c.getresponse()
            n = 0
            while True:
                chunk = r.read(1 << 20)
                if not chunk:
                    break
                n += len(chunk)
            dt = time.monotonic() - t
            print("export: %s of %d exchanges: %.1f MB in %.1f s; log-server RSS %.1f MB now, "
                  "peak %.1f MB (peak before the export %.1f MB)"
                  % (fmt, args.export, n / 1e6, dt, ls.status("VmRSS"), ls.status("VmHWM"), before))
    finally:
        ls.cleanup()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--log-server", required=True)
    p.add_argument("--baseline")
    p.add_argument("--exchanges", type=int, default=20000)
    p.add_argument("--per-batch", type=int, default=200)
    p.add_argument("--events", type=int, default=20)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--rows", type=int, default=1000000)
    p.add_argument("--export", type=int, default=100000)
    p.add_argument("--ui-runs", type=int, default=7)
    p.add_argument("--only", choices=["ingest", "ingest-1k", "stats", "export", "ui"])
    p.add_argument("--perf-out", help="ingest-1k: perf.data path for the last round")
    p.add_argument("--file-floor", help="ingest-1k: bench_file_floor (default: beside "
                   "--log-server)")
    p.add_argument("--no-rollup-wait", action="store_true",
                   help="stats: query at once, before the hourly rollups are built")
    args = p.parse_args()
    if args.only in (None, "ingest"):
        bench_ingest(args)
    if args.only == "ingest-1k":
        bench_ingest_1k(args)
    if args.only in (None, "stats"):
        bench_stats(args)
    if args.only in (None, "export"):
        bench_export(args)
    if args.only in (None, "ui"):
        bench_ui(args)


if __name__ == "__main__":
    sys.exit(main())
