#!/usr/bin/python3
"""Foreign peers against the real sitepowerd, from Debian's Python packages.

- A Modbus server this project did not write (python3-pymodbus) plays a DC
  power controller through a YAML register map: scale factors read from a
  register (SunSpec style), a signed current that the map inverts, a 32-bit
  value with its low word first. The daemon's decoded values are checked on
  its /api/state.
- A crew client this project did not write (python3-grpcio, stubs generated
  here from proto/ with protoc and grpc_python_plugin): the auth matrix,
  subscribe, accept, an idempotent retry, a dropped connection, and a resume
  with no gap and no duplicate.
- TLS on every port: the daemon serves gRPC and HTTPS with a certificate made
  here (openssl); both clients verify it.
- The closed loop and escalation: a crew's "generator running" that the
  controller contradicts is flagged to the NOC and cleared when the telemetry
  agrees; a crew that never acknowledges is escalated.
- Security as an outsider sees it: every HTTP endpoint but /healthz, /readyz
  and the static files needs the NOC credential (no, wrong and crew tokens
  refused, error bodies JSON even for control characters); an idempotency key
  reused for another request is INVALID_ARGUMENT; the NOC may act for a crew;
  `sitepowerctl queue --json` speaks the proto's enum names.

Run by CTest: foreign_client_test.py BIN_DIR PROTO_DIR
"""
import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

BIN, PROTO = sys.argv[1], sys.argv[2]
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, timeout, what):
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise SystemExit("timed out waiting for " + what)


# --- the Modbus controller: pymodbus ------------------------------------------
from pymodbus.datastore import (ModbusSequentialDataBlock, ModbusServerContext,
                                ModbusSlaveContext)
from pymodbus.server import StartTcpServer

hr = [0] * 20
hr[0] = 4987           # battery voltage, x 10^sf
hr[1] = 0xFFFE         # its scale factor: int16 -2  -> 49.87 V
hr[2] = (-412) & 0xFFFF  # current as the controller signs it (charge +): -41.2 A, x0.1
hr[3] = 231            # temperature x 0.1 -> 23.1 C
hr[4], hr[5] = 0x86A0, 0x0001  # remaining Ah x 0.001 as u32, low word first: 100000 -> 100.0 Ah
hr[6] = 93             # SoC %
store = ModbusSlaveContext(di=ModbusSequentialDataBlock(0, [0, 0, 0, 0]),  # DI0 mains: lost
                           hr=ModbusSequentialDataBlock(0, hr), zero_mode=True)
modbus_port = free_port()
threading.Thread(target=lambda: StartTcpServer(context=ModbusServerContext(slaves=store, single=True),
                                               address=("127.0.0.1", modbus_port)),
                 daemon=True).start()
wait_for(lambda: socket.socket().connect_ex(("127.0.0.1", modbus_port)) == 0, 10, "pymodbus")

