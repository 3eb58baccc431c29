#!/usr/bin/python3
"""A Wuzhai drill with 4 of 18 controllers (22 %) faulty in each way FORMAT.md
names (timeout, exception, garbage, half-open TCP) from 08:45 for two hours,
and a crew's link cut for ten minutes: every healthy site's prediction and the
plan stay current (read from /api/state all through the drill), the faulty
sites are shown stale, not fresh, and every healthy site stays up.

Run by CTest: faulty_drill_test.py BIN_DIR SCENARIO_DIR
"""
import json
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

BIN, SCEN = sys.argv[1], sys.argv[2]
FAULTY = {"WZ-02": "timeout", "WZ-05": "exception", "WZ-09": "garbage", "WZ-14": "half_open"}
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


work = tempfile.mkdtemp(prefix="sitepower-faulty-")
chaos = ",".join("controller_fault@08:45:%s:%s:120" % (s, k) for s, k in FAULTY.items())
chaos += ",crew_link_cut@09:10:B1:10"
drill = subprocess.Popen([BIN + "/sitepower-drill", SCEN + "/wuzhai-2020-03-08.yaml", "--speed", "120",
                          "--chaos", chaos, "--report", work + "/report.json", "--keep-dir", work + "/run"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
lines = []
url = None
token = None
while url is None or token is None:
    line = drill.stdout.readline()
    if not line:
        break
    lines.append(line)
    m = re.match(r"dashboard: (http://\S+)", line)
    if m:
        url = m.group(1)
    m = re.match(r"noc token: (\S+)", line)
    if m:
        token = m.group(1)
threading.Thread(target=lambda: lines.extend(drill.stdout), daemon=True).start()
check(url is not None, "the drill printed its dashboard")

# Watch the daemon's state through the drill.
worst_prediction_age = {}  # healthy site -> worst age of its band, scenario minutes
worst_plan_age = 0.0
stale_seen = set()
fresh_while_faulty = set()
samples = 0
while url and drill.poll() is None:
    try:
        req = urllib.request.Request(url + "api/state", headers={"Authorization": "Bearer %s" % token})
        doc = json.load(urllib.request.urlopen(req, timeout=2))
    except Exception:
        time.sleep(0.2)
        continue
    samples += 1
    now = doc["now_unix_ms"]
    if doc.get("plan"):
        worst_plan_age = max(worst_plan_age, (now - doc["plan"]["planned_at_unix_ms"]) / 60000)
    for s in doc["sites"]:
        sid = s["id"]
        if sid in FAULTY:
            if s["state"] == "stale":
                stale_seen.add(sid)
            continue
        if s["state"] == "on_battery" and s.get("runtime"):
            age = (now - s["runtime"]["at_unix_ms"]) / 60000
            worst_prediction_age[sid] = max(worst_prediction_age.get(sid, 0), age)
    time.sleep(0.25)
drill.wait(timeout=600)
print("".join(lines[-8:]))
report = json.load(open(work + "/report.json"))

check(samples > 50, "read /api/state %d times during the drill" % samples)
check(len(worst_prediction_age) >= 12, "%d healthy sites seen on battery" % len(worst_prediction_age))
worst = max(worst_prediction_age.values()) if worst_prediction_age else 99
# Sites on battery are polled once a scenario minute in a drill.
check(worst <= 3.0, "every healthy site's prediction stayed current: worst age %.1f scenario min" % worst)
# The daemon re-plans on every event and at least every 5 scenario minutes.
check(worst_plan_age <= 7.5, "the plan stayed current: worst age %.1f scenario min" % worst_plan_age)
check(stale_seen == set(FAULTY), "the faulty controllers are shown stale: %s" % sorted(stale_seen))
healthy_down = [sid for sid, s in report["sites"].items() if sid not in FAULTY and s["down_min"] > 0]
check(not healthy_down, "no healthy site went down (%s)" % healthy_down)
check(report["crew_streams"]["gaps"] == 0 and report["crew_streams"]["duplicates"] == 0,
      "crew streams: %s" % report["crew_streams"])
kinds = sorted(i["controller_fault"]["kind"] for i in report["injected"] if "controller_fault" in i)
check(kinds == sorted(FAULTY.values()), "the report lists what was injected: %s" % kinds)
check(any("crew_link_cut" in i for i in report["injected"]), "and the crew link cut")
faulty_outcome = {sid: report["sites"][sid]["down_min"] for sid in FAULTY}
print("faulty sites' outcome (down minutes):", faulty_outcome)
print("%d failure(s)" % len(failures))
sys.exit(1 if failures else 0)
