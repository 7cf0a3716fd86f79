"""Estimated wait time (EWT) and queue position from the router's state. Pure.

``estimate(state, now_us)`` projects the ACD forward from what it knows now: when each
agent serving a queue will next be free (now if ready; else the end of its wrap-up or
ring-no-answer hold, or of its call, judged by the talk times it and its colleagues had
recently), and, agent by agent in the order they free up, which waiting caller it takes —
the best by the order ``decide`` serves them in (effective priority, then arrival). A
caller's estimate is when its agent frees plus the time phones ring before they answer.
Each agent's next call then lasts one handle time (ring + talk + wrap-up).

What it leaves out, and says so in each queue's ``reason``: skills and regions (any
serving member is assumed able to take any caller of the queue), callers ahead who will
hang up (so estimates lean long when many abandon), offers that will not be answered.

Same state and time, same estimates: no clock, no randomness, integer microseconds.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Mapping

from routing.model import US, Queue
from routing.state import AgentState, CallState, CallStatus, State

__all__ = ["QueueEstimate", "CallEstimate", "Estimates", "estimate", "DEFAULT_TALK_S",
           "SAMPLES", "DEFAULT_RING_S"]

DEFAULT_TALK_S = 180
"""Talk time assumed for a queue none of whose serving agents has a recent call: a common
contact-center average, replaced by real figures after the first calls."""

DEFAULT_RING_S = 5
"""Ring time (offer to bridge) assumed while no connected call shows a real one."""

SAMPLES = 30
"""Recent calls (the newest across the queue's serving agents) whose talk times are averaged."""


@dataclass(frozen=True, slots=True)
class QueueEstimate:
    """The wait a caller entering ``queue`` now (priority 0) would have, and its inputs."""

    queue: str
    ewt_s: int | None  # None: no agent serves the queue now, nothing to estimate from
    position: int  # the new caller's place: waiting callers ahead + 1
    waiting: int  # callers in queue not yet ringing an agent
    agents_serving: int  # members logged in, registered, not paused
    agents_free: int  # of them, ready now
    agents_shared: int  # of them, members of other queues with callers waiting too
    talk_s: int
    wrapup_s: int
    ring_s: int
    samples: int  # recent calls behind talk_s (0: DEFAULT_TALK_S)
    reason: str


@dataclass(frozen=True, slots=True)
class CallEstimate:
    """A caller in queue: its place in line and its estimated remaining wait."""

    call_id: str
    queue: str
    position: int  # 1 = next to be offered; 0 = an agent's phone is ringing for it now
    ewt_s: int | None


@dataclass(frozen=True, slots=True)
class Estimates:
    queues: Mapping[str, QueueEstimate]
    calls: Mapping[str, CallEstimate]


def _ceil_s(us: int) -> int:
    return -(-max(0, us) // US)


def _serving(a: AgentState | None) -> bool:
    return a is not None and a.logged_in and a.registered and a.pause_reason is None


def _order_key(q: Queue | None, c: CallState, now_us: int) -> tuple[int, int, str]:
    # The same order decide() serves callers in (effective_priority, then arrival, then id);
    # recomputed here because routing.policy imports this package's state, not the reverse.
    p = c.call.priority
    if q is not None:
        p += q.vip_boost if c.call.vip else 0
        if q.aging_s:
            p += max(0, now_us - c.enqueued_us) // (q.aging_s * US)
    return (-p, c.enqueued_us, c.id)


@dataclass(slots=True)
class _Figures:
    talk_us: int
    wrap_us: int
    ring_us: int
    samples: int
    talks: tuple[int, ...]  # the recent talk times, for the residual of calls in progress

    def residual_us(self, elapsed_us: int) -> int:
        """Expected talk left of a call that has lasted ``elapsed_us``: the mean excess of
        the recent calls that lasted longer (0 when none did: it should end any moment)."""
        longer = [t - elapsed_us for t in self.talks if t > elapsed_us]
        if not self.talks:
            return max(0, self.talk_us - elapsed_us)
        return sum(longer) // len(longer) if longer else 0


def _figures(state: State, q: Queue, serving: list[str], ring_us: int) -> _Figures:
    recent: list[tuple[int, int]] = []
    for aid in serving:
        recent.extend(state.agents[aid].recent)
    recent.sort(reverse=True)
    talks = tuple(t for _, t in recent[:SAMPLES])
    talk = sum(talks) // len(talks) if talks else DEFAULT_TALK_S * US
    wraps = [(state.agent_cfg[a].wrapup_s if a in state.agent_cfg
              and state.agent_cfg[a].wrapup_s is not None else q.wrapup_s) for a in serving]
    wrap = (sum(wraps) * US // len(wraps)) if wraps else q.wrapup_s * US
    return _Figures(talk, wrap, ring_us, len(talks), talks)


def _ring_us(state: State) -> tuple[int, int]:
    """Mean offer-to-bridge time of the calls connected now (the phones' answer delay)."""
    rings = [c.connected_us - c.last_offer_us for c in state.calls.values()
             if c.connected_us is not None and c.last_offer_us and c.connected_us >= c.last_offer_us]
    return (sum(rings) // len(rings), len(rings)) if rings else (DEFAULT_RING_S * US, 0)


def _free_times(state: State, agent_queues: Mapping[str, list[str]],
                figures: Mapping[str, _Figures], now_us: int) -> dict[str, int]:
    """When each serving agent can next be offered a caller (µs).

    Known exactly for a ready agent (now) and one in wrap-up or held out (its end). For
    agents talking or ringing, projecting each one's expected end and taking the earliest
    would be far too late: the first of twenty calls to end comes much sooner than the
    expected end of any one of them. Their ends are taken instead as the expected order
    statistics of independent exponential remainders with their mean expected remainder m:
    the j-th of n ends after m·(1/n + 1/(n−1) + … + 1/(n−j+1)); the agent with the shortest
    expected remainder is taken to end first.
    """
    out: dict[str, int] = {}
    busy: list[tuple[int, str, int]] = []  # (expected remainder, agent, wrap-up after)
    for aid, qs in agent_queues.items():
        fig = figures[qs[0]]  # an agent of several queues is judged by its first queue's
        a = state.agents[aid]
        if a.offer_id is not None:
            o = state.offers.get(a.offer_id)
            rang = now_us - o.at_us if o is not None else 0
            busy.append((max(0, fig.ring_us - rang) + fig.talk_us, aid, fig.wrap_us))
        elif a.calls or a.other_legs:
            started = [c.connected_us for cid in a.calls
                       if (c := state.calls.get(cid)) is not None and c.connected_us is not None]
            elapsed = now_us - min(started) if started else 0
            busy.append((fig.residual_us(elapsed), aid, fig.wrap_us))
        else:
            out[aid] = max(now_us, a.wrap_until_us or 0, a.penalty_until_us or 0)
    if busy:
        busy.sort()
        n = len(busy)
        m = sum(r for r, _, _ in busy) // n
        acc = 0
        for j, (_, aid, wrap) in enumerate(busy):
            acc += m // (n - j)
            out[aid] = now_us + acc + wrap
    return out


def estimate(state: State, now_us: int) -> Estimates:
    """Position and estimated wait of every caller in queue, and of a caller entering each
    configured queue now. Deterministic; see the module docstring for the model."""
    ring_us, _ = _ring_us(state)
    queue_ids = sorted(set(state.queues) | {q for q, c in state.queue_calls.items() if c})
    serving: dict[str, list[str]] = {}
    figures: dict[str, _Figures] = {}
    for qid in queue_ids:
        members = sorted(m for m in state.members.get(qid, ()) if _serving(state.agents.get(m)))
        serving[qid] = members
        q = state.queues.get(qid) or Queue(id=qid, tenant="")
        figures[qid] = _figures(state, q, members, ring_us)

    # Waiting callers per queue, in service order; ringing ones are being served already.
    lines: dict[str, list[CallState]] = {}
    calls: dict[str, CallEstimate] = {}
    for qid in queue_ids:
        q = state.queues.get(qid)
        here = [state.calls[c] for c in state.queue_calls.get(qid, ()) if c in state.calls]
        line = sorted((c for c in here if c.status == CallStatus.WAITING),
                      key=lambda c: _order_key(q, c, now_us))
        lines[qid] = line
        for c in here:
            if c.status == CallStatus.RINGING:
                since = now_us - c.last_offer_us if c.last_offer_us else 0
                calls[c.id] = CallEstimate(c.id, qid, 0, _ceil_s(figures[qid].ring_us - since))

    # Every agent serving some queue, with its queues (the ones it is a serving member of).
    agent_queues: dict[str, list[str]] = {}
    for qid, members in serving.items():
        for aid in members:
            agent_queues.setdefault(aid, []).append(qid)
    free_at = _free_times(state, agent_queues, figures, now_us)
    heap = sorted((t, aid) for aid, t in free_at.items())
    free_now = {aid for aid, t in free_at.items() if t <= now_us}

    heads = {qid: 0 for qid in queue_ids}
    newcomer: dict[str, int] = {}  # queue -> when its first agent with no caller left frees
    waiting_total = sum(len(v) for v in lines.values())
    assigned = 0
    while heap and (assigned < waiting_total or len(newcomer) < len(queue_ids)):
        t, aid = heapq.heappop(heap)
        best: tuple[tuple[int, int, str], str] | None = None
        for qid in agent_queues[aid]:
            i = heads[qid]
            if i < len(lines[qid]):
                key = _order_key(state.queues.get(qid), lines[qid][i], now_us)
                if best is None or key < best[0]:
                    best = (key, qid)
        if best is None:
            # Nobody left for this agent: a caller entering its queues now would get it.
            for qid in agent_queues[aid]:
                newcomer.setdefault(qid, t)
            continue
        qid = best[1]
        c = lines[qid][heads[qid]]
        heads[qid] += 1
        assigned += 1
        fig = figures[qid]
        calls[c.id] = CallEstimate(c.id, qid, heads[qid], _ceil_s(t - now_us + fig.ring_us))
        heapq.heappush(heap, (t + fig.ring_us + fig.talk_us + fig.wrap_us, aid))

    busy_queues = {qid for qid, line in lines.items() if line}
    queues: dict[str, QueueEstimate] = {}
    for qid in queue_ids:
        fig, members = figures[qid], serving[qid]
        shared = sum(1 for a in members if any(o != qid and o in busy_queues
                                               for o in agent_queues[a]))
        free = sum(1 for a in members if a in free_now)
        line = lines[qid]
        ewt = (_ceil_s(newcomer[qid] - now_us + fig.ring_us) if qid in newcomer else None)
        handle = fig.ring_us + fig.talk_us + fig.wrap_us
        talk_from = (f"mean of the last {fig.samples} calls" if fig.samples
                     else f"default {DEFAULT_TALK_S} s, no recent call")
        if not members:
            reason = f"no agent of queue {qid} is serving (logged in, registered, not paused)"
        else:
            reason = (f"{len(line)} caller(s) ahead, {free} of {len(members)} serving agent(s) "
                      f"free now ({shared} also serve other waiting queues); handle ≈ "
                      f"{_ceil_s(handle)} s = ring {_ceil_s(fig.ring_us)} + talk "
                      f"{_ceil_s(fig.talk_us)} ({talk_from}) + wrap-up {_ceil_s(fig.wrap_us)}; "
                      f"skills, regions and abandons ahead not counted")
        queues[qid] = QueueEstimate(
            queue=qid, ewt_s=ewt, position=len(line) + 1, waiting=len(line),
            agents_serving=len(members), agents_free=free, agents_shared=shared,
            talk_s=_ceil_s(fig.talk_us), wrapup_s=_ceil_s(fig.wrap_us),
            ring_s=_ceil_s(fig.ring_us), samples=fig.samples, reason=reason)
        for i, c in enumerate(line[heads[qid]:], start=heads[qid] + 1):
            calls[c.id] = CallEstimate(c.id, qid, i, None)  # no agent will reach it
    return Estimates(queues=queues, calls=calls)
