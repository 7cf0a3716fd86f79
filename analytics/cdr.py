"""The call log fold: a call's events -> its CDR row, its queue visits and its offers. Pure.

`fold_call(events)` takes every event known for one call, in any order and with
duplicates, and returns the same result for the same set of events. The sink calls it
again whenever a late event arrives and replaces the rows it wrote before; nothing here
does I/O. The events are:

* FreeSWITCH's channel facts of every leg of the call (`tongdai.fs.events.v1`): the
  caller's leg (the call's id) and the legs joined to it (agent legs, forwarded numbers,
  the customer leg of a click-to-call), whoever originated them;
* mod_callcenter's queue facts (`callcenter_event_received`), for tenants whose queues
  FreeSWITCH runs itself;
* the product router's facts (`tongdai.cc.events.v1`) and the answering agent's state
  changes that bracket the wrap-up.

The switch is the truth of what people lived (deploy/docs/DESIGN.md, "Three truths"): a
call is *answered* when its caller was bridged to a person (an agent, an extension, a
forwarded number), and the answer, wait and talk times are those of the bridge. A call the switch
answered for an IVR, a park or a prompt is not answered. The router's and mod_callcenter's
facts add queue meaning (which queue, which agent was offered, after hours, overflow);
they are not needed for a call to be logged.

A callback that keeps the caller's place (routing/callbacks.py) is one story too: the
caller asked for it and was hung up by the switch, then an agent's leg dialled the
customer, maybe several times. The router's `callback_*` facts say so; the agents' legs
and the customers' legs (which carry the call's id: the callback offer exports it) are legs
of the same call. The row is the inbound call's: `callback` says what became of the
request, `callback_attempts` how many times the customer was dialled, and when an agent
reached the customer the call is answered then, by that agent, with that conversation's
talk time and recording; the queue visit's outcome is `callback` (neither answered in the
queue nor abandoned: the caller left the line keeping its place).

One handler per event type (`_HANDLERS`) collects what the event says into `_Fold`;
`_Fold.finish()` derives the rows from what was collected.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
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
    "hangup_side", "corrections", "callback", "callback_attempts",
)
VISIT_COLUMNS = (
    "tenant", "call_id", "visit", "queue", "enqueue_us", "caller", "did", "outcome",
    "short_abandon", "agent_id", "wait_ms", "ring_ms", "talk_ms", "hold_ms", "wrap_ms",
    "offers", "ring_no_answer", "overflow_target", "final",
)
#: One row per offer of the call to an agent (the `offers` table, view `bi_offers`).
OFFER_COLUMNS = (
    "tenant", "call_id", "offer", "leg_id", "queue", "agent_id", "extension", "offered_us",
    "answered_us", "ended_us", "ring_ms", "result", "hangup_cause", "final",
)

DISPOSITIONS = ("answered", "abandoned", "short_abandoned", "abandoned_ringing",
                "abandoned_ivr", "closed", "voicemail", "overflowed", "forwarded", "failed",
                "busy", "no_answer", "in_progress", "callback", "callback_failed")
#: What became of a callback the caller asked for (the `callback` column; "" = none).
CALLBACK_STATES = ("", "requested", "connected", "failed", "cancelled")
OFFER_RESULTS = ("answered", "no_answer", "busy", "declined", "caller_abandoned",
                 "not_delivered", "withdrawn", "ringing")
HANGUP_SIDES = ("caller", "agent", "callee", "system", "")

_HANGUP_TYPES = ("channel_hangup_completed", "channel_hungup", "channel_destroyed")
_BUSY = frozenset({"USER_BUSY", "NORMAL_CIRCUIT_CONGESTION"})
_DECLINED = frozenset({"CALL_REJECTED"})
_NO_ANSWER = frozenset({"NO_ANSWER", "NO_USER_RESPONSE", "ALLOTTED_TIMEOUT",
                        "PROGRESS_TIMEOUT", "RECOVERY_ON_TIMER_EXPIRE", "MEDIA_TIMEOUT"})
_NOT_DELIVERED = frozenset({"USER_NOT_REGISTERED", "SUBSCRIBER_ABSENT", "UNALLOCATED_NUMBER",
                            "NO_ROUTE_DESTINATION", "DESTINATION_OUT_OF_ORDER",
                            "INVALID_NUMBER_FORMAT", "NETWORK_OUT_OF_ORDER",
                            "NORMAL_TEMPORARY_FAILURE", "INCOMPATIBLE_DESTINATION"})
_WITHDRAWN = frozenset({"LOSE_RACE", "PICKED_OFF"})
# mod_callcenter's reasons for a member leaving a queue without an agent, other than
# hanging up: the dialplan goes on (an overflow in the product's words).
_CC_LEFT = frozenset({"TIMEOUT", "NO_AGENT_TIMEOUT", "BREAK_OUT", "EXIT_WITH_KEY"})

Thresholds = int | Mapping[str, int]


@dataclass(frozen=True)
class CallFacts:
    """What the fold knows about one call: its CDR, queue visits and offers.

    `cdr` is None when the events are not a call of their own: a leg an ESL router
    originated to an agent's phone that nothing ties to a caller (it rang and was never
    bridged). Such a leg is not written as a call."""

    cdr: dict[str, Any] | None
    visits: tuple[dict[str, Any], ...]
    offers: tuple[dict[str, Any], ...] = ()

    @property
    def final(self) -> bool:
        return bool(self.cdr and self.cdr["final"])


# ---- what the handlers collect ------------------------------------------------------

@dataclass
class Leg:
    """One FreeSWITCH channel of the call, as its events describe it."""

    leg_id: str
    created_us: int = 0
    answered_us: int = 0
    parked_us: int = 0
    ended_us: int = 0
    cause: str = ""
    sip_disposition: str = ""  # recv_bye = the far end hung up; send_bye = the switch did
    fs_direction: str = ""  # Call-Direction: inbound = came to the switch, outbound = originated
    declared_direction: str = ""
    caller: str = ""
    callee: str = ""
    caller_name: str = ""
    extension: str = ""  # the directory user whose phone this leg is
    user: bool = False  # a leg of a directory user (authenticated or dialed as user/...)
    offer_id: str = ""
    agent_id: str = ""
    queue: str = ""
    did: str = ""
    ivr_path: str = ""
    cc_side: str = ""
    ext_router: bool = False  # an ESL router tied it to its caller (cc_caller_uuid)
    originated_by: str = ""  # the leg whose bridge originated it (Other-Type: originator)
    seen_created: bool = False
    click_to_call: bool = False
    apps: set[str] = field(default_factory=set)
    voicemail: bool = False


@dataclass
class Bridge:
    a: str
    b: str
    at_us: int
    end_us: int = 0


@dataclass
class Offer:
    """One offer of the call to an agent: a leg that rang an agent's phone."""

    key: str  # the agent leg's uuid where known
    at_us: int
    queue: str = ""
    agent_id: str = ""
    extension: str = ""
    leg_id: str = ""
    answered_us: int = 0
    ended_us: int = 0
    cause: str = ""
    answered_by_router: bool = False
    result: str = ""


@dataclass
class Visit:
    """One stay of a call in one queue."""

    queue: str
    enqueue_us: int
    caller: str = ""
    did: str = ""
    outcome: str = "waiting"  # answered | abandoned | overflowed | closed | waiting
    short_abandon: bool | None = None  # None: by the threshold
    agent_id: str = ""
    extension: str = ""
    offer_id: str = ""
    wait_ms: int = 0
    ring_ms: int = 0
    answer_us: int = 0
    left_us: int = 0
    overflow_target: str = ""
    ringing_at_abandon: bool = False
    source: str = "router"  # router | callcenter | park
    after_hours_action: str = ""
    callback: bool = False  # its caller asked to be called back, keeping its place


