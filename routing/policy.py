"""The routing policy: ``decide(state, now_us) -> list[Decision]``.

``decide`` is pure: it reads the state and the time it is given and returns the decisions to
take now, each with its candidates, scores and reason. It does not change the state; the
caller records each decision as a :class:`routing.events.DecisionMade` event (``step`` does
both), so the next ``decide`` sees the offers it made and never repeats them.

Cost: one pass over the offers out, O(1) per queue that has waiting calls but no ready
agent, and agents × calls only within queues that have a ready agent — which is where a
match can happen. Nothing scans every agent for every call.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Iterable

from routing import decisions as d
from routing import events as e
from routing.model import (
    US,
    Action,
    ActionKind,
    Agent,
    Cause,
    LocalTime,
    Queue,
    Strategy,
    local_time,
)
from routing.state import (
    CallState,
    CallStatus,
    Offer,
    State,
    apply,
    handled_in_window,
    sticky_agent,
)

__all__ = ["decide", "step", "run", "explain", "effective_priority", "MAX_CANDIDATES"]

MAX_CANDIDATES = 50
"""Candidates listed per decision (best first); keeps decision records small."""

_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def effective_priority(q: Queue, c: CallState, now_us: int) -> int:
    """Priority used to order waiting calls: base + VIP boost + one level per ``aging_s``
    waited, so a low-priority caller eventually passes any fixed higher priority."""
    p = c.call.priority + (q.vip_boost if c.call.vip else 0)
    if q.aging_s:
        p += max(0, now_us - c.enqueued_us) // (q.aging_s * US)
    return p


@dataclass(slots=True)
class _Pass:
    """What this call of ``decide`` has already committed to (so it never double-books)."""

    now: int
    lt: LocalTime
    out: list[d.Decision]
    taken: set[str]  # agents offered a call (or a mobile forward) in this pass
    cancelled: set[str]  # offer ids cancelled in this pass
    connected: set[str]  # call ids bridged in this pass
    done: set[str]  # call ids that left the queue in this pass
    new_active: dict[str, int]  # tenant → calls that started ringing in this pass
    dead: set[tuple[object, ...]]  # call requirements no free agent meets (see _match)


#: How long past an offer's ring time the router waits for the switch's own verdict.
EXPIRY_GRACE_US = 2 * US


def _cancel(p: _Pass, s: State, o: Offer, cause: str, reason: str) -> None:
    p.cancelled.add(o.offer_id)
    p.out.append(d.CancelOffer(
        decision_id=d.make_id("cancel_offer", o.offer_id), call_id=o.call_id,
        queue_id=o.queue_id, reason=reason, chosen=(o.agent_id,), offer_id=o.offer_id,
        agent_id=o.agent_id, cause=cause,
    ))


def _offers(p: _Pass, s: State) -> None:
    """Connect answered offers, cancel the ones that are moot, time out the silent ones."""
    answered = [o for o in s.offers.values() if o.answered and not o.connect_ordered]
    for o in answered:
        c = s.calls.get(o.call_id)
        if c is None or c.status not in (CallStatus.WAITING, CallStatus.RINGING):
            _cancel(p, s, o, "call_gone", f"agent {o.agent_id} answered but call {o.call_id} "
                    "is no longer waiting (abandoned or taken); hang up the agent leg")
        elif o.call_id in p.connected:
            _cancel(p, s, o, "answered_elsewhere", f"call {o.call_id} was answered by another "
                    f"agent first; hang up {o.agent_id}'s leg")
        else:
            p.connected.add(o.call_id)
            p.out.append(d.ConnectCall(
                decision_id=d.make_id("connect_call", o.offer_id), call_id=o.call_id,
                queue_id=o.queue_id, chosen=(o.agent_id,), offer_id=o.offer_id,
                agent_id=o.agent_id,
                reason=f"agent {o.agent_id} answered offer {o.offer_id} and the leg is parked: "
                       "bridge it to the caller",
            ))
            for sib in c.offers:
                so = s.offers.get(sib)
                if so is not None and sib != o.offer_id and not so.answered and sib not in p.cancelled:
                    _cancel(p, s, so, "answered_elsewhere",
                            f"call {o.call_id} answered by {o.agent_id}; stop ringing {so.agent_id}")
    for o in s.offers.values():
        if o.answered or o.offer_id in p.cancelled:
            continue
        c = s.calls.get(o.call_id)
        a = s.agents.get(o.agent_id)
        if c is None or c.status not in (CallStatus.WAITING, CallStatus.RINGING):
            _cancel(p, s, o, "call_gone",
                    f"caller of {o.call_id} hung up or was served while {o.agent_id} was ringing")
        elif a is None or not a.logged_in:
            _cancel(p, s, o, "agent_logged_out", f"agent {o.agent_id} logged out while ringing")
        elif p.now >= o.expires_us + EXPIRY_GRACE_US:
            # The switch stops ringing a second before the ring time and says NO_ANSWER
            # itself: that word penalizes the agent. No word by now means the log is slow
            # or the offer never rang (a broker failing over, a bridge away): the router
            # gives the offer up, and it costs the agent nothing. Counting such give-ups
            # as ring-no-answers paused agents for max_no_answer in a chaos soak while
            # their phones had answered.
            _cancel(p, s, o, Cause.NOT_DELIVERED,
                    f"no word of agent {o.agent_id}'s phone "
                    f"{(o.expires_us - o.at_us + EXPIRY_GRACE_US) // US} s after the offer "
                    f"(the switch did not say it rang out); offer the next agent, no penalty")


def _still_ringing(p: _Pass, c: CallState) -> bool:
    return any(o not in p.cancelled for o in c.offers)


def _leave(p: _Pass, dec: d.Decision) -> None:
    p.done.add(dec.call_id)
    p.out.append(dec)


def _wait_s(p: _Pass, c: CallState) -> int:
    return max(0, p.now - c.enqueued_us) // US


def _forward_to_mobile(p: _Pass, s: State, q: Queue, c: CallState) -> bool:
    """No extension online: forward to the mobile of a free member in shift, if any."""
    best: tuple[tuple[int, int, str], Agent] | None = None
    for aid in sorted(s.members.get(q.id, ())):
        cfg = s.agent_cfg.get(aid)
        a = s.agents.get(aid)
        if cfg is None or a is None or not cfg.mobile or aid in p.taken:
            continue
        if a.calls or a.other_legs or a.offer_id is not None or a.pause_reason is not None:
            continue
        if cfg.shift is not None and not cfg.shift.is_open(p.lt):
            continue
        key = (0 if a.logged_in else 1, a.idle_since_us, aid)
        if best is None or key < best[0]:
            best = (key, cfg)
    if best is None:
        return False
    cfg = best[1]
    p.taken.add(cfg.id)
    _leave(p, d.ForwardToMobile(
        decision_id=d.make_id("forward_to_mobile", c.id), call_id=c.id, queue_id=q.id,
        chosen=(cfg.id,), agent_id=cfg.id, mobile=cfg.mobile,
        reason=f"no extension of queue {q.id} is online; forward to {cfg.id}'s mobile "
               f"(in shift, {'logged in' if best[0][0] == 0 else 'not logged in'}, longest idle)",
    ))
    return True


def _queue_rules(p: _Pass, s: State, q: Queue, cids: tuple[str, ...], want: list[CallState]) -> None:
    """Closed hours, overflow, no agent, mobile forward; collect calls worth matching."""
    calls = s.calls
    if q.schedule is not None and not q.schedule.is_open(p.lt):
        for cid in cids:
            c = calls[cid]
            if _still_ringing(p, c):
                continue
            _leave(p, d.RunAfterHoursAction(
                decision_id=d.make_id("after_hours", cid, q.id, c.enqueued_us), call_id=cid, queue_id=q.id,
                action=q.after_hours,
                reason=f"queue {q.id} is closed ({q.schedule.id or 'schedule'}, "
                       f"{_WEEKDAYS[p.lt.weekday]} {p.lt.date} {p.lt.minute // 60:02d}:"
                       f"{p.lt.minute % 60:02d} Asia/Ho_Chi_Minh) → {q.after_hours}",
            ))
        return
    # Overflow: waiting longer than max_wait. Calls are in arrival order, so stop at the first
    # one that has not waited that long.
    if q.max_wait_s is not None:
        for cid in cids:
            c = calls[cid]
            w = _wait_s(p, c)
            if w < q.max_wait_s:
                break
            if not _still_ringing(p, c):
                _leave(p, d.OverflowCall(
                    decision_id=d.make_id("overflow", cid, q.id, calls[cid].enqueued_us),
                    call_id=cid, queue_id=q.id,
                    action=q.max_wait_action, cause="max_wait",
                    reason=f"waited {w} s ≥ max wait {q.max_wait_s} s in {q.id} → {q.max_wait_action}",
                ))
    if q.max_queue_len is not None and len(cids) > q.max_queue_len:
        for cid in cids[q.max_queue_len:]:
            if cid in p.done or _still_ringing(p, calls[cid]):
                continue
            _leave(p, d.OverflowCall(
                decision_id=d.make_id("overflow", cid, q.id, calls[cid].enqueued_us),
                call_id=cid, queue_id=q.id,
                action=q.max_len_action, cause="max_queue_len",
                reason=f"queue {q.id} already holds {q.max_queue_len} calls (max) → {q.max_len_action}",
            ))
    if s.online.get(q.id, 0) == 0:
        logged = s.logged.get(q.id, 0)
        mobiles = q.forward_to_mobile
        for cid in cids:
            c = calls[cid]
            if cid in p.done or _still_ringing(p, c):
                continue
            if mobiles:
                if _forward_to_mobile(p, s, q, c):
                    continue
                mobiles = False  # no free mobile now means none for the callers behind either
            if logged == 0 and q.no_agent_action is not None:
                _leave(p, d.OverflowCall(
                    decision_id=d.make_id("overflow", cid, q.id, calls[cid].enqueued_us),
                    call_id=cid, queue_id=q.id,
                    action=q.no_agent_action, cause="no_agent",
                    reason=f"no agent of queue {q.id} is logged in → {q.no_agent_action}",
                ))
        return
    if not s.ready.get(q.id):
        return
    progressive = q.strategy == Strategy.RING_PROGRESSIVELY
    widen_us = q.geo_widen_after_s * US if q.geo_widen_after_s is not None else None
    step_us = q.ring_progressive_step_s * US
    for cid in cids:
        if cid in p.done:
            continue
        c = calls[cid]
        if _still_ringing(p, c):
            if progressive and p.now - c.last_offer_us >= step_us and c.status == CallStatus.RINGING:
                want.append(c)
            continue
        if (c.region is not None and widen_us is not None and p.now - c.enqueued_us < widen_us
                and not s.ready_region.get((q.id, c.region))):
            continue  # held to its region, nobody of that region free: skip before sorting
        want.append(c)


def _strategy_key(q: Queue, s: State, cfg: Agent, c: CallState, rr_last: tuple[int, str] | None,
                  now_us: int) -> tuple[float, ...]:
    """Lower is better. Ties are broken by agent id by the caller."""
    a = s.agents[cfg.id]
    st = q.strategy
    pos = cfg.queues[q.id].position
    if st in (Strategy.LONGEST_IDLE, Strategy.RING_ALL):
        return (float(a.idle_since_us),)
    if st == Strategy.ROUND_ROBIN:
        if rr_last is None:
            return (0.0, float(pos))
        return (0.0 if (pos, cfg.id) > rr_last else 1.0, float(pos))
    if st in (Strategy.TOP_DOWN, Strategy.RING_PROGRESSIVELY):
        return (float(pos),)
    if st == Strategy.LEAST_TALK_TIME:
        if q.load_window_s is not None:
            return (float(handled_in_window(a, now_us, q.load_window_s)[1]),)
        return (float(a.talk_us),)
    if st == Strategy.FEWEST_CALLS:
        if q.load_window_s is not None:
            return (float(handled_in_window(a, now_us, q.load_window_s)[0]),)
        return (float(a.calls_answered),)
    if st == Strategy.LEAST_OCCUPANCY:
        return (a.occupancy(now_us),)
    if st == Strategy.RANDOM:
        h = hashlib.blake2b(f"{q.seed}:{c.id}:{c.offers_made}:{cfg.id}".encode(), digest_size=8)
        return (float(int.from_bytes(h.digest(), "big")),)
    return (float(a.idle_since_us),)


def _strategy_why(q: Queue, s: State, cfg: Agent, p: _Pass) -> str:
    a = s.agents[cfg.id]
    st = q.strategy
    if st in (Strategy.LONGEST_IDLE, Strategy.RING_ALL):
        return f"idle {max(0, p.now - a.idle_since_us) // US} s"
    if st in (Strategy.ROUND_ROBIN, Strategy.TOP_DOWN, Strategy.RING_PROGRESSIVELY):
        return f"position {cfg.queues[q.id].position}"
    if st in (Strategy.LEAST_TALK_TIME, Strategy.FEWEST_CALLS) and q.load_window_s is not None:
        n, talk = handled_in_window(a, p.now, q.load_window_s)
        return f"{n} calls, talk {talk // US} s in the last {q.load_window_s} s"
    if st == Strategy.LEAST_TALK_TIME:
        return f"talk {a.talk_us // US} s"
    if st == Strategy.FEWEST_CALLS:
        return f"{a.calls_answered} calls"
    if st == Strategy.LEAST_OCCUPANCY:
        return f"occupancy {a.occupancy(p.now):.0%}"
    return "random draw"


_Scored = tuple[tuple[float, ...], str, d.Candidate]
"""An eligible agent: (sort key, agent id, candidate record); lower key is better."""
_Box = list[tuple[str, tuple[d.Candidate, ...]]]


@dataclass(frozen=True, slots=True)
class _Needs:
    """What a call asks of an agent now: the rules that loosen while the caller waits."""

    wait: int  # seconds waited
    geo_only: bool  # held to agents of its own region
    any_agent: bool  # skills and language waived
    relaxed_to: int | None  # skill levels capped at this by the queue's relax steps
    skills: tuple[tuple[str, int], ...]  # (skill, level needed now)
    max_level: int | None  # highest tier open to it
    sticky: str | None  # the agent the caller is reserved for

    def signature(self, q: Queue, c: CallState) -> tuple[object, ...]:
        """Calls of a queue that ask for the same thing have the same eligible agents, and
        agents only get taken during a pass: once a signature found nobody, its twins are
        skipped. This keeps decide fast when many callers wait for what nobody ready has."""
        return (q.id, c.region if self.geo_only else None, self.sticky, self.max_level,
                None if self.any_agent else self.skills,
                None if self.any_agent else c.call.language)


def _needs(s: State, q: Queue, c: CallState, wait: int, geo_only: bool) -> _Needs:
    relaxed_to: int | None = None
    for r in q.relax:
        if wait >= r.after_s and (relaxed_to is None or r.min_level < relaxed_to):
            relaxed_to = r.min_level
    max_level = None
    if q.tier_wait_s is not None:
        max_level = 1 + (wait // q.tier_wait_s if q.tier_wait_s > 0 else 10**9)
    sticky = sticky_agent(s, c.caller_key) if (q.sticky_wait_s and c.caller_key) else None
    if sticky is not None:
        sa = s.agents.get(sticky)
        if (wait >= q.sticky_wait_s or sa is None or not sa.logged_in
                or sticky not in s.members.get(q.id, ())):
            sticky = None
    return _Needs(
        wait=wait, geo_only=geo_only,
        any_agent=q.any_agent_after_s is not None and wait >= q.any_agent_after_s,
        relaxed_to=relaxed_to,
        skills=tuple((r.skill, r.min_level if relaxed_to is None else min(r.min_level, relaxed_to))
                     for r in q.skills + c.call.skills),
        max_level=max_level, sticky=sticky,
    )


def _at_plan_limit(p: _Pass, s: State, c: CallState, box: _Box | None) -> bool:
    """The tenant already has as many calls ringing or talking as its plan allows."""
    tenant = s.tenants.get(c.call.tenant)
    if tenant is None or not tenant.max_concurrent_calls:
        return False
    active = s.tenant_active.get(c.call.tenant, 0) + p.new_active.get(c.call.tenant, 0)
    if active < tenant.max_concurrent_calls:
        return False
    if box is not None:
        box.append((f"tenant {c.call.tenant} is at its plan limit of "
                    f"{tenant.max_concurrent_calls} simultaneous calls", ()))
    return True


def _rr_last(s: State, q: Queue) -> tuple[int, str] | None:
    """Round robin: (position, id) of the agent this queue offered last, if still a member."""
    if q.strategy != Strategy.ROUND_ROBIN:
        return None
    last = s.rr.get(q.id)
    lcfg = s.agent_cfg.get(last) if last else None
    if lcfg is not None and q.id in lcfg.queues:
        return (lcfg.queues[q.id].position, lcfg.id)
    return None


def _refusal(p: _Pass, q: Queue, cfg: Agent, c: CallState, n: _Needs) -> tuple[str, int]:
    """The rule that keeps this ready agent from the call ("" if none), and its skill score."""
    if cfg.id in p.taken:
        return "offered another call in this pass", 0
    if cfg.shift is not None and not cfg.shift.is_open(p.lt):
        return "out of shift", 0
    if n.sticky is not None and cfg.id != n.sticky:
        return f"caller reserved for sticky agent {n.sticky} for {q.sticky_wait_s} s", 0
    skill_score = 0
    for skill, need in n.skills:
        have = cfg.skills.get(skill, 0)
        if have < need and not n.any_agent:
            return f"skill {skill} {have} < {need}", 0
        skill_score += have
    language = c.call.language
    if language and language not in cfg.languages and not n.any_agent:
        return f"does not speak {language}", 0
    return "", skill_score


def _score(p: _Pass, s: State, q: Queue, cfg: Agent, c: CallState, skill_score: int,
           rr_last: tuple[int, str] | None) -> _Scored:
    """Rank an agent for the call: tier, same region, best skill (if asked), strategy."""
    level = cfg.queues[q.id].level
    geo = 1 if (c.region is not None and cfg.region == c.region) else 0
    skill_part = skill_score if q.prefer_best_skill else 0
    key = (float(level), float(-geo), float(-skill_part),
           *_strategy_key(q, s, cfg, c, rr_last, p.now))
    why = (f"tier {level}, {'same region' if geo else 'region ' + str(cfg.region)}, "
           f"skill {skill_score}, {_strategy_why(q, s, cfg, p)}")
    return (key, cfg.id, d.Candidate(cfg.id, tuple(0.0 - x for x in key), why))


def _screen(p: _Pass, s: State, q: Queue, c: CallState,
            n: _Needs) -> tuple[list[_Scored], list[tuple[str, str]]]:
    """Split the queue's ready agents into eligible (scored) and rejected (agent, rule)."""
    eligible: list[_Scored] = []
    later_tiers: list[_Scored] = []
    rejected: list[tuple[str, str]] = []  # Candidates built only if they are shown
    pool = s.ready.get(q.id, frozenset())
    if n.geo_only:
        # Other-region agents are not candidates yet; note them in one line, not one each.
        same = s.ready_region.get((q.id, c.region), frozenset())
        others = len(pool) - len(same)
        pool = same
        if others:
            rejected.append(("*", f"{others} agent(s) of other regions: caller held to "
                             f"{c.region} until {q.geo_widen_after_s} s"))
    rr_last = _rr_last(s, q)
    for aid in pool:
        cfg = s.agent_cfg.get(aid)
        if cfg is None:
            continue
        rule, skill_score = _refusal(p, q, cfg, c, n)
        if rule:
            rejected.append((aid, rule))
            continue
        scored = _score(p, s, q, cfg, c, skill_score, rr_last)
        tier_closed = n.max_level is not None and cfg.queues[q.id].level > n.max_level
        (later_tiers if tier_closed else eligible).append(scored)
    if not eligible and later_tiers and q.tier_no_agent_no_wait:
        # tier-rule-no-agent-no-wait: nobody ready in the open tiers, so do not make the
        # caller wait for the tier timer; the lowest level present wins by the sort below.
        eligible, later_tiers = later_tiers, []
    rejected.extend((aid, f"tier {int(k[0])} not reached after {n.wait} s")
                    for k, aid, _ in later_tiers)
    # Sorted: the ready pool is a set, whose order differs between processes (hash seeds),
    # and a replay elsewhere must produce equal decisions, candidate lists included.
    eligible.sort(key=lambda t: (t[0], t[1]))
    rejected.sort()
    return eligible, rejected


