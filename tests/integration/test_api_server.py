"""The API through a real gunicorn on real Kafka and ClickHouse.

One server for the module, on its own topics and its own ClickHouse database (migrated by
analytics and filled through the sink's fold). Tenant `acme` has configuration and call
history; tenant `beta` tries to reach it.
"""
from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import pytest

from analytics import migrations
from analytics.db import NativeDatabase
from analytics.sink import replay
from api.bus import envelope
from api.rest import ENDPOINTS
from routing.contract import decode, encode, topics as contract_topics
from tests.fixtures.api import (XML_PASSWORD, ApiServer, create_topics, delete_topics,
                                topic_names)
from tests.fixtures.api.calls import CALLS, END, START, scenario

pytestmark = [pytest.mark.api, pytest.mark.stack]

PERIOD = {"start": START, "end": END}
ACME_CONFIG = [
    ("PUT", "/api/v1/tenant", {"domain": "acme.example", "max_concurrent_calls": 20,
                               "vip_recording_roles": ["admin"]}),
    ("PUT", "/api/v1/queues/support", {"strategy": "longest-idle-agent", "sl_threshold_s": 20}),
    ("PUT", "/api/v1/queues/vip", {"strategy": "ring-all", "vip": True}),
    ("PUT", "/api/v1/ivrs/main", {"greeting": "ivr/main.wav", "options": {"1": {"queue": "support"}}}),
    ("PUT", "/api/v1/dids/02838123456", {"ivr": "main"}),
    ("PUT", "/api/v1/extensions/1001", {"display_name": "Acme Lan"}),
    ("PUT", "/api/v1/agents/lan", {"extension": "1001", "queues": {"support": {}}}),
    ("PUT", "/api/v1/agents/binh", {"extension": "1002", "queues": {"support": {}}}),
    ("PUT", "/api/v1/users/lan", {"role": "agent", "agent_id": "lan"}),
    ("PUT", "/api/v1/extensions/1009", {"display_name": "Giam sat Mai", "can_monitor": True}),
    ("PUT", "/api/v1/users/supervisor-user", {"role": "supervisor", "extension": "1009"}),
    ("PUT", "/api/v1/blocklist/0912000000", {"reason": "spam"}),
    ("PUT", "/api/v1/customers/k1", {"name": "Khach-Acme", "phones": ["0912345678"]}),
    ("PUT", "/api/v1/contacts/c1", {"name": "Lien-He-Acme", "phones": ["0912345678"]}),
    ("PUT", "/api/v1/leads/l1", {"name": "Tiem-Nang-Acme", "phones": ["0912345678"]}),
]
ACME_MARKERS = ("call-a1", "Khach-Acme", "Acme Lan", "Lien-He-Acme", "Tiem-Nang-Acme")


class Env:
    def __init__(self, server: ApiServer, topics: dict[str, str], db, bootstrap: str):
        self.server = server
        self.topics = topics
        self.db = db
        self.bootstrap = bootstrap


#: lan's call in progress (a `call_answered` on the events topic) and a monitoring of it
#: that supervisor-user started: what the matrix's /monitor routes need
LIVE_CALL = "call-live-1"
MONITORING: dict[str, str] = {}


def publish(bootstrap: str, topic: str, *envs) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for env in envs:
        producer.send(topic, key=env.tenant.encode(), value=encode(env)).get(10)
    producer.close()


