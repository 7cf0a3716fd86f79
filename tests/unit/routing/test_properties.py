"""Hypothesis properties of the reducer and the policy over random worlds and event runs."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from routing import (
    CAUSES,
    US,
    Action,
    ActionKind,
    Agent,
    AgentLoggedIn,
    AgentLoggedOut,
    AgentPaused,
    AgentRegistered,
    AgentResumed,
    AgentUnregistered,
    Call,
    CallAbandoned,
    CallConnected,
    CallEnded,
    CallEnqueued,
    CallStatus,
    Cause,
    ConnectCall,
    ConfigChanged,
    DecisionMade,
    ForwardToMobile,
    Membership,
    OfferAnswered,
    OfferCall,
    OfferRejected,
    Penalty,
    Queue,
    RelaxStep,
    Schedule,
    SkillReq,
    State,
    Status,
    Strategy,
    Tenant,
    Tick,
    WrapUpEnded,
    apply,
    decide,
    is_ready,
    local_time,
    replay,
)

from routing.policy import _frees
from routing.state import sticky_agent

from ._world import T0, agent, world

pytestmark = pytest.mark.routing

STRATEGY_NAMES = {Strategy.LONGEST_IDLE, Strategy.ROUND_ROBIN, Strategy.TOP_DOWN, Strategy.RING_ALL,
                  Strategy.FEWEST_CALLS, Strategy.LEAST_TALK_TIME, Strategy.RANDOM,
                  Strategy.RING_PROGRESSIVELY, Strategy.LEAST_OCCUPANCY}
PROPS = settings(max_examples=60, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

SHIFTS = (None, Schedule.weekly("08:00", "10:30", days=tuple(range(7))),
          Schedule.weekly("10:15", "23:00", days=tuple(range(7))))
REGIONS = (None, "north", "central", "south")


@st.composite
def worlds(draw: Any) -> tuple[list[Any], int]:
    """Configuration events for a random tenant: queues of every strategy, varied agents."""
    nq = draw(st.integers(1, 3))
    queues = []
    for i in range(nq):
        queues.append(Queue(
            id=f"q{i}", tenant="t", strategy=draw(st.sampled_from(sorted(
                {Strategy.LONGEST_IDLE, Strategy.ROUND_ROBIN, Strategy.TOP_DOWN, Strategy.RING_ALL,
                 Strategy.FEWEST_CALLS, Strategy.LEAST_TALK_TIME, Strategy.RANDOM,
                 Strategy.RING_PROGRESSIVELY, Strategy.LEAST_OCCUPANCY}))),
            seed=draw(st.integers(0, 9)),
            relax=draw(st.sampled_from(((), (RelaxStep(20, 3),), (RelaxStep(10, 5), RelaxStep(40, 1))))),
            any_agent_after_s=draw(st.sampled_from((None, 60))),
            tier_wait_s=draw(st.sampled_from((None, 0, 15))),
            tier_no_agent_no_wait=draw(st.booleans()),
            geo_widen_after_s=draw(st.sampled_from((None, 30))),
            sticky_wait_s=draw(st.sampled_from((0, 20))),
            load_window_s=draw(st.sampled_from((None, 300))),
            offer_timeout_s=draw(st.integers(5, 30)),
            ring_progressive_step_s=draw(st.integers(1, 10)),
            wrapup_s=draw(st.integers(0, 30)),
            max_wait_s=draw(st.sampled_from((None, 90))),
            max_wait_action=Action(ActionKind.QUEUE, f"q{(i + 1) % nq}"),
            max_queue_len=draw(st.sampled_from((None, 3))),
            no_agent_action=draw(st.sampled_from((None, Action(ActionKind.VOICEMAIL)))),
            forward_to_mobile=draw(st.booleans()),
        ))
    na = draw(st.integers(1, 7))
    events: list[Any] = [ConfigChanged(at_us=T0, entity=Tenant("t", draw(st.integers(0, 4))))]
    events += [ConfigChanged(at_us=T0, entity=q) for q in queues]
    for i in range(na):
        qs = draw(st.lists(st.integers(0, nq - 1), min_size=1, max_size=nq, unique=True))
        events.append(ConfigChanged(at_us=T0, entity=Agent(
            id=f"a{i}", tenant="t", extension=f"10{i:02d}",
            queues={f"q{q}": Membership(level=draw(st.integers(1, 2)), position=draw(st.integers(1, 5)))
                    for q in qs},
            skills={k: draw(st.integers(1, 10)) for k in draw(st.sets(st.sampled_from("xyz")))},
            languages=draw(st.sampled_from((frozenset({"vi"}), frozenset({"vi", "en"})))),
            region=draw(st.sampled_from(REGIONS)), shift=draw(st.sampled_from(SHIFTS)),
            mobile=draw(st.sampled_from(("", f"+8491200000{i}"))),
            max_concurrent=draw(st.sampled_from((1, 1, 2))),
            penalties={c: Penalty(draw(st.integers(0, 20)), draw(st.integers(0, 3))) for c in CAUSES},
        )))
        if draw(st.booleans()) or i == 0:
            events.append(AgentLoggedIn(at_us=T0, agent_id=f"a{i}"))
            events.append(AgentRegistered(at_us=T0, agent_id=f"a{i}"))
    return events, na


OPS = st.lists(st.tuples(
    st.sampled_from(("enqueue", "enqueue", "enqueue", "advance", "advance", "answer", "answer",
                     "reject", "connect", "connect", "end", "end", "abandon", "pause", "resume",
                     "unregister", "register", "logout", "login", "wrapup_end", "dup", "dup")),
    st.integers(0, 50), st.integers(0, 50)), min_size=5, max_size=60)


def _pick(seq: list[Any], k: int) -> Any:
    return seq[k % len(seq)] if seq else None


def _event(s: State, now: int, op: str, k: int, j: int, nq: int, na: int, n: int) -> Any:
    agents = sorted(s.agents)
    aid = f"a{k % na}"
    ringing = sorted(o for o, x in s.offers.items() if not x.answered)
    if op == "enqueue":
        return CallEnqueued(at_us=now, call=Call(
            id=f"c{n}", tenant="t", queue=f"q{k % nq}", caller=("0912345678", "02838291234", "")[j % 3],
            priority=j % 3, vip=j % 7 == 0,
            skills=((SkillReq("xyz"[j % 3], 1 + k % 8),) if j % 2 else ()),
            language=("en" if j % 5 == 0 else None), region=REGIONS[k % 4]))
    if op == "advance":
        return Tick(at_us=now)
    if op == "answer" and ringing:
        return OfferAnswered(at_us=now, offer_id=_pick(ringing, k))
    if op == "reject" and ringing:
        return OfferRejected(at_us=now, offer_id=_pick(ringing, k), cause=CAUSES[j % 4])
    if op == "connect":
        cs = sorted(c for c, x in s.calls.items() if x.status == CallStatus.CONNECTING)
        return CallConnected(at_us=now, call_id=_pick(cs, k)) if cs else Tick(at_us=now)
    if op == "end":
        cs = sorted(c for c, x in s.calls.items() if x.status == CallStatus.CONNECTED)
        return CallEnded(at_us=now, call_id=_pick(cs, k)) if cs else Tick(at_us=now)
    if op == "abandon":
        cs = sorted(s.calls)
        return CallAbandoned(at_us=now, call_id=_pick(cs, k)) if cs else Tick(at_us=now)
    kinds = {"pause": AgentPaused, "resume": AgentResumed, "unregister": AgentUnregistered,
             "register": AgentRegistered, "logout": AgentLoggedOut, "login": AgentLoggedIn,
             "wrapup_end": WrapUpEnded}
    if op in kinds and agents:
        return kinds[op](at_us=now, agent_id=aid)
    return Tick(at_us=now)


def check_indexes(s: State) -> None:
    """The reducer's indexes agree with a from-scratch computation."""
    for q in s.queues:
        members = {a for a, cfg in s.agent_cfg.items() if q in cfg.queues}
        assert s.members.get(q, frozenset()) == members
        ready = {a for a in members if is_ready(s.agents[a], s.agent_cfg[a])}
        assert s.ready.get(q, frozenset()) == ready
        for region in REGIONS:
            assert s.ready_region.get((q, region), frozenset()) == {
                a for a in ready if s.agent_cfg[a].region == region}
        assert s.online.get(q, 0) == sum(s.agents[a].logged_in and s.agents[a].registered for a in members)
        assert s.logged.get(q, 0) == sum(s.agents[a].logged_in for a in members)
        in_q = [c for c, x in s.calls.items()
                if x.call.queue == q and x.status in (CallStatus.WAITING, CallStatus.RINGING)]
        assert sorted(s.queue_calls.get(q, ())) == sorted(in_q)
    active = sum(x.status in (CallStatus.RINGING, CallStatus.CONNECTING, CallStatus.CONNECTED)
                 for x in s.calls.values())
    assert s.tenant_active.get("t", 0) == active
    ringing = Counter(o.agent_id for o in s.offers.values() if not o.answered)
    assert all(n == 1 for n in ringing.values()), ringing  # never two offers ringing at once
    for o in s.offers.values():
        if not o.answered:
            assert s.agents[o.agent_id].offer_id == o.offer_id