# --- the daemon ----------------------------------------------------------------
work = tempfile.mkdtemp(prefix="sitepower-foreign-")
os.makedirs(work + "/maps")
with open(work + "/maps/pymodbus-plant.yaml", "w") as f:
    f.write("""name: pymodbus-plant
description: test controller served by python3-pymodbus
address_base: 0
max_block: 16
points:
  - {name: mains_ok, fc: 2, address: 0, type: bit}
  - {name: battery_voltage_v, fc: 3, address: 0, type: u16, scale_sf: 1, min: 30, max: 70}
  - {name: battery_current_a, fc: 3, address: 2, type: s16, scale: 0.1, invert: true}
  - {name: battery_temp_c, fc: 3, address: 3, type: s16, scale: 0.1}
  - {name: remaining_ah, fc: 3, address: 4, type: u32, word_order: low_first, scale: 0.001}
  - {name: soc_pct, fc: 3, address: 6, type: u16, min: 0, max: 100}
""")
sha = lambda s: hashlib.sha256(s.encode()).hexdigest()
cert, key = work + "/cert.pem", work + "/key.pem"
subprocess.check_call(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                       "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                       "-keyout", key, "-out", cert], stderr=subprocess.DEVNULL)
with open(work + "/sitepowerd.yaml", "w") as f:
    f.write(f"""name: foreign-client-test
listen: {{grpc: "127.0.0.1:0", http: "127.0.0.1:0"}}
store: {work}/sitepower.db
recording: {work}/telemetry.rec
tls: {{cert: {cert}, key: {key}}}
state_file: {work}/state.json
maps_dir: {work}/maps
poll: {{interval_ms: 200, on_battery_interval_ms: 200, timeout_ms: 500, mains_fail_confirm: 2}}
clock: {{scenario_start: "2026-01-01T08:00:00+08:00", wall_start_unix_ms: {int(time.time() * 1000)}, speed: 10}}
planner: {{budget_ms: 50, ack_timeout_min: 1, contradiction_min: 0.5}}
noc_tokens: [{{name: noc, sha256: {sha("noc-token")}}}]
sites:
  - id: S1
    name: Test site
    grid: A
    location: [38.92, 111.85]
    tier: vip
    load_w: 2000
    battery: {{chemistry: vrla, cells: 24, capacity_ah: 200, rated_hours: 10, end_v_per_cell: 1.80}}
    controller: {{host: 127.0.0.1, port: {modbus_port}, unit: 1, map: pymodbus-plant}}
  - id: S2
    grid: B
    location: [39.40, 112.41]
    tier: standard
    load_w: 1500
    battery: {{chemistry: vrla, cells: 24, capacity_ah: 200, rated_hours: 10, end_v_per_cell: 1.80}}
    controller: {{host: 127.0.0.1, port: {modbus_port}, unit: 2, map: pymodbus-plant}}
crews:
  - {{id: A1, grid: A, location: [38.93, 111.86], generators: 1, token_sha256: {sha("a1-token")}}}
  - {{id: B1, grid: B, location: [39.40, 112.40], generators: 1, token_sha256: {sha("b1-token")}}}
""")
daemon = subprocess.Popen([BIN + "/sitepowerd", "--config", work + "/sitepowerd.yaml"],
                          stdout=open(work + "/daemon.log", "w"), stderr=subprocess.STDOUT)
try:
    ports = wait_for(lambda: os.path.exists(work + "/state.json") and
                     json.load(open(work + "/state.json")), 20, "the daemon's state file")
    grpc_addr = "127.0.0.1:%d" % ports["grpc_port"]
    http = "https://127.0.0.1:%d" % ports["http_port"]
    import ssl
    tls_ctx = ssl.create_default_context(cafile=cert)
    _urlopen = urllib.request.urlopen
    NOC = {"Authorization": "Bearer noc-token"}

    def http_call(url, headers=None, data=None, timeout=5):
        """(status, body) of a request over HTTPS; HTTP errors are answers too."""
        req = urllib.request.Request(url, headers=headers or {}, data=data)
        try:
            with _urlopen(req, timeout=timeout, context=tls_ctx) as r:
                return r.status, r.read(65536)
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    # The NOC's reads below carry its token.
    urllib.request.urlopen = lambda url, timeout=5: _urlopen(
        urllib.request.Request(url, headers=NOC), timeout=timeout, context=tls_ctx)

    # --- HTTP access: one table of endpoints, three bad credentials each -------
    protected = [("GET", "/api/state"), ("GET", "/api/session"), ("GET", "/events"),
                 ("POST", "/api/override"), ("POST", "/logout")]
    bad_creds = {"no token": {}, "a wrong token": {"Authorization": "Bearer nope"},
                 "a crew token": {"Authorization": "Bearer a1-token"},
                 "a forged session": {"Cookie": "sp_session=0123456789abcdef"}}
    for method, path in protected:
        for what, headers in bad_creds.items():
            code, body = http_call(http + path, headers, b"{}" if method == "POST" else None)
            want = 403 if what == "a crew token" else 401
            try:
                parsed = "error" in json.loads(body)
            except ValueError:
                parsed = False
            check(code == want and parsed, "%s %s with %s: %d and a JSON error (%s)" % (
                method, path, what, code, body[:80]))
        code, _ = http_call(http + path + "?token=noc-token", {}, b"{}" if method == "POST" else None)
        check(code == 401, "%s %s: a token in the URL is not a credential (%d)" % (method, path, code))
    for path in ("/healthz", "/readyz", "/", "/app.js", "/style.css", "/login.html"):
        code, _ = http_call(http + path)
        check(code in (200, 503), "%s needs no credential (%d)" % (path, code))
    code, _ = http_call(http + "/metrics")
    check(code == 200, "/metrics is open to loopback by default (%d)" % code)
    code, body = http_call(http + "/api/override", dict(NOC, **{"Content-Type": "application/json"}),
                           json.dumps({"action": "hold", "site": "S\u0001\u0007\n9", "why": "x"}).encode())
    try:
        err = json.loads(body)["error"]
    except (ValueError, KeyError):
        err = None
    check(code == 404 and err is not None and "\u0001" in err,
          "an unknown site id with control characters: 404 with a JSON body (%r)" % body[:80])

    def site_state():
        doc = json.load(urllib.request.urlopen(http + "/api/state", timeout=5))
        return next(s for s in doc["sites"] if s["id"] == "S1")

    s1 = wait_for(lambda: (lambda s: s if s["state"] == "on_battery" else None)(site_state()), 20,
                  "S1 on battery")
    check(abs(s1["battery_v"] - 49.87) < 1e-6, "voltage with a scale-factor register: %s V" % s1["battery_v"])
    check(abs(s1["battery_a"] - 41.2) < 1e-6, "inverted signed current, discharge positive: %s A" % s1["battery_a"])
    check(abs(s1["soc_pct"] - 93) < 1e-6, "SoC: %s %%" % s1["soc_pct"])
    check(abs(s1["remaining_ah"] - 100.0) < 1e-6, "u32 with the low word first: %s Ah" % s1["remaining_ah"])
    check(s1.get("runtime") is not None and s1["runtime"]["p10"] < s1["runtime"]["p50"] < s1["runtime"]["p90"],
          "a runtime band for the site on battery: %s" % s1.get("runtime"))

    # --- the crew client: grpcio -------------------------------------------------
    gen = work + "/py"
    os.makedirs(gen)
    protos = [os.path.join(PROTO, "sitepower/v1", p) for p in ("common.proto", "crew.proto", "noc.proto")]
    subprocess.check_call(["protoc", "-I", PROTO, "--python_out=" + gen, "--grpc_python_out=" + gen,
                           "--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin"] + protos)
    sys.path.insert(0, gen)
    import grpc
    from sitepower.v1 import common_pb2, crew_pb2, crew_pb2_grpc

    creds = grpc.ssl_channel_credentials(root_certificates=open(cert, "rb").read())
    A1 = [("authorization", "Bearer a1-token")]
    channel = grpc.secure_channel(grpc_addr, creds)
    crew = crew_pb2_grpc.CrewServiceStub(channel)

    def code_of(call):
        try:
            call()
            return grpc.StatusCode.OK
        except grpc.RpcError as e:
            return e.code()

    req = crew_pb2.ListMyTasksRequest(crew_id="A1")
    check(code_of(lambda: crew.ListMyTasks(req)) == grpc.StatusCode.UNAUTHENTICATED, "no token: UNAUTHENTICATED")
    plain = crew_pb2_grpc.CrewServiceStub(grpc.insecure_channel(grpc_addr))
    check(code_of(lambda: plain.ListMyTasks(req, metadata=A1, timeout=3)) == grpc.StatusCode.UNAVAILABLE,
          "gRPC without TLS is not served")
    try:
        _urlopen("http://127.0.0.1:%d/healthz" % ports["http_port"], timeout=3)
        check(False, "plain HTTP is not served on the HTTPS port")
    except Exception:
        check(True, "plain HTTP is not served on the HTTPS port")
    def tls_handshake(port, version):
        """True when a TLS handshake at exactly `version` completes."""
        import warnings
        warnings.simplefilter("ignore", DeprecationWarning)  # TLSv1/TLSv1_1: on purpose
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # let the client offer old versions at all
        ctx.minimum_version = ctx.maximum_version = version
        ctx.set_alpn_protocols(["h2", "http/1.1"])
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
                with ctx.wrap_socket(raw):
                    return True
        except (ssl.SSLError, OSError):
            return False
    for name, port in (("gRPC", ports["grpc_port"]), ("HTTPS", ports["http_port"])):
        check(tls_handshake(port, ssl.TLSVersion.TLSv1_2), "%s accepts TLS 1.2" % name)
        check(not tls_handshake(port, ssl.TLSVersion.TLSv1_1) and not tls_handshake(port, ssl.TLSVersion.TLSv1),
              "%s refuses TLS 1.0 and 1.1" % name)
    check(code_of(lambda: crew.ListMyTasks(req, metadata=[("authorization", "Bearer nope")]))
          == grpc.StatusCode.UNAUTHENTICATED, "bad token: UNAUTHENTICATED")
    check(code_of(lambda: crew.ListMyTasks(req, metadata=[("authorization", "Bearer b1-token")]))
          == grpc.StatusCode.PERMISSION_DENIED, "another crew's token: PERMISSION_DENIED")

    seen = []  # (seq, kind, status) in arrival order

    def read(stream, until, timeout):
        """Reads events until until(event) or the timeout; returns the stopping event."""
        box = {}

        def run():
            try:
                for ev in stream:
                    seen.append((ev.seq, ev.kind, ev.task.status))
                    if until(ev):
                        box["ev"] = ev
                        return
            except grpc.RpcError as e:
                box["err"] = e
        t = threading.Thread(target=run, daemon=True)
        t.start()
        t.join(timeout)
        return box.get("ev")

    stream = crew.SubscribeTasks(crew_pb2.SubscribeTasksRequest(crew_id="A1", after_seq=0), metadata=A1)
    assigned = read(stream, lambda ev: ev.kind == crew_pb2.TaskEvent.KIND_ASSIGNED, 30)
    check(assigned is not None and assigned.task.site_id == "S1", "the VIP site's task reached A1's stream")
    task_id = assigned.task.task_id

    upd = lambda status, key: crew.UpdateTask(crew_pb2.UpdateTaskRequest(
        crew_id="A1", task_id=task_id, status=status, idempotency_key=key), metadata=A1)
    r1 = upd(common_pb2.TASK_STATUS_ACCEPTED, "py-accept-1")
    r2 = upd(common_pb2.TASK_STATUS_ACCEPTED, "py-accept-1")
    check(not r1.duplicate and r2.duplicate, "a retried accept is applied once (duplicate=%s)" % r2.duplicate)
    try:
        crew.UpdateTask(crew_pb2.UpdateTaskRequest(
            crew_id="A1", task_id=task_id, status=common_pb2.TASK_STATUS_DECLINED, reason="flooded road",
            idempotency_key="py-accept-1"), metadata=A1)
        reused = (grpc.StatusCode.OK, "")
    except grpc.RpcError as e:
        reused = (e.code(), e.details())
    check(reused[0] == grpc.StatusCode.INVALID_ARGUMENT and "reused for another request" in reused[1],
          "the key reused to decline: INVALID_ARGUMENT, not a silent duplicate (%s)" % (reused,))
    noc_view = crew.ListMyTasks(crew_pb2.ListMyTasksRequest(crew_id="A1"),
                                metadata=[("authorization", "Bearer noc-token")])
    check(any(t.task_id == task_id and t.status == common_pb2.TASK_STATUS_ACCEPTED for t in noc_view.tasks),
          "the NOC acts for a crew (crew.proto): it lists A1's accepted task")
    check(code_of(lambda: upd(common_pb2.TASK_STATUS_GENERATOR_RUNNING, "py-skip"))
          == grpc.StatusCode.FAILED_PRECONDITION, "accepted -> generator running refused: FAILED_PRECONDITION")
    accepted = read(stream, lambda ev: ev.task.status == common_pb2.TASK_STATUS_ACCEPTED, 10)
    check(accepted is not None, "the accept came back on the stream")

    # Drop the connection; the crew keeps working while it is gone.
    stream.cancel()
    channel.close()
    last = max(s for s, _, _ in seen)
    other = grpc.secure_channel(grpc_addr, creds)
    crew_pb2_grpc.CrewServiceStub(other).UpdateTask(crew_pb2.UpdateTaskRequest(
        crew_id="A1", task_id=task_id, status=common_pb2.TASK_STATUS_EN_ROUTE,
        idempotency_key="py-enroute-1"), metadata=A1)
    other.close()

    channel = grpc.secure_channel(grpc_addr, creds)
    crew = crew_pb2_grpc.CrewServiceStub(channel)
    before = len(seen)
    stream = crew.SubscribeTasks(crew_pb2.SubscribeTasksRequest(crew_id="A1", after_seq=last), metadata=A1)
    enroute = read(stream, lambda ev: ev.task.status == common_pb2.TASK_STATUS_EN_ROUTE, 10)
    stream.cancel()
    resumed = [s for s, _, _ in seen[before:]]
    check(enroute is not None, "the update made while disconnected arrived after the resume")
    check(resumed and resumed[0] == last + 1, "resume starts right after seq %d: %s" % (last, resumed))
    seqs = [s for s, _, _ in seen]
    check(seqs == list(range(1, len(seqs) + 1)), "no gap and no duplicate over %d events: %s" % (len(seqs), seqs))
    mine = crew.ListMyTasks(crew_pb2.ListMyTasksRequest(crew_id="A1"), metadata=A1)
    check(any(t.task_id == task_id and t.status == common_pb2.TASK_STATUS_EN_ROUTE for t in mine.tasks),
          "ListMyTasks shows the task en route")
    check(mine.last_seq >= seqs[-1], "ListMyTasks last_seq %d covers the stream" % mine.last_seq)

    # --- the closed loop: a report the telemetry contradicts ----------------------
    def events(kind):
        doc = json.load(urllib.request.urlopen(http + "/api/state", timeout=5))
        return [e for e in doc["events"] if e["kind"] == kind]

    upd(common_pb2.TASK_STATUS_ON_SITE, "py-onsite-1")
    upd(common_pb2.TASK_STATUS_GENERATOR_RUNNING, "py-running-1")
    flagged = wait_for(lambda: events("contradiction"), 30, "the contradiction flag")
    check(flagged[0]["site"] == "S1" and flagged[0]["crew"] == "A1",
          "a contradicted 'generator running' is flagged: %s" % flagged[0]["message"])
    check(site_state().get("alert"), "the site carries the alert on /api/state")
    metrics = urllib.request.urlopen(http + "/metrics", timeout=5).read().decode()
    check("sitepower_contradictions_total 1" in metrics, "counted in /metrics")
    # /metrics parses with a Prometheus text-format parser (python3-prometheus-client).
    from prometheus_client.parser import text_string_to_metric_families
    try:
        families = {f.name: f for f in text_string_to_metric_families(metrics)}
    except Exception as e:  # the parser raises on any malformed line
        families = {}
        check(False, "/metrics does not parse: %s" % e)
    want = {"sitepower_polls": "counter", "sitepower_poll_errors": "counter", "sitepower_sites": "gauge",
            "sitepower_tasks": "gauge", "sitepower_plans": "counter", "sitepower_last_plan_seconds": "gauge",
            "sitepower_stream_clients": "gauge", "sitepower_contradictions": "counter",
            "sitepower_auth_failures": "counter", "sitepower_auth_slowed_peers": "gauge"}
    wrong = [n for n, t in want.items() if families.get(n) is None or families[n].type != t]
    check(not wrong, "/metrics parses as Prometheus text: %d families%s" % (
        len(families), "; missing or mistyped: %s of %s" % (wrong, {n: f.type for n, f in families.items()})
        if wrong else ""))
    on_batt = [s.value for s in families["sitepower_sites"].samples if s.labels.get("state") == "on_battery"] \
        if "sitepower_sites" in families else []
    check(on_batt and on_batt[0] >= 1, "sites on battery per /metrics: %s" % on_batt)
    kinds = sorted(s.labels.get("kind") for s in families["sitepower_stream_clients"].samples) \
        if "sitepower_stream_clients" in families else []
    check(kinds == ["crew", "noc"], "stream clients by kind: %s" % kinds)
    fails = [s.value for s in families["sitepower_auth_failures"].samples
             if s.labels.get("transport") == "http"] if "sitepower_auth_failures" in families else []
    check(fails and fails[0] >= 5, "failed HTTP authentications counted: %s" % fails)
    # The generator really takes the load: the battery charges again.
    store.setValues(3, 2, [412])
    cleared = wait_for(lambda: events("contradiction_cleared"), 30, "the flag to clear")
    check(cleared and not site_state().get("alert"), "cleared when the telemetry agrees")

    # --- escalation: B1 never acknowledged its task at S2 -------------------------
    esc = wait_for(lambda: [e for e in events("escalation") if e["crew"] == "B1"], 30, "B1's escalation")
    check(esc[0]["site"] == "S2", "a task not acknowledged in time is escalated: %s" % esc[0]["message"])
    check(not [e for e in events("escalation") if e["crew"] == "A1"], "A1, who acknowledged, is not")

    # --- the queue as JSON: the proto's names -------------------------------------
    q = subprocess.run([BIN + "/sitepowerctl", "queue", "--server", grpc_addr, "--token", "noc-token",
                        "--tls-ca", cert, "--json"], capture_output=True, text=True, timeout=30)
    try:
        snap = json.loads(q.stdout.splitlines()[0])
    except (ValueError, IndexError):
        snap = {}
    states = {s["site_id"]: s["state"] for s in snap.get("sites", [])}
    check(states.get("S1", "").startswith("POWER_STATE_") and
          all(e["status"].startswith("TASK_STATUS_") for e in snap.get("entries", [])) and
          {c["crew_id"] for c in snap.get("crews", [])} == {"A1", "B1"},
          "sitepowerctl queue --json: enum names, sites and crews (%s)" % (q.stdout[:160] or q.stderr))

    # --- overrides from the CLI, over HTTPS: refused without the NOC token, audited --
    ctl = [BIN + "/sitepowerctl", "override", "--http", "127.0.0.1:%d" % ports["http_port"],
           "--tls-ca", cert]
    bad = subprocess.run(ctl + ["--token", "wrong", "hold", "S2", "--why", "test"], capture_output=True, text=True)
    check(bad.returncode != 0, "sitepowerctl override with a wrong token is refused: %s" % bad.stdout.strip())
    good = subprocess.run(ctl + ["--token", "noc-token", "hold", "S2", "--why", "site under maintenance"],
                          capture_output=True, text=True)
    check(good.returncode == 0 and "held" in good.stdout, "sitepowerctl override over HTTPS: %s" % good.stdout.strip())
    import sqlite3
    db = sqlite3.connect("file:%s/sitepower.db?mode=ro" % work, uri=True)
    rows = db.execute("SELECT * FROM audit").fetchall()
    db.close()
    audited = [r for r in rows if "S2" in str(r) and "site under maintenance" in str(r)]
    check(bool(audited) and "noc" in str(audited[0]),
          "the override is in the audit log with who and why: %s" % str(audited[0] if audited else rows[-3:]))
    channel.close()
finally:
    daemon.terminate()
    try:
        daemon.wait(10)
    except subprocess.TimeoutExpired:
        daemon.kill()
    if failures:
        print(open(work + "/daemon.log").read()[-4000:])

# The daemon recorded every poll; the recording reads back as a trace that
# `sitepowerctl predict --trace` takes.
rec = subprocess.run([BIN + "/sitepowerctl", "recording", work + "/telemetry.rec", "--site", "S1"],
                     capture_output=True, text=True)
rows = rec.stdout.strip().splitlines()
check(rec.returncode == 0 and len(rows) > 20 and rows[1].split(",")[1].startswith("49.87"),
      "the telemetry recording holds S1's samples (%d rows): %s" % (len(rows) - 1, rows[1] if len(rows) > 1 else rec.stderr))
# --- an outside crew in a drill: --external-crew ---------------------------------
# The drill leaves A1 to this client and prints where and how to reach the
# daemon; A1's tasks come to this client, and on SIGTERM the drill stops its
# daemon and removes its temp dir.
scenario = os.path.join(PROTO, "..", "..", "shared", "scenarios", "wuzhai-2020-03-08.yaml")
drill = subprocess.Popen([BIN + "/sitepower-drill", scenario, "--speed", "120", "--external-crew", "A1",
                          "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
printed = {}
try:
    import re
    end = time.time() + 30
    while time.time() < end and not {"grpc", "external", "dir"} <= printed.keys():
        line = drill.stdout.readline()
        if not line:
            break
        if m := re.match(r"grpc: (127\.0\.0\.1:\d+)", line):
            printed["grpc"] = m.group(1)
        if m := re.match(r"external crew A1: grpc (\S+) token (\S+)", line):
            printed["external"] = (m.group(1), m.group(2))
        if m := re.match(r"noc token: \S+\s+\(work dir (\S+)\)", line):
            printed["dir"] = m.group(1)
    check("grpc" in printed, "the drill prints its gRPC address: %s" % printed.get("grpc"))
    check("external" in printed and printed["external"][0] == printed.get("grpc"),
          "the drill prints the external crew's address and token: %s" % (printed.get("external"),))
    if "external" in printed:
        addr, token = printed["external"]
        ch = grpc.insecure_channel(addr)
        outside = crew_pb2_grpc.CrewServiceStub(ch)
        events = outside.SubscribeTasks(crew_pb2.SubscribeTasksRequest(crew_id="A1", after_seq=0),
                                        metadata=[("authorization", "Bearer " + token)], timeout=60)
        first = None
        try:
            for ev in events:
                if ev.kind == crew_pb2.TaskEvent.KIND_ASSIGNED:
                    first = ev
                    break
        except grpc.RpcError as e:
            print("stream ended: %s" % e)
        check(first is not None, "the outside client receives A1's task: %s" % (first.task.site_id if first else None))
        if first is not None:
            r = outside.UpdateTask(crew_pb2.UpdateTaskRequest(
                crew_id="A1", task_id=first.task.task_id, status=common_pb2.TASK_STATUS_ACCEPTED,
                idempotency_key="outside-1"), metadata=[("authorization", "Bearer " + token)])
            check(r.task.status == common_pb2.TASK_STATUS_ACCEPTED, "and accepts it as A1")
        events.cancel()
        ch.close()
finally:
    drill.terminate()
    try:
        drill.wait(30)
    except subprocess.TimeoutExpired:
        drill.kill()
check("dir" in printed and not os.path.exists(printed["dir"]),
      "the drill removed its temp dir on exit: %s" % printed.get("dir"))

print("%d failure(s)" % len(failures))
sys.exit(1 if failures else 0)
