"""The reducer: agent states, ring-no-answer penalties, wrap-up, replay."""

from __future__ import annotations

import pytest

from routing import (
    US,
    AgentLoggedOut,
    AgentPaused,
    AgentResumed,
    AgentUnregistered,
    AgentRegistered,
    CallAbandoned,
    CallConnected,
    CallEnded,
    Cause,
    OfferAnswered,
    OfferRejected,
    Penalty,
    Status,
    Tick,
    WrapUpEnded,
    replay,
)

from ._world import T0, agent, world

pytestmark = pytest.mark.routing


def test_login_register_pause_resume_logout() -> None:
    w = world(agent("a1"), login=False)
    assert w.state.agents["a1"].status == Status.LOGGED_OUT
    from routing import AgentLoggedIn
    w.ev(AgentLoggedIn(at_us=T0, agent_id="a1"))
    assert w.state.agents["a1"].status == Status.OFFLINE
    assert w.state.logged["q"] == 1 and w.state.online.get("q", 0) == 0
    w.ev(AgentRegistered(at_us=T0, agent_id="a1"))
    assert w.state.agents["a1"].status == Status.AVAILABLE and w.state.ready["q"] == {"a1"}
    w.ev(AgentPaused(at_us=T0, agent_id="a1", reason="lunch"))
    assert w.state.agents["a1"].status == Status.PAUSED and not w.state.ready["q"]
    w.ev(AgentResumed(at_us=T0, agent_id="a1"))
    w.ev(AgentUnregistered(at_us=T0, agent_id="a1"))
    assert w.state.agents["a1"].status == Status.OFFLINE
    w.ev(AgentLoggedOut(at_us=T0, agent_id="a1"))
    assert w.state.agents["a1"].status == Status.LOGGED_OUT
    assert w.state.logged["q"] == 0 and w.state.online["q"] == 0


def test_call_lifecycle_offer_answer_connect_end_wrapup() -> None:
    w = world(agent("a1"), wrapup_s=15)
    (offer,) = w.offers(w.call("c1"))
    assert w.state.agents["a1"].status == Status.OFFERED
    out = w.ev(OfferAnswered(at_us=w.at(3), offer_id=offer.offer_id))
    assert [x.type for x in out] == ["connect_call"]
    w.ev(CallConnected(at_us=w.at(3.02), call_id="c1"))
    assert w.state.agents["a1"].status == Status.ON_CALL
    assert w.state.tenant_active["t"] == 1
    w.ev(CallEnded(at_us=w.at(63), call_id="c1"))
    a = w.state.agents["a1"]
    assert a.status == Status.WRAP_UP and a.calls_answered == 1 and a.talk_us == 59_980_000
    assert w.state.tenant_active["t"] == 0 and "c1" not in w.state.calls
    w.ev(Tick(at_us=w.at(77)))
    assert w.state.agents["a1"].status == Status.WRAP_UP
    w.ev(Tick(at_us=w.at(78)))
    assert w.state.agents["a1"].status == Status.AVAILABLE


def test_wrap_up_ended_early() -> None:
    w = world(agent("a1"), wrapup_s=60)
    (offer,) = w.offers(w.call("c1"))
    w.ev(OfferAnswered(at_us=w.at(1), offer_id=offer.offer_id))
    w.ev(CallConnected(at_us=w.at(1), call_id="c1"))
    w.ev(CallEnded(at_us=w.at(10), call_id="c1"))
    w.ev(WrapUpEnded(at_us=w.at(12), agent_id="a1"))
    assert w.state.agents["a1"].status == Status.AVAILABLE


@pytest.mark.parametrize(
    ("cause", "delay_s", "max_count", "failures", "expect"),
    [
        (Cause.NO_ANSWER, 10, 3, 1, Status.PENALTY),
        (Cause.NO_ANSWER, 10, 3, 3, Status.PAUSED),
        (Cause.BUSY, 60, 0, 5, Status.PENALTY),
        (Cause.REJECTED, 0, 0, 1, Status.OFFERED),  # no delay: rung again at once
        (Cause.REJECTED, 0, 2, 2, Status.PAUSED),
        (Cause.NOT_REGISTERED, 30, 1, 1, Status.PAUSED),
    ],
)
def test_ring_no_answer_penalties_per_cause(cause: str, delay_s: int, max_count: int,
                                            failures: int, expect: str) -> None:
    pens = {c: Penalty(0, 0) for c in (Cause.NO_ANSWER, Cause.BUSY, Cause.REJECTED, Cause.NOT_REGISTERED)}
    pens[cause] = Penalty(delay_s, max_count)
    w = world(agent("a1", penalties=pens))
    out = w.call("c1")
    t = 0.0
    for i in range(failures):
        if not w.offers(out):  # still held out: come back when the delay is over
            t += delay_s
            out = w.ev(Tick(at_us=w.at(t)))
        (offer,) = w.offers(out)
        t += 1
        out = w.ev(OfferRejected(at_us=w.at(t), offer_id=offer.offer_id, cause=cause))
    a = w.state.agents["a1"]
    assert a.status == expect
    assert a.failures[cause] == failures
    if expect == Status.PAUSED:
        assert a.pause_reason == f"max_{cause}"
    if expect == Status.PENALTY:
        assert a.penalty_until_us == w.now + delay_s * US


def test_answer_resets_failure_count() -> None:
    w = world(agent("a1", penalties={Cause.NO_ANSWER: Penalty(0, 3)}))
    (o1,) = w.offers(w.call("c1"))
    w.ev(OfferRejected(at_us=w.at(1), offer_id=o1.offer_id, cause=Cause.NO_ANSWER))
    (o2,) = w.offers(w.log[-1:])
    assert w.state.agents["a1"].failures[Cause.NO_ANSWER] == 1
    w.ev(OfferAnswered(at_us=w.at(2), offer_id=o2.offer_id))
    assert w.state.agents["a1"].failures == {}


