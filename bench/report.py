#!/usr/bin/env python3
"""Aggregates the benchmark's runs (bench_load JSON lines + raw samples) into one table and
one JSON file. Standard library only (Debian's python3).

  report.py --results results.jsonl --mode full --root REPO --json OUT.json --markdown OUT.md
  report.py --line '{...one bench_load result...}'     one-line progress summary
"""
import argparse
import datetime
import json
import math
import os
import platform
import statistics
import subprocess
import sys
from array import array

TARGETS = ["direct", "nginx", "proxy-off", "proxy-on", "proxy-down"]


def load_raw(path):
    a = array("d")
    try:
        with open(path, "rb") as f:
            a.frombytes(f.read())
    except OSError:
        pass
    return a


def summarize(values):
    v = sorted(values)
    n = len(v)
    if n == 0:
        return {"n": 0}

    def at(q):
        return v[min(n - 1, max(0, math.ceil(q * n) - 1))]

    return {"n": n, "mean": sum(v) / n, "p50": at(0.5), "p90": at(0.9), "p99": at(0.99),
            "p999": at(0.999), "max": v[-1], "min": v[0]}


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def line(d):
    s = f"{d.get('scenario', ''):<8} {d.get('target', ''):<10} r{d.get('round', '')}"
    if d["mode"] == "http":
        lat = d["latency_us"]
        s += (f" {d['rps']:>8.0f} req/s p50 {lat.get('p50', 0):.0f}us p99 {lat.get('p99', 0):.0f}us"
              f" in {d['mb_s_in']:.0f} MB/s out {d['mb_s_out']:.0f} MB/s")
    else:
        ev = d["event_delay_us"]
        s += (f" {d['complete']}/{d['streams']} streams, delay p50 {ev.get('p50', 0):.0f}us"
              f" max {ev.get('max', 0):.0f}us, dropped {d['dropped']} reordered {d['reordered']}"
              f" late {d['late']}")
    p = d.get("procs", {}).get("target", {})
    s += f" | cpu {p.get('cpu_pct', 0):.0f}% peak RSS {p.get('hwm_kb', 0) / 1024:.1f} MB"
    if d.get("logserver_peak_after_mb"):
        s += f" | log server peak {d['logserver_peak_after_mb']:.1f} MB"
    if d.get("errors") or d.get("status_errors"):
        s += f" | errors {d.get('errors')}+{d.get('status_errors', 0)}: {d.get('first_error', '')}"
    return s


def sh(cmd, cwd=None):
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine(root):
    model = ""
    try:
        for l in open("/proc/cpuinfo"):
            if l.startswith("model name"):
                model = l.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        for l in open("/proc/meminfo"):
            if l.startswith("MemTotal"):
                mem = f"{int(l.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    # BENCH_COMMIT: the binaries were built from an export of that commit (e.g. `git archive`),
    # so the work tree's uncommitted changes are not in them.
    commit = os.environ.get("BENCH_COMMIT") or sh(["git", "rev-parse", "HEAD"], cwd=root)
    dirty = "" if os.environ.get("BENCH_COMMIT") else \
        sh(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root)
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "kernel": platform.release(),
        "memory": mem,
        "os": sh(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
        "nginx": sh(["sh", "-c", "nginx -v 2>&1 | cut -d/ -f2"]),
        "commit": commit,
        "tree_changes": [l[3:] for l in dirty.splitlines()],
    }


def fmt(x, nd=0, unit=""):
    if x is None:
        return "–"
    if isinstance(x, float) and math.isnan(x):
        return "–"
    return f"{x:,.{nd}f}{unit}"


def ratio(a, b):
    return a / b if a is not None and b else None


