"""Estimated wait and position (routing/ewt.py): hand-computed cases."""

from __future__ import annotations

import pytest

from routing import AgentPaused, CallConnected, CallEnded, OfferAnswered, Queue, Tick
from routing.ewt import DEFAULT_RING_S, DEFAULT_TALK_S, estimate

from ._world import T0, World, agent, world

pytestmark = pytest.mark.routing

S = 1_000_000


def serve(w: World, call_id: str, at: float, ring: float, talk: float | None) -> None:
    """A caller enters, the phone it is offered answers after ``ring``, talks ``talk``."""
    (offer,) = w.offers(w.call(call_id, at=at))
    w.ev(OfferAnswered(at_us=w.at(at + ring), offer_id=offer.offer_id))
    w.ev(CallConnected(at_us=w.at(at + ring), call_id=call_id))
    if talk is not None:
        w.ev(CallEnded(at_us=w.at(at + ring + talk), call_id=call_id))


def busy_world() -> World:
    """Two agents who each talked 60 s (rung 2 s), now 28 s into their next calls."""
    w = world(agent("a1"), agent("a2"), wrapup_s=10)
    serve(w, "c1", 0, 2, 60)
    serve(w, "c2", 0.5, 1.5, 60)  # ends at 62 too
    w.ev(Tick(at_us=w.at(72)))
    serve(w, "c3", 100, 2, None)
    serve(w, "c4", 100, 2, None)
    for cid in ("c5", "c6", "c7"):
        w.call(cid, at=130)
    return w


def test_callers_wait_for_the_agents_projected_free_times():
    w = busy_world()
    est = estimate(w.state, T0 + 130 * S)
    # Talk 60 s (the last two calls), ring 2 s (the calls connected now), wrap-up 10 s.
    # Both agents are 28 s into a call, 32 s expected left each: the first of the two ends
    # after 32/2 = 16 s, the second 32/1 later (exponential order statistics); + wrap-up.
    assert [(est.calls[c].position, est.calls[c].ewt_s) for c in ("c5", "c6", "c7")] == \
        [(1, 26 + 2), (2, 58 + 2), (3, 26 + 2 + 60 + 10 + 2)]
    q = est.queues["q"]
    assert (q.position, q.waiting, q.agents_serving, q.agents_free) == (4, 3, 2, 0)
    assert (q.talk_s, q.wrapup_s, q.ring_s, q.samples) == (60, 10, 2, 2)
    assert q.ewt_s == 58 + 72 + 2, "a newcomer gets the second agent's next free moment"
    assert "3 caller(s) ahead" in q.reason and "talk 60" in q.reason
    assert estimate(w.state, T0 + 130 * S) == est, "same state and time, same estimate"


def test_a_call_in_progress_longer_than_every_recent_one_is_expected_to_end_now():
    w = busy_world()
    est = estimate(w.state, T0 + 200 * S)  # 98 s into calls that recently lasted 60 s
    assert est.calls["c5"].ewt_s == 10 + 2, "only wrap-up and ring left"


def test_a_free_agent_means_no_wait_but_the_ring():
    w = world(agent("a1"), wrapup_s=10)
    est = estimate(w.state, T0)
    q = est.queues["q"]
    assert (q.ewt_s, q.agents_free, q.samples, q.talk_s) == (DEFAULT_RING_S, 1, 0, DEFAULT_TALK_S)
    assert f"default {DEFAULT_TALK_S} s" in q.reason


def test_a_ringing_caller_has_position_zero_and_waits_the_rest_of_the_ring():
    w = world(agent("a1"))
    w.call("c1", at=0)
    est = estimate(w.state, T0 + 1 * S)
    assert (est.calls["c1"].position, est.calls["c1"].ewt_s) == (0, DEFAULT_RING_S - 1)


def test_no_serving_agent_gives_no_estimate_and_says_why():
    w = world(agent("a1"))
    w.ev(AgentPaused(at_us=w.at(0), agent_id="a1", reason="lunch"))
    w.call("c1", at=1)
    est = estimate(w.state, T0 + 5 * S)
    assert est.queues["q"].ewt_s is None and est.queues["q"].agents_serving == 0
    assert "no agent of queue q is serving" in est.queues["q"].reason
    assert (est.calls["c1"].position, est.calls["c1"].ewt_s) == (1, None)


def test_a_vip_goes_first_in_line():
    w = busy_world()
    w.call("vip", at=131, vip=True)
    est = estimate(w.state, T0 + 131 * S)
    assert est.calls["vip"].position == 1 and est.calls["c5"].position == 2
    assert est.calls["vip"].ewt_s == 28  # 31 s left each: 15.5 + 10 + 2, rounded up


def test_an_agent_of_two_queues_takes_the_oldest_caller_of_either():
    qa, qb = Queue(id="qa", tenant="t", wrapup_s=0), Queue(id="qb", tenant="t", wrapup_s=0)
    w = world(agent("a1", queues=("qa", "qb")), queues=(qa, qb))
    (offer,) = w.offers(w.call("x", queue="qa", at=0))
    w.ev(OfferAnswered(at_us=w.at(2), offer_id=offer.offer_id))
    w.ev(CallConnected(at_us=w.at(2), call_id="x"))
    w.call("b1", queue="qb", at=3)
    w.call("a2", queue="qa", at=4)
    est = estimate(w.state, T0 + 5 * S)
    # No call ended yet: talk is the default; 3 s into x, the agent frees in DEFAULT - 3.
    first = DEFAULT_TALK_S - 3 + 2
    assert est.calls["b1"].ewt_s == first and est.calls["b1"].position == 1
    assert est.calls["a2"].ewt_s == first + 2 + DEFAULT_TALK_S  # after b1: ring + talk
    assert est.queues["qa"].agents_shared == 1