def test_an_offer_not_delivered_is_withdrawn_without_a_penalty() -> None:
    w = world(agent("a1", penalties={Cause.NO_ANSWER: Penalty(60, 1)}))
    (o1,) = w.offers(w.call("c1"))
    out = w.ev(OfferRejected(at_us=w.at(1), offer_id=o1.offer_id, cause=Cause.NOT_DELIVERED))
    a = w.state.agents["a1"]
    assert a.failures == {} and a.penalty_until_us is None and a.pause_reason is None
    (o2,) = w.offers(out)  # offered again at once: the agent did nothing wrong
    assert o2.offer_id != o1.offer_id and o2.agent_id == "a1"


def test_abandon_in_queue_removes_call() -> None:
    w = world()
    w.call("c1")
    assert w.state.queue_calls["q"] == ("c1",)
    w.ev(CallAbandoned(at_us=w.at(5), call_id="c1"))
    assert w.state.queue_calls["q"] == () and not w.state.calls


def test_duplicate_and_unknown_events_are_harmless() -> None:
    w = world(agent("a1"))
    w.call("c1")
    before = w.state
    w.call("c1")  # the same park delivered twice
    assert w.state.calls == before.calls
    for ev in (OfferAnswered(at_us=T0, offer_id="nope"), CallEnded(at_us=T0, call_id="nope"),
               OfferRejected(at_us=T0, offer_id="nope", cause=Cause.BUSY),
               AgentPaused(at_us=T0, agent_id="ghost")):
        w.ev(ev)


def test_redelivered_park_after_the_call_left_is_ignored() -> None:
    w = world(agent("a1"), wrapup_s=0)
    (o,) = w.offers(w.call("c1"))
    w.ev(OfferAnswered(at_us=w.at(1), offer_id=o.offer_id))
    w.ev(CallConnected(at_us=w.at(1), call_id="c1"))
    w.ev(CallEnded(at_us=w.at(30), call_id="c1"))
    assert w.call("c1") == [] and "c1" not in w.state.calls
    from routing.state import is_gone
    assert is_gone(w.state, "c1")
    assert w.state.agents["a1"].status == Status.AVAILABLE


def test_replay_gives_the_same_state() -> None:
    w = world(agent("a1"), agent("a2"), wrapup_s=5)
    (o,) = w.offers(w.call("c1"))
    w.call("c2", at=1)
    w.ev(OfferAnswered(at_us=w.at(2), offer_id=o.offer_id))
    w.ev(CallConnected(at_us=w.at(2), call_id="c1"))
    w.ev(CallEnded(at_us=w.at(30), call_id="c1"))
    w.ev(Tick(at_us=w.at(40)))
    from routing import State, DecisionMade
    full = []
    # The log the router writes: each input event followed by its decisions.
    s = State()
    from routing import step
    for ev in w.events:
        full.append(ev)
        s, out = step(s, ev)
        full.extend(DecisionMade(at_us=ev.at_us, decision=x) for x in out)
    assert s == w.state
    assert replay(full) == w.state
    assert replay(full) == replay(full)


def test_a_busy_phone_is_not_offered_queue_calls_until_it_is_idle() -> None:
    """Presence from call activity: a direct call or click-to-call on the agent's phone
    makes it busy for the queues; the waiting call goes to the agent when the leg ends."""
    from routing import ExtensionBusy, ExtensionIdle

    w = world(agent("a1"))
    w.ev(ExtensionBusy(at_us=w.at(0), agent_id="a1", leg_id="leg-1"))
    a = w.state.agents["a1"]
    assert a.status == Status.ON_CALL and not w.state.ready.get("q")
    assert w.offers(w.call("c1", at=1)) == []  # waits: the only agent's phone is busy
    # A second leg (call waiting on the phone) and a repeated busy are both held.
    w.ev(ExtensionBusy(at_us=w.at(2), agent_id="a1", leg_id="leg-2"))
    w.ev(ExtensionBusy(at_us=w.at(2), agent_id="a1", leg_id="leg-2"))
    assert w.state.agents["a1"].other_legs == ("leg-1", "leg-2")
    w.ev(ExtensionIdle(at_us=w.at(3), agent_id="a1", leg_id="leg-1"))
    assert w.state.agents["a1"].status == Status.ON_CALL
    out = w.ev(ExtensionIdle(at_us=w.at(4), agent_id="a1", leg_id="leg-2"))
    assert [x.type for x in out] == ["offer_call"] and out[0].agent_id == "a1"
    # An idle for a leg it does not hold changes nothing.
    before = w.state.agents["a1"]
    w.ev(ExtensionIdle(at_us=w.at(5), agent_id="a1", leg_id="leg-9"))
    assert w.state.agents["a1"] == before


def test_every_event_and_decision_type_has_one_reducer() -> None:
    """``apply`` dispatches on the event's type: a type added to the union without a reducer
    fails here rather than at run time, and a stranger is refused by name."""
    from typing import get_args

    from routing import Decision, Event, State, apply
    from routing.state import _ON_DECISION, _ON_EVENT

    assert set(_ON_EVENT) == set(get_args(Event))
    assert set(_ON_DECISION) == set(get_args(Decision))

    class Stranger:
        at_us = T0

    with pytest.raises(TypeError, match="unknown event type Stranger"):
        apply(State(), Stranger())  # type: ignore[arg-type]