class Report:
    def __init__(self, runs):
        self.runs = runs
        self.by = {}
        for r in runs:
            self.by.setdefault(r["scenario"], {}).setdefault(r["target"], []).append(r)

    def targets(self, scen):
        return [t for t in TARGETS if t in self.by.get(scen, {})]

    def proc(self, r, label, key):
        return r.get("procs", {}).get(label, {}).get(key)

    # Per-pair ratios: each round's run of a target against the same round's run of `base`.
    def pair_ratios(self, scen, target, base, value):
        rounds = {r["round"]: value(r) for r in self.by[scen].get(base, [])}
        out = []
        for r in self.by[scen].get(target, []):
            b = rounds.get(r["round"])
            v = value(r)
            if b and v is not None:
                out.append(v / b)
        return out

    def http(self, scen):
        res = {}
        for t in self.targets(scen):
            rs = self.by[scen][t]
            lat = array("d")
            for r in rs:
                lat.extend(load_raw(r["raw"] + ".lat"))
            elapsed = sum(r["elapsed_s"] for r in rs)
            reqs = sum(r["requests"] for r in rs)
            bytes_in = sum(r["bytes_in"] for r in rs)
            bytes_out = sum(r["bytes_out"] for r in rs)
            res[t] = {
                "rounds": len(rs),
                "requests": reqs,
                "rps": reqs / elapsed if elapsed else None,
                "rps_per_round": [r["rps"] for r in rs],
                "mb_s_in": bytes_in / 1e6 / elapsed if elapsed else None,
                "mb_s_out": bytes_out / 1e6 / elapsed if elapsed else None,
                "body_bytes": max(bytes_in, bytes_out) // reqs if reqs else 0,
                "latency_us": summarize(lat),
                "errors": sum(r["errors"] + r.get("status_errors", 0) for r in rs),
                "first_error": next((r["first_error"] for r in rs if r.get("first_error")), None),
                "cpu_pct": median([self.proc(r, "target", "cpu_pct") for r in rs]),
                "peak_rss_mb": max((self.proc(r, "target", "hwm_kb") or 0) for r in rs) / 1024,
                "rss_start_mb": min((self.proc(r, "target", "rss_kb_start") or 0) for r in rs) / 1024,
                "logserver_cpu_pct": median([self.proc(r, "logserver", "cpu_pct") for r in rs]),
                # S4 only: the log server's peak until it had ingested the capture (run.sh).
                "logserver_peak_after_mb": max((r.get("logserver_peak_after_mb") or 0)
                                               for r in rs) or None,
                "upstream_cpu_pct": median([self.proc(r, "upstream", "cpu_pct") for r in rs]),
                "load1": [float(r.get("load1", 0) or 0) for r in rs],
            }
            for base in ("direct", "nginx", "proxy-off"):
                for key, val in (("rps", lambda r: r["rps"]),
                                 ("mb_s", lambda r: max(r["mb_s_in"], r["mb_s_out"]))):
                    pr = self.pair_ratios(scen, t, base, val)
                    res[t][f"{key}_vs_{base}"] = median(pr)
                    res[t][f"{key}_vs_{base}_pairs"] = pr
        return res

    def sse(self, scen):
        res = {}
        for t in self.targets(scen):
            rs = self.by[scen][t]
            ev, ttfb = array("d"), array("d")
            for r in rs:
                ev.extend(load_raw(r["raw"] + ".ev"))
                ttfb.extend(load_raw(r["raw"] + ".ttfb"))
            res[t] = {
                "streams": sum(r["streams"] for r in rs),
                "complete": sum(r["complete"] for r in rs),
                "incomplete": sum(r["incomplete"] for r in rs),
                "events": sum(r["events"] for r in rs),
                "dropped": sum(r["dropped"] for r in rs),
                "reordered": sum(r["reordered"] for r in rs),
                "late": sum(r["late"] for r in rs),
                "late_ms": rs[0]["late_ms"],
                "event_delay_us": summarize(ev),
                "ttfb_us": summarize(ttfb),
                "errors": sum(r["errors"] for r in rs),
                "first_error": next((r["first_error"] for r in rs if r.get("first_error")), None),
                "cpu_pct": median([self.proc(r, "target", "cpu_pct") for r in rs]),
                "cpu_s": sum((self.proc(r, "target", "cpu_s") or 0) for r in rs),
                "peak_rss_mb": max((self.proc(r, "target", "hwm_kb") or 0) for r in rs) / 1024,
                "rss_start_mb": min((self.proc(r, "target", "rss_kb_start") or 0) for r in rs) / 1024,
                "rss_max_sampled_mb": max((self.proc(r, "target", "rss_kb_max") or 0)
                                          for r in rs) / 1024,
                "threads_max": max((self.proc(r, "target", "threads_max") or 0) for r in rs),
                "elapsed_s": sum(r["elapsed_s"] for r in rs),
            }
        return res