def read_topic(bootstrap: str, topic: str, wanted: set[str], timeout_s: float = 10) -> dict:
    """event_id -> (key, envelope) of a topic's records, until every `wanted` id is seen."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                             enable_auto_commit=False)
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    found: dict = {}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not wanted <= set(found):
        for batch in consumer.poll(timeout_ms=300).values():
            for rec in batch:
                e = decode(rec.value)
                found[e.event_id] = (rec.key, e)
    consumer.close()
    return found


def start_live_monitoring(server: ApiServer, bootstrap: str, topics: dict[str, str]) -> None:
    """lan answers a call (the API follows the events topic), supervisor-user monitors it."""
    publish(bootstrap, topics["TONGDAI_EVENTS_TOPIC"], envelope("call_answered", "acme", {
        "queue": "support", "agent_id": "lan", "offer_id": "leg-live-1", "wait_ms": 2000,
        "ring_ms": 900}, call_id=LIVE_CALL))
    deadline = time.monotonic() + 15
    while True:
        r = server.call("POST", "/api/v1/monitor", server.token("supervisor"),
                        json={"agent_id": "lan"})
        if r.status_code == 202 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert r.status_code == 202, r.text
    MONITORING["monitor_id"] = r.json()["monitor_id"]


@pytest.fixture(scope="module")
def env(local_stack, tmp_path_factory) -> Iterator[Env]:
    suffix = uuid.uuid4().hex[:8]
    topics = topic_names(suffix)
    bootstrap = local_stack.kafka_bootstrap
    create_topics(bootstrap, list(topics.values()))
    db = NativeDatabase("127.0.0.1", local_stack.clickhouse_tcp_port, f"t_api_{suffix}",
                        local_stack.clickhouse_user, local_stack.clickhouse_password)
    migrations.migrate(db)
    replay(db, scenario("acme").events)
    replay(db, scenario("beta").events[:6])
    # The switch's recordings folder as the API sees it: call-a1's file where the call log
    # says the switch wrote it (<tenant>/<date>/<call>.wav), a short real WAV.
    recordings = tmp_path_factory.mktemp("recordings")
    path = db.query(f"SELECT recording FROM {db.database}.calls WHERE tenant = 'acme' "
                    "AND call_id = 'call-a1' "
                    "AND recording != '' LIMIT 1")
    if path:
        import wave

        file = recordings.joinpath(*path[0][0].split("/")[-3:])
        file.parent.mkdir(parents=True, exist_ok=True)
        with wave.open(str(file), "wb") as w:
            w.setnchannels(1), w.setsampwidth(2), w.setframerate(8000)
            w.writeframes(b"\x00\x00" * 8000)
    server = ApiServer(tmp_path_factory.mktemp("api"), {
        **topics, "TONGDAI_KAFKA_BOOTSTRAP": bootstrap,
        **local_stack.clickhouse_environ(), "TONGDAI_CLICKHOUSE_DATABASE": db.database,
        "TONGDAI_API_RECORDINGS_DIR": str(recordings),
        # the browser softphone's route answers only where a wss binding is configured
        "TONGDAI_API_SOFTPHONE_WSS_URL": "wss://127.0.0.1:7443"})
    try:
        server.wait_ready()
        admin = server.token("admin")
        for method, path, body in ACME_CONFIG:
            r = server.call(method, path, admin, json=body)
            assert r.status_code == 200, (path, r.text)
        start_live_monitoring(server, bootstrap, topics)
        yield Env(server, topics, db, bootstrap)
    finally:
        server.stop()
        db.execute(f"DROP DATABASE IF EXISTS {db.database}")
        db.close()
        delete_topics(bootstrap, list(topics.values()))


# ---- the authorization matrix: every route x role x other tenant ----------------------

PATH_VALUES = {"queues": "support", "agents": "lan", "dids": "+842838123456",
               "extensions": "1001", "ivrs": "main", "blocklist": "+84912000000",
               "users": "lan", "customers": "k1", "contacts": "c1", "leads": "l1"}
ABSENT = {"queues": "zz-absent", "agents": "zz-absent", "dids": "+842838999999",
          "extensions": "9999", "ivrs": "zz-absent", "blocklist": "+84912999999",
          "users": "zz-absent", "customers": "zz-absent", "contacts": "zz-absent",
          "leads": "zz-absent"}
BODIES = {path: body for method, path, body in ACME_CONFIG}
SKIP = {"freeswitch.xml_curl", "openapi.openapi_json"}  # basic auth / public


def request_for(name: str, doc) -> tuple[str, str, dict]:
    """A valid request of an endpoint (path filled with acme's entities)."""
    rule = doc.rule
    kwargs: dict = {}
    segment = rule.split("/")[3] if rule.count("/") >= 3 else ""
    if "<entity_id>" in rule:
        value = (ABSENT if doc.method == "DELETE" else PATH_VALUES)[segment]
        rule = rule.replace("<entity_id>", value)
    rule = (rule.replace("<agent_id>", "lan").replace("<call_id>", "call-a1")
            .replace("<token_id>", "deadbeef00000000")
            .replace("<monitor_id>", MONITORING.get("monitor_id", "none")))
    if doc.method == "PUT":
        key = next((p for p in BODIES if p.split("/")[3:4] == rule.split("/")[3:4]
                    and (p == rule or segment != "tenant")), None)
        kwargs["json"] = BODIES.get(rule) or BODIES[key] if key else {}
        if segment == "tenant":
            kwargs["json"] = BODIES["/api/v1/tenant"]
    elif doc.body is not None:
        if name == "config.create_token":
            kwargs["json"] = {"user": "lan", "role": "agent"}
        elif name == "notes.add_note":
            kwargs["json"] = {"text": "matrix"}
        elif name == "agents.click_to_call":
            kwargs["json"] = {"agent_id": "lan", "number": "0912345678"}
        elif name == "monitor.start_monitor":  # admin-user has no phone of its own: named
            kwargs["json"] = {"agent_id": "lan", "extension": "1009"}
        elif name == "streams.stream_ticket":
            kwargs["json"] = {"path": "/api/v1/live/stream"}
        elif name == "monitor.switch_monitor_mode":  # supervisor-user's (or an admin)
            kwargs["json"] = {"mode": "listen"}
        elif name.startswith("agents.agent_"):  # another agent's state: said why (audited)
            kwargs["json"] = {"reason": "matrix"}
        else:
            kwargs["json"] = {}
    if doc.query is not None:
        fields = doc.query._declared_fields
        if "start" in fields:
            kwargs["params"] = dict(PERIOD)
        if name == "config.lookup":
            kwargs["params"] = {"number": "0912345678"}
    return doc.method, rule, kwargs


def routes():
    import api.app  # noqa: F401  (registers every endpoint)

    return [(n, d) for n, d in sorted(ENDPOINTS.items()) if n not in SKIP]


def _send(server: ApiServer, method: str, path: str, token: str | None, doc, **kw):
    if "text/event-stream" in doc.produces:
        r = server.call(method, path, token, stream=True, **kw)
        r.close()
        return r
    return server.call(method, path, token, **kw)


def test_every_route_needs_a_token_and_the_right_role(env):
    s = env.server
    tokens = {"admin": s.token("admin"), "supervisor": s.token("supervisor"),
              "agent": s.token("agent", user="lan")}
    checked = 0
    for name, doc in routes():
        method, path, kw = request_for(name, doc)
        assert _send(s, method, path, None, doc, **kw).status_code == 401, name
        assert _send(s, method, path, "garbage", doc, **kw).status_code == 401, name
        for role, token in tokens.items():
            if name == "notes.add_note" and role == "agent":
                token = s.token("agent", user="agent-7")  # the agent who answered call-a1
            r = _send(s, method, path, token, doc, **kw)
            if role in doc.roles and name == "softphone.start_softphone" and role == "admin":
                # allowed, but the admin user here has no phone of its own
                assert r.status_code == 409 and "no extension" in r.text, (name, role, r.text)
            elif role in doc.roles:
                assert r.status_code not in (401, 403, 500), (name, role, r.status_code, r.text)
                if doc.method != "DELETE":
                    assert r.status_code < 400, (name, role, r.status_code, r.text)
            else:
                assert r.status_code == 403, (name, role, r.status_code, r.text)
            checked += 1
    assert checked >= 40 * 3
    # the agent page's routes are in the matrix
    assert {"agents.me", "agents.agent_state", "popup.popups"} <= {n for n, _ in routes()}


def test_a_token_of_another_tenant_never_reads_or_changes_acme(env):
    s = env.server
    beta = s.token("admin", tenant="beta")
    before = s.call("GET", "/api/v1/queues/support", s.token("admin")).json()
    for name, doc in routes():
        method, path, kw = request_for(name, doc)
        if method == "PUT" or name in ("config.create_token",):
            continue  # beta writing its own entities is allowed (tested below)
        if method == "DELETE" and "<entity_id>" in doc.rule:
            path = path.rsplit("/", 1)[0] + "/" + PATH_VALUES[doc.rule.split("/")[3]]
        r = _send(s, method, path, beta, doc, **kw)
        assert r.status_code != 500, (name, r.text)
        if any(p in doc.rule for p in ("<entity_id>", "<agent_id>", "<call_id>",
                                       "<monitor_id>")):
            assert r.status_code == 404, (name, r.status_code, r.text)
        if "text/event-stream" not in doc.produces and r.status_code < 300:
            for marker in ACME_MARKERS:
                assert marker not in r.text, (name, marker)
    # beta's PUT of the same id makes beta's queue; acme's is untouched
    assert s.call("PUT", "/api/v1/queues/support", beta, json={"strategy": "random"}).status_code == 200
    assert s.call("GET", "/api/v1/queues/support", s.token("admin")).json() == before
    assert s.call("GET", "/api/v1/agents/lan", s.token("admin")).status_code == 200


def test_authorization_matrix_generated_from_the_openapi_document(env):
    """Every operation of the served OpenAPI document x every role x own / other tenant:
    no token 401; a role outside `x-roles` 403; a role inside never 401/403/500; another
    tenant's token never reaches acme's entities (404 on any id in the path) nor shows
    any of acme's data. The document's operations are exactly the app's routes."""
    s = env.server
    spec = s.call("GET", "/api/v1/openapi.json").json()
    by_op = {n.replace(".", "_"): (n, d) for n, d in ENDPOINTS.items()}
    ops = [(path, method, op) for path, item in spec["paths"].items()
           for method, op in item.items() if method in ("get", "put", "post", "delete")]
    assert {by_op[op["operationId"]][0] for _, _, op in ops} == set(ENDPOINTS)
    own = {"admin": s.token("admin"), "supervisor": s.token("supervisor"),
           "agent": s.token("agent", user="lan")}
    other = {role: s.token(role, tenant="beta", user=u) for role, u in
             (("admin", "admin-user"), ("supervisor", "supervisor-user"), ("agent", "lan"))}
    checked = 0
    for path, method, op in ops:
        name, doc = by_op[op["operationId"]]
        if name in SKIP:
            continue
        assert op["security"] == [{"bearer": []}] and set(op["x-roles"]) == set(doc.roles)
        verb, url, kw = request_for(name, doc)
        assert verb == method.upper()
        assert _send(s, verb, url, None, doc, **kw).status_code == 401, name
        for role in ("admin", "supervisor", "agent"):
            token = own[role]
            if name == "notes.add_note" and role == "agent":
                token = s.token("agent", user="agent-7")
            r = _send(s, verb, url, token, doc, **kw)
            if role in op["x-roles"]:
                assert r.status_code not in (401, 403, 500), (name, role, r.status_code, r.text)
            else:
                assert r.status_code == 403, (name, role, r.status_code)
            checked += 1
            if verb in ("PUT",) or name == "config.create_token":
                continue  # beta writing its own entities is allowed
            if verb == "DELETE" and "<entity_id>" in doc.rule:
                # beta may own an entity of the same id (its own): acme's must survive
                target = url.rsplit("/", 1)[0] + "/" + PATH_VALUES[doc.rule.split("/")[3]]
                r = _send(s, verb, target, other[role], doc, **kw)
                assert r.status_code in (204, 403, 404), (name, role, r.status_code)
                assert s.call("GET", target, own["admin"]).status_code == 200, (name, role)
                checked += 1
                continue
            r = _send(s, verb, url, other[role], doc, **kw)
            assert r.status_code not in (401, 500), (name, role, r.status_code)
            if role in op["x-roles"] and any(p in doc.rule for p in (
                    "<entity_id>", "<agent_id>", "<call_id>", "<monitor_id>")):
                # an agent's note on a call it did not handle: 403, as for a call that
                # does not exist (nothing said about acme's call)
                expected = (403, 404) if name == "notes.add_note" and role == "agent" else (404,)
                assert r.status_code in expected, (name, role, r.status_code, r.text)
            if "text/event-stream" not in doc.produces and r.status_code < 300:
                for marker in ACME_MARKERS:
                    assert marker not in r.text, (name, role, marker)
            checked += 1
    assert checked >= 45 * 3


# ---- validation, pagination, exports, audit -------------------------------------------

def test_validation_errors_name_the_field_and_the_rule(env):
    s = env.server
    admin = s.token("admin")
    r = s.call("PUT", "/api/v1/queues/q-bad", admin, json={"strategy": "fastest", "offer_timeout_s": 0})
    assert r.status_code == 400
    details = {d["field"]: d["rule"] for d in r.json()["details"]}
    assert set(details) == {"strategy", "offer_timeout_s"}
    assert "greater than or equal to 1" in details["offer_timeout_s"]
    r = s.call("GET", "/api/v1/reports/queues", admin, params={"start": END, "end": START})
    assert r.status_code == 400 and r.json()["details"] == [{"field": "end",
                                                             "rule": "must be after start"}]
    r = s.call("GET", "/api/v1/calls", admin, params={**PERIOD, "start": "2026-11-20T00:00:00"})
    assert r.status_code == 400 and r.json()["details"][0]["field"] == "start"
    r = s.call("PUT", "/api/v1/queues/q-bad", admin, data=b"{", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["details"][0]["field"] == "_body"


def test_reports_and_call_search_with_pagination(env):
    s = env.server
    sup = s.token("supervisor")
    kpis = s.call("GET", "/api/v1/reports/queues", sup, params=PERIOD).json()["items"]
    support = next(k for k in kpis if k["queue"] == "support")
    assert support["offered"] == 3 and support["answered"] == 2 and support["abandoned"] == 1
    by_day = s.call("GET", "/api/v1/reports/queues", sup, params={**PERIOD, "by": "day"}).json()
    assert by_day["items"][0]["day"] == "2026-11-20" and by_day["items"][0]["offered"] == 4
    agents = s.call("GET", "/api/v1/reports/agents", sup, params=PERIOD).json()["items"]
    assert agents and agents[0]["agent_id"] == "agent-7" and agents[0]["handled"] == 3
    missed = s.call("GET", "/api/v1/reports/missed-calls", sup, params=PERIOD).json()["items"]
    # abandoned at 09:20 after being answered at 09:10: still to call back
    assert [m["number"] for m in missed] == ["+84903111222"]
    # search by number in any form
    for form in ("0903111222", "+84903111222", "84 903 111 222"):
        page = s.call("GET", "/api/v1/calls", sup, params={**PERIOD, "number": form}).json()
        assert sorted(c["call_id"] for c in page["items"]) == ["call-a2", "call-a3"], form
    dispositions = s.call("GET", "/api/v1/calls", sup,
                          params={**PERIOD, "disposition": "answered"}).json()
    assert {c["call_id"] for c in dispositions["items"]} == {"call-a1", "call-a2", "call-v1"}
    first = s.call("GET", "/api/v1/calls", sup, params={**PERIOD, "limit": 3}).json()
    assert first["total"] == 4 and len(first["items"]) == 3 and first["next_offset"] == 3
    rest = s.call("GET", "/api/v1/calls", sup, params={**PERIOD, "limit": 3, "offset": 3}).json()
    assert rest["next_offset"] is None
    assert {c["call_id"] for c in first["items"] + rest["items"]} == set(CALLS)
    in_queue = s.call("GET", "/api/v1/calls", sup, params={**PERIOD, "queue": "vip"}).json()
    assert [c["call_id"] for c in in_queue["items"]] == ["call-v1"]


def test_call_detail_has_the_timeline_and_the_routing_reasons(env):
    s = env.server
    detail = s.call("GET", "/api/v1/calls/call-a1", s.token("supervisor")).json()
    types = [e["type"] for e in detail["timeline"]]
    assert types.index("call_enqueued") < types.index("call_offered") < types.index("call_answered")
    assert detail["call"]["disposition"] == "answered"
    reason = detail["routing"][0]
    assert reason["reason"].startswith("longest-idle-agent") and reason["chosen"] == ["agent-7"]
    assert reason["candidates"][0] == {"agent_id": "agent-7", "score": 12.5, "note": "longest idle"}
    assert s.call("GET", "/api/v1/calls/no-such-call", s.token("supervisor")).status_code == 404


def test_notes_after_a_call_and_on_a_failed_outbound_call(env):
    s = env.server
    me, sup = s.token("agent", user="agent-7"), s.token("supervisor")
    lan = s.token("agent", user="lan")
    # only the agent who handled the call (the call log says agent-7 answered call-a2)
    r = s.call("POST", "/api/v1/calls/call-a2/notes", lan, json={"text": "not mine"})
    assert r.status_code == 403, r.text
    r = s.call("POST", "/api/v1/calls/call-a2/notes", me,
               json={"text": "Khách hẹn gọi lại thứ Hai", "disposition": "callback"})
    assert r.status_code == 201 and r.json()["agent_id"] == "agent-7"
    r = s.call("POST", "/api/v1/calls/call-a2/notes", me, json={"text": "x", "agent_id": "lan"})
    assert r.status_code == 400 and r.json()["details"][0]["field"] == "agent_id"
    found = s.call("GET", "/api/v1/calls", sup, params={**PERIOD, "notes": "hẹn gọi"}).json()
    assert [c["call_id"] for c in found["items"]] == ["call-a2"]
    assert "hẹn gọi lại" in found["items"][0]["notes"]
    assert s.call("GET", "/api/v1/calls/call-a2", sup).json()["notes"][0]["disposition"] == "callback"
    # a click-to-call that never connected: no CDR, recorded by its note with 0 duration
    r = s.call("POST", "/api/v1/click-to-call", lan, json={"agent_id": "lan",
                                                          "number": "0912 000 111"})
    assert r.status_code == 202, r.text
    c2c = r.json()["call_id"]
    r = s.call("POST", "/api/v1/calls/c2c-failed-1/notes", lan,
               json={"text": "máy bận", "outbound_failed": True, "number": "0912 000 111"})
    assert r.status_code == 404  # not a click-to-call: no failed row can be made up
    assert s.call("POST", f"/api/v1/calls/{c2c}/notes", me,
                  json={"text": "x", "outbound_failed": True}).status_code == 403
    r = s.call("POST", f"/api/v1/calls/{c2c}/notes", lan,
               json={"text": "máy bận", "outbound_failed": True, "number": "0912 000 111"})
    assert r.status_code == 201, r.text
    now = time.time()
    window = {"start": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(now - 60)),
              "end": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(now + 60))}
    page = s.call("GET", "/api/v1/calls", sup, params={**window, "number": "+84912000111"}).json()
    assert [(c["call_id"], c["talk_ms"], c["disposition"], c["direction"], c["agent_id"])
            for c in page["items"]] == [(c2c, 0, "failed", "outbound", "lan")]
    detail = s.call("GET", f"/api/v1/calls/{c2c}", sup).json()
    assert detail["call"]["talk_ms"] == 0 and detail["notes"][0]["text"] == "máy bận"
    r = s.call("POST", "/api/v1/calls/x/notes", lan, json={"text": "", "outbound_failed": True})
    assert r.status_code == 400
    assert {d["field"] for d in r.json()["details"]} == {"text"}