def _choose(q: Queue, eligible: list[_Scored]) -> list[_Scored]:
    """Ring-all rings every agent of the best tier present; other strategies the best one."""
    if q.strategy == Strategy.RING_ALL:
        top_level = eligible[0][0][0]
        return [t for t in eligible if t[0][0] == top_level]
    return eligible[:1]


def _candidates(eligible: list[_Scored], rejected: list[tuple[str, str]]) -> tuple[d.Candidate, ...]:
    """The decision's candidate list: eligible best first, then rejected, MAX_CANDIDATES in all."""
    return tuple(t[2] for t in eligible[:MAX_CANDIDATES]) + tuple(
        d.Candidate(aid, (), why, False)
        for aid, why in rejected[:max(0, MAX_CANDIDATES - len(eligible))])


def _reason(p: _Pass, s: State, q: Queue, c: CallState, n: _Needs, eligible: list[_Scored],
            chosen: list[_Scored], adding: bool) -> str:
    """The decision's explanation: who was chosen and why, then what shaped the choice."""
    call = c.call
    eff = effective_priority(q, c, p.now)
    notes = [f"priority {eff} (base {call.priority}{', VIP' if call.vip else ''}), waited {n.wait} s"]
    if n.sticky is not None:
        notes.append(f"sticky agent {n.sticky} served this caller before")
    if n.any_agent:
        notes.append(f"skills waived after {q.any_agent_after_s} s")
    elif n.relaxed_to is not None:
        notes.append(f"skills relaxed to level {n.relaxed_to}")
    if c.region is not None and q.geo_widen_after_s is not None:
        notes.append("same-region agents only" if n.geo_only else "region widened")
    head = (f"{q.strategy}: ring {len(chosen)} agent(s) at tier {int(chosen[0][0][0])}"
            if q.strategy == Strategy.RING_ALL else
            f"{q.strategy}: {'add' if adding else 'offer to'} {chosen[0][1]} ({chosen[0][2].why})")
    return (f"{head} among {len(eligible)} eligible of {len(s.ready.get(q.id, ()))} ready; "
            + "; ".join(notes))