def added(res, t, base, path):
    def get(d):
        for k in path:
            d = d.get(k) if isinstance(d, dict) else None
        return d
    a, b = get(res.get(t, {})), get(res.get(base, {}))
    return a - b if a is not None and b is not None else None


def build(runs):
    R = Report(runs)
    agg = {}
    for scen in R.by:
        if scen.startswith("S3") or scen in ("S5", "S6"):
            agg[scen] = R.sse(scen)
        else:
            agg[scen] = R.http(scen)
    # Added latency: against direct, from the merged samples of all rounds.
    for scen in ("S2", "S1-c1", "S1-c64"):
        for t, v in agg.get(scen, {}).items():
            for q in ("p50", "p99", "p999"):
                v[f"added_{q}_us"] = added(agg[scen], t, "direct", ("latency_us", q))
    for scen in ("S3-one", "S3-many", "S5", "S6"):
        for t, v in agg.get(scen, {}).items():
            for q in ("p50", "p99", "max"):
                v[f"added_delay_{q}_us"] = added(agg[scen], t, "direct", ("event_delay_us", q))
            v["added_ttfb_p50_us"] = added(agg[scen], t, "direct", ("ttfb_us", "p50"))
    return agg


def check_targets(agg):
    """The data plane's targets (README, "Performance"), for capture ON (proxy-on) unless a
    row names proxy-off."""
    out = []

    def add(name, value, limit, met, note=""):
        out.append({"target": name, "value": value, "limit": limit,
                    "met": None if met is None else bool(met), "note": note})

    def g(scen, t, key):
        return agg.get(scen, {}).get(t, {}).get(key)

    on = "proxy-on"
    for c, t, lim in (("64", on, 0.8), ("64", "proxy-off", 1.0), ("1", on, 0.95),
                      ("1", "proxy-off", 0.95)):
        v = g(f"S1-c{c}", t, "rps_vs_nginx")
        if v is not None:
            label = "" if t == on else " (capture OFF)"
            add(f"S1 c={c}{label}: req/s vs nginx", v, f">= {lim}", v >= lim,
                "median of per-round pairs")
    rss = g("S1-c64", on, "peak_rss_mb")
    if rss is not None:
        add("S1 c=64: proxy peak RSS (MB)", rss, "<= 64", rss <= 64)
    a50, n50 = g("S2", on, "added_p50_us"), g("S2", "nginx", "added_p50_us")
    a99, n99 = g("S2", on, "added_p99_us"), g("S2", "nginx", "added_p99_us")
    if a50 is not None and n50 is not None:
        add("S2: added p50 (us)", a50, f"<= nginx's ({n50:.0f})", a50 <= max(n50, 0))
    if a99 is not None and n99 is not None:
        add("S2: added p99 (us)", a99, f"<= 2 x nginx's ({2 * n99:.0f})", a99 <= 2 * max(n99, 0))
    d50 = g("S3-one", on, "added_delay_p50_us")
    if d50 is not None:
        add("S3: added per-event delay median (us)", d50, "<= 500", d50 <= 500)
    dmax = (g("S3-one", on, "event_delay_us") or {}).get("max")
    if dmax is not None:
        add("S3: per-event delay max (us, absolute)", dmax, "<= 5000", dmax <= 5000,
            "absolute arrival - stamp, not minus direct: the conservative reading")
    many = agg.get("S3-many", {}).get(on)
    if many:
        bad = many["dropped"] + many["reordered"] + many["incomplete"]
        add(f"S3: {many['streams']} streams: dropped+reordered+incomplete", bad, "== 0", bad == 0)
    for scen, what in (("S4-get", "response"), ("S4-put", "request")):
        size = g(scen, on, "body_bytes")
        if size is None:
            continue
        # The size run.sh chose (1 GiB / 200 MiB in a full run, less in --quick and --smoke).
        what = f"{size / 2**20:,.0f} MiB {what}"
        v = g(scen, on, "mb_s_vs_nginx")
        if v is not None:
            add(f"S4 {what}: MB/s vs nginx", v, ">= 0.5", v >= 0.5)
        rss = g(scen, on, "peak_rss_mb")
        if rss is not None:
            add(f"S4 {what}: proxy peak RSS (MB)", rss, "<= 48", rss <= 48)
        ls = g(scen, on, "logserver_peak_after_mb")
        if ls is not None:
            add(f"S4 {what}: log server peak RSS until ingested (MB)", ls, "<= 64", ls <= 64)
    s5 = agg.get("S5", {}).get(on)
    if s5:
        add(f"S5: streams complete of {s5['streams']}", s5["complete"], f"== {s5['streams']}",
            s5["complete"] == s5["streams"])
        add("S5: proxy peak RSS (MB)", s5["peak_rss_mb"], "<= 200", s5["peak_rss_mb"] <= 200)
    s6 = agg.get("S6", {}).get(on)
    if s6:
        add(f"S6: streams complete of {s6['streams']}", s6["complete"], f"== {s6['streams']}",
            s6["complete"] == s6["streams"])
        d99 = s6.get("added_delay_p99_us")
        if d99 is not None:
            # Minus direct's p99, as every "added" figure here. 8,000 streams straight on the
            # one-threaded mock can be later than through the proxy, so it can be negative;
            # the absolute p99 goes in the note.
            add("S6: added per-event delay p99 (us)", d99, "<= 50000", d99 <= 50000,
                f"absolute p99 {s6['event_delay_us'].get('p99', 0):,.0f} us (direct's own: "
                f"{(g('S6', 'direct', 'event_delay_us') or {}).get('p99', 0):,.0f} us)")
        add("S6: proxy peak RSS (MB)", s6["peak_rss_mb"], "<= 120", s6["peak_rss_mb"] <= 120)
        add("S6: proxy threads (max)", s6["threads_max"], "", None)
    get99 = (g("S6-get", on, "latency_us") or {}).get("p99")
    if get99 is not None:
        add("S6: a GET beside the streams, p99 (us)", get99, "<= 20000", get99 <= 20000)
    down, on2 = agg.get("S2", {}).get("proxy-down"), agg.get("S2", {}).get(on)
    if down and on2:
        d50 = down["latency_us"]["p50"] - on2["latency_us"]["p50"]
        d99 = down["latency_us"]["p99"] - on2["latency_us"]["p99"]
        ok = abs(d50) <= max(10, 0.1 * on2["latency_us"]["p50"]) and \
            d99 <= max(50, 0.25 * on2["latency_us"]["p99"])
        add("log server down vs up: S2 p50/p99 difference (us)", f"{d50:+.0f} / {d99:+.0f}",
            "p50 within max(10us,10%), p99 within max(50us,25%)", ok)
    s3d, s3o = agg.get("S3-one", {}).get("proxy-down"), agg.get("S3-one", {}).get(on)
    if s3d and s3o:
        dd = s3d["event_delay_us"]["p50"] - s3o["event_delay_us"]["p50"]
        add("log server down vs up: S3 event delay p50 difference (us)", dd, "within 100us",
            abs(dd) <= 100)
    return out


