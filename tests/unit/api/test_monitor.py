"""Live monitoring as a command: POST /api/v1/monitor and /monitor/<id>/mode."""
from __future__ import annotations

import threading
import time
import uuid

import orjson
import pytest

from api import settings as api_settings
from api.app import create_app
from api.bus import envelope
from routing.contract import encode, topics
from routing.contract.schemas import RecordSchema
from tests.unit.api.conftest import SECRET

pytestmark = pytest.mark.api


@pytest.fixture
def acme(client, auth, bus):
    """acme: agents lan (on a call) and binh (idle), supervisor mai with phone 1009."""
    h = auth("admin")
    for path, body in (("/api/v1/queues/support", {}),
                       ("/api/v1/agents/lan", {"extension": "1001", "queues": {"support": {}}}),
                       ("/api/v1/agents/binh", {"extension": "1002", "queues": {"support": {}}}),
                       ("/api/v1/extensions/1001", {"display_name": "Lan", "can_monitor": True}),
                       ("/api/v1/extensions/1009", {"display_name": "Mai", "can_monitor": True}),
                       ("/api/v1/extensions/1010", {"display_name": "Khoa"}),
                       ("/api/v1/users/mai", {"role": "supervisor", "extension": "1009"}),
                       ("/api/v1/users/khoa", {"role": "supervisor", "extension": "1010"}),
                       ("/api/v1/users/tuan", {"role": "supervisor"}),
                       ("/api/v1/users/lan", {"role": "supervisor", "agent_id": "lan"})):
        r = client.put(path, json=body, headers=h)
        assert r.status_code == 200, (path, r.get_json())
    answer(bus, "lan", "c-42")
    return h


def answer(bus, agent_id: str, call_id: str, tenant: str = "acme") -> None:
    bus.publish(topics.CC_EVENTS, tenant.encode(), envelope("call_answered", tenant, {
        "queue": "support", "agent_id": agent_id, "offer_id": f"leg-{call_id}",
        "wait_ms": 1000, "ring_ms": 500}, call_id=call_id))


def commands(bus, type_: str) -> list[tuple[bytes, object]]:
    return [(k, e) for k, e in bus.records.get(topics.CC_COMMANDS, []) if e.type == type_]


def on_the_wire(env) -> None:
    assert RecordSchema().validate(orjson.loads(encode(env))) == {}


def test_a_supervisor_starts_a_monitoring_from_its_own_phone(client, auth, bus, acme):
    r = client.post("/api/v1/monitor", json={"agent_id": "lan", "mode": "whisper"},
                    headers=auth("supervisor", user="mai"))
    assert r.status_code == 202, r.get_json()
    body = r.get_json()
    assert uuid.UUID(body["monitor_id"])
    assert {k: body[k] for k in ("call_id", "agent_id", "extension", "mode")} == {
        "call_id": "c-42", "agent_id": "lan", "extension": "1009", "mode": "whisper"}
    [(key, env)] = commands(bus, "monitor_requested")
    assert key == topics.tenant_key("acme") and env.tenant == "acme"
    assert env.call_id == "c-42" and env.event_id == body["command_id"]
    assert env.payload == {"monitor_id": body["monitor_id"], "agent_id": "lan",
                           "extension": "1009", "mode": "whisper", "requested_by": "mai"}
    on_the_wire(env)
    audit = client.get("/api/v1/audit?action=call.monitor", headers=acme).get_json()["items"]
    assert [(e["action"], e["user"], e["role"], e["target"]) for e in audit] == [
        ("call.monitor.whisper", "mai", "supervisor", "call/c-42")]
    assert audit[0]["detail"]["monitor_id"] == body["monitor_id"]
    assert audit[0]["detail"]["via"] == "api" and audit[0]["at_us"] > 0


def test_the_mode_defaults_to_listen_and_the_extension_may_be_given(client, auth, bus, acme):
    r = client.post("/api/v1/monitor", json={"agent_id": "lan", "extension": "1009"},
                    headers=acme)  # an admin without a user record names the phone
    assert r.status_code == 202 and r.get_json()["mode"] == "listen"
    assert commands(bus, "monitor_requested")[0][1].payload["requested_by"] == "admin-user"


def test_the_default_extension_of_a_user_with_an_agent_is_the_agents(client, auth, bus, acme):
    answer(bus, "binh", "c-43")
    r = client.post("/api/v1/monitor", json={"agent_id": "binh"},
                    headers=auth("supervisor", user="lan"))
    assert r.status_code == 202 and r.get_json()["extension"] == "1001"


def test_a_user_without_an_extension_must_name_one(client, auth, acme):
    r = client.post("/api/v1/monitor", json={"agent_id": "lan"},
                    headers=auth("supervisor", user="tuan"))
    assert r.status_code == 409
    assert r.get_json()["details"] == [{"field": "extension", "rule": "required when the "
                                        "user record has no extension"}]


