#!/usr/bin/env python3
"""Checks a `bench/run.sh --smoke` result: every scenario asked for ran against every target,
and no run lost anything (no connection or status error, no timeout, every stream complete with
its events in order). Figures are not judged: the smoke proves the pipeline works, the full
run measures.

  bench/smoke_check.py --json RESULT.json --scenarios "S1 S2 ..." --targets "direct nginx ..."

Exits 1 and names each problem when one is found.
"""
import argparse
import json
import sys

# The result rows each scenario of run.sh writes.
ROWS = {"S1": ["S1-c1", "S1-c64"], "S2": ["S2"], "S3": ["S3-one", "S3-many"],
        "S4": ["S4-get", "S4-put"], "S5": ["S5"], "S6": ["S6", "S6-get"]}


def problems_of(run):
    """What went wrong in one bench_load result, as phrases (empty: nothing)."""
    out = []
    if run.get("errors", 0):
        out.append(f"{run['errors']} connection errors")
    if run.get("timed_out"):
        out.append("timed out")
    if run["mode"] == "http":
        if run.get("status_errors", 0):
            out.append(f"{run['status_errors']} answers with an unexpected status")
        if run.get("requests", 0) <= 0:
            out.append("no request completed")
    else:
        if run.get("complete", 0) != run.get("streams", -1) or run.get("incomplete", 0):
            out.append(f"{run.get('complete', 0)} of {run.get('streams', 0)} streams complete")
        for key in ("dropped", "reordered"):
            if run.get(key, 0):
                out.append(f"{run[key]} events {key}")
        if run.get("events", 0) <= 0:
            out.append("no event arrived")
    return out


def check(runs, scenarios, targets):
    """Every problem in `runs` (run.sh's rows) for the scenarios and targets asked for."""
    problems = []
    for scen in scenarios:
        if scen not in ROWS:
            problems.append(f"unknown scenario {scen}")
            continue
        for row in ROWS[scen]:
            for target in targets:
                if row.startswith("S6") and target == "proxy-down":
                    continue  # run.sh does not run S6 against it
                mine = [r for r in runs if r.get("scenario") == row and r.get("target") == target]
                if not mine:
                    problems.append(f"{row} {target}: no result")
                for r in mine:
                    problems += [f"{row} {target} round {r.get('round')}: {p}"
                                 for p in problems_of(r)]
    return problems


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", required=True)
    ap.add_argument("--scenarios", required=True)
    ap.add_argument("--targets", required=True)
    a = ap.parse_args()
    with open(a.json) as f:
        runs = json.load(f)["runs"]
    scenarios, targets = a.scenarios.split(), a.targets.split()
    problems = check(runs, scenarios, targets)
    for p in problems:
        print(f"smoke_check: {p}", file=sys.stderr)
    if problems:
        sys.exit(1)
    print(f"smoke_check: {len(runs)} runs, scenarios {' '.join(scenarios)} x targets "
          f"{' '.join(targets)}: all ran, nothing lost")


if __name__ == "__main__":
    main()
