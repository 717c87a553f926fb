#!/usr/bin/env python3
"""Soak driver for logging-proxy (issue 6): mixed traffic for a fixed time, resource curve,
capture check. Started by bench/soak/soak.sh, which owns the processes; run by hand, never in CI.

It sends a bounded mix (fixed number of worker threads, a global start-rate cap, at most one
large body at a time) through the proxy to tests/e2e/mock_upstream, every request tagged with a
unique `soak=RUN-SEQ` query parameter. Every SAMPLE seconds it records RSS, fds, threads and CPU
of the watched processes, the spool size and log-server counters into a CSV. At the end it waits
(bounded) for the captures to drain, then pages through log-server's /requests and checks that
each exchange it started is there exactly once with the expected outcome. Exit 0 only when
nothing is missing, duplicated or wrong, the driver saw no errors, and the curves are flat.
Python 3.11 standard library only.
"""

import argparse
import csv
import hashlib
import json
import os
import random
import socket
import statistics
import sys
import threading
import time
import urllib.parse
import urllib.request

MIB = 1 << 20
CLK_TCK = os.sysconf("SC_CLK_TCK")

# kind -> (expected capture outcome, what it does). "large_*" kinds are gated: at most one in
# flight, and one started every --large-interval seconds, because each moves 10-50 MB through
# the proxy, the capture queue and the log server's disk on a shared 2-core machine.
KINDS = {
    "small": "complete",  # POST /v1/chat/completions, ~1 KiB JSON, JSON answer
    "chat_stream": "complete",  # the same with "stream": true (OpenAI SSE chunks)
    "sse": "complete",  # GET /sse, SSE_EVENTS events SSE_MS apart
    "gzip": "complete",  # GET /gzip, Content-Encoding: gzip, checked by SHA-256
    "abort_sse": "client_aborted",  # GET a long /sse, read a few events, close
    "abort_wait": "client_aborted",  # GET /slow, close before the response head
    "large_down": "complete",  # GET /large, 20-50 MiB (Content-Length)
    "large_up": "complete",  # POST /echo with a 10 MiB body
    "abort_large": "client_aborted",  # GET /large 40 MiB, read 4 MiB, close
}
# Weights of the ungated kinds (per started exchange).
WEIGHTS = {"small": 50, "chat_stream": 12, "sse": 18, "gzip": 10, "abort_sse": 6, "abort_wait": 4}
LARGE_ROTATION = ["large_down", "large_up", "large_down", "large_up", "abort_large"]
SSE_EVENTS, SSE_MS = 50, 20
# Transient RSS a peak may add over the first window's peak: the proxy's capture queue bound
# (logging.queue_bytes, 64 MiB by default), which a large body fills while the log server lags.
PEAK_ALLOWANCE_KIB = 64 * 1024


class ProtocolError(Exception):
    pass


