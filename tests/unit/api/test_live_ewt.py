"""The API's live view passes the router's estimated wait through, per queue and caller."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from api.bus import envelope
from routing.contract import topics

pytestmark = pytest.mark.api
GOLDEN = Path(__file__).resolve().parents[2] / "fixtures" / "contract"


def test_live_view_shows_each_queue_estimate_and_each_caller_position(client, auth, bus):
    golden = json.loads((GOLDEN / "live_state_published.v1.json").read_text())
    bus.publish(topics.LIVE, b"acme", envelope("live_state_published", "acme",
                                               golden["payload"], source="router",
                                               now_us=golden["occurred_at"]))
    body = client.get("/api/v1/live", headers=auth("supervisor")).get_json()
    q = body["queues"][0]
    assert q["ewt_s"] == 95 and q["ewt"]["agents_serving"] == 5 and q["ewt"]["samples"] == 30
    assert "handle" in q["ewt"]["reason"]
    waiting = [c for c in body["calls"] if c["status"] == "waiting"]
    assert [(c["position"], c["ewt_s"]) for c in waiting] == [(1, 38)]
    spec = client.get("/api/v1/openapi.json").get_json()
    text = json.dumps(spec)
    assert "estimated wait of a caller entering now" in text


def test_pop_up_says_how_long_the_caller_waited_and_how_the_queue_stands(app, bus):
    golden = json.loads((GOLDEN / "live_state_published.v1.json").read_text())
    now = golden["occurred_at"]
    bus.publish(topics.LIVE, b"acme", envelope("live_state_published", "acme",
                                               golden["payload"], source="router", now_us=now))
    popup = app.extensions["tongdai"].popup
    inbox = popup.subscribe("acme", "lan")
    bus.publish(topics.CC_EVENTS, b"acme", envelope(
        "call_enqueued", "acme", {"queue": "support", "caller": "+84912345678"},
        call_id="c-1", now_us=now - 65_000_000))
    bus.publish(topics.CC_EVENTS, b"acme", envelope(
        "call_offered", "acme", {"queue": "support", "agent_id": "lan", "extension": "1001",
                                 "offer_id": "o-1", "attempt": 1}, call_id="c-1", now_us=now))
    pop = inbox.get_nowait()
    assert (pop["waited_ms"], pop["queue_waiting"], pop["queue_ewt_s"]) == (65_000, 2, 95)
    other = popup.subscribe("acme", "mai")
    bus.publish(topics.CC_EVENTS, b"acme", envelope(
        "call_offered", "acme", {"queue": "sales", "agent_id": "mai", "extension": "1002",
                                 "offer_id": "o-2", "attempt": 1}, call_id="c-unknown"))
    pop = other.get_nowait()
    assert (pop["waited_ms"], pop["queue_waiting"], pop["queue_ewt_s"]) == (None, None, None)