def check_offer(s: State, dec: OfferCall, now: int) -> None:
    """An offer goes only to a ready, in-shift, qualified member of the call's queue."""
    a, cfg = s.agents[dec.agent_id], s.agent_cfg[dec.agent_id]
    assert is_ready(a, cfg), (a, dec.reason)
    assert a.status in (Status.AVAILABLE, Status.ON_CALL)
    assert a.wrap_until_us is None and a.penalty_until_us is None and a.pause_reason is None
    assert cfg.shift is None or cfg.shift.is_open(local_time(now))
    c, q = s.calls[dec.call_id], s.queues[dec.queue_id]
    assert q.id in cfg.queues and c.call.queue == q.id
    assert c.status in (CallStatus.WAITING, CallStatus.RINGING)
    wait = (now - c.enqueued_us) // US
    if q.any_agent_after_s is None or wait < q.any_agent_after_s:
        relaxed = min([r.min_level for r in q.relax if wait >= r.after_s], default=None)
        for r in q.skills + c.call.skills:
            need = r.min_level if relaxed is None else min(r.min_level, relaxed)
            assert cfg.skills.get(r.skill, 0) >= need, (cfg.skills, r, dec.reason)
        if c.call.language:
            assert c.call.language in cfg.languages


def could_serve(s: State, c: Any, aid: str, now: int) -> bool:
    """Oracle, written from the rules rather than from policy.py: may ``aid`` take ``c`` now?"""
    q, a, cfg = s.queues[c.call.queue], s.agents[aid], s.agent_cfg[aid]
    if not is_ready(a, cfg) or (cfg.shift is not None and not cfg.shift.is_open(local_time(now))):
        return False
    wait = (now - c.enqueued_us) // US
    sticky = sticky_agent(s, c.caller_key) if q.sticky_wait_s and c.caller_key else None
    if (sticky is not None and sticky != aid and wait < q.sticky_wait_s and sticky in s.agents
            and s.agents[sticky].logged_in and sticky in s.members.get(q.id, ())):
        return False
    if q.tier_wait_s is not None and not q.tier_no_agent_no_wait:
        if q.tier_wait_s > 0 and cfg.queues[q.id].level > 1 + wait // q.tier_wait_s:
            return False
    if (c.region is not None and q.geo_widen_after_s is not None and wait < q.geo_widen_after_s
            and cfg.region != c.region):
        return False
    if q.any_agent_after_s is None or wait < q.any_agent_after_s:
        relaxed = min([r.min_level for r in q.relax if wait >= r.after_s], default=None)
        for r in q.skills + c.call.skills:
            if cfg.skills.get(r.skill, 0) < (r.min_level if relaxed is None else min(r.min_level, relaxed)):
                return False
        if c.call.language and c.call.language not in cfg.languages:
            return False
    return True