class Conn:
    """One HTTP/1.1 client connection (plain socket, buffered reads)."""

    def __init__(self, host, port, timeout):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.rf = self.sock.makefile("rb", buffering=256 * 1024)
        self.requests = 0

    def close(self):
        try:
            self.rf.close()
        finally:
            self.sock.close()

    def send(self, data):
        self.sock.sendall(data)

    def read_head(self):
        line = self.rf.readline(65536)
        if not line:
            raise ProtocolError("connection closed before the response head")
        parts = line.decode("latin-1").split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            raise ProtocolError(f"bad status line {line[:80]!r}")
        status = int(parts[1])
        headers = {}
        while True:
            h = self.rf.readline(65536)
            if not h:
                raise ProtocolError("connection closed inside the response head")
            if h in (b"\r\n", b"\n"):
                break
            name, _, value = h.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        return status, headers

    def body_pieces(self, headers, piece=MIB):
        """Yields the response body in pieces (Content-Length, chunked or until close)."""
        if "chunked" in headers.get("transfer-encoding", "").lower():
            while True:
                size_line = self.rf.readline(1024)
                if not size_line:
                    raise ProtocolError("connection closed inside a chunked body")
                size = int(size_line.split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rf.readline(65536) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return
                left = size
                while left:
                    data = self.rf.read(min(left, piece))
                    if not data:
                        raise ProtocolError("connection closed inside a chunk")
                    left -= len(data)
                    yield data
                self.rf.readline(16)
        elif "content-length" in headers:
            left = int(headers["content-length"])
            while left:
                data = self.rf.read(min(left, piece))
                if not data:
                    raise ProtocolError(f"connection closed with {left} body bytes missing")
                left -= len(data)
                yield data
        else:
            headers["connection"] = "close"
            while True:
                data = self.rf.read1(piece)
                if not data:
                    return
                yield data


def request_bytes(method, target, host, extra=(), body_len=None):
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}", "User-Agent: lp-soak/1"]
    lines += list(extra)
    if body_len is not None:
        lines.append(f"Content-Length: {body_len}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.started = 0
        self.finished = 0
        self.per_kind = {k: {"started": 0, "ok": 0, "aborted": 0, "error": 0} for k in KINDS}
        self.exchanges = {}  # marker -> dict(kind, result, expect_bytes, error)
        self.errors = []

    def start(self, marker, kind):
        with self.lock:
            self.started += 1
            self.per_kind[kind]["started"] += 1
            self.exchanges[marker] = {"kind": kind, "result": None}

    def end(self, marker, result, error=None, **extra):
        with self.lock:
            self.finished += 1
            ex = self.exchanges[marker]
            ex["result"] = result
            ex.update(extra)
            self.per_kind[ex["kind"]][result] += 1
            if error:
                ex["error"] = error
                if len(self.errors) < 50:
                    self.errors.append(f"{marker} {ex['kind']}: {error}")

    def in_flight(self):
        with self.lock:
            return self.started - self.finished


class Driver:
    def __init__(self, args, stats):
        self.a = args
        self.stats = stats
        u = urllib.parse.urlsplit(args.proxy)
        self.host, self.port = u.hostname, u.port
        self.hosthdr = f"{self.host}:{self.port}"
        self.deadline = 0.0
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.seq = 0
        self.next_start = 0.0
        self.next_large = 0.0
        self.large_busy = False
        self.large_turn = 0
        self.upload = bytes(range(256)) * (args.upload_mib * MIB // 256)
        self.rng = random.Random(args.seed)

    # ---- scheduling
    def next_marker(self):
        with self.lock:
            self.seq += 1
            return f"{self.a.run_id}-{self.seq:07d}"

    def pace(self):
        """Waits for this worker's start slot (global rate cap). False when the run is over."""
        with self.lock:
            now = time.monotonic()
            slot = max(self.next_start, now)
            self.next_start = slot + 1.0 / self.a.rate
        while True:
            now = time.monotonic()
            if now >= self.deadline or self.stop.is_set():
                return False
            if now >= slot:
                return True
            time.sleep(min(slot - now, self.deadline - now))

    def pick(self, rng):
        with self.lock:
            now = time.monotonic()
            if not self.large_busy and now >= self.next_large:
                self.large_busy = True
                self.next_large = now + self.a.large_interval
                kind = LARGE_ROTATION[self.large_turn % len(LARGE_ROTATION)]
                self.large_turn += 1
                return kind
        return rng.choices(list(WEIGHTS), weights=list(WEIGHTS.values()))[0]

    # ---- one worker
    def worker(self, index):
        rng = random.Random(f"{self.a.seed}-{index}")
        conn = None
        while self.pace():
            kind = self.pick(rng)
            marker = self.next_marker()
            self.stats.start(marker, kind)
            try:
                if conn is None:
                    conn = Conn(self.host, self.port, self.a.timeout)
                result, extra, keep = getattr(self, "do_" + kind)(conn, marker, rng)
                conn.requests += 1
                # Some connection churn: a new client connection now and then.
                if not keep or rng.random() < 0.05:
                    conn.close()
                    conn = None
                self.stats.end(marker, result, **extra)
            except Exception as e:  # noqa: BLE001 - every failure is counted and reported
                reused = conn is not None and conn.requests > 0
                if conn is not None:
                    conn.close()
                    conn = None
                self.stats.end(marker, "error", f"{type(e).__name__}: {e} (reused={reused})")
            finally:
                if kind.startswith("large") or kind == "abort_large":
                    with self.lock:
                        self.large_busy = False
        if conn is not None:
            conn.close()

    # ---- the kinds: each returns (result, extra fields for the record, keep the connection)
    def target(self, path, marker):
        sep = "&" if "?" in path else "?"
        return f"{path}{sep}soak={marker}"

    def chat(self, conn, marker, rng, stream):
        words = " ".join(f"w{rng.randrange(10**6)}" for _ in range(120))
        body = json.dumps(
            {"model": "soak-model", "stream": stream,
             "messages": [{"role": "user", "content": f"soak {marker} {words}"}]}
        ).encode()
        extra = [f"Authorization: Bearer sk-soak-{rng.randrange(10**9):09d}",
                 "Content-Type: application/json"]
        if stream:
            extra.append("X-Mock-Chunk-Ms: 10")
        conn.send(request_bytes("POST", self.target("/v1/chat/completions", marker),
                                self.hosthdr, extra, len(body)) + body)
        status, headers = conn.read_head()
        data = b"".join(conn.body_pieces(headers))
        if status != 200:
            raise ProtocolError(f"status {status}: {data[:200]!r}")
        if stream:
            if not data.rstrip().endswith(b"data: [DONE]"):
                raise ProtocolError("stream did not end with [DONE]")
        elif "choices" not in json.loads(data):
            raise ProtocolError("no choices in the completion")
        return "ok", {}, headers.get("connection", "").lower() != "close"

    def do_small(self, conn, marker, rng):
        return self.chat(conn, marker, rng, False)

    def do_chat_stream(self, conn, marker, rng):
        return self.chat(conn, marker, rng, True)

    def do_sse(self, conn, marker, rng):
        conn.send(request_bytes("GET", self.target(f"/sse?n={SSE_EVENTS}&ms={SSE_MS}", marker),
                                self.hosthdr, ["Accept: text/event-stream"]))
        status, headers = conn.read_head()
        data = b"".join(conn.body_pieces(headers, 65536))
        events = data.count(b"data: ")
        if status != 200 or events != SSE_EVENTS:
            raise ProtocolError(f"status {status}, {events} events of {SSE_EVENTS}")
        return "ok", {}, headers.get("connection", "").lower() != "close"

    def do_gzip(self, conn, marker, rng):
        conn.send(request_bytes("GET", self.target("/gzip", marker), self.hosthdr,
                                ["Accept-Encoding: gzip"]))
        status, headers = conn.read_head()
        data = b"".join(conn.body_pieces(headers))
        if status != 200 or hashlib.sha256(data).hexdigest() != headers.get("x-body-sha256"):
            raise ProtocolError(f"status {status} or body SHA-256 mismatch")
        return "ok", {}, headers.get("connection", "").lower() != "close"

    def do_abort_sse(self, conn, marker, rng):
        want = rng.randint(2, 10)
        conn.send(request_bytes("GET", self.target(f"/sse?n=500&ms={SSE_MS}", marker),
                                self.hosthdr, ["Accept: text/event-stream"]))
        status, headers = conn.read_head()
        if status != 200:
            raise ProtocolError(f"status {status}")
        seen = 0
        for piece in conn.body_pieces(headers, 4096):
            seen += piece.count(b"data: ")
            if seen >= want:
                return "aborted", {}, False  # the caller closes the connection mid-stream
        raise ProtocolError("stream ended before the abort point")

    def do_abort_wait(self, conn, marker, rng):
        conn.send(request_bytes("GET", self.target("/slow?ms=5000", marker), self.hosthdr))
        conn.sock.settimeout(0.3)
        try:
            if conn.rf.peek(1):
                raise ProtocolError("the slow response arrived before the abort")
        except (TimeoutError, socket.timeout):
            pass
        return "aborted", {}, False

    def do_large_down(self, conn, marker, rng):
        n = rng.randint(self.a.large_min_mib, self.a.large_max_mib) * MIB
        conn.send(request_bytes("GET", self.target(f"/large?bytes={n}", marker), self.hosthdr))
        status, headers = conn.read_head()
        got = sum(len(p) for p in conn.body_pieces(headers))
        if status != 200 or got != n:
            raise ProtocolError(f"status {status}, {got} bytes of {n}")
        return "ok", {"response_bytes": n}, headers.get("connection", "").lower() != "close"

    def do_large_up(self, conn, marker, rng):
        n = len(self.upload)
        conn.send(request_bytes("POST", self.target("/echo", marker), self.hosthdr,
                                ["Content-Type: application/octet-stream"], n))
        view = memoryview(self.upload)
        for off in range(0, n, MIB):
            conn.send(view[off:off + MIB])
        status, headers = conn.read_head()
        data = b"".join(conn.body_pieces(headers))
        echo = json.loads(data) if status == 200 else {}
        if echo.get("body_length") != n:
            raise ProtocolError(f"status {status}, echo {data[:200]!r}")
        return "ok", {"request_bytes": n}, headers.get("connection", "").lower() != "close"

    def do_abort_large(self, conn, marker, rng):
        n = 40 * MIB
        conn.send(request_bytes("GET", self.target(f"/large?bytes={n}", marker), self.hosthdr))
        status, headers = conn.read_head()
        if status != 200:
            raise ProtocolError(f"status {status}")
        got = 0
        for piece in conn.body_pieces(headers):
            got += len(piece)
            if got >= 4 * MIB:
                return "aborted", {}, False
        raise ProtocolError("body ended before the abort point")


# ---------------------------------------------------------------- sampling


def proc_sample(pid):
    """RSS (KiB), fds, threads, CPU ticks of one process; None if it is gone."""
    try:
        rss = threads = 0
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("Threads:"):
                    threads = int(line.split()[1])
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])
        return {"rss_kb": rss, "fds": fds, "threads": threads, "ticks": ticks}
    except (OSError, ValueError, IndexError):
        return None


