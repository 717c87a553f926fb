#!/usr/bin/env python3
"""Summarises `perf script -F tid,period,ip,sym` output (callchains from perf record -g) of the
proxy into the figures the issue asks about: where the CPU goes (leaf symbols, kernel vs user,
syscalls, scheduling), which proxy functions hold it (inclusive), which threads (connection,
shipper, console), and who calls the allocator. Standard library only.

  perf script -i perf.data -F tid,period,ip,sym | bench/perf_summary.py > summary.txt
"""
import collections
import re
import sys

MALLOC = re.compile(r"^(malloc|_int_malloc|_int_free|malloc_consolidate|sysmalloc|cfree.*|free|"
                    r"__libc_malloc|__GI___libc_malloc|__GI___libc_free|tcache_.*|unlink_chunk.*|"
                    r"_int_realloc|realloc|__libc_calloc|operator new.*|operator delete.*|"
                    r"alloc_perturb|__memalign.*)$")
SKIP_FOR_OWNER = re.compile(r"^(std::|__gnu_cxx::|operator |void std::|nlohmann::)")


def samples(stream):
    cur = None
    for line in stream:
        line = line.rstrip("\n")
        if not line.strip():
            if cur:
                yield cur
            cur = None
            continue
        # A sample's first line is "tid period" (perf right-aligns the tid, so it may start
        # with spaces); its callchain lines start with a tab.
        if not line.startswith("\t"):
            parts = line.split()
            cur = {"tid": parts[0], "period": int(parts[1]) if len(parts) > 1 else 1, "stack": []}
            continue
        if cur is None:
            continue
        bits = line.strip().split(None, 1)
        sym = bits[1] if len(bits) > 1 else "[unknown]"
        sym = re.sub(r"\+0x[0-9a-f]+$", "", sym)
        sym = sym.replace(" (inlined)", "")
        kernel = bits[0].startswith("ffffffff")
        cur["stack"].append((sym, kernel))
    if cur:
        yield cur


def short(sym, n=90):
    sym = re.sub(r"\(.*\)", "()", sym) if "(" in sym and "lambda" not in sym else sym
    sym = re.sub(r"<[^<>]*(<[^<>]*>[^<>]*)*>", "<>", sym)
    return sym if len(sym) <= n else sym[: n - 1] + "…"


def main():
    total = 0
    leaf = collections.Counter()
    incl = collections.Counter()
    thread_kind = collections.Counter()
    syscalls = collections.Counter()
    alloc_owner = collections.Counter()
    kernel_user = collections.Counter()
    sched = 0
    for s in samples(sys.stdin):
        st = s["stack"]
        if not st:
            continue
        w = s["period"]
        total += w
        leaf_sym, leaf_k = st[0]
        leaf[short(leaf_sym)] += w
        kernel_user["kernel" if leaf_k else "user"] += w
        seen = set()
        for sym, k in st:
            if k:
                continue
            ss = short(sym)
            if ss.startswith("lp::") and ss not in seen:
                seen.add(ss)
                incl[ss] += w
        names = [sym for sym, _ in st]
        joined = " ".join(names)
        if "Shipper::run" in joined:
            thread_kind["shipper thread (batches -> log server)"] += w
        elif "Shipper::sender_run" in joined:
            thread_kind["sender threads (POST /ingest)"] += w
        elif "ConsoleLog::run" in joined:
            thread_kind["console thread (stdout lines)"] += w
        elif "ProxyServer::run" in joined:
            # The event loops accept, serve every exchange and run the capture tee.
            thread_kind["event-loop threads (accept, exchanges, capture tee)"] += w
        else:
            thread_kind["other / unresolved stack"] += w
        for sym, k in st:
            if k and sym.startswith("__x64_sys_"):
                syscalls[sym[len("__x64_sys_"):]] += w
                break
        if any(sym in ("schedule", "__schedule") for sym, k in st if k):
            sched += w
        # Allocator samples: charge them to the nearest project frame above the allocator.
        if any(MALLOC.match(sym) for sym, k in st[:6] if not k):
            owner = None
            for sym, k in st:
                if k or MALLOC.match(sym) or SKIP_FOR_OWNER.match(sym):
                    continue
                if sym.startswith("lp::") or "httplib" in sym:
                    owner = short(sym)
                    break
            alloc_owner[owner or "(no project frame)"] += w

    def pct(v):
        return f"{100.0 * v / total:6.2f}%"

    out = []
    out.append(f"samples weight: {total}")
    out.append(f"kernel {pct(kernel_user['kernel'])}  user {pct(kernel_user['user'])}  "
               f"in schedule() (blocking/wake-ups, context switches) {pct(sched)}")
    out.append("\n== threads")
    for k, v in thread_kind.most_common():
        out.append(f"  {pct(v)}  {k}")
    out.append("\n== syscalls (inclusive: time inside each system call)")
    for k, v in syscalls.most_common(12):
        out.append(f"  {pct(v)}  {k}")
    out.append("\n== allocator (malloc/free/new/delete) by nearest project caller")
    out.append(f"  {pct(sum(alloc_owner.values()))}  total")
    for k, v in alloc_owner.most_common(15):
        out.append(f"  {pct(v)}  {k}")
    out.append("\n== proxy functions, inclusive")
    for k, v in incl.most_common(40):
        out.append(f"  {pct(v)}  {k}")
    out.append("\n== leaf symbols (self)")
    for k, v in leaf.most_common(30):
        out.append(f"  {pct(v)}  {k}")
    print("\n".join(out))


if __name__ == "__main__":
    main()