def _offer(p: _Pass, s: State, q: Queue, c: CallState, chosen: list[_Scored],
           cands: tuple[d.Candidate, ...], reason: str, adding: bool) -> None:
    """Offer the call to the chosen agent(s) and book them for the rest of this pass."""
    chosen_ids = tuple(t[1] for t in chosen)
    for i, aid in enumerate(chosen_ids):
        cfg = s.agent_cfg[aid]
        offer_id = d.make_id("offer", c.id, c.offers_made + i)
        timeout = cfg.offer_timeout_s if cfg.offer_timeout_s is not None else q.offer_timeout_s
        p.taken.add(aid)
        p.out.append(d.OfferCall(
            decision_id=d.make_id("offer_call", offer_id), call_id=c.id, queue_id=q.id,
            reason=reason, candidates=cands, chosen=chosen_ids, offer_id=offer_id, agent_id=aid,
            extension=cfg.extension, caller=c.call.caller, expires_us=p.now + timeout * US,
            attempt=c.offers_made + i + 1, connect=q.connect,
        ))
    if not adding:
        p.new_active[c.call.tenant] = p.new_active.get(c.call.tenant, 0) + 1


def _match(p: _Pass, s: State, c: CallState, box: _Box | None = None) -> None:
    """Choose and offer agent(s) for one call among its queue's ready agents.

    With ``box`` (see :func:`explain`), record what would happen and why instead of offering.
    """
    q = s.queues[c.call.queue]
    wait = _wait_s(p, c)
    geo_only = (c.region is not None and q.geo_widen_after_s is not None
                and wait < q.geo_widen_after_s)
    if geo_only and not s.ready_region.get((q.id, c.region)):
        # Held to its region and nobody of that region is free: the common wait.
        if box is not None:
            box.append((f"held to {c.region} agents until {q.geo_widen_after_s} s "
                        f"(waited {wait} s); none of them is free", ()))
        return
    adding = c.status == CallStatus.RINGING and _still_ringing(p, c)  # ring-progressively
    if not adding and _at_plan_limit(p, s, c, box):
        return  # plan limit reached: the call waits, nothing to decide
    n = _needs(s, q, c, wait, geo_only)
    sig = n.signature(q, c)
    if sig in p.dead and box is None:
        return
    eligible, rejected = _screen(p, s, q, c, n)
    if not eligible:
        p.dead.add(sig)
        if box is not None:
            box.append((f"none of {len(s.ready.get(q.id, ()))} ready agent(s) of {q.id} may "
                        f"take it now (waited {wait} s)",
                        tuple(d.Candidate(aid, (), why, False) for aid, why in rejected)))
        return
    chosen = _choose(q, eligible)
    reason = _reason(p, s, q, c, n, eligible, chosen, adding)
    cands = _candidates(eligible, rejected)
    if box is not None:
        box.append((reason, cands))
        return
    _offer(p, s, q, c, chosen, cands, reason, adding)


