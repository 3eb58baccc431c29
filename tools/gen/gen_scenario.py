#!/usr/bin/env python3
"""Generates FORMAT.md (v1) outage scenarios for drills and planner studies.

Seeded, so a scenario is reproducible from its kind and seed:

  tools/gen/gen_scenario.py city --seed 3 > out/city-3.yaml
  tools/gen/gen_scenario.py flood --seed 7 --sites 80 > out/flood-7.yaml

Kinds:
  city   a dense city (about 15 km across): many VIP sites (hospitals,
         government), key hubs that feed standard sites, generators fewer
         than the sites, failures in waves over the afternoon, one crew lost.
  flood  a county-sized area (about 60 km): slow roads, sites spread out,
         few crews, failures in waves as the water rises, mains back in one
         grid late in the day.

Batteries vary the way a real fleet does (VRLA 200-1000 Ah in 1-2 strings,
aged 0.5-1.0 state of health, 5-35 degC, 1.75-1.85 V/cell LVD, some LFP),
and controllers mix the built-in maps, so a drill also exercises sites
whose mains state comes from the battery current.
"""
import argparse
import math
import random
import sys

MAPS = ["sunspec-802"] * 6 + ["huawei-esm-48150b1", "victron-gx-system", "cordex-cxc-hp-lds"]


def battery(rng):
    if rng.random() < 0.2:
        cap = rng.choice([100, 150, 200])
        return (
            "{chemistry: lfp, cells: %d, capacity_ah: %d, rated_hours: %d, strings: %d, "
            "soh: %.2f, soc: 1.0, temp_c: %d, end_v_per_cell: %.2f}"
            % (rng.choice([15, 16]), cap, rng.choice([1, 2, 5]), rng.choice([1, 1, 2]),
               rng.uniform(0.7, 1.0), rng.randint(5, 35), rng.choice([2.8, 2.9, 3.0])))
    cap = rng.choice([200, 300, 400, 500, 500, 600, 800, 1000])
    return (
        "{chemistry: vrla, cells: 24, capacity_ah: %d, rated_hours: %d, strings: %d, "
        "soh: %.2f, soc: %.2f, temp_c: %d, end_v_per_cell: %.2f}"
        % (cap, rng.choice([10, 10, 10, 20, 8]), rng.choice([1, 2, 2]), rng.uniform(0.5, 1.0),
           rng.choice([1.0, 1.0, 1.0, 0.95, 0.9]), rng.randint(5, 35),
           rng.choice([1.75, 1.80, 1.80, 1.85])))


def point(rng, center, radius_km):
    r = radius_km * math.sqrt(rng.random())
    a = rng.uniform(0, 2 * math.pi)
    dlat = r * math.cos(a) / 111.0
    dlon = r * math.sin(a) / (111.0 * math.cos(math.radians(center[0])))
    return (center[0] + dlat, center[1] + dlon)