def dir_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def http_get(url, timeout=30):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read()


def log_metrics(logserver):
    out = {}
    try:
        for line in http_get(f"{logserver}/metrics", 10).decode().splitlines():
            if line.startswith("#") or "{" in line:
                continue
            name, _, value = line.partition(" ")
            out[name] = float(value)
    except OSError:
        pass
    return out


class Sampler:
    METRICS = ["log_server_exchanges", "log_server_exchanges_ingested_total",
               "log_server_bytes_ingested_total", "log_server_batches_applied_total",
               "log_server_batches_duplicate_total"]

    def __init__(self, args, watch, stats):
        self.a = args
        self.watch = watch  # [(name, pid)]
        self.stats = stats
        self.rows = []
        self.t0 = time.monotonic()
        self.last_ticks = {}
        self.last_t = None
        self.dead = []
        self.phase = "baseline"
        self.stop = threading.Event()
        self.lock = threading.Lock()

    def columns(self):
        cols = ["t_s", "phase", "started", "finished", "in_flight", "spool_bytes"]
        for name, _ in self.watch:
            cols += [f"{name}_rss_kb", f"{name}_fds", f"{name}_threads", f"{name}_cpu_pct"]
        return cols + self.METRICS

    def sample(self):
        with self.lock:
            now = time.monotonic()
            row = {"t_s": round(now - self.t0, 1), "phase": self.phase,
                   "started": self.stats.started, "finished": self.stats.finished,
                   "in_flight": self.stats.in_flight(),
                   "spool_bytes": dir_bytes(self.a.spool_dir)}
            dt = None if self.last_t is None else now - self.last_t
            for name, pid in self.watch:
                s = proc_sample(pid)
                if s is None:
                    if name not in self.dead:
                        self.dead.append(name)
                    continue
                cpu = ""
                if dt and name in self.last_ticks:
                    cpu = round((s["ticks"] - self.last_ticks[name]) / CLK_TCK / dt * 100, 1)
                self.last_ticks[name] = s["ticks"]
                row.update({f"{name}_rss_kb": s["rss_kb"], f"{name}_fds": s["fds"],
                            f"{name}_threads": s["threads"], f"{name}_cpu_pct": cpu})
            m = log_metrics(self.a.logserver)
            for k in self.METRICS:
                row[k] = int(m[k]) if k in m else ""
            self.last_t = now
            self.rows.append(row)
            return row

    def run(self):
        while not self.stop.wait(self.a.sample):
            row = self.sample()
            if self.a.verbose:
                brief = " ".join(f"{n}:rss={row.get(n + '_rss_kb', '?')}k,fd={row.get(n + '_fds', '?')}"
                                 for n, _ in self.watch)
                log(f"t={row['t_s']:.0f}s {row['phase']} started={row['started']} "
                    f"in_flight={row['in_flight']} spool={row['spool_bytes']} {brief}")