def test_only_extensions_marked_can_monitor(client, auth, bus, acme):
    r = client.post("/api/v1/monitor", json={"agent_id": "lan"},
                    headers=auth("supervisor", user="khoa"))
    assert r.status_code == 403 and "can_monitor: true" in r.get_json()["message"]
    r = client.post("/api/v1/monitor", json={"agent_id": "lan", "extension": "1077"},
                    headers=acme)
    assert r.status_code == 403 and "no such extension" in r.get_json()["message"]
    assert not commands(bus, "monitor_requested")


def test_the_agents_own_phone_cannot_monitor_its_call(client, auth, acme):
    r = client.post("/api/v1/monitor", json={"agent_id": "lan", "extension": "1001"},
                    headers=acme)
    assert r.status_code == 409 and r.get_json()["details"][0]["field"] == "extension"


def test_an_agent_without_a_call_in_progress_is_a_conflict_naming_the_rule(client, auth, bus, acme):
    sup = auth("supervisor", user="mai")
    r = client.post("/api/v1/monitor", json={"agent_id": "binh"}, headers=sup)
    assert r.status_code == 409
    assert r.get_json()["details"] == [{"field": "agent_id",
                                        "rule": "must have a call in progress"}]
    bus.publish(topics.CC_EVENTS, b"acme", envelope("call_ended", "acme", {
        "queue": "support", "agent_id": "lan", "hangup_cause": "NORMAL_CLEARING",
        "talk_ms": 9000}, call_id="c-42"))
    assert client.post("/api/v1/monitor", json={"agent_id": "lan"},
                       headers=sup).status_code == 409
    assert not commands(bus, "monitor_requested")


def test_a_call_answered_before_the_api_started_is_found_in_the_live_view(app, client, auth, bus):
    """The cc events are followed from their end: an older call is in the router's view."""
    h = auth("admin")
    client.put("/api/v1/agents/binh", json={"extension": "1002"}, headers=h)
    client.put("/api/v1/extensions/1009", json={"can_monitor": True}, headers=h)
    live = {"as_of_us": 1, "queues": [], "calls": [], "recent": [], "agents": [
        {"agent_id": "binh", "extension": "1002", "state": "on_call", "since_us": 1,
         "pause_reason": None, "call_id": "c-old"}]}
    bus.publish(topics.LIVE, b"acme", envelope("live_state_published", "acme", live,
                                               source="router"))
    r = client.post("/api/v1/monitor", json={"agent_id": "binh", "extension": "1009"}, headers=h)
    assert r.status_code == 202 and r.get_json()["call_id"] == "c-old"
    # ... unless this process saw that call end
    bus.publish(topics.CC_EVENTS, b"acme", envelope("call_ended", "acme", {
        "queue": "support", "agent_id": "binh", "hangup_cause": "NORMAL_CLEARING",
        "talk_ms": 9000}, call_id="c-old"))
    r = client.post("/api/v1/monitor", json={"agent_id": "binh", "extension": "1009"}, headers=h)
    assert r.status_code == 409


def test_unknown_agents_other_tenants_and_agents_are_refused(client, auth, bus, acme):
    body = {"agent_id": "lan", "extension": "1009"}
    assert client.post("/api/v1/monitor", json={**body, "agent_id": "ghost"},
                       headers=acme).status_code == 404
    assert client.post("/api/v1/monitor", json=body,
                       headers=auth("admin", "beta")).status_code == 404
    assert client.post("/api/v1/monitor", json=body,
                       headers=auth("agent", user="binh")).status_code == 403
    assert client.post("/api/v1/monitor", json=body).status_code == 401
    assert not commands(bus, "monitor_requested")


@pytest.mark.parametrize("body,field,rule", [
    ({"agent_id": "lan", "mode": "spy"}, "mode", "Must be one of: listen, whisper, barge."),
    ({"mode": "listen"}, "agent_id", "Missing data for required field."),
    ({"agent_id": "lan", "extension": "12a"}, "extension", "must be an extension of 2-6 digits"),
    ({"agent_id": "lan", "volume": 3}, "volume", "Unknown field."),
])
def test_validation_errors_name_the_field_and_the_rule(client, auth, acme, body, field, rule):
    r = client.post("/api/v1/monitor", json=body, headers=auth("supervisor", user="mai"))
    assert r.status_code == 400
    assert r.get_json()["details"] == [{"field": field, "rule": rule}]


def _start(client, headers, mode: str = "listen") -> str:
    r = client.post("/api/v1/monitor", json={"agent_id": "lan", "mode": mode}, headers=headers)
    assert r.status_code == 202, r.get_json()
    return r.get_json()["monitor_id"]


