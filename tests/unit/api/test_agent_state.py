"""What the agent page reads: who the token is, and one agent's own state and recent calls."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from api.bus import envelope
from routing.contract import topics

pytestmark = pytest.mark.api
GOLDEN = Path(__file__).resolve().parents[2] / "fixtures" / "contract"


def _setup(client, auth):
    h = auth("admin")
    client.put("/api/v1/queues/support", json={}, headers=h)
    client.put("/api/v1/queues/billing", json={}, headers=h)
    client.put("/api/v1/agents/agent-7", json={"extension": "1007", "queues": {
        "support": {}, "billing": {}}}, headers=h)
    client.put("/api/v1/agents/agent-3", json={"extension": "1003"}, headers=h)
    client.put("/api/v1/agents/agent-9", json={"extension": "1009"}, headers=h)
    client.put("/api/v1/users/bay", json={"role": "agent", "agent_id": "agent-7"}, headers=h)
    return h


def _live(bus, now_us: int, tenant: str = "acme") -> None:
    golden = json.loads((GOLDEN / "live_state_published.v1.json").read_text())
    bus.publish(topics.LIVE, tenant.encode(), envelope(
        "live_state_published", tenant, dict(golden["payload"], as_of_us=now_us),
        source="router", now_us=now_us))


def test_me_names_the_agent_of_the_token(client, auth):
    _setup(client, auth)
    assert client.get("/api/v1/me").status_code == 401
    me = client.get("/api/v1/me", headers=auth("agent", user="bay")).get_json()
    assert (me["tenant"], me["user"], me["role"], me["agent_id"]) == ("acme", "bay", "agent",
                                                                      "agent-7")
    # no user record: the user name is the agent id, if that agent exists
    assert client.get("/api/v1/me", headers=auth("agent", user="agent-3")).get_json()[
        "agent_id"] == "agent-3"
    assert client.get("/api/v1/me", headers=auth("supervisor", user="mai")).get_json()[
        "agent_id"] is None
    assert client.get("/api/v1/me", headers=auth("agent", "beta", user="bay")).get_json()[
        "agent_id"] is None


def test_an_agent_reads_its_own_state_from_the_live_view(client, auth, bus):
    _setup(client, auth)
    me = auth("agent", user="bay")
    before = client.get("/api/v1/agents/agent-7/state", headers=me)
    assert before.status_code == 200
    assert before.get_json()["state"] == "unknown" and before.get_json()["as_of_us"] is None
    now = 1763800000123456
    _live(bus, now)
    body = client.get("/api/v1/agents/agent-7/state", headers=me).get_json()
    assert body["state"] == "on_call" and body["extension"] == "1007"
    assert body["queues"] == ["billing", "support"]
    assert body["time_in_state_ms"] >= (now - 1763799980000000) // 1000
    assert body["call"]["caller"] == "+84912345678" and body["call"]["queue"] == "support"
    assert body["call"]["status"] == "connected"
    assert body["recent_calls"] == []
    # a supervisor reads any agent of its tenant: agent-3 is paused for lunch
    paused = client.get("/api/v1/agents/agent-3/state", headers=auth("supervisor")).get_json()
    assert (paused["state"], paused["pause_reason"], paused["call"]) == ("paused", "lunch", None)
    # configured, but the router never saw it log in
    assert client.get("/api/v1/agents/agent-9/state",
                      headers=auth("admin")).get_json()["state"] == "logged_out"


def test_an_agent_may_not_read_another_agent_and_another_tenant_sees_nothing(client, auth, bus):
    _setup(client, auth)
    _live(bus, 1763800000123456)
    me = auth("agent", user="bay")
    r = client.get("/api/v1/agents/agent-3/state", headers=me)
    assert r.status_code == 403 and "itself" in r.get_json()["message"]
    assert client.get("/api/v1/agents/agent-7/state",
                      headers=auth("admin", "beta")).status_code == 404
    assert client.get("/api/v1/agents/agent-7/state",
                      headers=auth("agent", "beta", user="agent-7")).status_code == 404
    assert client.get("/api/v1/agents/ghost/state", headers=auth("admin")).status_code == 404
    assert client.get("/api/v1/agents/agent-7/state?x=1", headers=me).status_code == 400


def test_recent_calls_come_from_the_router_facts_newest_first(client, auth, bus):
    _setup(client, auth)
    me = auth("agent", user="bay")

    def call(call_id: str, caller: str, at: int, end: bool, agent: str = "agent-7") -> None:
        bus.publish(topics.CC_EVENTS, b"acme", envelope(
            "call_enqueued", "acme", {"queue": "support", "caller": caller}, call_id=call_id,
            now_us=at))
        bus.publish(topics.CC_EVENTS, b"acme", envelope(
            "call_answered", "acme", {"queue": "support", "agent_id": agent,
                                      "offer_id": f"o-{call_id}", "wait_ms": 1000,
                                      "ring_ms": 2000}, call_id=call_id, now_us=at + 3_000_000))
        if end:
            bus.publish(topics.CC_EVENTS, b"acme", envelope(
                "call_ended", "acme", {"queue": "support", "agent_id": agent,
                                       "hangup_cause": "NORMAL_CLEARING", "talk_ms": 42000},
                call_id=call_id, now_us=at + 45_000_000))

    call("c-1", "+84912000001", 1_000_000_000, end=True)
    call("c-2", "+84912000002", 2_000_000_000, end=False)
    call("c-3", "+84912000003", 3_000_000_000, end=True)
    call("c-other", "+84912000004", 4_000_000_000, end=True, agent="agent-3")
    bus.publish(topics.CC_EVENTS, b"beta", envelope(
        "call_answered", "beta", {"queue": "support", "agent_id": "agent-7", "offer_id": "o-b",
                                  "wait_ms": 0, "ring_ms": 0}, call_id="c-beta"))
    recent = client.get("/api/v1/agents/agent-7/state", headers=me).get_json()["recent_calls"]
    assert [c["call_id"] for c in recent] == ["c-3", "c-2", "c-1"]
    c1 = recent[-1]
    assert (c1["caller"], c1["talk_ms"], c1["ended_at_us"]) == ("+84912000001", 42000,
                                                                1_045_000_000)
    assert recent[1]["ended_at_us"] is None and recent[1]["talk_ms"] is None
    other = client.get("/api/v1/agents/agent-3/state", headers=auth("supervisor")).get_json()
    assert [c["call_id"] for c in other["recent_calls"]] == ["c-other"]


def test_the_agent_sees_why_the_router_refused_its_click_to_call(client, auth, bus):
    _setup(client, auth)
    me = auth("agent", user="bay")
    assert client.get("/api/v1/agents/agent-7/state", headers=me).get_json()["last_refused"] \
        is None
    for tenant, reason in (("acme", "agent agent-7 is busy (on_call)"),
                           ("beta", "someone else's")):
        bus.publish(topics.CC_EVENTS, tenant.encode(), envelope(
            "command_refused", tenant, {"request_id": "r-9", "command": "click_to_call_requested",
                                        "agent_id": "agent-7", "reason": reason},
            source="router", now_us=5_000_000))
    got = client.get("/api/v1/agents/agent-7/state", headers=me).get_json()["last_refused"]
    assert got == {"request_id": "r-9", "command": "click_to_call_requested",
                   "reason": "agent agent-7 is busy (on_call)", "at_us": 5_000_000}
