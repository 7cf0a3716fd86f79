"""decide(): one table or scenario per rule and strategy."""

from __future__ import annotations

import uuid

import pytest

from routing import (
    US,
    Action,
    ActionKind,
    AgentRegistered,
    AgentUnregistered,
    CallAbandoned,
    CallConnected,
    CallEnded,
    CancelOffer,
    ConfigChanged,
    ConnectCall,
    Did,
    ForwardToMobile,
    Membership,
    OfferAnswered,
    OfferCall,
    OfferRejected,
    OverflowCall,
    Queue,
    RelaxStep,
    RunAfterHoursAction,
    Schedule,
    SkillReq,
    Status,
    Strategy,
    Tenant,
    Tick,
    WrapUpEnded,
    apply,
    decide,
    tet_holidays,
)

from ._world import T0, World, agent, world

pytestmark = pytest.mark.routing


def serve(w: World, offer: OfferCall, talk_s: float = 60.0) -> None:
    """The offered agent answers, talks ``talk_s`` and hangs up (wrap-up per queue)."""
    w.ev(OfferAnswered(at_us=w.now, offer_id=offer.offer_id))
    w.ev(CallConnected(at_us=w.now, call_id=offer.call_id))
    w.ev(CallEnded(at_us=w.now + int(talk_s * US), call_id=offer.call_id))
    w.now += int(talk_s * US)


def sequence(w: World, n: int, talks: list[float] | None = None) -> list[str]:
    """Route ``n`` calls one after the other; the agent each went to."""
    got = []
    for i in range(n):
        w.now += US
        (offer,) = w.offers(w.call(f"c{i}"))
        got.append(offer.agent_id)
        serve(w, offer, talks[i] if talks else 60.0)
    return got


# ---------------------------------------------------------------------------- strategies ---


@pytest.mark.parametrize(
    ("strategy", "talks", "expected"),
    [
        (Strategy.LONGEST_IDLE, None, ["a1", "a2", "a3", "a1", "a2"]),
        (Strategy.TOP_DOWN, None, ["a1", "a1", "a1", "a1", "a1"]),
        (Strategy.ROUND_ROBIN, None, ["a1", "a2", "a3", "a1", "a2"]),
        (Strategy.FEWEST_CALLS, None, ["a1", "a2", "a3", "a1", "a2"]),
        (Strategy.LEAST_TALK_TIME, [100, 10, 50, 5, 1], ["a1", "a2", "a3", "a2", "a2"]),
        (Strategy.LEAST_OCCUPANCY, [30, 60, 90, 30], ["a1", "a2", "a3", "a1"]),
    ],
)
def test_strategy_order(strategy: str, talks: list[float] | None, expected: list[str]) -> None:
    w = world(agent("a1"), agent("a2"), agent("a3"), strategy=strategy, wrapup_s=0)
    assert sequence(w, len(expected), talks) == expected


def test_fewest_calls_over_a_window_forgets_old_calls() -> None:
    w = world(agent("a1"), agent("a2"), strategy=Strategy.FEWEST_CALLS, load_window_s=3600, wrapup_s=0)
    for i in range(3):  # a1 takes three calls early (a2 is away)
        if i == 0:
            w.ev(AgentUnregistered(at_us=w.now, agent_id="a2"))
        (o,) = w.offers(w.call(f"early{i}"))
        assert o.agent_id == "a1"
        serve(w, o, talk_s=60)
    w.ev(AgentRegistered(at_us=w.now, agent_id="a2"))
    (o,) = w.offers(w.call("c1"))
    assert o.agent_id == "a2" and "0 calls" in o.candidates[0].why
    serve(w, o, talk_s=60)
    w.now += 3600 * US  # a1's early calls fall out of the window; a2's call too
    (o,) = w.offers(w.call("c2"))
    assert o.agent_id == "a1"  # 0 calls in the window against a2's 1


def test_round_robin_follows_positions_not_ids() -> None:
    w = world(agent("a1", queues={"q": Membership(position=3)}),
              agent("a2", queues={"q": Membership(position=1)}),
              agent("a3", queues={"q": Membership(position=2)}),
              strategy=Strategy.ROUND_ROBIN, wrapup_s=0)
    assert sequence(w, 4) == ["a2", "a3", "a1", "a2"]