def test_the_supervisor_who_started_it_switches_the_mode(client, auth, bus, acme):
    mai = auth("supervisor", user="mai")
    monitor_id = _start(client, mai)
    r = client.post(f"/api/v1/monitor/{monitor_id}/mode", json={"mode": "barge"}, headers=mai)
    assert r.status_code == 202, r.get_json()
    assert {k: r.get_json()[k] for k in ("monitor_id", "call_id", "agent_id", "extension",
                                          "mode")} == {
        "monitor_id": monitor_id, "call_id": "c-42", "agent_id": "lan", "extension": "1009",
        "mode": "barge"}
    [(key, env)] = commands(bus, "monitor_mode_requested")
    assert key == topics.tenant_key("acme") and env.call_id == "c-42"
    assert env.payload == {"monitor_id": monitor_id, "mode": "barge"}
    on_the_wire(env)
    audit = client.get("/api/v1/audit?action=call.monitor", headers=acme).get_json()["items"]
    assert [(e["action"], e["user"], e["detail"].get("mode")) for e in audit] == [
        ("call.monitor.mode", "mai", "barge"), ("call.monitor.listen", "mai", None)]


def test_only_its_supervisor_or_an_admin_switches_a_monitoring(client, auth, bus, acme):
    monitor_id = _start(client, auth("supervisor", user="mai"))
    path = f"/api/v1/monitor/{monitor_id}/mode"
    r = client.post(path, json={"mode": "whisper"}, headers=auth("supervisor", user="khoa"))
    assert r.status_code == 403
    assert client.post(path, json={"mode": "whisper"},
                       headers=auth("agent", user="binh")).status_code == 403
    assert client.post(path, json={"mode": "whisper"},
                       headers=auth("admin", "beta")).status_code == 404
    assert client.post(path, json={"mode": "whisper"}, headers=acme).status_code == 202
    assert len(commands(bus, "monitor_mode_requested")) == 1


def test_an_unknown_monitoring_is_not_found_at_once(client, auth, acme):
    mai = auth("supervisor", user="mai")
    started = time.monotonic()
    assert client.post("/api/v1/monitor/not-a-monitor/mode", json={"mode": "listen"},
                       headers=mai).status_code == 404
    assert time.monotonic() - started < 0.5
    r = client.post(f"/api/v1/monitor/{uuid.uuid4()}/mode", json={"mode": "listen"}, headers=mai)
    assert r.status_code == 404
    r = client.post(f"/api/v1/monitor/{uuid.uuid4()}/mode", json={"mode": "loud"}, headers=mai)
    assert r.status_code == 400 and r.get_json()["details"][0]["field"] == "mode"


def test_a_monitoring_started_through_another_api_process_is_switched_here(app, client, auth,
                                                                           bus, acme):
    """No table of monitorings: the start's audit entry, on the audit topic, is the record."""
    monitor_id = _start(client, auth("supervisor", user="mai"))
    s = api_settings.load({"TONGDAI_API_TOKEN_SECRET": SECRET})
    other = create_app(s, bus, None).test_client()  # reads the same topics from the start
    r = other.post(f"/api/v1/monitor/{monitor_id}/mode", json={"mode": "whisper"},
                   headers=auth("supervisor", user="mai"))
    assert r.status_code == 202 and r.get_json()["call_id"] == "c-42"


def test_the_start_written_by_another_process_is_waited_for_briefly(app, auth):
    """A switch right after a start made elsewhere may arrive before the audit entry."""
    audit = app.extensions["tongdai"].audit
    monitor_id = str(uuid.uuid4())
    entry = envelope("audit_recorded", "acme", {
        "user": "mai", "role": "supervisor", "token_id": "t", "action": "call.monitor.listen",
        "target": "call/c-7", "detail": {"monitor_id": monitor_id, "agent_id": "lan",
                                         "extension": "1009", "via": "api"}})
    threading.Timer(0.2, audit.apply, args=(entry,)).start()
    found = app.extensions["tongdai"].monitor.started("acme", monitor_id)
    assert found is not None and found["target"] == "call/c-7"


def test_the_openapi_document_describes_both_routes(client):
    doc = client.get("/api/v1/openapi.json").get_json()
    start = doc["paths"]["/api/v1/monitor"]["post"]
    switch = doc["paths"]["/api/v1/monitor/{monitor_id}/mode"]["post"]
    for op in (start, switch):
        assert {"202", "400", "401", "403", "404", "409"} <= set(op["responses"])
        assert op["description"] == "Roles: admin, supervisor"
    body = doc["components"]["schemas"]["MonitorLoad"]
    assert body["required"] == ["agent_id"]
    assert body["properties"]["mode"]["enum"] == ["listen", "whisper", "barge"]