def markdown(agg, checks, meta):
    L = []
    m = meta["machine"]
    L.append(f"Run {meta['date']} ({meta['mode']}, {meta['duration_s']} s) on {m['nproc']} x "
             f"{m['cpu_model']}, {m['memory']}, kernel {m['kernel']}, {m['os']}, nginx {m['nginx']}; "
             f"commit {m['commit'][:12]}"
             + (f" (+ uncommitted changes in {len(m['tree_changes'])} files)" if m["tree_changes"] else ""))
    if meta.get("cpus", "all") != "all" or meta.get("log_server_cpus", "all") != "all":
        L.append("")
        L.append(f"Pinned: the load client, the mock upstream, nginx and the proxies on CPUs "
                 f"{meta['cpus']}; the log server on CPUs {meta['log_server_cpus']}.")
    if meta.get("busy_cpus", "none") != "none":
        L.append("")
        L.append(f"A spin loop at nice 19 kept CPUs {meta['busy_cpus']} busy all along.")
    L.append("")

    def table(header, rows):
        L.append("| " + " | ".join(header) + " |")
        L.append("|" + "|".join("---" for _ in header) + "|")
        for r in rows:
            L.append("| " + " | ".join(r) + " |")
        L.append("")

    for c in ("1", "64"):
        s = agg.get(f"S1-c{c}")
        if not s:
            continue
        L.append(f"**S1 throughput**, 1 KiB JSON POST, {c} connection(s), "
                 f"{next(iter(s.values()))['rounds']} interleaved rounds")
        L.append("")
        rows = []
        for t, v in s.items():
            lat = v["latency_us"]
            rows.append([t, fmt(v["rps"]), fmt(v["rps_vs_direct"], 2), fmt(v["rps_vs_nginx"], 2),
                         fmt(lat.get("p50"), 0), fmt(lat.get("p99"), 0), fmt(lat.get("p999"), 0),
                         fmt(v["cpu_pct"], 0), fmt(v["peak_rss_mb"], 1),
                         fmt(v["logserver_cpu_pct"], 0) if v["logserver_cpu_pct"] is not None else "",
                         str(v["errors"])])
        table(["target", "req/s", "x direct", "x nginx", "p50 us", "p99 us", "p99.9 us",
               "target CPU %", "peak RSS MB", "log-server CPU %", "errors"], rows)
    s = agg.get("S2")
    if s:
        L.append(f"**S2 added latency**, 1 connection, {next(iter(s.values()))['requests']} requests "
                 "per target (interleaved rounds); added = target percentile - direct percentile")
        L.append("")
        rows = []
        for t, v in s.items():
            lat = v["latency_us"]
            rows.append([t, fmt(lat.get("p50"), 1), fmt(lat.get("p99"), 1), fmt(lat.get("p999"), 1),
                         fmt(v["added_p50_us"], 1), fmt(v["added_p99_us"], 1), str(v["errors"])])
        table(["target", "p50 us", "p99 us", "p99.9 us", "added p50 us", "added p99 us",
               "errors"], rows)
    s = agg.get("S3-one")
    if s:
        L.append("**S3 streaming**, one stream of 100 events 20 ms apart (rounds merged); delay = "
                 "arrival - the mock's send stamp (same monotonic clock); added = minus direct")
        L.append("")
        rows = []
        for t, v in s.items():
            e = v["event_delay_us"]
            rows.append([t, f"{v['complete']}/{v['streams']}", fmt(v["ttfb_us"].get("p50"), 0),
                         fmt(v["added_ttfb_p50_us"], 0), fmt(e.get("p50"), 0), fmt(e.get("p99"), 0),
                         fmt(e.get("max"), 0), fmt(v["added_delay_p50_us"], 0),
                         fmt(v["added_delay_p99_us"], 0), fmt(v["added_delay_max_us"], 0),
                         str(v["dropped"]), str(v["reordered"])])
        table(["target", "streams", "TTFB p50 us", "added TTFB us", "delay p50 us", "p99 us",
               "max us", "added p50 us", "added p99 us", "added max us", "dropped",
               "reordered"], rows)
    for scen, title in (("S3-many", "S3 streaming, many streams at once"),
                        ("S5", "S5 slow streams (1 event/s)"),
                        ("S6", "S6 thousands of slow streams (1 event/s)")):
        s = agg.get(scen)
        if not s:
            continue
        v0 = next(iter(s.values()))
        L.append(f"**{title}**: {v0['streams']} streams; late = delay > {v0['late_ms']:.0f} ms; "
                 "CPU % of one core over the window; peak RSS = VmHWM (nginx: master + workers)")
        L.append("")
        rows = []
        for t, v in s.items():
            e = v["event_delay_us"]
            rows.append([t, f"{v['complete']}/{v['streams']}", str(v["dropped"]),
                         str(v["reordered"]), str(v["late"]), fmt(e.get("p50"), 0),
                         fmt(e.get("p99"), 0), fmt(e.get("max"), 0), fmt(v["cpu_pct"], 1),
                         fmt(v["cpu_s"], 2), fmt(v["rss_start_mb"], 1), fmt(v["peak_rss_mb"], 1),
                         str(v["threads_max"])])
        table(["target", "complete", "dropped", "reordered", "late", "delay p50 us", "p99 us",
               "max us", "CPU %", "CPU s", "RSS before MB", "peak RSS MB", "threads"], rows)
    s = agg.get("S6-get")
    if s:
        L.append("**S6 probe**: a GET every 100 ms on one connection while the S6 streams are open")
        L.append("")
        rows = [[t, str(v["requests"]), fmt(v["latency_us"].get("p50"), 0),
                 fmt(v["latency_us"].get("p99"), 0), str(v["errors"])] for t, v in s.items()]
        table(["target", "requests", "p50 us", "p99 us", "errors"], rows)
    g, p = agg.get("S4-get"), agg.get("S4-put")
    if g or p:
        L.append("**S4 large bodies**: one response (GET) and one request body (POST) through "
                 "each target; MB/s = body bytes / elapsed (1 MB = 10^6 B)")
        L.append("")
        rows = []
        for t in TARGETS:
            vg, vp = (g or {}).get(t), (p or {}).get(t)
            if not vg and not vp:
                continue
            row = [t]
            for v, k in ((vg, "mb_s_in"), (vp, "mb_s_out")):
                if v:
                    row += [fmt(v[k], 0), fmt(v["mb_s_vs_direct"], 2), fmt(v["mb_s_vs_nginx"], 2),
                            fmt(v["rss_start_mb"], 1), fmt(v["peak_rss_mb"], 1), fmt(v["cpu_pct"], 0)]
                else:
                    row += ["–"] * 6
            rows.append(row)
        table(["target", "GET MB/s", "x direct", "x nginx", "RSS before MB", "peak RSS MB",
               "CPU %", "POST MB/s", "x direct", "x nginx", "RSS before MB", "peak RSS MB",
               "CPU %"], rows)
    if checks:
        L.append("**Targets (capture ON = proxy-on unless a row says OFF)**")
        L.append("")
        rows = []
        for c in checks:
            v = c["value"]
            vs = fmt(v, 2) if isinstance(v, float) else str(v)
            rows.append([c["target"], vs, c["limit"],
                         "yes" if c["met"] else ("NO" if c["met"] is False else "?"), c["note"]])
        table(["target", "value", "limit", "met", "note"], rows)
    return "\n".join(L)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--line")
    ap.add_argument("--results")
    ap.add_argument("--mode", default="full")
    ap.add_argument("--root", default=".")
    ap.add_argument("--duration", type=int, default=0)
    ap.add_argument("--json")
    ap.add_argument("--markdown")
    a = ap.parse_args()
    if a.line:
        print(line(json.loads(a.line)))
        return
    runs = [json.loads(l) for l in open(a.results) if l.strip()]
    agg = build(runs)
    checks = check_targets(agg)
    meta = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "mode": a.mode, "duration_s": a.duration, "machine": machine(a.root)}
    for key, default in (("cpus", "all"), ("log_server_cpus", "all"), ("busy_cpus", "none")):
        meta[key] = runs[0].get(key, default) if runs else default  # run.sh's pinning options
    md = markdown(agg, checks, meta)
    print(md)
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write(md + "\n")
    if a.json:
        for r in runs:
            r.pop("raw", None)
        with open(a.json, "w") as f:
            json.dump({**meta, "scenarios": agg, "targets": checks, "runs": runs}, f, indent=1)


if __name__ == "__main__":
    main()