def test_random_is_seeded_and_reproducible() -> None:
    def picks(seed: int) -> list[str]:
        w = world(*(agent(f"a{i}") for i in range(1, 9)), strategy=Strategy.RANDOM, seed=seed,
                  wrapup_s=0)
        return sequence(w, 12)

    assert picks(1) == picks(1)
    assert picks(1) != picks(2)
    assert len(set(picks(1))) > 2


def test_ring_all_rings_every_eligible_agent_and_cancels_the_rest_on_answer() -> None:
    w = world(agent("a1"), agent("a2"), agent("a3", skills={}), strategy=Strategy.RING_ALL)
    offers = w.offers(w.call("c1"))
    assert sorted(o.agent_id for o in offers) == ["a1", "a2", "a3"]
    assert len({o.offer_id for o in offers}) == 3
    second = next(o for o in offers if o.agent_id == "a2")
    out = w.ev(OfferAnswered(at_us=w.at(2), offer_id=second.offer_id))
    assert [type(x) for x in out] == [ConnectCall, CancelOffer, CancelOffer]
    assert {x.agent_id for x in out if isinstance(x, CancelOffer)} == {"a1", "a3"}
    assert all(x.cause == "answered_elsewhere" for x in out if isinstance(x, CancelOffer))
    assert w.state.agents["a1"].status == Status.AVAILABLE  # no penalty for losing the race


def test_ring_all_rings_only_the_best_tier() -> None:
    w = world(agent("a1"), agent("a2", queues={"q": Membership(level=2)}), strategy=Strategy.RING_ALL)
    assert [o.agent_id for o in w.offers(w.call("c1"))] == ["a1"]


def test_ring_progressively_adds_an_agent_every_step() -> None:
    w = world(agent("a1"), agent("a2"), agent("a3"), strategy=Strategy.RING_PROGRESSIVELY,
              ring_progressive_step_s=5, offer_timeout_s=60)
    assert [o.agent_id for o in w.offers(w.call("c1"))] == ["a1"]
    assert w.offers(w.ev(Tick(at_us=w.at(4)))) == []
    assert [o.agent_id for o in w.offers(w.ev(Tick(at_us=w.at(5))))] == ["a2"]
    assert [o.agent_id for o in w.offers(w.ev(Tick(at_us=w.at(10))))] == ["a3"]
    assert {a: w.state.agents[a].status for a in ("a1", "a2", "a3")} == dict.fromkeys(
        ("a1", "a2", "a3"), Status.OFFERED)


def test_tiers_open_with_wait() -> None:
    w = world(agent("a1", queues={"q": Membership(level=2)}), tier_wait_s=30)
    assert w.offers(w.call("c1")) == []
    assert w.offers(w.ev(Tick(at_us=w.at(29)))) == []
    assert [o.agent_id for o in w.offers(w.ev(Tick(at_us=w.at(30))))] == ["a1"]


def test_tier_no_agent_no_wait_skips_an_empty_tier() -> None:
    w = world(agent("a1"), agent("a2", queues={"q": Membership(level=2)}), agent("a3", queues={"q": Membership(level=3)}),
              tier_wait_s=30, tier_no_agent_no_wait=True)
    w.ev(AgentUnregistered(at_us=w.now, agent_id="a1"))
    (o,) = w.offers(w.call("c1"))
    assert o.agent_id == "a2"  # tier 1 has nobody ready: no 30 s wait, and tier 2 before 3


# -------------------------------------------------------------------------------- skills ---


@pytest.mark.parametrize(
    ("skills", "prefer_best", "need", "expected"),
    [
        ({"a1": 3, "a2": 7}, True, 5, "a2"),  # a1 lacks the level even though idle longest
        ({"a1": 6, "a2": 9}, True, 5, "a2"),  # best match
        ({"a1": 6, "a2": 9}, False, 5, "a1"),  # strategy decides among qualified
        ({"a1": 0, "a2": 1}, True, 1, "a2"),  # a skill the agent does not have at all
    ],
)
def test_required_skill_and_best_match(skills: dict[str, int], prefer_best: bool, need: int,
                                       expected: str) -> None:
    w = world(*(agent(a, skills={"billing": lvl} if lvl else {}) for a, lvl in skills.items()),
              prefer_best_skill=prefer_best)
    (offer,) = w.offers(w.call("c1", skills=(SkillReq("billing", need),)))
    assert offer.agent_id == expected
    assert "skill billing" in next(c.why for c in offer.candidates if c.agent_id != expected) or \
        not [c for c in offer.candidates if not c.eligible]


