"""Live state, mod_xml_curl rendering, caller lookup, config apply, exports, OpenAPI."""
from __future__ import annotations

import base64
import copy
import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from api.bus import envelope
from api.config.apply import FileError, apply
from api.reports import exports
from routing.contract import topics

pytestmark = pytest.mark.api
GOLDEN = Path(__file__).resolve().parents[2] / "fixtures" / "contract"


def test_live_state_from_the_live_topic(client, auth, bus):
    golden = json.loads((GOLDEN / "live_state_published.v1.json").read_text())
    env = envelope("live_state_published", "acme", golden["payload"], source="router",
                   now_us=golden["occurred_at"])
    bus.publish(topics.LIVE, b"acme", env)
    other = envelope("live_state_published", "beta", {**golden["payload"], "calls": []})
    bus.publish(topics.LIVE, b"beta", other)
    body = client.get("/api/v1/live", headers=auth("supervisor")).get_json()
    assert body["queues"][0]["longest_wait_ms"] == 41200
    assert body["agents_by_state"] == {"on_call": 1, "paused": 1}
    assert body["calls_in_progress"] == 1 and body["calls"][0]["caller"] == "+84912345678"
    assert client.get("/api/v1/live", headers=auth("supervisor", "gamma")).get_json()["as_of_us"] is None
    assert client.get("/api/v1/live", headers=auth("agent")).status_code == 403


def _fs(client, **form):
    cred = base64.b64encode(b"freeswitch:fs-pass").decode()
    return client.post("/api/v1/freeswitch/xml", data=form,
                       headers={"Authorization": f"Basic {cred}"})


def test_xml_curl_directory_dialplan_and_ivr(client, auth):
    h = auth("admin")
    client.put("/api/v1/tenant", json={"domain": "acme.example", "max_concurrent_calls": 10}, headers=h)
    client.put("/api/v1/queues/support", json={"music_on_hold": "local_stream://moh"}, headers=h)
    client.put("/api/v1/ivrs/main", json={"greeting": "ivr/main.wav",
                                          "options": {"1": {"queue": "support"},
                                                      "9": {"hangup": True}}}, headers=h)
    client.put("/api/v1/dids/02838123456", json={"ivr": "main"}, headers=h)
    client.put("/api/v1/dids/02838123457", json={"queue": "support", "region": "south"}, headers=h)
    client.put("/api/v1/extensions/1001", json={"display_name": "Lan"}, headers=h)
    client.put("/api/v1/blocklist/0912000000", json={"reason": "spam"}, headers=h)
    r = _fs(client, section="directory", domain="acme.example", user="1001")
    user = ET.fromstring(r.data).find(".//user")
    assert user.get("id") == "1001"
    assert user.find("params/param").get("name") == "a1-hash"
    assert _fs(client, section="directory", domain="nobody.example").data.count(b"not found")
    plan = ET.fromstring(_fs(client, section="dialplan",
                             **{"Caller-Destination-Number": "842838123457",
                                "Caller-Caller-ID-Number": "0903000000"}).data)
    actions = [(a.get("application"), a.get("data")) for a in plan.iter("action")]
    assert ("set", "tongdai_queue=support") in actions and actions[-1] == ("park", "")
    assert ("limit", "hash tongdai acme 10 !USER_BUSY") in actions
    assert ("set", "tongdai_region=south") in actions
    blocked = ET.fromstring(_fs(client, section="dialplan",
                                **{"Caller-Destination-Number": "02838123457",
                                   "Caller-Caller-ID-Number": "+84912000000"}).data)
    assert [a.get("data") for a in blocked.iter("action")][-1] == "CALL_REJECTED"
    ivr_plan = ET.fromstring(_fs(client, section="dialplan",
                                 **{"Caller-Destination-Number": "02838123456"}).data)
    assert ("ivr", "tongdai_acme_main") in [(a.get("application"), a.get("data"))
                                            for a in ivr_plan.iter("action")]
    menus = ET.fromstring(_fs(client, section="configuration", key_value="ivr.conf").data)
    menu = menus.find(".//menu")
    assert menu.get("name") == "tongdai_acme_main"
    assert {e.get("digits"): e.get("action") for e in menu} == {"1": "menu-exec-app",
                                                                "9": "menu-exit"}
    # credentials
    assert client.post("/api/v1/freeswitch/xml", data={"section": "directory"}).status_code == 401


