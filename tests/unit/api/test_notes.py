"""Issue 16: an agent writes notes only on calls it handled, as itself; failed outbound
rows only for the agent's own click-to-call.

Before: any agent could note any call of the tenant, set any `agent_id`, and create
"failed outbound" call rows for another agent.
"""
from __future__ import annotations

import pytest

from api.bus import envelope

pytestmark = pytest.mark.api


@pytest.fixture
def setup(client, auth, app, bus):
    h = auth("admin")
    client.put("/api/v1/tenant", json={"outbound_caller_id": "02838123456"}, headers=h)
    client.put("/api/v1/queues/support", json={}, headers=h)
    for agent, ext in (("lan", "1001"), ("binh", "1002")):
        client.put(f"/api/v1/agents/{agent}", json={"extension": ext}, headers=h)
        client.put(f"/api/v1/users/{agent}", json={"role": "agent", "agent_id": agent}, headers=h)
    events = app.extensions["tongdai"].settings.events_topic
    for call, agent in (("call-lan", "lan"), ("call-binh", "binh")):
        bus.publish(events, b"acme", envelope("call_answered", "acme", {
            "queue": "support", "agent_id": agent, "offer_id": f"o-{call}", "wait_ms": 1,
            "ring_ms": 1}, call_id=call))
    return {"lan": auth("agent", user="lan"), "binh": auth("agent", user="binh"),
            "sup": auth("supervisor")}


def test_an_agent_notes_its_own_call_as_itself(client, setup):
    r = client.post("/api/v1/calls/call-lan/notes", json={"text": "ok"}, headers=setup["lan"])
    assert r.status_code == 201 and r.get_json()["agent_id"] == "lan"


def test_an_agent_cannot_note_another_agents_call(client, setup):
    r = client.post("/api/v1/calls/call-binh/notes", json={"text": "x"}, headers=setup["lan"])
    assert r.status_code == 403
    assert r.get_json()["details"] == [{"field": "call_id", "rule": "a call this agent handled"}]
    assert client.get("/api/v1/calls/call-binh/notes", headers=setup["sup"]).status_code in (404, 503)


def test_the_agent_comes_from_the_token_never_from_the_body(client, setup):
    for who in ("lan", "sup"):
        r = client.post("/api/v1/calls/call-lan/notes", json={"text": "x", "agent_id": "binh"},
                        headers=setup[who])
        assert r.status_code == 400 and r.get_json()["details"][0]["field"] == "agent_id"


def test_failed_outbound_only_for_the_agents_own_click_to_call(client, setup):
    r = client.post("/api/v1/click-to-call", json={"agent_id": "binh", "number": "0912000111"},
                    headers=setup["binh"])
    assert r.status_code == 202, r.get_json()
    binhs = r.get_json()["call_id"]
    # lan cannot record binh's click-to-call as failed, nor invent one
    body = {"text": "busy", "outbound_failed": True, "number": "0912000111"}
    assert client.post(f"/api/v1/calls/{binhs}/notes", json=body,
                       headers=setup["lan"]).status_code == 403
    r = client.post("/api/v1/calls/made-up-call/notes", json=body, headers=setup["lan"])
    assert r.status_code == 404 and r.get_json()["details"][0]["field"] == "outbound_failed"
    r = client.post(f"/api/v1/calls/{binhs}/notes", json=dict(body, number="0912999999"),
                    headers=setup["binh"])
    assert r.status_code == 400 and r.get_json()["details"][0]["field"] == "number"
    r = client.post(f"/api/v1/calls/{binhs}/notes", json={"text": "busy", "outbound_failed": True},
                    headers=setup["binh"])
    assert r.status_code == 201
    note = r.get_json()
    assert (note["agent_id"], note["number"], note["outbound_failed"]) == ("binh", "+84912000111",
                                                                           True)
    # a supervisor's failed-outbound note is the click-to-call's agent's, too
    r = client.post(f"/api/v1/calls/{binhs}/notes", json={"text": "x", "outbound_failed": True},
                    headers=setup["sup"])
    assert r.status_code == 201 and r.get_json()["agent_id"] == "binh"
    # and binh may note its click-to-call without it having failed
    assert client.post(f"/api/v1/calls/{binhs}/notes", json={"text": "ok"},
                       headers=setup["binh"]).status_code == 201