def check_nothing_left_undone(s: State, now: int) -> None:
    """After a round, no waiting call has a free agent who could take it (greedy is complete)."""
    lt = local_time(now)
    for c in s.calls.values():
        if c.status != CallStatus.WAITING:
            continue
        q = s.queues[c.call.queue]
        if q.schedule is not None and not q.schedule.is_open(lt):
            continue
        t = s.tenants["t"]
        if t.max_concurrent_calls and s.tenant_active.get("t", 0) >= t.max_concurrent_calls:
            continue
        free = [aid for aid in sorted(s.ready.get(q.id, ())) if could_serve(s, c, aid, now)]
        assert not free, (c.id, free)


@PROPS
@given(w=worlds(), ops=OPS, gaps=st.lists(st.integers(0, 40), min_size=60, max_size=60))
def test_random_runs_keep_every_invariant(w: tuple[list[Any], int], ops: list, gaps: list[int]) -> None:
    config, na = w
    nq = sum(isinstance(e, ConfigChanged) and isinstance(e.entity, Queue) for e in config)
    s = replay(config)
    log: list[Any] = list(config)
    now = T0
    for i, (op, k, j) in enumerate(ops):
        now += gaps[i] * US if op == "advance" else US // 10
        # "dup": at-least-once delivery hands us the previous event again.
        if op == "dup":
            ev = next(x for x in reversed(log) if not isinstance(x, DecisionMade))
        else:
            ev = _event(s, now, op, k, j, nq, na, i)
        s = apply(s, ev)
        log.append(ev)
        for _ in range(4):  # rounds, as step() runs them
            out = decide(s, now)
            assert out == decide(s, now)  # same inputs, same decisions
            offered = [x.agent_id for x in out if isinstance(x, OfferCall)]
            assert len(offered) == len(set(offered))  # one offer per agent per decision round
            for x in out:
                if isinstance(x, OfferCall):
                    check_offer(s, x, now)
            for x in out:
                s = apply(s, DecisionMade(at_us=now, decision=x))
                log.append(DecisionMade(at_us=now, decision=x))
            check_indexes(s)
            if not any(_frees(x) for x in out):
                break
        check_nothing_left_undone(s, now)
    assert replay(log) == s  # replaying the log gives the same state
    by_id: dict[str, Any] = {}
    for x in log:  # an idempotency key names one decision, however often it is taken
        if isinstance(x, DecisionMade):
            assert by_id.setdefault(x.decision.decision_id, x.decision) == x.decision