# ---------------------------------------------------------------- verification


def fetch_rows(logserver, run_id):
    """All /requests rows whose proxy path carries this run's marker, newest first."""
    rows, cursor = [], None
    while True:
        q = {"q": f"soak={run_id}-", "limit": "1000"}
        if cursor:
            q["cursor"] = cursor
        page = json.loads(http_get(f"{logserver}/requests?{urllib.parse.urlencode(q)}", 60))
        rows += page["requests"]
        cursor = page.get("next_cursor")
        if not cursor:
            return rows


def marker_of(proxy_path, run_id):
    qs = urllib.parse.urlsplit(proxy_path).query
    for v in urllib.parse.parse_qs(qs).get("soak", []):
        if v.startswith(run_id + "-"):
            return v
    return None


def verify(args, stats, rows):
    by_marker = {}
    foreign = 0
    for r in rows:
        m = marker_of(r["proxy_path"], args.run_id)
        if m is None or m not in stats.exchanges:
            foreign += 1
            continue
        by_marker.setdefault(m, []).append(r)
    res = {"rows": len(rows), "foreign": foreign, "missing": [], "duplicate": [],
           "wrong_outcome": [], "in_progress": [], "bytes_mismatch": [],
           "outcomes": {}, "error_exchanges_captured": 0}
    for m, ex in stats.exchanges.items():
        got = by_marker.get(m, [])
        if ex["result"] in ("error", None):
            # The driver failed (see errors): the capture may legitimately be absent.
            res["error_exchanges_captured"] += bool(got)
            if len(got) > 1:
                res["duplicate"].append(m)
            continue
        if not got:
            res["missing"].append(m)
            continue
        if len(got) > 1:
            res["duplicate"].append(m)
        r = got[0]
        key = f"{ex['kind']}:{r['outcome']}"
        res["outcomes"][key] = res["outcomes"].get(key, 0) + 1
        if r["outcome"] == "in_progress":
            res["in_progress"].append(m)
        elif r["outcome"] != KINDS[ex["kind"]]:
            res["wrong_outcome"].append(f"{m} {ex['kind']}: {r['outcome']} ({r.get('error')})")
        elif KINDS[ex["kind"]] == "complete" and r["status"] != 200:
            res["wrong_outcome"].append(f"{m} {ex['kind']}: status {r['status']}")
        for field in ("response_bytes", "request_bytes"):
            if field in ex and r[field] != ex[field]:
                res["bytes_mismatch"].append(f"{m} {ex['kind']}: {field} {r[field]} != {ex[field]}")
    return res


