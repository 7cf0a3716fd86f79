"""The call log fold: a call's events -> its CDR row and its queue visits. Pure.

`fold_call(events)` takes every event known for one call (FreeSWITCH channel facts from
`tongdai.fs.events.v1`, router facts from `tongdai.cc.events.v1`, and the answering
agent's state changes that bracket the wrap-up), in any order and with duplicates, and
returns the same result for the same set of events. The sink calls it again whenever a
late event arrives and replaces the row it wrote before; nothing here does I/O.

A plain call (FreeSWITCH events only) gets a CDR from its channel facts; a queue call gets
the queue fields (visits, offers, waits, agent) from the router's facts, with FreeSWITCH's
timestamps for answer, hold and end where both exist.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from routing.contract.envelope import Envelope

DEFAULT_SHORT_ABANDON_MS = 5000

#: CDR columns, in table order (without the sink's `version` and `sign`).
CDR_COLUMNS = (
    "tenant", "call_id", "start_us", "direction", "did", "caller", "callee", "queue",
    "agent_id", "extension", "ivr_path", "enqueue_us", "offer_us", "answer_us", "end_us",
    "wait_ms", "ring_ms", "talk_ms", "hold_ms", "wrap_ms", "disposition", "hangup_cause",
    "recording", "notes", "queues_visited", "offers", "ring_no_answer", "transfers", "final",
)
VISIT_COLUMNS = (
    "tenant", "call_id", "visit", "queue", "enqueue_us", "caller", "did", "outcome",
    "short_abandon", "agent_id", "wait_ms", "ring_ms", "talk_ms", "hold_ms", "wrap_ms",
    "offers", "ring_no_answer", "overflow_target", "final",
)

DISPOSITIONS = ("answered", "abandoned", "short_abandoned", "overflowed", "voicemail",
                "failed", "busy", "no_answer", "in_progress")

_HANGUP_TYPES = ("channel_hangup_completed", "channel_hungup", "channel_destroyed")
_BUSY = frozenset({"USER_BUSY", "CALL_REJECTED"})
_NO_ANSWER = frozenset({"NO_ANSWER", "NO_USER_RESPONSE", "ORIGINATOR_CANCEL",
                        "ALLOTTED_TIMEOUT", "PROGRESS_TIMEOUT", "RECOVERY_ON_TIMER_EXPIRE"})
_CC_TYPES = frozenset({"call_enqueued", "call_offered", "call_answered", "call_abandoned",
                       "call_overflowed", "call_ended"})


@dataclass
class Visit:
    """One stay of a call in one queue."""

    queue: str
    enqueue_us: int
    caller: str = ""
    did: str = ""
    outcome: str = "waiting"  # answered | abandoned | overflowed | waiting
    short_abandon: bool = False
    agent_id: str = ""
    extension: str = ""
    offer_id: str = ""
    wait_ms: int = 0
    ring_ms: int = 0
    answer_us: int = 0
    left_us: int = 0
    offers: list[tuple[str, str, str, int]] = field(default_factory=list)  # offer, agent, ext, at
    overflow_target: str = ""

    @property
    def ring_no_answer(self) -> int:
        """Offers that rang out: every offer but the answered one and the one still ringing
        when the call left the queue (the caller hung up on it, not the agent)."""
        n = 0
        for i, (offer_id, *_rest) in enumerate(self.offers):
            last = i == len(self.offers) - 1
            if offer_id == self.offer_id and self.outcome == "answered":
                continue
            if last and self.outcome != "answered":
                continue
            n += 1
        return n


@dataclass(frozen=True)
class CallFacts:
    """What the fold knows about one call: its CDR and its queue visits."""

    cdr: dict[str, Any]
    visits: tuple[dict[str, Any], ...]

    @property
    def final(self) -> bool:
        return bool(self.cdr["final"])


# Facts stamped with the same µs happen in this order (the router stamps an overflow and
# the enqueue into the target queue with one time, for instance).
_RANK = {"channel_created": 0, "channel_answered": 1, "channel_parked": 2,
         "call_overflowed": 3, "call_enqueued": 4, "call_offered": 5, "call_answered": 6,
         "channel_bridged": 7, "call_abandoned": 8, "channel_unbridged": 9, "call_ended": 10,
         "channel_hungup": 11, "channel_hangup_completed": 12, "channel_destroyed": 13,
         "agent_state_changed": 14}


def _order(e: Envelope) -> tuple:
    return (e.occurred_at, _RANK.get(e.type, 7), e.seq or 0, e.event_id)


def _ms(us: int) -> int:
    return max(0, us // 1000)


def dedupe(events: Iterable[Envelope]) -> list[Envelope]:
    """Events by time, each event id once (re-sent records carry the same id)."""
    seen: dict[str, Envelope] = {}
    for e in events:
        seen.setdefault(e.event_id, e)
    return sorted(seen.values(), key=_order)


def fold_call(events: Iterable[Envelope],
              short_abandon_ms: int = DEFAULT_SHORT_ABANDON_MS) -> CallFacts:
    """Fold all known events of one call into its CDR and queue visits."""
    evs = dedupe(events)
    if not evs:
        raise ValueError("fold_call needs at least one event")
    call_events = [e for e in evs if e.type != "agent_state_changed"]
    agent_events = [e for e in evs if e.type == "agent_state_changed"]
    first = call_events[0] if call_events else evs[0]
    call_id = first.call_id or ""
    tenant = first.tenant

    a_leg = [e for e in call_events if e.type.startswith(("channel_", "recording_",
                                                         "dtmf_", "ivr_"))
             and e.payload.get("leg") == "a"]
    b_leg = [e for e in call_events if e.type.startswith("channel_")
             and e.payload.get("leg") == "b"]

    def a_field(name: str) -> str:
        for e in a_leg:
            value = e.payload.get(name)
            if value not in (None, ""):
                return str(value)
        return ""

    created = next((e for e in a_leg if e.type == "channel_created"), None)
    start_us = created.occurred_at if created else first.occurred_at

    # ---- queue visits from the router's facts
    visits: list[Visit] = []
    ended_payload: dict[str, Any] | None = None
    for e in call_events:
        if e.type not in _CC_TYPES:
            continue
        p = e.payload
        current = visits[-1] if visits else None
        if e.type == "call_enqueued":
            if current is not None and current.outcome == "waiting" and current.queue == p["queue"]:
                current.caller = current.caller or p.get("caller") or ""
                current.did = current.did or p.get("did") or ""
                continue
            visits.append(Visit(p["queue"], e.occurred_at, p.get("caller") or "",
                                p.get("did") or ""))
            continue
        if e.type == "call_ended":
            ended_payload = p
            continue
        if current is None or (current.outcome != "waiting" and e.type != "call_ended"):
            # A router fact whose enqueue we have not seen (yet): open the visit it implies.
            wait = int(p.get("wait_ms") or 0)
            current = Visit(p.get("queue") or "", e.occurred_at - wait * 1000)
            visits.append(current)
        if e.type == "call_offered":
            current.offers.append((p["offer_id"], p["agent_id"], p.get("extension") or "",
                                   e.occurred_at))
        elif e.type == "call_answered":
            current.outcome = "answered"
            current.agent_id = p["agent_id"]
            current.offer_id = p["offer_id"]
            current.wait_ms = int(p["wait_ms"])
            current.ring_ms = int(p["ring_ms"])
            current.answer_us = current.left_us = e.occurred_at
            current.extension = next((o[2] for o in current.offers if o[0] == p["offer_id"]), "")
        elif e.type == "call_abandoned":
            current.outcome = "abandoned"
            current.wait_ms = int(p["wait_ms"])
            current.short_abandon = bool(p["short"])
            current.left_us = e.occurred_at
        elif e.type == "call_overflowed":
            current.outcome = "overflowed"
            current.wait_ms = _ms(e.occurred_at - current.enqueue_us)
            current.left_us = e.occurred_at
            current.overflow_target = f"{p['action']}:{p.get('target') or ''}"
            if p["action"] == "queue" and p.get("target"):
                visits.append(Visit(p["target"], e.occurred_at, current.caller, current.did))

    if not visits and a_field("queue"):
        # FreeSWITCH parked a queue call but no router fact (yet): the park is the enqueue.
        parked = next((e for e in a_leg if e.type == "channel_parked"), None)
        if parked is not None:
            visits.append(Visit(a_field("queue"), parked.occurred_at, a_field("caller"),
                                a_field("did")))

    # ---- FreeSWITCH timestamps
    hangup = next((e for e in a_leg if e.type in _HANGUP_TYPES), None)
    end_us = hangup.occurred_at if hangup else 0
    hangup_cause = a_field("hangup_cause") if hangup else ""
    if hangup is not None:
        hangup_cause = hangup.payload.get("hangup_cause") or hangup_cause
    if not end_us:
        ended = next((e for e in call_events if e.type == "call_ended"), None)
        if ended is not None:
            end_us = ended.occurred_at
            hangup_cause = ended.payload.get("hangup_cause") or ""
    if not end_us and visits and visits[-1].outcome == "abandoned":
        end_us = visits[-1].left_us

    bridges = [e for e in call_events if e.type == "channel_bridged"]
    other_legs = []
    for e in bridges:
        other = e.payload.get("other_leg_id") or (e.payload.get("leg_id")
                                                 if e.payload.get("leg") == "b" else None)
        if other and other not in other_legs:
            other_legs.append(other)
    transfers = max(0, len(other_legs) - 1)

    if visits and visits[-1].outcome == "waiting":
        # Connected without the router's word (its fact is late or lost): trust the bridge.
        v = visits[-1]
        bridge = next((e for e in bridges if e.occurred_at >= v.enqueue_us), None)
        if bridge is not None:
            other = bridge.payload.get("other_leg_id") or bridge.payload.get("offer_id") or ""
            offer = next((o for o in v.offers if o[0] == other), v.offers[-1] if v.offers else None)
            v.outcome = "answered"
            v.answer_us = v.left_us = bridge.occurred_at
            v.wait_ms = _ms(bridge.occurred_at - v.enqueue_us)
            if offer is not None:
                v.offer_id, v.agent_id, v.extension = offer[0], offer[1], offer[2]
                v.ring_ms = _ms(bridge.occurred_at - offer[3])
    answered_visit = next((v for v in visits if v.outcome == "answered"), None)
    connected = answered_visit is not None
    if visits:
        answer_us = answered_visit.answer_us if answered_visit else 0
    else:
        b_answer = next((e.occurred_at for e in b_leg if e.type == "channel_answered"), 0)
        answer_us = min([t for t in (b_answer, bridges[0].occurred_at if bridges else 0) if t],
                        default=0)
        connected = bool(answer_us)
        if not answer_us:  # answered by FreeSWITCH itself (IVR, voicemail) or the far end
            answer_us = next((e.occurred_at for e in a_leg if e.type == "channel_answered"), 0)

    # Hold: paired per leg; a hold still open at the end lasts until the end.
    hold_us = 0
    held_since: dict[str, int] = {}
    for e in call_events:
        leg = e.payload.get("leg_id") or ""
        if e.type == "channel_held":
            held_since.setdefault(leg, e.occurred_at)
        elif e.type == "channel_unheld" and leg in held_since:
            hold_us += e.occurred_at - held_since.pop(leg)
    if end_us:
        hold_us += sum(max(0, end_us - t) for t in held_since.values())
    hold_ms = _ms(hold_us)

    talk_ms = 0
    if answer_us and end_us:
        talk_ms = max(0, _ms(end_us - answer_us) - hold_ms)
    elif ended_payload is not None:
        talk_ms = max(0, int(ended_payload.get("talk_ms") or 0) - hold_ms)

    # Wrap-up: the answering agent's wrap_up state until that agent's next state.
    agent_id = answered_visit.agent_id if answered_visit else ""
    if not agent_id and ended_payload is not None:
        agent_id = ended_payload.get("agent_id") or ""
    wrap_start = wrap_end = 0
    for e in agent_events:
        if agent_id and e.payload.get("agent_id") != agent_id:
            continue
        if answer_us and e.occurred_at < answer_us:
            continue
        if not wrap_start and e.payload.get("state") == "wrap_up":
            wrap_start = e.occurred_at
        elif wrap_start and e.payload.get("state") != "wrap_up":
            wrap_end = e.occurred_at
            break
    wrap_ms = _ms(wrap_end - wrap_start) if wrap_end else 0

    # ---- outcome
    ended = bool(end_us) and (hangup is not None or ended_payload is not None
                              or (visits and visits[-1].outcome == "abandoned"))
    last = visits[-1] if visits else None
    if last is not None and last.outcome == "waiting" and ended:
        # Hung up in queue without the router's verdict: an abandon, by the same threshold.
        last.outcome = "abandoned"
        last.left_us = end_us
        last.wait_ms = _ms(end_us - last.enqueue_us)
        last.short_abandon = last.wait_ms < short_abandon_ms
    if visits:
        if answered_visit is not None:
            disposition = "answered"
        elif last.outcome == "abandoned":
            disposition = "short_abandoned" if last.short_abandon else "abandoned"
        elif last.outcome == "overflowed":
            disposition = ("voicemail" if last.overflow_target.startswith("voicemail")
                           else "overflowed")
        else:
            disposition = "in_progress"
    elif answer_us and (connected or ended):
        disposition = "answered"
    elif not ended:
        disposition = "in_progress"
    elif hangup_cause in _BUSY:
        disposition = "busy"
    elif hangup_cause in _NO_ANSWER:
        disposition = "no_answer"
    else:
        disposition = "failed"

    final = ended and (not agent_id or bool(wrap_end) or _agent_moved_on(agent_events,
                                                                        agent_id, end_us))

    recording = ""
    for e in call_events:
        if e.type in ("recording_started", "recording_stopped") and e.payload.get("recording_path"):
            recording = e.payload["recording_path"]
    ivr_path = a_field("ivr_path")
    if not ivr_path:
        choices = [e.payload.get("ivr_choice") for e in a_leg if e.type == "ivr_choice_made"]
        ivr_path = ">".join(c for c in choices if c)

    first_visit = visits[0] if visits else None
    offers = [o for v in visits for o in v.offers]
    caller = a_field("caller") or (first_visit.caller if first_visit else "")
    did = a_field("did") or (first_visit.did if first_visit else "")
    queue = last.queue if last else a_field("queue")
    notes = []
    if transfers:
        notes.append(f"transferred {transfers}x")
    if any(v.outcome == "overflowed" for v in visits):
        notes.append("overflow " + ", ".join(f"{v.queue}->{v.overflow_target}"
                                             for v in visits if v.outcome == "overflowed"))

    direction = a_field("direction") or ("inbound" if visits else "internal")
    extension = answered_visit.extension if answered_visit else ""
    if not extension and direction in ("outbound", "internal") and not visits:
        extension = a_field("caller") if direction == "internal" else ""

    wait_ms = sum(v.wait_ms for v in visits)
    ring_ms = answered_visit.ring_ms if answered_visit else 0
    if answered_visit and not ring_ms and answered_visit.offers:
        ring_ms = _ms(answered_visit.answer_us - answered_visit.offers[-1][3])

    cdr = {
        "tenant": tenant, "call_id": call_id, "start_us": start_us, "direction": direction,
        "did": did, "caller": caller, "callee": a_field("callee"), "queue": queue or "",
        "agent_id": agent_id, "extension": extension, "ivr_path": ivr_path,
        "enqueue_us": first_visit.enqueue_us if first_visit else 0,
        "offer_us": offers[0][3] if offers else 0, "answer_us": answer_us, "end_us": end_us,
        "wait_ms": wait_ms, "ring_ms": ring_ms, "talk_ms": talk_ms, "hold_ms": hold_ms,
        "wrap_ms": wrap_ms, "disposition": disposition, "hangup_cause": hangup_cause or "",
        "recording": recording, "notes": "; ".join(notes), "queues_visited": len(visits),
        "offers": len(offers), "ring_no_answer": sum(v.ring_no_answer for v in visits),
        "transfers": transfers, "final": 1 if final else 0,
    }
    visit_rows = []
    for i, v in enumerate(visits):
        handled = v is answered_visit
        visit_rows.append({
            "tenant": tenant, "call_id": call_id, "visit": i, "queue": v.queue,
            "enqueue_us": v.enqueue_us, "caller": v.caller or caller, "did": v.did or did,
            "outcome": v.outcome, "short_abandon": 1 if v.short_abandon else 0,
            "agent_id": v.agent_id, "wait_ms": v.wait_ms, "ring_ms": v.ring_ms,
            "talk_ms": talk_ms if handled else 0, "hold_ms": hold_ms if handled else 0,
            "wrap_ms": wrap_ms if handled else 0, "offers": len(v.offers),
            "ring_no_answer": v.ring_no_answer, "overflow_target": v.overflow_target,
            "final": 1 if final else 0,
        })
    return CallFacts(cdr, tuple(visit_rows))


def _agent_moved_on(agent_events: list[Envelope], agent_id: str, end_us: int) -> bool:
    """The agent changed state after the call ended without a wrap-up (none configured)."""
    return any(e.payload.get("agent_id") == agent_id and e.occurred_at >= end_us
               and e.payload.get("state") not in ("wrap_up", "on_call")
               for e in agent_events)