@PROPS
@given(n_agents=st.integers(2, 6), n_calls=st.integers(1, 40),
       talks=st.lists(st.integers(1, 300), min_size=40, max_size=40))
def test_round_robin_spreads_within_one(n_agents: int, n_calls: int, talks: list[int]) -> None:
    w = world(*(agent(f"a{i}") for i in range(1, n_agents + 1)), strategy=Strategy.ROUND_ROBIN,
              wrapup_s=0)
    counts: Counter[str] = Counter()
    for i in range(n_calls):
        w.now += US
        (o,) = w.offers(w.call(f"c{i}"))
        counts[o.agent_id] += 1
        w.ev(OfferAnswered(at_us=w.now, offer_id=o.offer_id))
        w.ev(CallConnected(at_us=w.now, call_id=o.call_id))
        w.now += talks[i] * US
        w.ev(CallEnded(at_us=w.now, call_id=o.call_id))
    per_agent = [counts[f"a{i}"] for i in range(1, n_agents + 1)]
    assert max(per_agent) - min(per_agent) <= 1


@PROPS
@given(arrivals=st.lists(st.tuples(st.integers(1, 40), st.integers(0, 3), st.booleans()),
                         min_size=1, max_size=40),
       talk_s=st.integers(5, 120), aging_s=st.integers(5, 60))