def test_skill_relaxation_over_wait_then_any_agent() -> None:
    w = world(agent("a1", skills={"billing": 3}), agent("a2", skills={}),
              relax=(RelaxStep(after_s=30, min_level=3),), any_agent_after_s=90,
              offer_timeout_s=600)
    w.call("c1", skills=(SkillReq("billing", 8),))
    assert w.offers() == []
    assert w.offers(w.ev(Tick(at_us=w.at(29)))) == []
    (o,) = w.offers(w.ev(Tick(at_us=w.at(30))))
    assert o.agent_id == "a1" and "relaxed to level 3" in o.reason
    w.call("c2", skills=(SkillReq("tech", 5),), at=31)
    assert w.offers(w.ev(Tick(at_us=w.at(120)))) == []
    (o2,) = w.offers(w.ev(Tick(at_us=w.at(121))))
    assert o2.agent_id == "a2" and "waived" in o2.reason


def test_queue_skills_apply_to_every_call() -> None:
    w = world(agent("a1", skills={}), agent("a2", skills={"vip": 5}), skills=(SkillReq("vip", 5),))
    assert [o.agent_id for o in w.offers(w.call("c1"))] == ["a2"]


def test_language() -> None:
    w = world(agent("a1"), agent("a2", languages=frozenset({"vi", "en"})))
    assert [o.agent_id for o in w.offers(w.call("c1", language="en"))] == ["a2"]


# ----------------------------------------------------------------------------------- geo ---


def test_geo_prefers_caller_region_from_number_then_widens() -> None:
    w = world(agent("a1", region="north"), agent("a2", region="south"), geo_widen_after_s=20)
    (o,) = w.offers(w.call("c1", caller="028 3829 1234"))
    assert o.agent_id == "a2" and "same region" in o.reason
    w2 = world(agent("a1", region="north"), geo_widen_after_s=20)
    assert w2.offers(w2.call("c1", caller="+842838291234")) == []
    assert w2.offers(w2.ev(Tick(at_us=w2.at(19)))) == []
    assert [o.agent_id for o in w2.offers(w2.ev(Tick(at_us=w2.at(20))))] == ["a1"]
    w3 = world(agent("a1", region="north"), agent("a2", region="north"), agent("a3", region="south"),
               geo_widen_after_s=20)
    (o3,) = w3.offers(w3.call("c1", caller="+842838291234"))
    assert o3.agent_id == "a3"
    assert any(not c.eligible and "2 agent(s) of other regions" in c.why for c in o3.candidates)


@pytest.mark.parametrize(
    ("ivr", "did_region", "caller", "expected"),
    [
        (None, None, "0236 3822 222", "central"),  # area code
        (None, "north", "0236 3822 222", "north"),  # DID beats the number
        ("south", "north", "0236 3822 222", "south"),  # IVR choice beats both
        (None, None, "0912345678", None),  # a mobile says nothing
    ],
)
def test_call_region_source(ivr: str | None, did_region: str | None, caller: str,
                            expected: str | None) -> None:
    w = world()
    w.ev(ConfigChanged(at_us=T0, entity=Did("19001234", "t", region=did_region)))
    w.call("c1", caller=caller, did="19001234", region=ivr)
    assert w.state.calls["c1"].region == expected


def test_tenant_configured_mobile_prefix_gives_a_region() -> None:
    from routing import Region
    w = world(tenant=Tenant("t", region_prefixes={"0912": Region("0912", "Hà Nội", "north")}))
    w.call("c1", caller="0912345678")
    w.call("c2", caller="0913345678")
    assert (w.state.calls["c1"].region, w.state.calls["c2"].region) == ("north", None)


# ---------------------------------------------------------------------------------- time ---

OFFICE = Schedule.weekly("08:00", "17:00", id="office", holidays=tet_holidays(2026))