def test_csv_and_xlsx_exports(env):
    from openpyxl import load_workbook

    s = env.server
    sup = s.token("supervisor")
    r = s.call("GET", "/api/v1/reports/queues", sup, params={**PERIOD, "format": "csv"})
    assert r.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in r.headers["Content-Disposition"]
    lines = r.content.decode("utf-8-sig").splitlines()
    header = lines[0].split(",")
    assert header[:2] == ["queue", "offered"]
    rows = {line.split(",")[0]: line.split(",") for line in lines[1:]}
    assert rows["support"][header.index("answered")] == "2"
    r = s.call("GET", "/api/v1/calls", sup, params={**PERIOD, "format": "xlsx"})
    wb = load_workbook(io.BytesIO(r.content))
    sheet = list(wb.active.iter_rows(values_only=True))
    assert sheet[0][0] == "call_id" and {row[0] for row in sheet[1:]} == set(CALLS)
    r = s.call("GET", "/api/v1/reports/agents", sup, params={**PERIOD, "format": "xlsx"})
    rows = list(load_workbook(io.BytesIO(r.content)).active.iter_rows(values_only=True))
    assert rows[1][rows[0].index("agent_id")] == "agent-7"


def test_vip_recordings_only_for_allowed_roles_and_every_access_audited(env):
    s = env.server
    admin, sup = s.token("admin", user="boss"), s.token("supervisor", user="mai")
    assert s.call("GET", "/api/v1/calls/call-v1/recording", sup).status_code == 403
    r = s.call("GET", "/api/v1/calls/call-v1/recording", admin)
    assert r.status_code == 200 and r.json()["path"].endswith("call-v1.wav")
    assert s.call("GET", "/api/v1/calls/call-a1/recording", sup).status_code == 200
    audit = s.call("GET", "/api/v1/audit", admin, params={"action": "recording."}).json()["items"]
    seen = {(e["user"], e["action"], e["target"]) for e in audit}
    assert {("mai", "recording.denied", "call/call-v1"), ("boss", "recording.read", "call/call-v1"),
            ("mai", "recording.read", "call/call-a1")} <= seen
    # admin changes are audited too, and the entries are on the audit topic
    changes = s.call("GET", "/api/v1/audit", admin, params={"action": "queue.put"}).json()
    assert any(e["target"] == "queue/support" for e in changes["items"])
    assert s.call("GET", "/api/v1/audit", sup).status_code == 403
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=env.bootstrap, group_id=None,
                             enable_auto_commit=False)
    tp = TopicPartition(env.topics["TONGDAI_AUDIT_TOPIC"], 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    on_topic = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(on_topic) < len(changes["items"]):
        for batch in consumer.poll(timeout_ms=300).values():
            on_topic += [decode(r.value) for r in batch]
    consumer.close()
    assert any(e.payload["action"] == "recording.read" and e.payload["user"] == "boss"
               for e in on_topic)
    assert all(e.tenant in ("acme", "beta") for e in on_topic)


def test_live_state_json_and_sse_from_the_live_topic(env):
    from kafka import KafkaProducer

    s = env.server
    golden = json.load(open("tests/fixtures/contract/live_state_published.v1.json"))
    now = time.time_ns() // 1000
    producer = KafkaProducer(bootstrap_servers=env.bootstrap, acks="all")
    live = envelope("live_state_published", "acme", dict(golden["payload"], as_of_us=now),
                    source="router")
    producer.send(env.topics["TONGDAI_LIVE_TOPIC"], key=b"acme", value=encode(live)).get(10)
    producer.close()
    sup = s.token("supervisor")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        body = s.call("GET", "/api/v1/live", sup).json()
        if body["as_of_us"] == now:
            break
        time.sleep(0.2)
    assert body["queues"][0]["waiting"] == 2 and body["agents_by_state"]["paused"] == 1
    ticket = s.call("POST", "/api/v1/stream-tickets", sup,
                    json={"path": "/api/v1/live/stream"}).json()["ticket"]
    r = s.call("GET", "/api/v1/live/stream", None, params={"ticket": ticket}, stream=True)
    assert r.headers["Content-Type"].startswith("text/event-stream")
    text = ""
    for chunk in r.iter_content(chunk_size=None, decode_unicode=True):
        text += chunk
        if "data:" in text:
            break
    r.close()
    event = json.loads(text.split("data: ", 1)[1].split("\n")[0])
    assert event["as_of_us"] == now
    assert s.call("GET", "/api/v1/live", s.token("supervisor", tenant="beta")).json()["as_of_us"] is None


def test_an_agent_reads_only_its_own_state(env):
    from kafka import KafkaProducer

    s = env.server
    now = time.time_ns() // 1000
    payload = {"as_of_us": now, "queues": [], "calls": [], "recent": [], "agents": [
        {"agent_id": "lan", "extension": "1001", "state": "paused", "since_us": now - 90_000_000,
         "pause_reason": "lunch", "call_id": None},
        {"agent_id": "binh", "extension": "1002", "state": "available", "since_us": now,
         "pause_reason": None, "call_id": None}]}
    producer = KafkaProducer(bootstrap_servers=env.bootstrap, acks="all")
    producer.send(env.topics["TONGDAI_LIVE_TOPIC"], key=b"acme", value=encode(
        envelope("live_state_published", "acme", payload, source="router", now_us=now))).get(10)
    producer.close()
    me = s.token("agent", user="lan")
    assert s.call("GET", "/api/v1/me", me).json()["agent_id"] == "lan"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        body = s.call("GET", "/api/v1/agents/lan/state", me).json()
        if body["as_of_us"] == now:
            break
        time.sleep(0.2)
    assert (body["state"], body["pause_reason"], body["queues"]) == ("paused", "lunch",
                                                                     ["support"])
    assert body["time_in_state_ms"] >= 90_000
    r = s.call("GET", "/api/v1/agents/binh/state", me)
    assert r.status_code == 403 and "available" not in r.text
    assert s.call("GET", "/api/v1/agents/binh/state",
                  s.token("supervisor")).json()["state"] == "available"
    assert s.call("GET", "/api/v1/agents/lan/state",
                  s.token("agent", tenant="beta", user="lan")).status_code == 404


def test_agent_commands_reach_the_commands_topic(env):
    from kafka import KafkaConsumer, TopicPartition

    s = env.server
    me = s.token("agent", user="lan")
    ids = [s.call("POST", f"/api/v1/agents/lan/{a}", me, json={"reason": "lunch"} if a == "pause"
                  else {}).json()["command_id"] for a in ("login", "pause")]
    consumer = KafkaConsumer(bootstrap_servers=env.bootstrap, group_id=None, enable_auto_commit=False)
    tp = TopicPartition(env.topics["TONGDAI_COMMANDS_TOPIC"], 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    found = {}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not set(ids) <= set(found):
        for batch in consumer.poll(timeout_ms=300).values():
            for rec in batch:
                e = decode(rec.value)
                found[e.event_id] = (rec.key, e)
    consumer.close()
    key, pause = found[ids[1]]
    assert key == contract_topics.tenant_key("acme")
    assert pause.type == "agent_pause_requested" and pause.payload == {"agent_id": "lan",
                                                                       "reason": "lunch"}


def test_live_monitoring_commands_reach_the_commands_topic_and_are_audited(env):
    s = env.server
    sup, admin = s.token("supervisor"), s.token("admin")
    r = s.call("POST", "/api/v1/monitor", sup, json={"agent_id": "lan", "mode": "whisper"})
    assert r.status_code == 202, r.text
    started = r.json()
    assert (started["call_id"], started["extension"], started["mode"]) == (LIVE_CALL, "1009",
                                                                          "whisper")
    monitor_id = started["monitor_id"]
    r = s.call("POST", f"/api/v1/monitor/{monitor_id}/mode", sup, json={"mode": "barge"})
    assert r.status_code == 202, r.text
    switched = r.json()
    found = read_topic(env.bootstrap, env.topics["TONGDAI_COMMANDS_TOPIC"],
                       {started["command_id"], switched["command_id"]})
    key, start = found[started["command_id"]]
    assert key == contract_topics.tenant_key("acme") and start.tenant == "acme"
    assert (start.type, start.version, start.call_id) == ("monitor_requested", 1, LIVE_CALL)
    assert start.payload == {"monitor_id": monitor_id, "agent_id": "lan", "extension": "1009",
                             "mode": "whisper", "requested_by": "supervisor-user"}
    key, switch = found[switched["command_id"]]
    assert key == contract_topics.tenant_key("acme")
    assert (switch.type, switch.call_id) == ("monitor_mode_requested", LIVE_CALL)
    assert switch.payload == {"monitor_id": monitor_id, "mode": "barge"}
    # refusals: no call in progress, a phone not allowed to monitor, an unknown agent, a
    # mode switch by a supervisor who did not start it, another tenant's monitoring
    r = s.call("POST", "/api/v1/monitor", sup, json={"agent_id": "binh"})
    assert r.status_code == 409 and r.json()["details"] == [
        {"field": "agent_id", "rule": "must have a call in progress"}]
    r = s.call("POST", "/api/v1/monitor", sup, json={"agent_id": "lan", "extension": "1001"})
    assert r.status_code == 403
    assert s.call("POST", "/api/v1/monitor", sup, json={"agent_id": "nobody"}).status_code == 404
    r = s.call("POST", "/api/v1/monitor", sup, json={"agent_id": "lan", "mode": "spy"})
    assert r.status_code == 400 and r.json()["details"][0]["field"] == "mode"
    assert s.call("POST", f"/api/v1/monitor/{monitor_id}/mode", s.token("supervisor", user="mai"),
                  json={"mode": "listen"}).status_code == 403
    assert s.call("POST", f"/api/v1/monitor/{monitor_id}/mode", s.token("admin", tenant="beta"),
                  json={"mode": "listen"}).status_code == 404
    # who, what, when: in the audit log (GET /audit) and on the audit topic
    audit = s.call("GET", "/api/v1/audit", admin, params={"action": "call.monitor"}).json()
    mine = [e for e in audit["items"] if e["detail"].get("monitor_id") == monitor_id]
    assert [(e["action"], e["user"], e["target"]) for e in mine] == [
        ("call.monitor.mode", "supervisor-user", f"call/{LIVE_CALL}"),
        ("call.monitor.whisper", "supervisor-user", f"call/{LIVE_CALL}")]
    assert mine[0]["detail"]["mode"] == "barge" and all(e["at_us"] > 0 for e in mine)
    on_topic = read_topic(env.bootstrap, env.topics["TONGDAI_AUDIT_TOPIC"],
                          {e["id"] for e in mine})
    assert {e["id"] for e in mine} <= set(on_topic)


def test_pop_up_stream_of_an_agent_gets_the_offered_call_with_the_caller(env):
    import threading

    from kafka import KafkaProducer

    s = env.server
    me = s.token("agent", user="lan")
    got: list[str] = []
    ticket = s.call("POST", "/api/v1/stream-tickets", me,
                    json={"path": "/api/v1/agents/lan/popups"}).json()["ticket"]
    r = s.call("GET", "/api/v1/agents/lan/popups", None, params={"ticket": ticket}, stream=True)
    assert r.status_code == 200

    def read() -> None:
        text = ""
        for chunk in r.iter_content(chunk_size=None, decode_unicode=True):
            text += chunk
            if "event: call_offered" in text and text.endswith("\n\n"):
                got.append(text)
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    time.sleep(0.5)
    producer = KafkaProducer(bootstrap_servers=env.bootstrap, acks="all")
    topic = env.topics["TONGDAI_EVENTS_TOPIC"]
    for type_, payload in (("call_enqueued", {"queue": "support", "caller": "+84912345678"}),
                           ("call_offered", {"queue": "support", "agent_id": "lan",
                                             "extension": "1001", "offer_id": "o-pop-1",
                                             "attempt": 1})):
        producer.send(topic, key=b"acme", value=encode(envelope(type_, "acme", payload,
                                                                call_id="c-pop-1"))).get(10)
    producer.close()
    reader.join(timeout=15)
    r.close()
    assert got, "no pop-up within 15 s"
    pop = json.loads(got[0].split("data: ", 1)[1].split("\n")[0])
    assert pop["call_id"] == "c-pop-1" and pop["caller"] == "+84912345678"
    assert [m["kind"] for m in pop["matches"]] == ["customer", "contact", "lead"]
    assert pop["matches"][0]["name"] == "Khach-Acme"
    other = s.call("GET", "/api/v1/agents/binh/popups", me, stream=True)
    assert other.status_code == 403
    other.close()


def test_config_apply_from_a_yaml_file(env, tmp_path):
    s = env.server
    path = tmp_path / "acme.yaml"
    path.write_text(
        "tenant: acme\n"
        "queues:\n  from-file: {strategy: round-robin, wrapup_s: 5}\n"
        "agents:\n  chi: {extension: '1003', queues: {from-file: {}}}\n"
        "extensions:\n  '1003': {display_name: Chi}\n")
    cmd = [sys.executable, "-m", "deploy.cli", "config", "apply", str(path)]
    run_env = {**s.env_for_cli()}
    out = subprocess.run(cmd, env=run_env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert any(l.split()[:3] == ["queue", "from-file", "created"] for l in lines), lines
    assert any("sip_password=" in l for l in lines)
    again = subprocess.run(cmd, env=run_env, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "wrote 0 record(s), 3 unchanged" in again.stdout, again.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("tenant: acme\nagents:\n  dung: {extension: '12345678', queues: {nope: {}}}\n")
    refused = subprocess.run(cmd[:-1] + [str(bad)], env=run_env, capture_output=True, text=True,
                             timeout=60)
    assert refused.returncode == 1 and "extension: must be an extension of 2-6 digits" in refused.stdout
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        r = s.call("GET", "/api/v1/agents/chi", s.token("supervisor"))
        if r.status_code == 200:
            break
        time.sleep(0.2)
    assert r.status_code == 200 and r.json()["queues"] == {"from-file": {"level": 1, "position": 1}}


def test_xml_curl_renders_the_directory_from_the_config(env):
    s = env.server
    cred = "Basic " + base64.b64encode(f"freeswitch:{XML_PASSWORD}".encode()).decode()
    r = s.call("POST", "/api/v1/freeswitch/xml", None, headers={"Authorization": cred},
               data={"section": "directory", "domain": "acme.example", "user": "1001"})
    assert r.status_code == 200 and 'user id="1001"' in r.text and "a1-hash" in r.text
    assert s.call("POST", "/api/v1/freeswitch/xml", None,
                  data={"section": "directory"}).status_code == 401


def test_openapi_document_is_valid(env):
    from openapi_spec_validator import validate

    doc = env.server.call("GET", "/api/v1/openapi.json").json()
    validate(doc)
    assert len(doc["paths"]) >= 30


def test_fuzz_the_api_from_its_openapi_document_without_a_single_500(env, tmp_path):
    """schemathesis generates requests from the document (valid and invalid ones)."""
    s = env.server
    fuzz_admin = s.token("admin", tenant=f"fuzz-{uuid.uuid4().hex[:6]}", user="fuzzer")
    cmd = [sys.executable, "-m", "schemathesis.cli", "run", f"{s.url}/api/v1/openapi.json",
           "-H", f"Authorization: Bearer {fuzz_admin}", "-c", "not_a_server_error",
           "-n", "8", "--max-time", "60", "--seed", "7", "--no-shrink",
           "--exclude-path-regex", "(stream|popups|freeswitch)",
           "--request-timeout", "20", "--warnings", "off"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=150)
    out = proc.stdout[-6000:] + proc.stderr[-2000:]
    print(proc.stdout[-3000:])
    assert proc.returncode == 0, out + "\n--- server log ---\n" + s.log()
    # mod_xml_curl's form endpoint, with its basic-auth credentials
    xml = subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", "run", f"{s.url}/api/v1/openapi.json",
         "-a", f"freeswitch:{XML_PASSWORD}", "-c", "not_a_server_error", "-n", "40",
         "--max-time", "20", "--seed", "7", "--no-shrink", "--include-path-regex", "freeswitch",
         "--warnings", "off"], capture_output=True, text=True, timeout=60)
    print(xml.stdout[-1500:])
    assert xml.returncode == 0, xml.stdout[-4000:] + "\n--- server log ---\n" + s.log()
    assert "Traceback" not in s.log(), s.log()
