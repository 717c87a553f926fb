#!/usr/bin/env python3
"""The forward proxy's cost, run by hand (never in the test suite): the added latency of an
intercepted call against the same call reverse-proxied (pooled upstream TLS connection) and
against the mock directly, and what a CONNECT + TLS handshake costs (first to a host: a leaf is
minted; then cached), against the same handshake through a blind tunnel and directly.

  bench/forward_bench.py --bin build-rel/bin [--calls 2000] [--handshakes 200]

Starts mock_upstream (HTTPS, a generated test CA) and logging-proxy (capture off, so the figures
are the data plane's) on 127.0.0.1 port 0. Every call is GET /echo on one keep-alive
connection, sequential: the per-call time is the round trip; "added" is it minus the direct
round trip measured in the same run. Reports p50/p99 in microseconds.
"""
import argparse
import http.client
import os
import re
import ssl
import statistics
import subprocess
import sys
import tempfile
import time


def start(cmd, pattern, cwd=None):
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.PIPE,
                         text=True, cwd=cwd)
    deadline = time.time() + 10
    while time.time() < deadline:
        line = p.stdout.readline()
        m = re.search(pattern, line)
        if m:
            return p, m
    raise SystemExit(f"{cmd[0]} did not start")


def pct(samples, p):
    s = sorted(samples)
    return s[min(len(s) - 1, int(p * len(s)))]


def calls(conn, n, host):
    times = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        conn.request("GET", "/echo", headers={"Host": host})
        r = conn.getresponse()
        r.read()
        times.append((time.perf_counter_ns() - t0) / 1000)
        assert r.status == 200, r.status
    return times


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--handshakes", type=int, default=200)
    a = ap.parse_args()
    a.bin = os.path.abspath(a.bin)
    d = tempfile.mkdtemp(prefix="lp-fwd-bench-")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", f"{d}/mock.key", "-out", f"{d}/mock.pem", "-days", "2", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True)
    mock, m = start([f"{a.bin}/mock_upstream", "--tls-cert", f"{d}/mock.pem", "--tls-key", f"{d}/mock.key"],
                    r"https=(\d+)")
    https = int(m.group(1))
    with open(f"{d}/proxy.yaml", "w") as f:
        f.write(f"""server: {{host: 127.0.0.1, port: 0}}
logging: {{console: false, default: false, server_url: "http://127.0.0.1:9"}}
forward_proxy: {{enabled: true, intercept: ["127.0.0.1"], ca_dir: ca}}
routes:
  mocktls: {{pattern: "/", destination: "https://127.0.0.1:{https}/", ca_file: "{d}/mock.pem"}}
""")
    proxy, m = start([f"{a.bin}/logging-proxy", "--config", f"{d}/proxy.yaml"], r"listening on http://[^:]+:(\d+)",
                     cwd=d)
    port = int(m.group(1))
    trust_mock = ssl.create_default_context(cafile=f"{d}/mock.pem")
    trust_proxy = ssl.create_default_context(cafile=f"{d}/ca/ca.pem")
    host = f"127.0.0.1:{https}"
    try:
        results = {}
        direct = http.client.HTTPSConnection("127.0.0.1", https, context=trust_mock)
        calls(direct, 50, host)
        results["direct (TLS to the mock)"] = calls(direct, a.calls, host)
        reverse = http.client.HTTPConnection("127.0.0.1", port)
        calls(reverse, 50, host)
        results["reverse-proxied (pooled upstream TLS)"] = calls(reverse, a.calls, host)
        fwd = http.client.HTTPSConnection("127.0.0.1", port, context=trust_proxy)
        fwd.set_tunnel("127.0.0.1", https)
        calls(fwd, 50, host)
        results["intercepted (CONNECT, TLS to the proxy)"] = calls(fwd, a.calls, host)

        def handshakes(ctx, tunnel_host, n):
            times = []
            for _ in range(n):
                t0 = time.perf_counter_ns()
                c = http.client.HTTPSConnection("127.0.0.1", port if tunnel_host else https, context=ctx)
                if tunnel_host:
                    c.set_tunnel(tunnel_host, https)
                c.connect()
                times.append((time.perf_counter_ns() - t0) / 1000)
                c.close()
            return times
        hs = {
            "handshake direct": handshakes(trust_mock, None, a.handshakes),
            "handshake through a blind tunnel (CONNECT localhost)": handshakes(trust_mock, "localhost", a.handshakes),
            "handshake intercepted (CONNECT 127.0.0.1, leaf cached)": handshakes(trust_proxy, "127.0.0.1",
                                                                            a.handshakes),
        }
        base = statistics.median(results["direct (TLS to the mock)"])
        print(f"calls: {a.calls} sequential GET /echo per path, one keep-alive connection; µs")
        print(f"| path | p50 | p99 | added p50 vs direct |")
        print(f"|---|---|---|---|")
        for k, v in results.items():
            print(f"| {k} | {pct(v, .5):.0f} | {pct(v, .99):.0f} | {statistics.median(v) - base:+.0f} |")
        rev = statistics.median(results["reverse-proxied (pooled upstream TLS)"])
        icp = statistics.median(results["intercepted (CONNECT, TLS to the proxy)"])
        print(f"\nintercepted / reverse-proxied p50: {icp / rev:.2f}x")
        hbase = statistics.median(hs["handshake direct"])
        print(f"\nhandshakes: {a.handshakes} each (TCP connect + CONNECT + TLS 1.3); µs")
        print(f"| path | p50 | p99 | vs direct p50 |")
        print(f"|---|---|---|---|")
        for k, v in hs.items():
            print(f"| {k} | {pct(v, .5):.0f} | {pct(v, .99):.0f} | {statistics.median(v) / hbase:.2f}x |")
    finally:
        proxy.terminate()
        mock.terminate()


if __name__ == "__main__":
    main()