def explain(state: State, call_id: str, now_us: int) -> tuple[str, tuple[d.Candidate, ...]]:
    """Why is this call where it is? For a waiting call: what ``decide`` would do with it now,
    or which rule keeps each ready agent from taking it (the supervisor's question)."""
    c = state.calls.get(call_id)
    if c is None:
        return f"call {call_id} is not in any queue (never enqueued, served or gone)", ()
    q = state.queues.get(c.call.queue)
    if q is None:
        return f"queue {c.call.queue} is not configured", ()
    if c.status != CallStatus.WAITING:
        return f"call {call_id} is {c.status} ({len(c.offers)} offer(s) out)", ()
    lt = local_time(now_us)
    if q.schedule is not None and not q.schedule.is_open(lt):
        return f"queue {q.id} is closed now; its after-hours action is {q.after_hours}", ()
    if state.online.get(q.id, 0) == 0:
        return (f"no agent of queue {q.id} is online ({state.logged.get(q.id, 0)} logged in "
                "with the phone unregistered)"), ()
    if not state.ready.get(q.id):
        return f"every online agent of queue {q.id} is busy, in wrap-up, paused or held out", ()
    p = _Pass(now=now_us, lt=lt, out=[], taken=set(), cancelled=set(), connected=set(),
              done=set(), new_active={}, dead=set())
    box: list[tuple[str, tuple[d.Candidate, ...]]] = []
    _match(p, state, c, box)
    return box[0] if box else ("no decision", ())