def test_aging_prevents_starvation(arrivals: list[tuple[int, int, bool]], talk_s: int,
                                   aging_s: int) -> None:
    """A priority-0 caller is served before anyone arriving (P+1)·aging_s after it, however
    many higher-priority calls keep coming (P = the highest priority seen)."""
    vip_boost = 2
    w = world(agent("a1"), aging_s=aging_s, vip_boost=vip_boost, wrapup_s=0, offer_timeout_s=10**6)
    w.ev(AgentPaused(at_us=w.now, agent_id="a1"))
    w.call("low")
    t, arrival_of = 0, {"low": w.now}
    for i, (gap, prio, vip) in enumerate(arrivals):
        t += gap
        w.call(f"c{i}", at=t, priority=prio, vip=vip)
        arrival_of[f"c{i}"] = w.now
    top = max(p + (vip_boost if v else 0) for _, p, v in arrivals)
    w.ev(AgentResumed(at_us=w.now, agent_id="a1"))
    served: list[str] = []
    for _ in range(len(arrivals) + 1):
        offers = w.offers(w.log[-3:])
        offers = [o for o in offers if o.call_id not in served]
        if not offers:
            break
        o = offers[-1]
        served.append(o.call_id)
        w.ev(OfferAnswered(at_us=w.now, offer_id=o.offer_id))
        w.ev(CallConnected(at_us=w.now, call_id=o.call_id))
        w.now += talk_s * US
        w.ev(CallEnded(at_us=w.now, call_id=o.call_id))
        if "low" in served:
            break
    assert "low" in served
    bound = arrival_of["low"] + (top + 1) * aging_s * US
    assert all(arrival_of[c] < bound for c in served[:-1])


@PROPS
@given(delay=st.integers(0, 30), max_count=st.integers(0, 4),
       outcomes=st.lists(st.sampled_from(("answer",) + CAUSES), min_size=1, max_size=12))
def test_ring_no_answer_counts_follow_configuration(delay: int, max_count: int,
                                                   outcomes: list[str]) -> None:
    pens = {c: Penalty(delay, max_count) for c in CAUSES}
    w = world(agent("a1", penalties=pens), wrapup_s=0, offer_timeout_s=15)
    expect: Counter[str] = Counter()
    for i, outcome in enumerate(outcomes):
        a = w.state.agents["a1"]
        if a.pause_reason is not None:
            w.ev(AgentResumed(at_us=w.now, agent_id="a1"))
            expect.clear()
        w.now += (delay + 1) * US
        out = w.ev(Tick(at_us=w.now)) + w.call(f"c{i}")
        offers = [o for o in w.offers(out) if o.call_id == f"c{i}"] or w.offers(out)
        (o,) = offers[-1:]
        if outcome == "answer":
            w.ev(OfferAnswered(at_us=w.now, offer_id=o.offer_id))
            w.ev(CallConnected(at_us=w.now, call_id=o.call_id))
            w.ev(CallEnded(at_us=w.now, call_id=o.call_id))
            expect.clear()
        else:
            if outcome == Cause.NO_ANSWER:  # the switch rings out a second before the timer
                w.now = o.expires_us - US
            w.ev(OfferRejected(at_us=w.now, offer_id=o.offer_id, cause=outcome))
            w.ev(CallAbandoned(at_us=w.now, call_id=o.call_id))
            expect[outcome] += 1
        a = w.state.agents["a1"]
        assert dict(a.failures) == {k: v for k, v in expect.items() if v}
        hit_max = outcome != "answer" and max_count and expect[outcome] >= max_count
        if hit_max:
            assert a.status == Status.PAUSED and a.pause_reason == f"max_{outcome}"
        elif outcome != "answer" and delay:
            assert a.status == Status.PENALTY and a.penalty_until_us == w.now + delay * US
        else:
            assert a.status == Status.AVAILABLE