@dataclass
class CallbackStory:
    """The router's `callback_*` facts of the call."""

    requested_us: int
    number: str = ""
    queue: str = ""
    outcome: str = ""  # "" while pending; connected | failed | cancelled
    attempts: int = 0
    completed_us: int = 0
    results: dict[int, str] = field(default_factory=dict)  # attempt -> its hangup cause

    @property
    def state(self) -> str:
        return self.outcome or "requested"


def _ms(us: int) -> int:
    return max(0, us // 1000)


def _us(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _bare(name: str | None) -> str:
    """mod_callcenter names agents and queues `name@domain`; the tenant is the domain."""
    return (name or "").partition("@")[0]


# Facts stamped with the same µs happen in this order.
_RANK = {"channel_created": 0, "channel_answered": 1, "channel_parked": 2,
         "call_enqueued": 3, "callcenter_event_received": 3, "call_overflowed": 4,
         "call_offered": 5, "call_answered": 6, "channel_bridged": 7, "call_abandoned": 8,
         "channel_unbridged": 9, "call_ended": 10, "channel_hungup": 11,
         "channel_hangup_completed": 12, "channel_destroyed": 13, "agent_state_changed": 14}


def _order(e: Envelope) -> tuple:
    return (e.occurred_at, _RANK.get(e.type, 7), e.seq or 0, e.event_id)


def dedupe(events: Iterable[Envelope]) -> list[Envelope]:
    """Events by time, each event id once (re-sent records carry the same id)."""
    seen: dict[str, Envelope] = {}
    for e in events:
        seen.setdefault(e.event_id, e)
    return sorted(seen.values(), key=_order)


class _Fold:
    """The state the handlers fill in, and the derivation of the rows (`finish`)."""

    def __init__(self, call_id: str, tenant: str, short_abandon: Thresholds):
        self.call_id = call_id
        self.tenant = tenant
        self.short_abandon = short_abandon
        self.first_us = 0
        self.legs: dict[str, Leg] = {}
        self.bridges: list[Bridge] = []
        self.visits: list[Visit] = []
        self.offers: dict[str, Offer] = {}
        self.cc_pending: list[Offer] = []  # agent-offering facts not yet tied to a leg
        self.cc_failed: list[tuple[str, int, str]] = []  # (agent, at, cause)
        self.router_answer: dict[str, Any] | None = None
        self.ended_fact: tuple[int, dict[str, Any]] | None = None
        self.agent_events: list[Envelope] = []
        self.held_since: dict[str, int] = {}
        self.hold_us = 0
        self.recording = ""
        self.ivr_choices: list[str] = []
        self.ivr_paths: list[str] = []  # each IVR event's path so far, in time order
        self.corrections: set[str] = set()  # the router's "what->action" for this call
        self.first_caller = ""
        self.callback: CallbackStory | None = None

    # ---- legs
    def leg(self, leg_id: str) -> Leg:
        leg = self.legs.get(leg_id)
        if leg is None:
            leg = self.legs[leg_id] = Leg(leg_id)
        return leg

    def describe(self, e: Envelope, leg_id: str | None) -> Leg | None:
        """What any event with channel data says about its leg (times, parties, vars)."""
        if not leg_id:
            return None
        p, h = e.payload, e.payload.get("headers") or {}
        leg = self.leg(leg_id)

        def keep(attr: str, value: Any) -> None:
            if value and not getattr(leg, attr):
                setattr(leg, attr, value)

        if "fs_event" in p and e.type != "callcenter_event_received":
            keep("caller", p.get("caller"))
            keep("callee", p.get("callee"))
            keep("caller_name", p.get("caller_name"))
            keep("did", p.get("did"))
            keep("ivr_path", p.get("ivr_path"))
            if leg_id != e.call_id:  # the caller's bridge names the offer it joined
                keep("offer_id", p.get("offer_id"))
            keep("queue", p.get("queue"))
            keep("extension", p.get("extension"))
            if not h.get("Call-Direction") and p.get("direction"):
                # A fact without FreeSWITCH's own headers (a test scenario, an old record):
                # its direction is all there is.
                keep("declared_direction", p.get("direction"))
        keep("fs_direction", h.get("Call-Direction"))
        keep("declared_direction", h.get("variable_tongdai_direction"))
        keep("agent_id", h.get("variable_tongdai_agent_id") or _bare(h.get("variable_cc_agent")))
        keep("queue", _bare(h.get("variable_cc_queue")))
        keep("cc_side", h.get("variable_cc_side"))
        keep("sip_disposition", h.get("variable_sip_hangup_disposition"))
        if h.get("variable_cc_caller_uuid"):
            leg.ext_router = True
        if h.get("variable_tongdai_click_to_call"):
            leg.click_to_call = True
        user = h.get("variable_dialed_user") or h.get("variable_user_name")
        if user:
            leg.user = True
            keep("extension", user)
        for name in ("variable_current_application", "variable_last_app"):
            if h.get(name):
                leg.apps.add(h[name])
        if h.get("variable_voicemail_message_len"):
            leg.voicemail = True
        if e.type == "callcenter_event_received":
            keep("caller", p.get("caller") if leg_id == e.call_id else None)
            keep("callee", h.get("Caller-Destination-Number"))
            if h.get("Caller-Channel-Hangup-Time", "0") != "0":
                keep("cause", h.get("Hangup-Cause"))
        # FreeSWITCH's own stamps of these moments win over the time an event was sent.
        for attr, name in (("created_us", "Caller-Channel-Created-Time"),
                           ("answered_us", "Caller-Channel-Answered-Time"),
                           ("ended_us", "Caller-Channel-Hangup-Time")):
            stamp = _us(h.get(name))
            if stamp:
                setattr(leg, attr, stamp)
        return leg


# ---- one handler per event type -----------------------------------------------------

def _channel_leg(f: _Fold, e: Envelope) -> Leg | None:
    leg = f.describe(e, e.payload.get("leg_id"))
    if leg is not None and e.payload.get("hangup_cause") and e.type in _HANGUP_TYPES:
        leg.cause = leg.cause or e.payload["hangup_cause"]
    return leg


def _on_created(f: _Fold, e: Envelope) -> None:
    leg = _channel_leg(f, e)
    if leg is None:
        return
    leg.seen_created = True
    h = e.payload.get("headers") or {}
    if h.get("Other-Type") == "originator" and h.get("Other-Leg-Unique-ID"):
        leg.originated_by = h["Other-Leg-Unique-ID"]
    elif "Other-Type" not in h and e.payload.get("leg") == "b" and not e.payload.get("offer_id") \
            and not h.get("Call-Direction"):
        leg.originated_by = e.call_id or ""  # a scenario's b leg: the dialplan's bridge
    leg.created_us = leg.created_us or e.occurred_at


def _on_answered(f: _Fold, e: Envelope) -> None:
    leg = _channel_leg(f, e)
    if leg is not None and not leg.answered_us:
        leg.answered_us = e.occurred_at


def _on_parked(f: _Fold, e: Envelope) -> None:
    leg = _channel_leg(f, e)
    if leg is not None and not leg.parked_us:
        leg.parked_us = e.occurred_at


def _on_bridged(f: _Fold, e: Envelope) -> None:
    _channel_leg(f, e)
    h = e.payload.get("headers") or {}
    a = h.get("Bridge-A-Unique-ID") or e.payload.get("leg_id") or ""
    b = h.get("Bridge-B-Unique-ID") or e.payload.get("other_leg_id") or ""
    if a and b and a != b:
        _add_bridge(f, a, b, e.occurred_at)


def _add_bridge(f: _Fold, a: str, b: str, at: int) -> Bridge:
    for br in f.bridges:
        if {br.a, br.b} == {a, b} and (br.end_us == 0 or br.end_us >= at) and br.at_us <= at:
            return br  # the same bridge, told twice (FreeSWITCH and mod_callcenter)
    br = Bridge(a, b, at)
    f.bridges.append(br)
    return br


def _on_unbridged(f: _Fold, e: Envelope) -> None:
    _channel_leg(f, e)
    h = e.payload.get("headers") or {}
    a = h.get("Bridge-A-Unique-ID") or e.payload.get("leg_id") or ""
    b = h.get("Bridge-B-Unique-ID") or e.payload.get("other_leg_id") or ""
    for br in f.bridges:
        if {br.a, br.b} == {a, b} and not br.end_us and br.at_us <= e.occurred_at:
            br.end_us = e.occurred_at


def _on_held(f: _Fold, e: Envelope) -> None:
    _channel_leg(f, e)
    f.held_since.setdefault(e.payload.get("leg_id") or "", e.occurred_at)


def _on_unheld(f: _Fold, e: Envelope) -> None:
    _channel_leg(f, e)
    since = f.held_since.pop(e.payload.get("leg_id") or "", None)
    if since is not None:
        f.hold_us += e.occurred_at - since


def _on_hangup(f: _Fold, e: Envelope) -> None:
    leg = _channel_leg(f, e)
    if leg is not None and not leg.ended_us:
        leg.ended_us = e.occurred_at
    _bridge_told_by_hangup(f, e)


def _bridge_told_by_hangup(f: _Fold, e: Envelope) -> None:
    """A leg's hangup says when it was last bridged and to whom (Caller-Channel-Bridged-
    Time, last_bridge_to). When the bridge's own event was lost (no ESL client connected
    at that moment), this is the only word of it: without it an answered call would be
    told abandoned. A bridge already seen between the two legs is not told twice."""
    h = e.payload.get("headers") or {}
    at = _us(h.get("Caller-Channel-Bridged-Time"))
    other = h.get("variable_last_bridge_to") or ""
    me = e.payload.get("leg_id") or ""
    if not at or not other or not me or other == me:
        return
    if any({br.a, br.b} == {me, other} for br in f.bridges):
        return
    a, b = (me, other) if me == f.call_id or other != f.call_id else (other, me)
    br = _add_bridge(f, a, b, at)
    br.end_us = br.end_us or _us(h.get("Caller-Channel-Hangup-Time")) or e.occurred_at


def _on_recording(f: _Fold, e: Envelope) -> None:
    _channel_leg(f, e)
    if e.payload.get("recording_path"):
        f.recording = e.payload["recording_path"]


def _on_ivr_choice(f: _Fold, e: Envelope) -> None:
    _channel_leg(f, e)
    if e.payload.get("ivr_choice"):
        f.ivr_choices.append(e.payload["ivr_choice"])
    if e.payload.get("ivr_path") and e.payload.get("leg_id", e.call_id) == f.call_id:
        f.ivr_paths.append(e.payload["ivr_path"])


def _on_other_channel_fact(f: _Fold, e: Envelope) -> None:
    _channel_leg(f, e)


# -- the product router's facts

def _visit_of(f: _Fold, queue: str, at: int, wait_ms: int = 0) -> Visit:
    """The open visit of `queue`, or the one a router fact implies (its enqueue not seen)."""
    for v in reversed(f.visits):
        if v.queue == queue and v.outcome == "waiting":
            return v  # (a callback's visit stays open until the fold settles it)
    v = Visit(queue, at - wait_ms * 1000)
    f.visits.append(v)
    return v


def _on_call_enqueued(f: _Fold, e: Envelope) -> None:
    p = e.payload
    for v in reversed(f.visits):
        if v.queue == p["queue"] and (v.outcome == "waiting" or v.left_us == e.occurred_at):
            # Told again, or a fact of this visit came first with the same stamp.
            v.caller = v.caller or p.get("caller") or ""
            v.did = v.did or p.get("did") or ""
            v.enqueue_us = min(v.enqueue_us, e.occurred_at)
            return
    f.visits.append(Visit(p["queue"], e.occurred_at, p.get("caller") or "", p.get("did") or ""))


def _on_call_offered(f: _Fold, e: Envelope) -> None:
    p = e.payload
    _visit_of(f, p["queue"], e.occurred_at)
    o = f.offers.get(p["offer_id"])
    if o is None:
        o = f.offers[p["offer_id"]] = Offer(p["offer_id"], e.occurred_at)
    o.queue, o.agent_id = p["queue"], p["agent_id"]
    o.extension = o.extension or p.get("extension") or ""
    o.at_us = min(o.at_us, e.occurred_at)


def _on_call_answered(f: _Fold, e: Envelope) -> None:
    p = e.payload
    v = _visit_of(f, p["queue"], e.occurred_at, int(p["wait_ms"]))
    if not v.callback:
        # A callback's agent answering is not the answer: the customer is dialled then.
        v.outcome, v.agent_id, v.offer_id = "answered", p["agent_id"], p["offer_id"]
        v.answer_us = v.left_us = e.occurred_at
    o = f.offers.setdefault(p["offer_id"], Offer(p["offer_id"],
                                                e.occurred_at - int(p["ring_ms"]) * 1000))
    o.agent_id, o.queue, o.answered_by_router = p["agent_id"], p["queue"], True
    f.router_answer = p


def _on_call_abandoned(f: _Fold, e: Envelope) -> None:
    p = e.payload
    v = _visit_of(f, p["queue"], e.occurred_at, int(p["wait_ms"]))
    if v.callback:
        return  # the router gives up a callback the customer never answered: told below
    v.outcome, v.left_us, v.short_abandon = "abandoned", e.occurred_at, bool(p["short"])


def _after_hours(p: Mapping[str, Any]) -> bool:
    # The router's after-hours decision (RunAfterHoursAction) says why it sent the call
    # on; `after_hours` is what newer routers say outright.
    return bool(p.get("after_hours")) or " is closed" in (p.get("reason") or "")


def _on_call_overflowed(f: _Fold, e: Envelope) -> None:
    p = e.payload
    v = _visit_of(f, p["queue"], e.occurred_at)
    v.left_us = e.occurred_at
    v.overflow_target = f"{p['action']}:{p.get('target') or ''}"
    if _after_hours(p):
        v.outcome, v.after_hours_action = "closed", p["action"]
    else:
        v.outcome = "overflowed"
    if p["action"] == "queue" and p.get("target"):
        if not any(x.queue == p["target"] and x.enqueue_us == e.occurred_at for x in f.visits):
            f.visits.append(Visit(p["target"], e.occurred_at, v.caller, v.did))


def _on_call_ended(f: _Fold, e: Envelope) -> None:
    f.ended_fact = (e.occurred_at, e.payload)


def _story(f: _Fold, e: Envelope) -> CallbackStory:
    p = e.payload
    cb = f.callback
    if cb is None:  # a later fact first (or the request lost): its own time for now
        cb = f.callback = CallbackStory(e.occurred_at)
    cb.number = cb.number or p.get("number") or ""
    cb.queue = cb.queue or p.get("queue") or ""
    return cb


def _on_callback_requested(f: _Fold, e: Envelope) -> None:
    """The waiting caller confirmed a callback: its visit stays open (the switch hangs
    the caller up; the call keeps its place)."""
    cb = _story(f, e)
    cb.requested_us = min(cb.requested_us, e.occurred_at)
    _visit_of(f, cb.queue, e.occurred_at).callback = True


def _on_callback_attempted(f: _Fold, e: Envelope) -> None:
    cb = _story(f, e)
    attempt = int(e.payload.get("attempt") or len(cb.results) + 1)
    cb.results[attempt] = e.payload.get("result") or ""
    cb.attempts = max(cb.attempts, attempt)


def _on_callback_completed(f: _Fold, e: Envelope) -> None:
    cb = _story(f, e)
    cb.outcome = e.payload.get("outcome") or ""
    cb.attempts = max(cb.attempts, int(e.payload.get("attempts") or 0))
    cb.completed_us = e.occurred_at
    if cb.outcome == "cancelled":
        for v in f.visits:  # the caller is still waiting: an ordinary visit again
            v.callback = False


def _on_agent_state(f: _Fold, e: Envelope) -> None:
    f.agent_events.append(e)


# -- mod_callcenter's facts

def _on_callcenter(f: _Fold, e: Envelope) -> None:
    p = e.payload
    h = p.get("headers") or {}
    action = p.get("action")
    queue = _bare(p.get("queue"))
    leg = f.describe(e, p.get("leg_id"))
    f.first_caller = f.first_caller or p.get("caller") or ""
    if action in ("member-queue-start", "member-queue-resume"):
        if not any(v.queue == queue and v.enqueue_us == e.occurred_at for v in f.visits):
            v = Visit(queue, e.occurred_at, p.get("caller") or "", source="callcenter")
            f.visits.append(v)
    elif action == "member-queue-end":
        v = _visit_of(f, queue, e.occurred_at)
        v.source = "callcenter"
        v.left_us = v.left_us or e.occurred_at
        reason = (p.get("cancel_reason") or "").upper()
        if p.get("cause") == "Terminated":
            v.outcome = "answered"
            v.agent_id = v.agent_id or _bare(p.get("agent"))
            v.offer_id = v.offer_id or p.get("agent_leg_id") or ""
        elif p.get("cause") == "Cancel" and reason in _CC_LEFT:
            v.outcome, v.overflow_target = "overflowed", f"callcenter:{reason.lower()}"
        elif p.get("cause") == "Cancel":
            v.outcome = "abandoned"
    elif action == "agent-offering":
        f.cc_pending.append(Offer(f"cc:{p.get('agent')}:{e.occurred_at}", e.occurred_at,
                                  queue, _bare(p.get("agent"))))
    elif action in ("bridge-agent-start", "bridge-agent-end"):
        agent_leg = p.get("agent_leg_id") or (leg.leg_id if leg else "")
        if agent_leg:
            o = f.offers.setdefault(agent_leg, Offer(agent_leg, 0, queue))
            o.leg_id, o.queue = agent_leg, o.queue or queue
            o.agent_id = o.agent_id or _bare(p.get("agent"))
            answered = _us(h.get("CC-Agent-Answered-Time")) * 1_000_000
            o.answered_us = o.answered_us or answered
            called = _us(h.get("CC-Agent-Called-Time")) * 1_000_000
            o.at_us = o.at_us or called
        if action == "bridge-agent-end" and agent_leg:
            bridged = _us(h.get("Caller-Channel-Bridged-Time"))
            if bridged and h.get("CC-Agent-Bridged", "true") == "true":
                br = _add_bridge(f, e.call_id or "", agent_leg, bridged)
                br.end_us = br.end_us or _us(h.get("Caller-Channel-Hangup-Time")) or e.occurred_at
    elif action == "bridge-agent-fail":
        f.cc_failed.append((_bare(p.get("agent")), e.occurred_at, p.get("hangup_cause") or ""))


def _on_corrected(f: _Fold, e: Envelope) -> None:
    """The router corrected its belief about this call against the switch (a lost event):
    the row says so, so that a reader knows a part of the story was healed, not heard."""
    f.corrections.add(f"{e.payload.get('what')}->{e.payload.get('action')}")


_HANDLERS: dict[str, Callable[[_Fold, Envelope], None]] = {
    "channel_created": _on_created,
    "channel_answered": _on_answered,
    "channel_parked": _on_parked,
    "channel_bridged": _on_bridged,
    "channel_unbridged": _on_unbridged,
    "channel_held": _on_held,
    "channel_unheld": _on_unheld,
    "channel_hungup": _on_hangup,
    "channel_hangup_completed": _on_hangup,
    "channel_destroyed": _on_hangup,
    "channel_vanished": _on_hangup,  # ended unheard: dated when the node was last heard
    "recording_started": _on_recording,
    "recording_stopped": _on_recording,
    "ivr_choice_made": _on_ivr_choice,
    "dtmf_received": _on_other_channel_fact,
    "callcenter_event_received": _on_callcenter,
    "call_enqueued": _on_call_enqueued,
    "call_offered": _on_call_offered,
    "call_answered": _on_call_answered,
    "call_abandoned": _on_call_abandoned,
    "call_overflowed": _on_call_overflowed,
    "call_ended": _on_call_ended,
    "callback_requested": _on_callback_requested,
    "callback_attempted": _on_callback_attempted,
    "callback_completed": _on_callback_completed,
    "agent_state_changed": _on_agent_state,
    "state_corrected": _on_corrected,
}
#: The event types the fold reads (the sink routes these to calls).
FOLDED_TYPES = frozenset(_HANDLERS)


def fold_call(events: Iterable[Envelope],
              short_abandon_ms: Thresholds = DEFAULT_SHORT_ABANDON_MS,
              call_id: str | None = None) -> CallFacts:
    """Fold all known events of one call into its CDR, queue visits and offers.

    `short_abandon_ms` is one threshold or {queue: ms, "*": default}: it decides short
    abandons the router did not judge (mod_callcenter queues, calls the router missed).
    `call_id` is the caller's leg; by default the call id of the events (legs the sink
    joined to the call by a bridge may carry their own)."""
    evs = dedupe(events)
    if not evs:
        raise ValueError("fold_call needs at least one event")
    call_events = [e for e in evs if e.type != "agent_state_changed"]
    first = call_events[0] if call_events else evs[0]
    f = _Fold(call_id or first.call_id or "", first.tenant, short_abandon_ms)
    f.first_us = first.occurred_at
    for e in evs:
        handler = _HANDLERS.get(e.type)
        if handler is not None:
            handler(f, e)
    return _finish(f)


# ---- derivation ---------------------------------------------------------------------

def _threshold(f: _Fold, queue: str) -> int:
    t = f.short_abandon
    if isinstance(t, Mapping):
        return int(t.get(queue, t.get("*", DEFAULT_SHORT_ABANDON_MS)))
    return int(t)


def _is_offer_leg(f: _Fold, leg: Leg) -> bool:
    """A leg that rang an agent for the call: one the router, mod_callcenter or an ESL
    router originated on its own (not a leg the caller's own bridge dialled)."""
    if leg.leg_id == f.call_id:
        return False
    if leg.offer_id or leg.cc_side == "agent" or leg.ext_router or leg.leg_id in f.offers:
        return True
    return leg.seen_created and not leg.originated_by and leg.fs_direction == "outbound"


def _finish(f: _Fold) -> CallFacts:
    """Derive the call's rows from what the handlers collected, one named step at a time.

    Order matters: offers are joined before the answer is found, offers are judged before
    the visits are settled (a visit reads its offers' results), and the orphan check sees
    the park visit `_settle_visits` may add."""
    root = f.legs.get(f.call_id)
    if root is None and f.corrections and not (f.legs or f.visits or f.offers or
                                                f.router_answer or f.ended_fact):
        # Only a correction names this call (an agent leg left for a call long gone):
        # nothing for the call log to tell.
        return CallFacts(cdr=None, visits=())
    if root is None:
        root = Leg(f.call_id)
    cb = f.callback if f.callback is not None and f.callback.outcome != "cancelled" else None
    offer_legs = _join_offers(f)
    if cb is None:
        end_us = _end_us(f, root)
        ans = _answer(f, end_us)
    else:
        ans = _callback_answer(f, cb)
        end_us = _callback_end_us(f, root, cb, ans)
    offers = _judge_offers(f, root, ans.others, end_us, cb)
    visits = _settle_visits(f, root, ans, bool(offer_legs), offers, end_us, cb)
    hold_ms, talk_ms = _hold_and_talk(f, ans, end_us)
    answered_visit = next((v for v in visits if v.outcome == "answered"
                           or (v.callback and v.answer_us)), None)
    agent_id, extension = _who_answered(f, root, ans, answered_visit)
    wrap_ms, wrap_end = _wrap_up(f, agent_id, ans.answer_us)
    direction = _direction(f, root, visits, offers, ans.others)
    caller, callee, did = _parties(f, root, visits, ans, direction)
    c = _Call(
        root=root, end_us=end_us, ans=ans, offers=offers, visits=visits,
        answered_visit=answered_visit, agent_id=agent_id, extension=extension,
        hold_ms=hold_ms, talk_ms=talk_ms, wrap_ms=wrap_ms, direction=direction,
        caller=caller, callee=callee, did=did,
        disposition=_disposition(f, root, visits, ans.bridge, bool(end_us), direction)
        if cb is None else _callback_disposition(cb, ans, end_us),
        final=_is_final(f, end_us, agent_id, wrap_end), callback=cb,
    )
    if root.leg_id and _orphan_offer_leg(f, root):
        return CallFacts(None, (), ())
    return CallFacts(_cdr_row(f, c), _visit_rows(f, c), _offer_rows(f, c))


def _end_us(f: _Fold, root: Leg) -> int:
    """When the call ended (0: not yet): the caller's hangup, else the router's word."""
    if root.ended_us:
        return root.ended_us
    if f.ended_fact is not None and f.ended_fact[0]:
        return f.ended_fact[0]
    abandoned_visit = next((v for v in reversed(f.visits)
                            if v.outcome == "abandoned" and v.source == "router"), None)
    return abandoned_visit.left_us if abandoned_visit is not None else 0


def _join_offers(f: _Fold) -> list[Leg]:
    """Offers: the router's, mod_callcenter's and the legs that rang agents, one per offer.
    Returns the legs that rang agents."""
    offer_legs = [leg for leg in f.legs.values() if _is_offer_leg(f, leg)]
    for leg in offer_legs:
        key = leg.offer_id if leg.offer_id in f.offers else leg.leg_id
        o = f.offers.get(key)
        if o is None:
            o = f.offers[key] = Offer(key, leg.created_us or leg.answered_us or leg.ended_us)
        o.leg_id = leg.leg_id
        o.at_us = leg.created_us or o.at_us  # the offer's own time: its leg's creation
        o.answered_us = leg.answered_us or o.answered_us
        o.ended_us = leg.ended_us
        o.cause = leg.cause or o.cause
        o.agent_id = o.agent_id or leg.agent_id or leg.extension
        o.extension = o.extension or leg.extension
        o.queue = o.queue or leg.queue
    for pending in f.cc_pending:
        # mod_callcenter's offering: the agent leg it created at (about) that time.
        match = min((o for o in f.offers.values() if o.agent_id == pending.agent_id
                     and abs(o.at_us - pending.at_us) <= 2_000_000),
                    key=lambda o: abs(o.at_us - pending.at_us), default=None)
        if match is None:
            f.offers[pending.key] = pending
        else:
            match.queue = match.queue or pending.queue
    for agent, at, cause in f.cc_failed:
        match = max((o for o in f.offers.values() if o.agent_id == agent and o.at_us <= at
                     and not o.cause), key=lambda o: o.at_us, default=None)
        if match is not None:
            match.cause, match.ended_us = cause, match.ended_us or at
    return offer_legs


@dataclass(frozen=True)
class _Answer:
    """The caller's bridges to a person: the first is the answer, the others transfers."""

    bridge: Bridge | None  # the first bridge (None: nobody answered)
    talk_us: int  # over all the bridges, hold included
    others: list[str]  # the legs bridged to the caller, in order, each once
    answered_offer: Offer | None  # the offer whose leg was bridged first
    answering_leg: Leg | None
    last_leg: Leg | None

    @property
    def answer_us(self) -> int:
        return self.bridge.at_us if self.bridge else 0


def _answer(f: _Fold, end_us: int) -> _Answer:
    root_bridges = sorted((br for br in f.bridges if f.call_id in (br.a, br.b)),
                          key=lambda br: br.at_us)
    talk_us = 0
    for i, br in enumerate(root_bridges):
        stop = br.end_us or end_us
        if i + 1 < len(root_bridges):
            stop = min(stop or root_bridges[i + 1].at_us, root_bridges[i + 1].at_us)
        if stop:
            talk_us += max(0, stop - br.at_us)
    others: list[str] = []
    for br in root_bridges:
        other = br.b if br.a == f.call_id else br.a
        if other not in others:
            others.append(other)
    answered_offer = None
    if others:
        answered_offer = next((o for o in f.offers.values()
                               if o.leg_id == others[0] or o.key == others[0]), None)
    return _Answer(
        bridge=root_bridges[0] if root_bridges else None, talk_us=talk_us, others=others,
        answered_offer=answered_offer,
        answering_leg=f.legs.get(others[0]) if others else None,
        last_leg=f.legs.get(others[-1]) if others else None,
    )


def _judge_offers(f: _Fold, root: Leg, bridged: list[str], end_us: int,
                  cb: CallbackStory | None = None) -> list[Offer]:
    """Each offer's result; the offers in time order."""
    for o in f.offers.values():
        if cb is not None and o.at_us >= cb.requested_us:
            o.result = _callback_offer_result(o, end_us)
        else:
            o.result = _offer_result(f, o, bridged, root, end_us)
    for o in f.offers.values():
        o.at_us = o.at_us or root.created_us or f.first_us  # never 0: rows are by time
    return sorted(f.offers.values(), key=lambda o: (o.at_us, o.key))


def _settle_visits(f: _Fold, root: Leg, ans: _Answer, rang_agents: bool, offers: list[Offer],
                   end_us: int, cb: CallbackStory | None = None) -> list[Visit]:
    """The visits: the router's and mod_callcenter's, else the park; each settled."""
    ended = bool(end_us)
    visits = f.visits
    if not visits and root.parked_us and (root.queue or rang_agents or f.offers
                                          or (ended and not ans.bridge)):
        visits.append(Visit(root.queue or root.callee or "", root.parked_us, root.caller,
                            root.did, source="park"))
    for v in visits:
        if cb is not None and v.callback:
            _settle_callback_visit(v, cb, ans)
        else:
            _settle_visit(f, v, ans.bridge, ans.answered_offer, offers, end_us, ended)
    return visits


def _hold_and_talk(f: _Fold, ans: _Answer, end_us: int) -> tuple[int, int]:
    """(hold ms, talk ms without hold); an unanswered call has neither."""
    if ans.bridge is None:
        return 0, 0
    hold_us = f.hold_us
    if end_us:
        hold_us += sum(max(0, end_us - t) for t in f.held_since.values())
    hold_ms = _ms(hold_us)
    if not end_us and not ans.bridge.end_us:
        return hold_ms, 0  # still talking
    return hold_ms, max(0, _ms(ans.talk_us) - hold_ms)


def _who_answered(f: _Fold, root: Leg, ans: _Answer,
                  answered_visit: Visit | None) -> tuple[str, str]:
    """(agent id, extension) of who answered; for a call nobody answered, whom it was for."""
    agent_id = extension = ""
    if answered_visit is not None and ans.bridge is not None:
        agent_id, extension = answered_visit.agent_id, answered_visit.extension
    if ans.bridge is not None:
        if ans.answered_offer is not None:
            agent_id = agent_id or ans.answered_offer.agent_id
            extension = extension or ans.answered_offer.extension
        leg = ans.answering_leg
        if leg is not None:
            extension = extension or leg.extension
            if _is_offer_leg(f, leg):
                agent_id = agent_id or leg.agent_id or leg.extension
    if not agent_id and (root.click_to_call or root.agent_id) and root.fs_direction == "outbound":
        agent_id, extension = root.agent_id or root.extension, extension or root.extension
    if not agent_id and f.ended_fact is not None:
        agent_id = f.ended_fact[1].get("agent_id") or ""
    if not agent_id and ans.bridge is None and f.router_answer is not None:
        agent_id = f.router_answer["agent_id"]
    return agent_id, extension


def _wrap_up(f: _Fold, agent_id: str, answer_us: int) -> tuple[int, int]:
    """(wrap-up ms, its end or 0): the answering agent's wrap_up state until that agent's
    next state."""
    wrap_start = wrap_end = 0
    for e in f.agent_events:
        if agent_id and e.payload.get("agent_id") != agent_id:
            continue
        if answer_us and e.occurred_at < answer_us - 5_000_000:
            continue
        if not wrap_start and e.payload.get("state") == "wrap_up":
            wrap_start = e.occurred_at
        elif wrap_start and e.payload.get("state") != "wrap_up":
            wrap_end = e.occurred_at
            break
    return (_ms(wrap_end - wrap_start) if wrap_end else 0), wrap_end


def _parties(f: _Fold, root: Leg, visits: list[Visit], ans: _Answer,
             direction: str) -> tuple[str, str, str]:
    """(caller, callee, did) as a person reads them: on an outbound call the callee is the
    customer, not the agent's phone."""
    last_leg = ans.last_leg
    caller = root.caller or (visits[0].caller if visits else "") or f.first_caller
    callee = root.callee
    if direction == "outbound" and last_leg is not None and last_leg.callee:
        callee = last_leg.callee
    if root.click_to_call and root.fs_direction == "outbound":
        # The agent's phone rang first, showing the customer's number.
        if not (last_leg is not None and last_leg.callee):
            callee = root.caller or callee
        caller = root.extension or caller
    did = root.did or (visits[0].did if visits else "")
    return caller, callee, did


def _is_final(f: _Fold, end_us: int, agent_id: str, wrap_end: int) -> bool:
    """Ended, and the answering agent done with it (router calls have wrap-up)."""
    routed = f.router_answer is not None or (f.ended_fact is not None
                                             and f.ended_fact[1].get("agent_id"))
    return bool(end_us) and (not routed or not agent_id or bool(wrap_end)
                             or _agent_moved_on(f.agent_events, agent_id, end_us))


@dataclass(frozen=True)
class _Call:
    """What `_finish` derived, for the row builders."""

    root: Leg
    end_us: int
    ans: _Answer
    offers: list[Offer]
    visits: list[Visit]
    answered_visit: Visit | None
    agent_id: str
    extension: str
    hold_ms: int
    talk_ms: int
    wrap_ms: int
    direction: str
    caller: str
    callee: str
    did: str
    disposition: str
    final: bool
    callback: CallbackStory | None = None

    @property
    def counted(self) -> list[Visit]:
        """Visits that count as stays in a queue (a closed queue is not one)."""
        return [v for v in self.visits if v.outcome != "closed"]

    @property
    def last_queue(self) -> str:
        return self.visits[-1].queue if self.visits else ""


_NOT_ANSWERED = ("no_answer", "busy", "declined")


def _cdr_row(f: _Fold, c: _Call) -> dict[str, Any]:
    root, ans, visits, offers = c.root, c.ans, c.visits, c.offers
    hangup_cause = root.cause or (f.ended_fact[1].get("hangup_cause")
                                  if f.ended_fact else "") or ""
    hangup_side = _hangup_side(root, ans.last_leg if ans.bridge else None, c.direction,
                               bool(c.end_us))
    if c.callback is not None:
        hangup_cause, hangup_side = _callback_hangup(f, c.callback, ans, c.end_us)
    # The last menu's event names the whole path; the first channel event that carried
    # a path may have named only the first menu of it.
    ivr_path = (f.ivr_paths[-1] if f.ivr_paths else root.ivr_path) \
        or ">".join(ch for ch in f.ivr_choices if ch)
    transfers = max(0, len(ans.others) - 1)
    notes = []
    if transfers:
        notes.append(f"transferred {transfers}x")
    if any(v.outcome == "overflowed" for v in visits):
        notes.append("overflow " + ", ".join(f"{v.queue}->{v.overflow_target}"
                                             for v in visits if v.outcome == "overflowed"))
    if c.callback is not None:
        notes.append(_callback_note(c.callback, hangup_cause))
    counted = c.counted
    ring_ms = 0
    if ans.answered_offer is not None and ans.answered_offer.answered_us:
        ring_ms = _ms(ans.answered_offer.answered_us - ans.answered_offer.at_us)
    elif c.answered_visit is not None:
        ring_ms = c.answered_visit.ring_ms
    return {
        "tenant": f.tenant, "call_id": f.call_id,
        "start_us": root.created_us or f.first_us, "direction": c.direction,
        "did": c.did, "caller": c.caller, "callee": c.callee or "",
        "queue": c.last_queue if visits else (root.queue or ""),
        "agent_id": c.agent_id, "extension": c.extension, "ivr_path": ivr_path,
        "enqueue_us": visits[0].enqueue_us if visits else 0,
        "offer_us": offers[0].at_us if offers else 0, "answer_us": ans.answer_us,
        "end_us": c.end_us, "wait_ms": sum(v.wait_ms for v in counted), "ring_ms": ring_ms,
        "talk_ms": c.talk_ms, "hold_ms": c.hold_ms, "wrap_ms": c.wrap_ms,
        "disposition": c.disposition, "hangup_cause": hangup_cause, "recording": f.recording,
        "notes": "; ".join(notes), "queues_visited": len(counted), "offers": len(offers),
        "ring_no_answer": sum(1 for o in offers if o.result in _NOT_ANSWERED),
        "transfers": transfers, "final": 1 if c.final else 0,
        "hangup_side": hangup_side,
        "corrections": ",".join(sorted(f.corrections)),
        "callback": f.callback.state if f.callback is not None else "",
        "callback_attempts": f.callback.attempts if f.callback is not None else 0,
    }


def _visit_rows(f: _Fold, c: _Call) -> tuple[dict[str, Any], ...]:
    counted = c.counted
    rows = []
    for i, v in enumerate(counted):
        handled = v is c.answered_visit and c.ans.bridge is not None
        served = v.outcome == "answered" or handled
        mine = [o for o in c.offers if _offer_in_visit(o, v, counted)]
        rows.append({
            "tenant": f.tenant, "call_id": f.call_id, "visit": i, "queue": v.queue,
            "enqueue_us": v.enqueue_us, "caller": v.caller or c.caller, "did": v.did or c.did,
            "outcome": v.outcome, "short_abandon": 1 if v.short_abandon else 0,
            "agent_id": v.agent_id if served else "",
            "wait_ms": v.wait_ms, "ring_ms": v.ring_ms if served else 0,
            "talk_ms": c.talk_ms if handled else 0, "hold_ms": c.hold_ms if handled else 0,
            "wrap_ms": c.wrap_ms if handled else 0, "offers": len(mine),
            "ring_no_answer": sum(1 for o in mine if o.result in _NOT_ANSWERED),
            "overflow_target": v.overflow_target, "final": 1 if c.final else 0,
        })
    return tuple(rows)


def _offer_rows(f: _Fold, c: _Call) -> tuple[dict[str, Any], ...]:
    rows = []
    for i, o in enumerate(c.offers):
        stop = o.answered_us or o.ended_us or (c.end_us if o.result != "ringing" else 0)
        rows.append({
            "tenant": f.tenant, "call_id": f.call_id, "offer": i, "leg_id": o.leg_id,
            "queue": o.queue or c.last_queue, "agent_id": o.agent_id,
            "extension": o.extension, "offered_us": o.at_us, "answered_us": o.answered_us,
            "ended_us": o.ended_us, "ring_ms": _ms(stop - o.at_us) if stop else 0,
            "result": o.result, "hangup_cause": o.cause, "final": 1 if c.final else 0,
        })
    return tuple(rows)


def _offer_in_visit(o: Offer, v: Visit, visits: list[Visit]) -> bool:
    if o.queue and any(x.queue == o.queue for x in visits):
        if o.queue != v.queue:
            return False
    return v.enqueue_us - 1_000_000 <= o.at_us and (not v.left_us or o.at_us <= v.left_us
                                                    or v is visits[-1])


def _offer_result(f: _Fold, o: Offer, bridged: list[str], root: Leg, end_us: int) -> str:
    if o.leg_id and o.leg_id in bridged or (not o.leg_id and o.key in bridged):
        return "answered"
    cause = o.cause
    ended = o.ended_us or (end_us if not o.leg_id else 0)
    if o.answered_us:
        # Picked up but never bridged: the caller had gone, or the router let it go.
        if root.ended_us and (not o.ended_us or root.ended_us <= o.ended_us):
            return "caller_abandoned"
        if o.answered_by_router and not bridged:
            return "ringing" if not end_us else "caller_abandoned"
        return "withdrawn"
    if cause in _BUSY:
        return "busy"
    if cause in _DECLINED:
        return "declined"
    if cause in _NO_ANSWER:
        return "no_answer"
    if cause in _NOT_DELIVERED:
        return "not_delivered"
    if root.ended_us and o.ended_us and root.ended_us <= o.ended_us and not bridged:
        return "caller_abandoned"
    if cause in _WITHDRAWN:
        return "withdrawn"
    later_answer = any(x is not o and x.at_us >= 0 and (x.leg_id in bridged or x.key in bridged)
                       for x in f.offers.values())
    if cause and later_answer:
        return "withdrawn"
    if not o.leg_id and not o.ended_us:
        # Known from the router alone: a later offer means it rang out; the last one
        # rang until the caller left.
        if any(x.at_us > o.at_us for x in f.offers.values() if x is not o):
            return "no_answer"
        if end_us and not bridged:
            return "caller_abandoned"
        return "ringing" if not end_us else "no_answer"
    if not ended:
        return "ringing"
    return "no_answer"


def _settle_visit(f: _Fold, v: Visit, answer: Bridge | None, answered_offer: Offer | None,
                  offers: list[Offer], end_us: int, ended: bool) -> None:
    """The visit's outcome and times from the switch's truth where the router's is late,
    missing or not the switch's (the wait ends at the bridge, not at the router's word)."""
    if v.outcome == "closed":
        return
    bridged_here = answer is not None and answer.at_us >= v.enqueue_us - 1000 and (
        not v.left_us or v.outcome == "answered" or answer.at_us <= v.left_us)
    if bridged_here and v.outcome in ("waiting", "answered", "abandoned") \
            and (v.outcome != "abandoned" or v.source != "router"):
        v.outcome = "answered"
        v.answer_us = v.left_us = answer.at_us
        if answered_offer is not None:
            v.agent_id = v.agent_id or answered_offer.agent_id
            v.extension = v.extension or answered_offer.extension
            v.offer_id = v.offer_id or answered_offer.key
            if answered_offer.answered_us:
                v.ring_ms = _ms(answered_offer.answered_us - answered_offer.at_us)
        elif offers and not v.agent_id:
            v.agent_id, v.extension = offers[-1].agent_id, offers[-1].extension
        v.wait_ms = _ms(answer.at_us - v.enqueue_us)
        return
    if v.outcome == "answered" and answer is None:
        # The router connected it, the bridge is not (yet) seen: the router's word for now.
        v.wait_ms = v.wait_ms or _ms(v.answer_us - v.enqueue_us)
        return
    if v.outcome == "waiting" and ended:
        v.outcome = "abandoned"
        v.left_us = end_us
    if v.outcome in ("abandoned", "overflowed"):
        v.left_us = v.left_us or end_us
        v.wait_ms = _ms(v.left_us - v.enqueue_us)
    if v.outcome == "abandoned":
        if v.short_abandon is None:
            v.short_abandon = v.wait_ms < _threshold(f, v.queue)
        v.ringing_at_abandon = any(
            o.result == "caller_abandoned" and o.at_us <= v.left_us for o in offers
            if o.leg_id or o.answered_us or o.ended_us)


def _direction(f: _Fold, root: Leg, visits: list[Visit], offers: list[Offer],
               others: list[str]) -> str:
    """From the directory, not from the length of numbers: a queue call is inbound; a
    call the switch originated (click-to-call) is outbound; a directory user's call is
    internal when it reached another user's phone, outbound when it reached anything else."""
    if root.declared_direction in ("inbound", "outbound", "internal"):
        return root.declared_direction
    if root.click_to_call:
        return "outbound"
    if visits or offers:
        return "inbound"
    if root.fs_direction == "outbound":
        return "outbound"
    if root.user:
        reached = [f.legs[o] for o in others if o in f.legs]
        if reached and all(leg.user for leg in reached):
            return "internal"
        if reached:
            return "outbound"
        dialed = [leg for leg in f.legs.values() if leg.leg_id != f.call_id]
        if dialed and all(leg.user for leg in dialed):
            return "internal"
        if dialed:
            return "outbound"
    return "inbound"


def _disposition(f: _Fold, root: Leg, visits: list[Visit], answer: Bridge | None,
                 ended: bool, direction: str) -> str:
    if answer is not None:
        return "answered"
    last = visits[-1] if visits else None
    if last is not None:
        if last.outcome == "closed":
            return "voicemail" if last.after_hours_action == "voicemail" else "closed"
        if last.outcome == "abandoned":
            if last.short_abandon:
                return "short_abandoned"
            return "abandoned_ringing" if last.ringing_at_abandon else "abandoned"
        if last.outcome == "overflowed":
            if last.overflow_target.startswith("voicemail"):
                return "voicemail"
            if last.overflow_target.startswith(("forward", "forward_to_mobile")):
                return "forwarded" if ended else "in_progress"
            return "overflowed"
        if last.outcome == "answered":
            return "answered"  # the router's word; the bridge is on its way
        return "in_progress"
    if not ended:
        return "in_progress"
    if root.voicemail or "voicemail" in root.apps:
        return "voicemail"
    if root.click_to_call or (direction == "outbound" and root.fs_direction == "outbound"):
        return "failed"
    if root.answered_us and direction == "inbound":
        return "abandoned_ivr"  # the switch answered it (IVR, prompt); nobody did
    if root.cause in _BUSY or root.cause in _DECLINED:
        return "busy"
    if root.cause in _NO_ANSWER or root.cause == "ORIGINATOR_CANCEL":
        return "no_answer"
    return "failed"


def _hangup_side(root: Leg, other: Leg | None, direction: str, ended: bool) -> str:
    """Who hung up first, from SIP: `recv_*` = that leg's far end ended it (its phone or
    trunk hung up), `send_*` = the switch ended it. Both sent by the switch: the system
    (a router, a timeout, uuid_kill). Both received: the earlier hangup."""
    if not ended:
        return ""
    root_side = "agent" if direction == "outbound" and root.click_to_call else "caller"
    other_side = "callee" if root_side == "agent" or direction != "inbound" else "agent"
    if direction == "internal":
        other_side = "callee"
    r = root.sip_disposition.startswith("recv_")
    if other is None:
        if not root.sip_disposition:
            return ""
        return root_side if r else "system"
    o = other.sip_disposition.startswith("recv_")
    if r and o:
        return root_side if root.ended_us <= other.ended_us else other_side
    if r:
        return root_side
    if o:
        return other_side
    if root.sip_disposition or other.sip_disposition:
        return "system"
    return ""


# ---- a callback's story -------------------------------------------------------------

def _callback_agent_legs(f: _Fold, cb: CallbackStory) -> set[str]:
    """The legs that rang agents for the callback (its offers, made after the request)."""
    return {o.leg_id for o in f.offers.values() if o.leg_id and o.at_us >= cb.requested_us}


def _callback_talks(f: _Fold, cb: CallbackStory) -> list[tuple[Bridge, str, str]]:
    """(bridge, agent leg, customer leg) of each conversation: an agent's leg bridged to
    the leg it dialled, in time order."""
    agents = _callback_agent_legs(f, cb)
    talks = []
    for br in sorted(f.bridges, key=lambda x: x.at_us):
        if f.call_id in (br.a, br.b) or len({br.a, br.b} & agents) != 1:
            continue
        agent, customer = (br.a, br.b) if br.a in agents else (br.b, br.a)
        talks.append((br, agent, customer))
    return talks


def _callback_answer(f: _Fold, cb: CallbackStory) -> _Answer:
    """The callback's answer: the first agent leg bridged to the customer it dialled."""
    talks = _callback_talks(f, cb)
    talk_us = 0
    for br, agent, customer in talks:
        stop = br.end_us or min((leg.ended_us for leg in (f.legs.get(agent), f.legs.get(customer))
                                 if leg is not None and leg.ended_us), default=0)
        if stop:
            talk_us += max(0, stop - br.at_us)
    others: list[str] = []
    for _, agent, _ in talks:
        if agent not in others:
            others.append(agent)
    answered_offer = next((o for o in f.offers.values() if others and o.leg_id == others[0]),
                          None)
    return _Answer(
        bridge=talks[0][0] if talks else None, talk_us=talk_us, others=others,
        answered_offer=answered_offer,
        answering_leg=f.legs.get(others[0]) if others else None,
        last_leg=f.legs.get(others[-1]) if others else None,
    )


def _callback_end_us(f: _Fold, root: Leg, cb: CallbackStory, ans: _Answer) -> int:
    """A callback's call ends with its callback, not when the caller left the line: when
    the router gave it up, or when the conversation with the customer ended (the bridge's
    end, else the first of its legs to hang up, else the router's call_ended)."""
    if not cb.outcome:
        return 0
    ends = [root.ended_us, cb.completed_us]
    if cb.outcome == "connected":
        stop = 0
        if ans.bridge is not None:
            br = ans.bridge
            stop = br.end_us or min((leg.ended_us for leg in (f.legs.get(br.a), f.legs.get(br.b))
                                     if leg is not None and leg.ended_us), default=0)
        if not stop and f.ended_fact is not None and f.ended_fact[0] >= cb.completed_us:
            stop = f.ended_fact[0]
        if not stop:
            return 0  # still talking
        ends.append(stop)
    return max(ends)


def _callback_offer_result(o: Offer, end_us: int) -> str:
    """An offer of the callback to an agent: answered when the agent took it (the leg then
    dialled the customer, who may not have answered: that is the callback's attempt, not
    the agent's); else as the agent's phone lived it. The caller having left is no
    abandon here."""
    if o.answered_us or o.answered_by_router:
        return "answered"
    for causes, result in ((_BUSY, "busy"), (_DECLINED, "declined"), (_NO_ANSWER, "no_answer"),
                           (_NOT_DELIVERED, "not_delivered")):
        if o.cause in causes:
            return result
    return "withdrawn" if o.ended_us or o.cause or end_us else "ringing"


def _settle_callback_visit(v: Visit, cb: CallbackStory, ans: _Answer) -> None:
    """The visit of a caller who asked for a callback: outcome `callback`; it waited from
    entering the queue until the customer was reached (or the router gave up)."""
    v.outcome, v.short_abandon = "callback", False
    o = ans.answered_offer
    if cb.outcome == "connected":
        v.answer_us = v.left_us = ans.bridge.at_us if ans.bridge is not None else cb.completed_us
        if o is not None:
            v.agent_id, v.extension, v.offer_id = o.agent_id, o.extension, o.key
            if o.answered_us:
                v.ring_ms = _ms(o.answered_us - o.at_us)
    elif cb.outcome == "failed":
        v.left_us = cb.completed_us
    v.wait_ms = _ms(v.left_us - v.enqueue_us) if v.left_us else 0


def _callback_disposition(cb: CallbackStory, ans: _Answer, end_us: int) -> str:
    if cb.outcome == "connected":
        return "answered"  # an agent reached the customer (the bridge, or the router's word)
    if cb.outcome == "failed":
        return "callback_failed"
    return "callback"  # the caller left the line keeping its place: not over yet


def _callback_customer(f: _Fold, cb: CallbackStory, ans: _Answer) -> Leg | None:
    """The customer's leg of the last attempt: the last leg an agent leg of the callback
    dialled (the one it talked to, if any)."""
    talks = _callback_talks(f, cb)
    if talks:
        return f.legs.get(talks[-1][2])
    agents = _callback_agent_legs(f, cb)
    dialled = [leg for leg in f.legs.values() if leg.originated_by in agents]
    return max(dialled, key=lambda leg: (leg.created_us, leg.leg_id), default=None)


def _callback_hangup(f: _Fold, cb: CallbackStory, ans: _Answer, end_us: int) -> tuple[str, str]:
    """(hangup cause, side) of the callback's end: the customer is the caller's side."""
    customer = _callback_customer(f, cb, ans)
    agent = ans.last_leg if ans.bridge is not None else None
    cause = (customer.cause if customer is not None else "") or \
        (agent.cause if agent is not None else "") or \
        (cb.results[max(cb.results)] if cb.results else "")
    if customer is None:
        return cause, ""
    return cause, _hangup_side(customer, agent, "inbound", bool(end_us))


def _callback_note(cb: CallbackStory, last_cause: str = "") -> str:
    """What a person reads of the callback: its number, its end and each attempt's cause
    (the last one's from its legs: the router's facts name the earlier ones)."""
    number = cb.number or "the caller"
    attempts = f"{cb.attempts} attempt{'s' if cb.attempts != 1 else ''}"
    if cb.outcome == "connected":
        return f"callback to {number}: connected at attempt {cb.attempts}"
    if cb.outcome == "failed":
        results = dict(cb.results)
        if last_cause and cb.attempts and cb.attempts not in results:
            results[cb.attempts] = last_cause
        causes = [results[a] for a in sorted(results) if results[a]]
        why = f" ({', '.join(causes)})" if causes else ""
        return f"callback to {number}: not reached after {attempts}{why}"
    if cb.outcome == "cancelled":
        return f"callback to {number} cancelled"
    return f"callback to {number} requested" + (f", {attempts} so far" if cb.attempts else "")


def _orphan_offer_leg(f: _Fold, root: Leg) -> bool:
    """An agent leg an ESL router originated that nothing ties to a caller: it is one of
    that caller's offers, not a call (it rang, was refused or cancelled, never bridged)."""
    if root.click_to_call or root.offer_id or root.cc_side == "agent":
        return root.cc_side == "agent" or bool(root.offer_id)
    if root.fs_direction != "outbound" or root.originated_by or not root.seen_created:
        return False
    if f.bridges or f.visits or any(leg.leg_id != f.call_id for leg in f.legs.values()):
        return False
    return root.user and (not root.answered_us or "park" in root.apps)


def _agent_moved_on(agent_events: list[Envelope], agent_id: str, end_us: int) -> bool:
    """The agent changed state after the call ended without a wrap-up (none configured)."""
    return any(e.payload.get("agent_id") == agent_id and e.occurred_at >= end_us
               and e.payload.get("state") not in ("wrap_up", "on_call")
               for e in agent_events)