@pytest.mark.parametrize(
    ("utc_offset_s", "open_"),
    [
        (0, True),  # Monday 10:00 local
        (-2 * 3600 - 1, False),  # 07:59:59
        (7 * 3600 - 1, True),  # 16:59:59
        (7 * 3600, False),  # 17:00
        (5 * 86400, False),  # Saturday
    ],
)
def test_closed_queue_runs_after_hours_action(utc_offset_s: int, open_: bool) -> None:
    w = world(agent("a1"), schedule=OFFICE, after_hours=Action(ActionKind.VOICEMAIL, "box-q"))
    out = w.call("c1", at=utc_offset_s)
    if open_:
        assert [type(x) for x in out] == [OfferCall]
    else:
        (x,) = out
        assert isinstance(x, RunAfterHoursAction) and x.action.target == "box-q"
        assert "closed" in x.reason and "c1" not in w.state.calls


def test_tet_is_closed() -> None:
    assert {"2026-02-16", "2026-02-17", "2026-02-21"} <= tet_holidays(2026)
    w = world(agent("a1"), schedule=OFFICE)
    # Tuesday 2026-02-17 10:00 local = 03:00 UTC
    w.now = 1_771_297_200 * US
    assert [x.type for x in w.call("c1")] == ["run_after_hours_action"]


def test_agents_only_get_calls_in_their_shift() -> None:
    late = Schedule.weekly("13:00", "22:00", days=tuple(range(7)))
    w = world(agent("a1", shift=late), agent("a2"))
    (o,) = w.offers(w.call("c1"))
    assert o.agent_id == "a2"
    assert any(c.agent_id == "a1" and c.why == "out of shift" for c in o.candidates)
    w2 = world(agent("a1", shift=late))
    assert w2.offers(w2.call("c1")) == []
    assert [o.agent_id for o in w2.offers(w2.ev(Tick(at_us=w2.at(3 * 3600))))] == ["a1"]


# ---------------------------------------------------------------------------------- load ---


def test_tenant_plan_limit_caps_concurrent_calls() -> None:
    w = world(agent("a1"), agent("a2"), tenant=Tenant("t", max_concurrent_calls=1), wrapup_s=0)
    (o1,) = w.offers(w.call("c1"))
    assert w.offers(w.call("c2")) == []
    serve(w, o1)
    assert [o.call_id for o in w.offers(w.log[-1:])] == ["c2"]


def test_no_offer_during_wrap_up() -> None:
    w = world(agent("a1"), wrapup_s=30)
    (o1,) = w.offers(w.call("c1"))
    serve(w, o1, talk_s=10)
    assert w.offers(w.call("c2")) == []
    assert w.offers(w.ev(Tick(at_us=w.now + 29 * US))) == []
    assert [o.call_id for o in w.offers(w.ev(Tick(at_us=w.now + 30 * US)))] == ["c2"]


def test_a_wrap_up_over_by_a_callers_arrival_frees_the_agent_without_a_tick() -> None:
    """Every event tells the time: a caller arriving after the agent's wrap-up ended is
    offered at once, not at the next tick (ticks come once a second)."""
    w = world(agent("a1"), wrapup_s=30)
    (o1,) = w.offers(w.call("c1"))
    serve(w, o1, talk_s=10)
    assert w.offers(w.call("c2", at=10 + 29)) == []  # 1 s of wrap-up left
    # c3's arrival at 30 s of wrap-up ends it: the agent takes the waiting c2, no tick
    assert [o.call_id for o in w.offers(w.call("c3", at=10 + 30))] == ["c2"]


def test_a_waiting_caller_is_offered_at_the_first_event_after_the_wrap_up() -> None:
    w = world(agent("a1"), agent("a2"), wrapup_s=5)
    (o1,) = w.offers(w.call("c1"))
    serve(w, o1, talk_s=10)
    (o2,) = w.offers(w.call("c2"))  # a2
    assert w.offers(w.call("c3")) == []  # a1 in wrap-up, a2 ringing
    # a2's answer 6 s later is the first event after a1's wrap-up: c3 goes to a1 then
    got = w.offers(w.ev(OfferAnswered(at_us=w.now + 6 * US, offer_id=o2.offer_id)))
    assert [(o.call_id, o.agent_id) for o in got] == [("c3", "a1")]