@PROPS
@given(seed=st.integers(0, 10**9), n_agents=st.integers(1, 5), n_calls=st.integers(1, 20),
       strategy=st.sampled_from(sorted(STRATEGY_NAMES)), abandon_pct=st.integers(0, 60))
def test_races_never_strand_an_agent(seed: int, n_agents: int, n_calls: int, strategy: str,
                                     abandon_pct: int) -> None:
    """A simulated FreeSWITCH answers, rejects or ignores offers and callers hang up at any
    moment (also while their agent answers). Afterwards every agent is available again."""
    import heapq
    import random

    rng = random.Random(seed)
    w = world(*(agent(f"a{i}") for i in range(1, n_agents + 1)), strategy=strategy,
              offer_timeout_s=8, wrapup_s=3, ring_progressive_step_s=2)
    heap: list[tuple[int, int, Any]] = []
    seq = 0

    def later(t: int, ev_type: Any, **kw: Any) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(heap, (t, seq, ev_type(at_us=t, **kw)))

    for i in range(n_calls):
        t = T0 + rng.randint(0, 120) * US
        later(t, CallEnqueued, call=Call(id=f"c{i}", tenant="t", queue="q"))
        if rng.randint(1, 100) <= abandon_pct:
            later(t + rng.randint(0, 40) * US, CallAbandoned, call_id=f"c{i}")
    for k in range(0, 200, 2):
        later(T0 + k * US, Tick)

    def respond(out: list[Any], t: int, instant: bool) -> None:
        for x in out:
            if isinstance(x, OfferCall):
                fate = "answer" if instant else rng.choice(("answer", "answer", "reject", "silent"))
                if fate == "answer":
                    later(t if instant else t + rng.randint(0, 6) * US, OfferAnswered, offer_id=x.offer_id)
                elif fate == "reject":
                    later(t + rng.randint(0, 3) * US, OfferRejected, offer_id=x.offer_id,
                          cause=rng.choice(CAUSES))
            elif isinstance(x, (ConnectCall, ForwardToMobile)):
                later(t + 20_000, CallConnected, call_id=x.call_id)
                later(t + (20_000 if instant else rng.randint(1, 30) * US), CallEnded, call_id=x.call_id)

    while heap:
        t, _, ev = heapq.heappop(heap)
        if heap and rng.random() < 0.3:
            # A batch: this fact and the next are folded before deciding, so the router sees
            # e.g. "answered" and "caller hung up" together — the race mod_callcenter loses.
            w.state = apply(w.state, ev)
            t, _, ev = heapq.heappop(heap)
        respond(w.ev(ev), t, instant=False)
    # Drain: whatever is left is answered at once; paused agents come back.
    t = max(w.state.clock_us, T0 + 200 * US)
    for _ in range(200):
        if not (w.state.calls or w.state.offers or w.state.timers
                or any(a.pause_reason for a in w.state.agents.values())):
            break
        t += 30 * US
        for aid, a in sorted(w.state.agents.items()):
            if a.pause_reason is not None:
                later(t, AgentResumed, agent_id=aid)
        later(t, Tick)
        while heap:
            tt, _, ev = heapq.heappop(heap)
            respond(w.ev(ev), tt, instant=True)
    assert not w.state.calls and not w.state.offers
    assert {a: x.status for a, x in w.state.agents.items()} == dict.fromkeys(w.state.agents, Status.AVAILABLE)
    assert w.state.tenant_active.get("t", 0) == 0
