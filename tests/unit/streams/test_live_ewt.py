"""The live view carries the estimated wait: per queue with its inputs, per caller with its
place in line, valid against the contract and passed through by the API."""
from __future__ import annotations

import pytest

from routing.contract import Envelope
from routing.contract.schemas import RecordSchema
from streams.router import handle, live_view
from test_router import T0, cmd, fs, leg, setup

pytestmark = pytest.mark.streams


def test_waiting_callers_have_a_position_and_the_queue_an_estimate_with_its_inputs():
    r = setup(agents=("a1",))
    handle(r, cmd("agent_pause_requested", 5, agent_id="a1", reason="lunch"))
    for i, cid in enumerate(("c1", "c2")):
        handle(r, fs("channel_parked", 10 + i, cid, **leg(cid, cid, queue="support")))
    view = live_view(r, T0 + 20_000_000)
    env = Envelope("x", "live_state_published", 1, T0, "acme", "w", None, None, view)
    assert RecordSchema().validate(env.to_dict()) == {}
    q = view["queues"][0]
    assert q["ewt_s"] is None and q["ewt"]["agents_serving"] == 0, "everyone is paused"
    assert "no agent of queue support is serving" in q["ewt"]["reason"]
    assert [(c["call_id"], c["position"], c["ewt_s"]) for c in view["calls"]] == \
        [("c1", 1, None), ("c2", 2, None)]

    handle(r, cmd("agent_resume_requested", 21, agent_id="a1"))  # c1 rings a1 now
    view = live_view(r, T0 + 22_000_000)
    q = view["queues"][0]
    by_id = {c["call_id"]: c for c in view["calls"]}
    assert by_id["c1"]["position"] == 0, "a phone rings for the first caller"
    assert by_id["c2"]["position"] == 1 and by_id["c2"]["ewt_s"] > 0
    assert q["ewt"]["position"] == 2 and q["ewt"]["agents_serving"] == 1
    assert q["ewt_s"] > by_id["c2"]["ewt_s"], "a newcomer waits behind c2"
    assert RecordSchema().validate(Envelope("y", "live_state_published", 1, T0, "acme", "w",
                                            None, None, view).to_dict()) == {}


def test_a_live_record_without_the_estimate_still_reads():
    """Records published before the estimate existed lack its fields."""
    old = {"as_of_us": T0, "queues": [{"queue": "q", "waiting": 0, "ringing": 0,
                                       "longest_wait_ms": 0, "agents_logged_in": 0,
                                       "agents_available": 0}],
           "agents": [], "calls": [], "recent": []}
    env = Envelope("z", "live_state_published", 1, T0, "acme", "w", None, None, old)
    assert RecordSchema().validate(env.to_dict()) == {}