def test_caller_lookup_order_and_number_forms(client, auth):
    h = auth("admin")
    client.put("/api/v1/leads/l1", json={"name": "Lead", "phones": ["0912345678"]}, headers=h)
    client.put("/api/v1/contacts/c1", json={"name": "Old contact", "phones": ["+84912345678"]}, headers=h)
    client.put("/api/v1/contacts/c2", json={"name": "New contact", "phones": ["84912345678"]}, headers=h)
    client.put("/api/v1/customers/k1", json={"name": "Customer", "phones": ["0912 345 678"]}, headers=h)
    r = client.get("/api/v1/lookup?number=0912345678", headers=auth("agent"))
    assert [m["id"] for m in r.get_json()["matches"]] == ["k1", "c2", "c1", "l1"]


def test_pop_up_reaches_the_agent_with_the_caller(app, bus, auth, client):
    h = auth("admin")
    client.put("/api/v1/customers/k1", json={"name": "Chị Hoa", "phones": ["0912345678"]}, headers=h)
    popup = app.extensions["tongdai"].popup
    inbox = popup.subscribe("acme", "lan")
    bus.publish(topics.CC_EVENTS, b"acme", envelope("call_enqueued", "acme",
                {"queue": "support", "caller": "+84912345678"}, call_id="c-1"))
    bus.publish(topics.CC_EVENTS, b"acme", envelope("call_offered", "acme",
                {"queue": "support", "agent_id": "lan", "extension": "1001", "offer_id": "o-1",
                 "attempt": 1}, call_id="c-1"))
    pop = inbox.get_nowait()
    assert pop["caller"] == "+84912345678" and pop["matches"][0]["name"] == "Chị Hoa"


FILE = {"tenant": "acme",
        "settings": {"domain": "acme.example"},
        "queues": {"support": {"strategy": "ring-all"}},
        "ivrs": {"main": {"greeting": "ivr/main.wav", "options": {"1": {"queue": "support"}}}},
        "dids": {"028 3812 3456": {"ivr": "main"}},
        "extensions": {"1001": {"display_name": "Lan"}},
        "agents": {"lan": {"extension": "1001", "queues": {"support": {}}}}}


def test_config_apply_validates_all_then_writes_and_is_idempotent(app, bus):
    from api.auth import Principal

    svc = app.extensions["tongdai"].config
    who = Principal("acme", "admin", "cli:test", "t", 2**31)
    bad = copy.deepcopy(FILE)
    bad["agents"]["binh"] = {"extension": "x"}
    bad["agents"]["chi"] = {"extension": "1003", "queues": {"nope": {}}}
    outcomes = apply(svc, who, bad)
    invalid = {o.entity_id: [e["field"] for e in o.errors] for o in outcomes
               if o.status == "invalid"}
    assert invalid == {"binh": ["extension"], "chi": ["queues.nope"]}
    assert topics.CONFIG not in bus.records  # nothing written
    outcomes = apply(svc, who, FILE)
    assert {o.status for o in outcomes} == {"created"}
    assert [o.secret for o in outcomes if o.kind == "extension"][0]
    assert {o.status for o in apply(svc, who, FILE)} == {"unchanged"}
    with pytest.raises(FileError, match="unknown section"):
        apply(svc, who, {"tenant": "acme", "queus": {}})
    with pytest.raises(FileError, match="not 'acme'"):
        apply(svc, who, {"tenant": "beta"})


def test_csv_and_xlsx_exports_open_with_the_rows():
    from openpyxl import load_workbook

    rows = [{"queue": "hỗ trợ", "offered": 3, "state_ms": {"available": 10}}]
    text = exports.to_csv(rows).decode("utf-8-sig").splitlines()
    assert text == ["queue,offered,state_ms.available", "hỗ trợ,3,10"]
    wb = load_workbook(io.BytesIO(exports.to_xlsx(rows, sheet="queues")))
    assert [list(r) for r in wb["queues"].iter_rows(values_only=True)] == [
        ["queue", "offered", "state_ms.available"], ["hỗ trợ", 3, 10]]


def test_openapi_document_is_valid_and_covers_every_route(client, app):
    from openapi_spec_validator import validate

    doc = client.get("/api/v1/openapi.json").get_json()
    validate(doc)
    documented = {(p, m.upper()) for p, ops in doc["paths"].items() for m in ops}
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/") and rule.endpoint not in (
                "openapi.openapi_json", "health", "static"):
            path = rule.rule.replace("<", "{").replace(">", "}")
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                assert (path, method) in documented, (path, method)
    put_queue = doc["paths"]["/api/v1/queues/{entity_id}"]["put"]
    assert "400" in put_queue["responses"] and put_queue["security"] == [{"bearer": []}]