def generate(kind, seed, n_sites):
    rng = random.Random(f"{kind}-{seed}")
    if kind == "city":
        center, radius, grids = (30.60, 114.30), 9.0, ["A", "B", "C", "D", "E", "F"]
        n_sites = n_sites or 150
        speed, road = 25, 1.6
        vip_share, key_share = 0.10, 0.18
        crews_per_grid, gens = 2, (5, 8)
        start = "2021-07-20T08:00:00+08:00"
        end = "23:59"
    else:
        center, radius, grids = (34.75, 113.62), 30.0, ["N", "E", "S", "W"]
        n_sites = n_sites or 80
        speed, road = 30, 1.9
        vip_share, key_share = 0.07, 0.2
        crews_per_grid, gens = 1, (8, 12)
        start = "2021-07-21T06:00:00+08:00"
        end = "23:00"
    grid_center = {}
    for i, g in enumerate(grids):
        a = 2 * math.pi * i / len(grids)
        grid_center[g] = (center[0] + 0.5 * radius / 111.0 * math.cos(a),
                          center[1] + 0.5 * radius / 111.0 * math.sin(a) /
                          math.cos(math.radians(center[0])))
    sites = []
    for i in range(n_sites):
        g = grids[i % len(grids)]
        loc = point(rng, grid_center[g], radius * 0.55)
        u = rng.random()
        tier = "vip" if u < vip_share else ("key" if u < vip_share + key_share else "standard")
        sites.append({"id": f"{kind[:2].upper()}-{i + 1:03d}", "grid": g, "loc": loc,
                      "tier": tier, "feeds": [], "load": rng.randrange(1200, 3600, 100),
                      "battery": battery(rng), "map": rng.choice(MAPS),
                      "fixed": rng.random() < 0.03})
    # Key sites feed up to three standard sites of their grid (acyclic: only standard leaves).
    for s in sites:
        if s["tier"] != "key":
            continue
        leaves = [t for t in sites if t["grid"] == s["grid"] and t["tier"] == "standard"
                  and not any(t["id"] in o["feeds"] for o in sites)]
        rng.shuffle(leaves)
        s["feeds"] = [t["id"] for t in leaves[: rng.randint(0, 3)]]
    crews = []
    for g in grids:
        for k in range(crews_per_grid):
            crews.append({"id": f"{g}{k + 1}", "grid": g, "loc": point(rng, grid_center[g], 3.0),
                          "gens": rng.randint(*gens)})
    # Waves: each grid fails at its own time; some sites later, some restored.
    events = []
    day_min = 60 if kind == "flood" else 30
    order = grids[:]
    rng.shuffle(order)
    failed = []
    for w, g in enumerate(order):
        at = day_min + w * rng.randint(40, 90)
        ids = [s["id"] for s in sites if s["grid"] == g and rng.random() < 0.85]
        failed += ids
        events.append((at, f"mains_fail: [{', '.join(ids)}]"))
    rest = [s["id"] for s in sites if s["id"] not in failed]
    if rest:
        events.append((day_min + len(grids) * 70, f"mains_fail: [{', '.join(rest)}]"))
    lost = rng.choice(crews)["id"]
    events.append((day_min + 150, f"crew_unavailable: {lost}"))
    back = order[0]
    events.append((day_min + 600, "mains_restore: [%s]" % ", ".join(
        s["id"] for s in sites if s["grid"] == back and s["id"] in failed)))
    events.sort(key=lambda e: e[0])

    def hhmm(m):
        base_h = int(start[11:13])
        t = base_h * 60 + m
        return f'"{t // 60:02d}:{t % 60:02d}"'

    out = [f"# Generated by tools/gen/gen_scenario.py {kind} --seed {seed} --sites {n_sites}",
           f"name: {kind}-gen-{seed}",
           f"description: generated {kind} drill (seed {seed})",
           f"start: {start}", f'end: "{end}"',
           "weights: {vip: 100, key: 10, standard: 1}",
           f"travel: {{speed_kmh: {speed}, road_factor: {road}}}",
           "hookup_min: 15", "sites:"]
    for s in sites:
        out += [f"  - id: {s['id']}", f"    grid: {s['grid']}",
                f"    location: [{s['loc'][0]:.4f}, {s['loc'][1]:.4f}]",
                f"    tier: {s['tier']}"]
        if s["feeds"]:
            out.append(f"    feeds: [{', '.join(s['feeds'])}]")
        out += [f"    load_w: {s['load']}", f"    battery: {s['battery']}",
                f"    generator: {'fixed' if s['fixed'] else 'none'}",
                f"    controller: {{map: {s['map']}, unit: 1}}"]
    out.append("crews:")
    for c in crews:
        out += [f"  - id: {c['id']}", f"    grid: {c['grid']}",
                f"    location: [{c['loc'][0]:.4f}, {c['loc'][1]:.4f}]",
                f"    generators: {c['gens']}"]
    out.append("events:")
    for at, body in events:
        out += [f"  - at: {hhmm(at)}", f"    {body}"]
    return "\n".join(out) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("kind", choices=["city", "flood"])
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--sites", type=int, default=0, help="default: 150 (city), 80 (flood)")
    a = p.parse_args()
    sys.stdout.write(generate(a.kind, a.seed, a.sites))


if __name__ == "__main__":
    main()
