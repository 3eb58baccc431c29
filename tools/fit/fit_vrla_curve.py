#!/usr/bin/env python3
"""Refits the generic VRLA rate curve of daemon/model/curve.cpp (kVrlaF, kVrlaV)
from ../shared/data/battery-tables.json and prints the coefficients with the
in-sample and leave-one-battery-out runtime errors. Standard library only.

  python3 tools/fit/fit_vrla_curve.py [TABLES.json]
"""
import json
import math
import os
import sys


def lstsq(X, y):
    n = len(X[0])
    A = [[sum(r[i] * r[j] for r in X) for j in range(n)] for i in range(n)]
    b = [sum(r[i] * v for r, v in zip(X, y)) for i in range(n)]
    for i in range(n):
        p = max(range(i, n), key=lambda r: abs(A[r][i]))
        A[i], A[p], b[i], b[p] = A[p], A[i], b[p], b[i]
        for r in range(n):
            if r != i:
                f = A[r][i] / A[i][i]
                for c in range(i, n):
                    A[r][c] -= f * A[i][c]
                b[r] -= f * b[i]
    return [b[i] / A[i][i] for i in range(n)]


def f_feats(hours, end_v):
    L, dv = math.log(hours), end_v - 1.80
    return [1, L, L * L, dv, dv * L, dv * dv, dv * L * L]


def v_feats(hours, end_v):
    L, dv = math.log(hours), end_v - 1.80
    return [1, L, L * L, dv, dv * L]


def frac(c, hours, end_v):
    return math.exp(sum(a * b for a, b in zip(c, f_feats(hours, end_v))))


def runtime_h(c, amps, c10, end_v):
    lo, hi = 1e-3, 1e4
    for _ in range(100):
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if mid * amps < c10 * frac(c, mid, end_v) else (lo, mid)
    return lo


def summary(errs):
    a = sorted(abs(e) for e in errs)
    return "median %.1f%%  P90 %.1f%%  n=%d" % (100 * a[len(a) // 2], 100 * a[int(0.9 * len(a))], len(a))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "../../../shared/data/battery-tables.json")
    tables = json.load(open(path))
    rows = [(t["model"].split()[0], m / 60, t["end_v_per_cell"], a * m / 60 / t["rated_ah"])
            for t in tables if t["mode"] == "current" for a, m in t["rows"]]

    def fit(rs):
        return lstsq([f_feats(h, v) for _, h, v, _ in rs], [math.log(f) for *_, f in rs])

    def errors(c, only=None):
        return [(runtime_h(c, a, t["rated_ah"], t["end_v_per_cell"]) * 60 - m) / m
                for t in tables if t["mode"] == "current" and (only is None or t["model"].split()[0] == only)
                for a, m in t["rows"]]

    c = fit(rows)
    print("kVrlaF =", ", ".join("%.6f" % x for x in c))
    print("in-sample (constant current):", summary(errors(c)))
    held = []
    for name in sorted({r[0] for r in rows}):
        held += errors(fit([r for r in rows if r[0] != name]), name)
    print("leave one battery out:       ", summary(held))
    cur = {(t["model"], t["end_v_per_cell"]): {m: a for a, m in t["rows"]} for t in tables if t["mode"] == "current"}
    vr = [(m / 60, t["end_v_per_cell"], w / cur[(t["model"], t["end_v_per_cell"])][m])
          for t in tables if t["mode"] == "power" for w, m in t["rows"] if m in cur[(t["model"], t["end_v_per_cell"])]]
    cv = lstsq([v_feats(h, v) for h, v, _ in vr], [x for *_, x in vr])
    print("kVrlaV =", ", ".join("%.6f" % x for x in cv))


if __name__ == "__main__":
    main()