def decide(state: State, now_us: int) -> list[d.Decision]:
    """The decisions to take at ``now_us`` (UTC microseconds), in the order to carry out.

    Order: connect answered offers and cancel moot or timed-out ones; then per queue: closed
    hours, overflow (max wait, max length, nobody logged in), forward to mobile; then offers,
    calls by effective priority (VIP, aging) then arrival. Same state and time, same list.
    """
    p = _Pass(now=now_us, lt=local_time(now_us), out=[], taken=set(), cancelled=set(),
              connected=set(), done=set(), new_active={}, dead=set())
    if state.offers:
        _offers(p, state)
    want: list[CallState] = []
    for qid, cids in state.queue_calls.items():
        if not cids:
            continue
        q = state.queues.get(qid)
        if q is None:
            for cid in cids:
                if not _still_ringing(p, state.calls[cid]):
                    _leave(p, d.OverflowCall(
                        decision_id=d.make_id("overflow", cid, qid, state.calls[cid].enqueued_us),
                        call_id=cid, queue_id=qid,
                        action=Action(ActionKind.HANGUP), cause="unknown_queue",
                        reason=f"queue {qid} is not configured"))
            continue
        _queue_rules(p, state, q, cids, want)
    if want:
        queues = state.queues
        want.sort(key=lambda c: (-effective_priority(queues[c.call.queue], c, now_us),
                                 c.enqueued_us, c.id))
        for c in want:
            _match(p, state, c)
    return p.out


