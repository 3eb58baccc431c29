#!/usr/bin/env python3
"""Runs drills with each planner policy on the same scenarios and prints a table.

  tools/bench/drill_compare.py SCENARIO... [--policies optimize,seed-rule]
      [--runs N] [--speed 600] [--busy N] [--bin build/bin] [--json FILE]

Every row is one drill of the real daemon (sitepower-drill --policy P): the
same scenario, the same simulated batteries and crews, only the planner policy
differs. `--busy N` runs N busy loops beside the drills (a NOC server is never
idle during a disaster), `--runs N` repeats each drill to show how stable the
outcome is. The last table compares each policy with seed-rule per scenario:
VIP and key sites down must not be more, weighted down minutes as a ratio.
"""
import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time


def busy_loop(stop_at):
    x = 0
    while time.time() < stop_at:
        x += 1


def run_drill(bin_dir, scenario, policy, speed, work):
    report = os.path.join(work, "report.json")
    cmd = [os.path.join(bin_dir, "sitepower-drill"), scenario, "--speed", str(speed),
           "--policy", policy, "--report", report, "--quiet", "--keep-dir",
           os.path.join(work, "dir")]
    t0 = time.time()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wall = time.time() - t0
    if p.returncode != 0 or not os.path.exists(report):
        sys.stderr.write(p.stdout[-2000:] + p.stderr[-2000:])
        raise SystemExit(f"drill failed: {' '.join(cmd)} (exit {p.returncode})")
    with open(report) as f:
        r = json.load(f)
    r["_wall_s"] = wall
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scenarios", nargs="+")
    ap.add_argument("--policies", default="optimize,seed-rule")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--speed", type=float, default=600)
    ap.add_argument("--busy", type=int, default=0, help="busy loops beside the drills")
    ap.add_argument("--bin", default=os.path.join(os.path.dirname(__file__), "../../build/bin"))
    ap.add_argument("--json", help="write every row as JSON here")
    ap.add_argument("--keep", help="keep each drill's report in this directory")
    a = ap.parse_args()
    policies = a.policies.split(",")
    busy = []
    if a.busy:
        stop_at = time.time() + 24 * 3600
        busy = [multiprocessing.Process(target=busy_loop, args=(stop_at,), daemon=True)
                for _ in range(a.busy)]
        for b in busy:
            b.start()
    rows = []
    hdr = ("%-22s %-10s %3s %4s %4s %4s %9s %6s %6s %5s %6s %6s"
           % ("scenario", "policy", "run", "vip", "key", "std", "weighted", "tasks", "upd",
              "u/t", "reass", "etarev"))
    print(hdr)
    try:
        for sc in a.scenarios:
            for policy in policies:
                for run in range(a.runs):
                    with tempfile.TemporaryDirectory(prefix="drill-compare-") as work:
                        r = run_drill(a.bin, sc, policy, a.speed, work)
                    if a.keep:
                        os.makedirs(a.keep, exist_ok=True)
                        with open(os.path.join(a.keep, "%s-%s-%d.json" % (
                                r["scenario"], policy, run + 1)), "w") as f:
                            json.dump(r, f, indent=1)
                    c = r.get("plan_churn_total", {})
                    row = {"scenario": r["scenario"], "policy": policy, "run": run + 1,
                           "busy": a.busy, "speed": a.speed,
                           "vip": r["sites_down"]["vip"], "key": r["sites_down"]["key"],
                           "standard": r["sites_down"]["standard"],
                           "weighted_down_min": r["weighted_down_min"],
                           "tasks": c.get("tasks", 0), "updated": c.get("updated", 0),
                           "updated_per_task": c.get("updated_per_task", 0),
                           "reassigned": c.get("reassigned", 0),
                           "eta_reversals": c.get("eta_reversals", 0),
                           "wall_s": round(r["_wall_s"], 1)}
                    rows.append(row)
                    print("%-22s %-10s %3d %4d %4d %4d %9.1f %6d %6d %5.2f %6d %6d"
                          % (row["scenario"][:22], policy, row["run"], row["vip"], row["key"],
                             row["standard"], row["weighted_down_min"], row["tasks"],
                             row["updated"], row["updated_per_task"], row["reassigned"],
                             row["eta_reversals"]), flush=True)
    finally:
        for b in busy:
            b.terminate()
    if "seed-rule" in policies:
        print("\nagainst seed-rule (same scenario, mean over runs):")
        print("%-22s %-10s %8s %8s %14s %12s" % ("scenario", "policy", "vip", "key",
                                               "weighted", "ratio"))
        for sc in dict.fromkeys(r["scenario"] for r in rows):
            base = [r for r in rows if r["scenario"] == sc and r["policy"] == "seed-rule"]
            bw = sum(r["weighted_down_min"] for r in base) / len(base)
            for policy in policies:
                mine = [r for r in rows if r["scenario"] == sc and r["policy"] == policy]
                w = sum(r["weighted_down_min"] for r in mine) / len(mine)
                vip = "/".join(str(r["vip"]) for r in mine)
                key = "/".join(str(r["key"]) for r in mine)
                ratio = "%.2fx" % (w / bw) if bw > 0 else ("=" if w == 0 else "inf")
                print("%-22s %-10s %8s %8s %14.1f %12s" % (sc[:22], policy, vip, key, w, ratio))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