# ---------------------------------------------------------------- summary


def log(msg):
    print(f"[soak {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def col(rows, key, pred=lambda r: True):
    return [r[key] for r in rows if pred(r) and isinstance(r.get(key), (int, float))]


def flatness(args, sampler, concurrency):
    """Per process: the curve summary and whether it is flat (see README, 'Flatness')."""
    load = [r for r in sampler.rows if r["phase"] == "load"]
    base = [r for r in sampler.rows if r["phase"] == "baseline"]
    final = [r for r in sampler.rows if r["phase"] == "final"]
    dur = args.duration
    win = min(600.0, dur / 3)
    t_load0 = load[0]["t_s"] - args.sample if load else 0
    first = lambda r: r["t_s"] - t_load0 <= win  # noqa: E731
    last = lambda r: r["t_s"] - t_load0 >= dur - win  # noqa: E731
    out = {}
    for name, _ in sampler.watch:
        rk, fk, tk, ck = (f"{name}_{x}" for x in ("rss_kb", "fds", "threads", "cpu_pct"))
        allr = col(sampler.rows, rk)
        if not allr or not load:
            out[name] = {"flat": False, "why": ["no samples"]}
            continue
        s = {
            "rss_base": (col(base, rk) or [None])[0],
            "rss_first": col(load, rk)[0], "rss_min": min(col(load, rk)),
            "rss_max": max(col(load, rk)), "rss_last": (col(final, rk) or col(load, rk))[-1],
            "rss_first_win_max": max(col(load, rk, first) or [0]),
            "rss_last_win_max": max(col(load, rk, last) or [0]),
            "fd_base": (col(base, fk) or [None])[0], "fd_first": col(load, fk)[0],
            "fd_min": min(col(load, fk)), "fd_max": max(col(load, fk)),
            "fd_last": (col(final, fk) or col(load, fk))[-1],
            "fd_first_win_max": max(col(load, fk, first) or [0]),
            "fd_last_win_max": max(col(load, fk, last) or [0]),
            "thr_base": (col(base, tk) or [None])[0], "thr_max": max(col(load, tk)),
            "thr_last": (col(final, tk) or col(load, tk))[-1],
            "cpu_avg": round(sum(col(load, ck)) / max(1, len(col(load, ck))), 1),
            "cpu_max": max(col(load, ck) or [0]),
        }
        for k, key in (("rss", rk), ("fd", fk)):
            s[f"{k}_first_win_med"] = statistics.median(col(load, key, first) or [0])
            s[f"{k}_last_win_med"] = statistics.median(col(load, key, last) or [0])
        # A leak lifts the level the process keeps between bursts, so the level (median) is the
        # test; peaks are transient (a large body's frames in the capture queue while the log
        # server is slow, one batch's files open in the log server) and get a bound of their own.
        why, notes = [], []
        level = s["rss_first_win_med"] * 1.10 + 5 * 1024
        if s["rss_last_win_med"] > level:
            why.append(f"RSS level grew: last-window median {s['rss_last_win_med']:.0f} KiB > "
                       f"{level:.0f} KiB (first-window median x1.10 + 5 MiB)")
        ceiling = s["rss_first_win_max"] * 1.10 + 5 * 1024
        if s["rss_last_win_max"] > ceiling + PEAK_ALLOWANCE_KIB:
            why.append(f"RSS peak: last-window max {s['rss_last_win_max']} KiB > {ceiling:.0f} "
                       f"KiB (first-window max x1.10 + 5 MiB) + {PEAK_ALLOWANCE_KIB >> 10} MiB")
        elif s["rss_last_win_max"] > ceiling:
            notes.append(f"transient RSS peak in the last window: {s['rss_last_win_max']} KiB "
                         f"> first-window max x1.10 + 5 MiB = {ceiling:.0f} KiB (within the "
                         f"{PEAK_ALLOWANCE_KIB >> 10} MiB capture-queue allowance)")
        if s["rss_last"] > ceiling:
            why.append(f"RSS not back after the drain: {s['rss_last']} KiB > {ceiling:.0f} KiB")
        if s["fd_last_win_med"] > s["fd_first_win_med"] + 2:
            why.append(f"fd level grew: last-window median {s['fd_last_win_med']} > first-window "
                       f"median {s['fd_first_win_med']} + 2")
        if s["fd_last_win_max"] > s["fd_first_win_max"] + 5:
            notes.append(f"fd peak in the last window {s['fd_last_win_max']} > first-window "
                         f"max {s['fd_first_win_max']} + 5")
        # Back to baseline: client connections are gone; the proxy may keep idle upstream
        # keep-alive connections (at most one per concurrent exchange), and the log server the
        # shipper's keep-alive connection.
        if s["fd_base"] is not None and s["fd_last"] > s["fd_base"] + concurrency + 2:
            why.append(f"fds not back to baseline: {s['fd_last']} > {s['fd_base']} + "
                       f"{concurrency} + 2")
        if s["thr_base"] is not None and s["thr_last"] > s["thr_base"] + concurrency + 2:
            why.append(f"threads not back to baseline: {s['thr_last']} > {s['thr_base']} + "
                       f"{concurrency} + 2")
        s["flat"] = not why
        s["why"] = why
        s["notes"] = notes
        s["window_s"] = round(win)
        out[name] = s
    return out


def write_outputs(args, stats, sampler, ver, flat, verdict, errors, elapsed):
    os.makedirs(args.results_dir, exist_ok=True)
    base = os.path.join(args.results_dir, f"soak-{args.stamp}")
    with open(base + ".csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=sampler.columns(), extrasaction="ignore")
        w.writeheader()
        for r in sampler.rows:
            w.writerow(r)
    L = []
    L.append(f"# Soak run {args.stamp}\n")
    L.append(f"Verdict: **{verdict}**\n")
    L.append(f"- duration {args.duration:.0f} s of load (whole run {elapsed:.0f} s), "
             f"{args.concurrency} workers, start rate cap {args.rate}/s, one large body every "
             f"{args.large_interval:.0f} s, sample every {args.sample:.0f} s")
    for t in args.tag:
        L.append(f"- {t}")
    L.append("\n## Exchanges (driver side)\n")
    L.append("| kind | expected capture outcome | started | ok | aborted | error |")
    L.append("|---|---|---:|---:|---:|---:|")
    tot = {"started": 0, "ok": 0, "aborted": 0, "error": 0}
    for k, v in stats.per_kind.items():
        L.append(f"| {k} | {KINDS[k]} | {v['started']} | {v['ok']} | {v['aborted']} | "
                 f"{v['error']} |")
        for x in tot:
            tot[x] += v[x]
    L.append(f"| **total** | | {tot['started']} | {tot['ok']} | {tot['aborted']} | "
             f"{tot['error']} |")
    L.append("\n## Captures (log-server /requests)\n")
    L.append(f"- rows for this run: {ver['rows']}; missing: **{len(ver['missing'])}**; "
             f"duplicate: {len(ver['duplicate'])}; wrong outcome/status: "
             f"{len(ver['wrong_outcome'])}; still in_progress: {len(ver['in_progress'])}; "
             f"byte-count mismatch: {len(ver['bytes_mismatch'])}; rows without a known "
             f"marker: {ver['foreign']}")
    L.append("- outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(ver["outcomes"].items())))
    for key in ("missing", "duplicate", "wrong_outcome", "in_progress", "bytes_mismatch"):
        if ver[key]:
            L.append(f"- {key} (first 20): " + "; ".join(ver[key][:20]))
    if errors:
        L.append("- driver errors (first 20): " + "; ".join(errors[:20]))
    L.append("\n## Resource curve summary\n")
    L.append("RSS in MiB; fds and threads counts; baseline = before any traffic, last = after "
             "the drain; windows = first and last "
             f"{next(iter(flat.values())).get('window_s', '?')} s of load.\n")
    L.append("| process | RSS base | first | min | max | last | first-win med/max | "
             "last-win med/max | fd base | first | min | max | last | fd first/last-win med | "
             "threads base/max/last | CPU avg/max % | flat |")
    L.append("|---|" + "---:|" * 15 + "---|")
    mb = lambda kb: "" if kb is None else f"{kb / 1024:.1f}"  # noqa: E731
    for name, s in flat.items():
        if "rss_first" not in s:
            L.append(f"| {name} | no samples |")
            continue
        L.append(f"| {name} | {mb(s['rss_base'])} | {mb(s['rss_first'])} | {mb(s['rss_min'])} | "
                 f"{mb(s['rss_max'])} | {mb(s['rss_last'])} | "
                 f"{mb(s['rss_first_win_med'])}/{mb(s['rss_first_win_max'])} | "
                 f"{mb(s['rss_last_win_med'])}/{mb(s['rss_last_win_max'])} | {s['fd_base']} | "
                 f"{s['fd_first']} | {s['fd_min']} | {s['fd_max']} | {s['fd_last']} | "
                 f"{s['fd_first_win_med']:g}/{s['fd_last_win_med']:g} | "
                 f"{s['thr_base']}/{s['thr_max']}/{s['thr_last']} | "
                 f"{s['cpu_avg']}/{s['cpu_max']} | {'yes' if s['flat'] else 'NO'} |")
    for name, s in flat.items():
        for w in s.get("why", []):
            L.append(f"- {name}: NOT flat: {w}")
        for w in s.get("notes", []):
            L.append(f"- {name}: note: {w}")
    # The curve itself, one row per minute (every sample is in the CSV).
    L.append("\n## Curve (one sample per minute; all samples in the CSV)\n")
    names = [n for n, _ in sampler.watch]
    L.append("| t (s) | phase | exchanges | " +
             " | ".join(f"{n} RSS MiB | {n} fds | {n} thr | {n} CPU %" for n in names) +
             " | spool KiB |")
    L.append("|---:|---|---:|" + "---:|" * (4 * len(names)) + "---:|")
    last_t = -1e9
    for i, r in enumerate(sampler.rows):
        if r["t_s"] - last_t < 59 and r["phase"] == "load" and i != len(sampler.rows) - 1:
            continue
        last_t = r["t_s"]
        cells = []
        for n in names:
            kb = r.get(f"{n}_rss_kb")
            cells += [mb(kb) if isinstance(kb, int) else "", str(r.get(f"{n}_fds", "")),
                      str(r.get(f"{n}_threads", "")), str(r.get(f"{n}_cpu_pct", ""))]
        L.append(f"| {r['t_s']:.0f} | {r['phase']} | {r['started']} | " + " | ".join(cells) +
                 f" | {r['spool_bytes'] // 1024} |")
    with open(base + ".md", "w") as f:
        f.write("\n".join(L) + "\n")
    return base


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--proxy", required=True, help="http://127.0.0.1:PORT of logging-proxy")
    p.add_argument("--logserver", required=True, help="http://127.0.0.1:PORT of log-server")
    p.add_argument("--spool-dir", required=True)
    p.add_argument("--watch", action="append", default=[], help="NAME=PID (repeatable)")
    p.add_argument("--duration", type=float, default=1800, help="seconds of load")
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--rate", type=float, default=30, help="cap on exchange starts per second")
    p.add_argument("--large-interval", type=float, default=20)
    p.add_argument("--large-min-mib", type=int, default=20)
    p.add_argument("--large-max-mib", type=int, default=50)
    p.add_argument("--upload-mib", type=int, default=10)
    p.add_argument("--sample", type=float, default=10)
    p.add_argument("--timeout", type=float, default=60, help="socket timeout per exchange")
    p.add_argument("--drain-timeout", type=float, default=180)
    p.add_argument("--seed", default="soak")
    p.add_argument("--run-id", default=None)
    p.add_argument("--stamp", default=time.strftime("%Y-%m-%dT%H-%M-%SZ", time.gmtime()))
    p.add_argument("--results-dir", required=True)
    p.add_argument("--tag", action="append", default=[], help="a line for the report")
    p.add_argument("--verbose", action="store_true")
    a = p.parse_args()
    if a.run_id is None:
        a.run_id = f"r{os.getpid()}x{int(time.time())}"
    if a.duration <= 0 or a.concurrency < 1 or a.rate <= 0 or a.sample <= 0:
        p.error("--duration, --concurrency, --rate and --sample must be positive")
    watch = []
    for w in a.watch:
        name, _, pid = w.partition("=")
        if not pid.isdigit() or proc_sample(int(pid)) is None:
            p.error(f"--watch {w}: no such process")
        watch.append((name, int(pid)))

    t_begin = time.monotonic()
    stats = Stats()
    sampler = Sampler(a, watch, stats)
    sampler.sample()  # baseline, before any traffic
    drv = Driver(a, stats)
    drv.deadline = time.monotonic() + a.duration
    sampler.phase = "load"
    st = threading.Thread(target=sampler.run, daemon=True)
    st.start()
    log(f"load: {a.duration:.0f} s, {a.concurrency} workers, run id {a.run_id}")
    workers = [threading.Thread(target=drv.worker, args=(i,), daemon=True)
               for i in range(a.concurrency)]
    for w in workers:
        w.start()
    # Stop early if a watched process dies: a crash is the loudest failure of all.
    while time.monotonic() < drv.deadline:
        time.sleep(1)
        if sampler.dead:
            log(f"watched process gone: {sampler.dead}; stopping")
            drv.stop.set()
            break
    for w in workers:
        w.join(timeout=a.timeout * 2 + 30)
    hung = sum(w.is_alive() for w in workers)
    sampler.phase = "drain"
    log(f"load done: {stats.started} started, {stats.finished} finished, {hung} workers hung")

    # Drain: every exchange the driver finished must reach the index with a final outcome,
    # and the spool must be empty. Bounded by --drain-timeout.
    expected = sum(1 for e in stats.exchanges.values() if e["result"] not in (None, "error"))
    drain_end = time.monotonic() + a.drain_timeout
    drained = False
    while time.monotonic() < drain_end:
        m = log_metrics(a.logserver)
        spool = dir_bytes(a.spool_dir)
        if m.get("log_server_exchanges", 0) >= expected and spool == 0:
            # One cheap query, so that the final sample is not the full listing's footprint.
            q = urllib.parse.urlencode({"q": f"soak={a.run_id}-", "outcome": "in_progress",
                                        "limit": "1"})
            if not json.loads(http_get(f"{a.logserver}/requests?{q}"))["requests"]:
                drained = True
                break
        time.sleep(2)
    log(f"drain {'done' if drained else 'TIMED OUT'} after "
        f"{a.drain_timeout - max(0, drain_end - time.monotonic()):.0f} s")
    # Let the proxy close what the finished client connections left (bounded), then sample the
    # end state.
    time.sleep(min(10, a.sample))
    sampler.stop.set()
    st.join(timeout=a.sample + 30)
    sampler.phase = "final"
    sampler.sample()
    rows = fetch_rows(a.logserver, a.run_id)
    # The listing costs the log server memory of its own: recorded apart from the curve.
    sampler.phase = "after_verify"
    sampler.sample()
    ver = verify(a, stats, rows)
    flat = flatness(a, sampler, a.concurrency)
    is_flat = all(s["flat"] for s in flat.values())
    errors = list(stats.errors)
    if hung:
        errors.append(f"{hung} worker threads still running after the load")
    if sampler.dead:
        errors.append(f"watched processes died: {sampler.dead}")
    if not drained:
        errors.append("drain timed out")
    problems = (len(ver["missing"]) + len(ver["duplicate"]) + len(ver["wrong_outcome"]) +
                len(ver["in_progress"]) + len(ver["bytes_mismatch"]))
    driver_errors = sum(v["error"] for v in stats.per_kind.values())
    ok = is_flat and problems == 0 and driver_errors == 0 and not hung and not sampler.dead
    verdict = ("PASS" if ok else "FAIL") + (": flat" if is_flat else ": NOT flat") + \
        f", missing={len(ver['missing'])}, problems={problems}, driver errors={driver_errors}"
    base = write_outputs(a, stats, sampler, ver, flat, verdict, errors,
                         time.monotonic() - t_begin)

    # Summary on stdout.
    print(f"verdict: {verdict}")
    for k, v in stats.per_kind.items():
        print(f"  {k:12s} started {v['started']:6d}  ok {v['ok']:6d}  aborted {v['aborted']:5d}"
              f"  error {v['error']:4d}")
    print(f"  captures: rows {ver['rows']}, missing {len(ver['missing'])}, duplicate "
          f"{len(ver['duplicate'])}, wrong {len(ver['wrong_outcome'])}, in_progress "
          f"{len(ver['in_progress'])}, bytes {len(ver['bytes_mismatch'])}")
    for name, s in flat.items():
        if "rss_first" in s:
            print(f"  {name:10s} RSS MiB first/min/max/last {s['rss_first'] / 1024:.1f}/"
                  f"{s['rss_min'] / 1024:.1f}/{s['rss_max'] / 1024:.1f}/{s['rss_last'] / 1024:.1f}"
                  f"  fd base/first/min/max/last {s['fd_base']}/{s['fd_first']}/{s['fd_min']}/"
                  f"{s['fd_max']}/{s['fd_last']}  flat {'yes' if s['flat'] else 'NO'}")
        for w in s.get("why", []):
            print(f"    NOT flat: {w}")
        for w in s.get("notes", []):
            print(f"    note: {w}")
    for e in errors[:10]:
        print(f"  error: {e}")
    for key in ("missing", "wrong_outcome", "duplicate", "bytes_mismatch"):
        for x in ver[key][:5]:
            print(f"  {key}: {x}")
    print(f"results: {base}.csv, {base}.md")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