def test_max_concurrent_interactions() -> None:
    w = world(agent("a1", max_concurrent=2))
    (o1,) = w.offers(w.call("c1"))
    w.ev(OfferAnswered(at_us=w.at(1), offer_id=o1.offer_id))
    w.ev(CallConnected(at_us=w.at(1), call_id="c1"))
    assert [o.agent_id for o in w.offers(w.call("c2", at=2))] == ["a1"]
    assert w.offers(w.call("c3", at=3)) == []


# ------------------------------------------------------------------------------ priority ---


def _queued(w: World, calls: list[tuple[str, float, dict]]) -> list[str]:
    """Queue calls with nobody free, then free one agent at a time: service order."""
    for cid, at, kw in calls:
        w.call(cid, at=at, **kw)
    got = []
    for _ in calls:
        w.now += US
        out = w.ev(WrapUpEnded(at_us=w.now, agent_id="a1"))
        (o,) = w.offers(out)
        got.append(o.call_id)
        w.ev(OfferAnswered(at_us=w.now, offer_id=o.offer_id))
        w.ev(CallConnected(at_us=w.now, call_id=o.call_id))
        w.ev(CallEnded(at_us=w.now, call_id=o.call_id))
    return got


@pytest.mark.parametrize(
    ("calls", "expected"),
    [
        ([("c1", 0, {}), ("c2", 1, {}), ("c3", 2, {})], ["c1", "c2", "c3"]),  # arrival order
        ([("c1", 0, {}), ("c2", 1, {"vip": True})], ["c2", "c1"]),
        ([("c1", 0, {}), ("c2", 1, {"priority": 2})], ["c2", "c1"]),
        # c1 waited 200 s: 3 aging levels beat c2's priority 2
        ([("c1", 0, {}), ("c2", 200, {"priority": 2})], ["c1", "c2"]),
    ],
)
def test_priority_vip_aging_and_arrival_order(calls: list, expected: list[str]) -> None:
    w = world(agent("a1"), aging_s=60, wrapup_s=3600)
    w.ev(AgentUnregistered(at_us=w.now, agent_id="a1"))
    w.ev(AgentRegistered(at_us=w.now, agent_id="a1"))
    (o,) = w.offers(w.call("c0"))
    serve(w, o, talk_s=1)  # a1 now in a long wrap-up; ends it explicitly per call below
    assert _queued(w, calls) == expected


# -------------------------------------------------------------------------------- sticky ---


def test_sticky_agent_within_wait_bound() -> None:
    w = world(agent("a1"), agent("a2"), sticky_wait_s=30, wrapup_s=0)
    (ox,) = w.offers(w.call("x", caller="0281234567"))  # a1 (longest idle)
    (o,) = w.offers(w.call("c1", caller="0912345678", at=2))
    assert (ox.agent_id, o.agent_id) == ("a1", "a2")
    serve(w, ox, talk_s=1)  # a1 free first: the longest idle from now on
    serve(w, o, talk_s=5)
    (o2,) = w.offers(w.call("c2", caller="+84 912 345 678"))
    assert o2.agent_id == "a2" and "sticky" in o2.reason
    w.ev(OfferAnswered(at_us=w.now, offer_id=o2.offer_id))
    w.ev(CallConnected(at_us=w.now, call_id="c2"))
    # a2 busy now: the next call from that caller waits for a2, then anyone after the bound
    assert w.call("c3", caller="84912345678") == []
    assert [o.agent_id for o in w.offers(w.ev(Tick(at_us=w.now + 30 * US)))] == ["a1"]


# ------------------------------------------------------------------------------ overflow ---


def test_overflow_after_max_wait() -> None:
    w = world(max_wait_s=120, max_wait_action=Action(ActionKind.QUEUE, "q2"), no_agent_action=None)
    w.call("c1")
    assert decide(w.state, w.at(119)) == []
    (x,) = w.ev(Tick(at_us=w.at(120)))
    assert isinstance(x, OverflowCall) and x.cause == "max_wait" and x.action.target == "q2"
    assert not w.state.queue_calls["q"]