def test_webhook_gets_the_offered_call_with_the_caller_lookup(app, bus, auth, client):
    import http.server
    import threading

    received: list[dict] = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's naming)
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        h = auth("admin")
        url = f"http://127.0.0.1:{server.server_port}/crm/hook"
        assert client.put("/api/v1/tenant", json={"webhooks": [{"url": url}]},
                          headers=h).status_code == 200
        client.put("/api/v1/leads/l1", json={"name": "Anh Tuấn", "phones": ["0987654321"]},
                   headers=h)
        bus.publish(topics.CC_EVENTS, b"acme", envelope("call_enqueued", "acme",
                    {"queue": "support", "caller": "+84987654321"}, call_id="c-9"))
        bus.publish(topics.CC_EVENTS, b"acme", envelope("call_offered", "acme",
                    {"queue": "support", "agent_id": "lan", "extension": "1001",
                     "offer_id": "o-9", "attempt": 1}, call_id="c-9"))
        import time
        deadline = time.monotonic() + 5
        while not received and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        server.shutdown()
    assert received and received[0]["event"] == "call_offered"
    assert received[0]["tenant"] == "acme" and received[0]["agent_id"] == "lan"
    assert received[0]["matches"][0]["name"] == "Anh Tuấn"


def test_supervisor_phone_monitors_an_agent_call_with_eavesdrop_and_it_is_audited(client, auth, bus):
    h = auth("admin")
    client.put("/api/v1/tenant", json={"domain": "acme.example"}, headers=h)
    client.put("/api/v1/queues/support", json={}, headers=h)
    client.put("/api/v1/agents/lan", json={"extension": "1001", "queues": {"support": {}}}, headers=h)
    client.put("/api/v1/extensions/1009", json={"display_name": "Mai", "can_monitor": True}, headers=h)
    client.put("/api/v1/extensions/1002", json={"display_name": "Binh"}, headers=h)
    bus.publish(topics.CC_EVENTS, b"acme", envelope("call_answered", "acme", {
        "queue": "support", "agent_id": "lan", "offer_id": "agent-leg-1", "wait_ms": 1000,
        "ring_ms": 500}, call_id="c-42"))

    def dial(code: str, ext: str):
        return ET.fromstring(_fs(client, section="dialplan", **{
            "Caller-Destination-Number": code, "variable_user_name": ext,
            "variable_domain_name": "acme.example"}).data)

    def actions(doc):
        return [(a.get("application"), a.get("data")) for a in doc.iter("action")]

    whisper = actions(dial("*341001", "1009"))
    assert whisper[-1] == ("eavesdrop", "agent-leg-1")
    # mod_dptools: whisper_bleg = ED_MUX_WRITE, heard by the eavesdropped (agent's) phone;
    # whisper_aleg = ED_MUX_READ, sent on to the other half (the customer)
    assert ("set", "eavesdrop_whisper_bleg=true") in whisper
    assert ("set", "eavesdrop_whisper_aleg=true") not in whisper
    assert ("set", "eavesdrop_enable_dtmf=true") in whisper
    barge = actions(dial("*351001", "1009"))
    assert {("set", "eavesdrop_whisper_aleg=true"), ("set", "eavesdrop_whisper_bleg=true")} <= set(barge)
    listen = actions(dial("*331001", "1009"))
    assert not any("whisper" in d for _, d in listen)
    assert actions(dial("*331001", "1002"))[-1] == ("hangup", "CALL_REJECTED")
    audit = client.get("/api/v1/audit?action=call.monitor", headers=h).get_json()["items"]
    assert [(e["action"], e["user"], e["target"]) for e in audit] == [
        ("call.monitor.listen", "ext:1009", "call/c-42"),
        ("call.monitor.barge", "ext:1009", "call/c-42"),
        ("call.monitor.whisper", "ext:1009", "call/c-42")]
    bus.publish(topics.CC_EVENTS, b"acme", envelope("call_ended", "acme", {
        "queue": "support", "agent_id": "lan", "hangup_cause": "NORMAL_CLEARING",
        "talk_ms": 9000}, call_id="c-42"))
    assert actions(dial("*331001", "1009"))[-1] == ("hangup", "NO_ROUTE_DESTINATION")


def test_the_routers_corrections_are_in_the_audit_log_of_their_tenant_only(client, auth, bus):
    bus.publish(topics.CC_EVENTS, b"acme", envelope("state_corrected", "acme", {
        "node": "node-1", "what": "offer_bridged_unseen", "action": "connected",
        "agent_id": "lan", "leg_id": "o-9",
        "detail": "agent leg bridged to its caller on the switch"}, call_id="c-9"))
    page = client.get("/api/v1/audit?action=state.corrected", headers=auth("admin")).get_json()
    (entry,) = page["items"]
    assert (entry["user"], entry["role"], entry["action"], entry["target"]) == (
        "router", "system", "state.corrected.offer_bridged_unseen", "call/c-9")
    assert entry["detail"]["action"] == "connected" and entry["detail"]["agent_id"] == "lan"
    other = client.get("/api/v1/audit?action=state.corrected",
                       headers=auth("admin", tenant="globex")).get_json()
    assert other["items"] == []