def step(state: State, event: e.Event) -> tuple[State, list[d.Decision]]:
    """Apply ``event``, decide at its time and record the decisions: the router's loop body.

    Decides again after a round that cancelled offers (the freed agents may take waiting
    calls). Returns the state with the decisions folded in (as ``DecisionMade`` events) and
    the decisions to send to the actuator, in order.
    """
    state = apply(state, event)
    out: list[d.Decision] = []
    for _ in range(_MAX_ROUNDS):
        batch = decide(state, event.at_us)
        for dec in batch:
            state = apply(state, e.DecisionMade(at_us=event.at_us, decision=dec))
        out.extend(batch)
        # A cancelled offer can free its agent at once (caller gone, or a failure without
        # delay), and an overflow to another queue brings a caller to new agents; one more
        # round serves them now, not at the next event. Bounded by _MAX_ROUNDS.
        if not any(_frees(x) for x in batch):
            break
    return state, out


_MAX_ROUNDS = 4


def _frees(x: d.Decision) -> bool:
    """Could carrying out ``x`` let the next round offer something new?"""
    if isinstance(x, d.CancelOffer):
        return True
    if isinstance(x, (d.OverflowCall, d.RunAfterHoursAction)):
        return x.action.kind == ActionKind.QUEUE
    return False


def run(events: Iterable[e.Event], state: State | None = None) -> tuple[State, list[d.Decision]]:
    """``step`` over many events; returns the final state and every decision taken."""
    s = state if state is not None else State()
    all_out: list[d.Decision] = []
    for ev in events:
        s, out = step(s, ev)
        all_out.extend(out)
    return s, all_out