def test_overflow_to_another_queue_moves_the_call() -> None:
    q1 = Queue(id="q", tenant="t", max_wait_s=60, max_wait_action=Action(ActionKind.QUEUE, "q2"))
    q2 = Queue(id="q2", tenant="t")
    w = world(agent("a1", queues=("q2",)), agent("a2", queues=("q",)), queues=(q1, q2))
    w.ev(AgentUnregistered(at_us=w.now, agent_id="a2"))  # q's only agent offline: calls wait
    assert w.call("c1", priority=3) == []
    overflow, offer = w.ev(Tick(at_us=w.at(60)))
    assert isinstance(overflow, OverflowCall) and overflow.action.target == "q2"
    assert isinstance(offer, OfferCall) and (offer.queue_id, offer.agent_id) == ("q2", "a1")
    assert w.state.calls["c1"].call.queue == "q2" and w.state.calls["c1"].call.priority == 3


def test_overflow_on_queue_length() -> None:
    w = world(agent("a1"), max_queue_len=2)
    w.ev(AgentUnregistered(at_us=w.now, agent_id="a1"))  # logged in, offline: calls wait
    w.call("c1")
    w.call("c2")
    (x,) = w.call("c3")
    assert isinstance(x, OverflowCall) and x.cause == "max_queue_len" and x.call_id == "c3"


def test_no_agent_logged_in_action() -> None:
    w = world(agent("a1"), login=False, no_agent_action=Action(ActionKind.FORWARD, "+842838291234"))
    (x,) = w.call("c1")
    assert isinstance(x, OverflowCall) and x.cause == "no_agent" and x.action.kind == "forward"


def test_forward_to_mobile_when_no_extension_online() -> None:
    w = world(agent("a1", mobile="+84912000001"), agent("a2", mobile="+84912000002"),
              agent("a3"), forward_to_mobile=True)
    for a in ("a1", "a2", "a3"):
        w.ev(AgentUnregistered(at_us=w.now, agent_id=a))
    (x,) = w.call("c1")
    assert isinstance(x, ForwardToMobile) and (x.agent_id, x.mobile) == ("a1", "+84912000001")
    (y,) = w.call("c2")
    assert isinstance(y, ForwardToMobile) and y.agent_id == "a2"  # a1 is busy on c1
    assert w.call("c3") == []  # nobody left with a free mobile: wait
    w.ev(CallConnected(at_us=w.at(5), call_id="c1"))
    w.ev(CallEnded(at_us=w.at(60), call_id="c1"))
    assert [type(x) for x in w.log[-1:]] == [ForwardToMobile]


# -------------------------------------------------------------------------------- offers ---


def test_a_ring_no_answer_the_switch_reports_reoffers_and_penalizes() -> None:
    w = world(agent("a1"), agent("a2"), offer_timeout_s=15)
    (o,) = w.offers(w.call("c1"))
    assert o.expires_us == T0 + 15 * US and o.agent_id == "a1"
    assert w.ev(Tick(at_us=w.at(13.9))) == []
    # the switch stops ringing a second before the ring time and says NO_ANSWER
    (offer,) = w.ev(OfferRejected(at_us=w.at(14), offer_id=o.offer_id, cause="no_answer"))
    assert isinstance(offer, OfferCall) and offer.agent_id == "a2" and offer.offer_id != o.offer_id
    assert (o.attempt, offer.attempt) == (1, 2)
    assert w.state.agents["a1"].status == Status.PENALTY


def test_no_word_from_the_switch_gives_the_offer_up_without_penalty() -> None:
    """The log was slow or the offer never rang: past the ring time and a grace the router
    gives the offer up and offers the next agent; the agent is not blamed."""
    w = world(agent("a1"), agent("a2"), offer_timeout_s=15)
    (o,) = w.offers(w.call("c1"))
    assert w.ev(Tick(at_us=w.at(16.9))) == []
    cancel, offer = w.ev(Tick(at_us=w.at(17)))
    assert isinstance(cancel, CancelOffer) and cancel.cause == "not_delivered"
    assert "no penalty" in cancel.reason and cancel.agent_id == "a1"
    assert isinstance(offer, OfferCall) and offer.agent_id == "a2"
    assert w.state.agents["a1"].status == Status.AVAILABLE
    assert not w.state.agents["a1"].failures


def test_abandon_while_ringing_cancels_offer_without_penalty() -> None:
    w = world(agent("a1"))
    (o,) = w.offers(w.call("c1"))
    (x,) = w.ev(CallAbandoned(at_us=w.at(3), call_id="c1"))
    assert isinstance(x, CancelOffer) and x.offer_id == o.offer_id and x.cause == "call_gone"
    assert w.state.agents["a1"].status == Status.AVAILABLE and not w.state.offers


def test_answer_after_caller_hung_up_releases_agent() -> None:
    w = world(agent("a1"))
    (o,) = w.offers(w.call("c1"))
    w.state = apply(w.state, CallAbandoned(at_us=w.at(3), call_id="c1"))  # cancel not yet taken
    (x,) = w.ev(OfferAnswered(at_us=w.at(3), offer_id=o.offer_id))
    assert isinstance(x, CancelOffer) and x.cause == "call_gone"
    assert w.state.agents["a1"].status == Status.AVAILABLE


def test_decision_ids_are_deterministic_uuids() -> None:
    def ids() -> list[str]:
        w = world(agent("a1"), agent("a2"), offer_timeout_s=5)
        w.call("c1")
        w.ev(Tick(at_us=w.at(5)))
        return [x.decision_id for x in w.log] + [x.offer_id for x in w.offers()]

    first = ids()
    assert first == ids() and len(set(first)) == len(first)
    assert all(uuid.UUID(i).version == 5 for i in first)


def test_every_decision_explains_itself() -> None:
    w = world(agent("a1", skills={"billing": 4}), agent("a2"))
    (o,) = w.offers(w.call("c1", skills=(SkillReq("billing", 2),)))
    assert o.chosen == ("a1",) and o.queue_id == "q" and o.call_id == "c1"
    assert o.candidates[0].agent_id == "a1" and o.candidates[0].eligible
    assert any(not c.eligible and "skill billing 0 < 2" in c.why for c in o.candidates)
    assert "longest-idle-agent" in o.reason and "waited 0 s" in o.reason


def test_unknown_queue_is_hung_up_not_stranded() -> None:
    w = world()
    (x,) = w.call("c1", queue="nope")
    assert isinstance(x, OverflowCall) and x.cause == "unknown_queue"


@pytest.mark.parametrize(
    ("setup", "fragment"),
    [
        ("skill", "skill billing 2 < 5"),
        ("region", "held to south agents until 60 s"),
        ("busy", "every online agent of queue q is busy"),
        ("offline", "no agent of queue q is online"),
        ("limit", "plan limit of 1"),
        ("fine", "offer to a1"),
    ],
)
def test_explain_why_a_call_waits(setup: str, fragment: str) -> None:
    from routing import Call, CallEnqueued, explain, apply

    w = world(agent("a1", skills={"billing": 2}, region="north"), geo_widen_after_s=60,
              tenant=Tenant("t", max_concurrent_calls=1))
    kw: dict = {}
    if setup == "skill":
        kw["skills"] = (SkillReq("billing", 5),)
    elif setup == "region":
        kw["region"] = "south"
    elif setup == "busy":
        w.ev(AgentUnregistered(at_us=w.now, agent_id="a1"))
        w.ev(AgentRegistered(at_us=w.now, agent_id="a1"))
        from routing import AgentPaused
        w.ev(AgentPaused(at_us=w.now, agent_id="a1"))
    elif setup == "offline":
        w.ev(AgentUnregistered(at_us=w.now, agent_id="a1"))
    elif setup == "limit":
        w.state = apply(w.state, CallEnqueued(at_us=w.now, call=Call(id="c0", tenant="t", queue="q")))
        w.ev(Tick(at_us=w.now))  # c0 rings a1: the tenant's single slot is in use
        w.ev(ConfigChanged(at_us=w.now, entity=agent("a2")))
        from routing import AgentLoggedIn
        w.ev(AgentLoggedIn(at_us=w.now, agent_id="a2"))
        w.ev(AgentRegistered(at_us=w.now, agent_id="a2"))
    # Fold the call without deciding, as a supervisor would ask about a waiting call.
    w.state = apply(w.state, CallEnqueued(at_us=w.now, call=Call(id="c1", tenant="t", queue="q", **kw)))
    reason, cands = explain(w.state, "c1", w.now)
    assert fragment in reason + " ".join(c.why for c in cands)
    assert decide(w.state, w.now) == decide(w.state, w.now)  # explaining changed nothing
