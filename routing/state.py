"""Routing state and its reducer: ``state = apply(state, event)``.

The state is immutable: ``apply`` returns a new :class:`State` that shares every unchanged
mapping with the old one and copies only the mappings an event touches (copy-on-write per
mapping). Alongside the facts it keeps the indexes ``decide`` needs to run in time
proportional to what changed rather than to agents × calls: per queue, its members, its
ready agents, how many members are online or logged in, and its waiting calls in arrival
order.

Races are facts too: an answer for an abandoned call, a second answer on ring-all, events
for unknown ids — ``apply`` records what it can and never raises for them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Mapping

from routing import decisions as d
from routing import events as e
from routing.model import (
    CAUSES,
    ActionKind,
    DEFAULT_PENALTIES,
    US,
    Agent,
    Call,
    Cause,
    Did,
    Queue,
    Tenant,
)
from routing.numbers import region_of, to_e164

__all__ = [
    "Status",
    "CallStatus",
    "AgentState",
    "CallState",
    "Offer",
    "State",
    "apply",
    "replay",
    "is_ready",
    "caller_key",
    "sticky_agent",
    "handled_in_window",
    "is_gone",
    "GONE_KEEP_US",
    "RECENT",
]


class Status:
    """Agent states (derived from :class:`AgentState`, see :attr:`AgentState.status`)."""

    LOGGED_OUT = "logged_out"
    AVAILABLE = "available"
    OFFERED = "offered"  # ringing
    ON_CALL = "on_call"
    WRAP_UP = "wrap_up"
    PAUSED = "paused"
    PENALTY = "ring_no_answer"  # held out after a failed offer
    OFFLINE = "offline"  # logged in, extension not registered


class CallStatus:
    WAITING = "waiting"
    RINGING = "ringing"  # at least one offer out
    CONNECTING = "connecting"  # an agent answered, bridge ordered
    CONNECTED = "connected"
    # the agent handed the call on (a transfer from its phone); the caller talks to whom it
    # was transferred to, outside any queue
    TRANSFERRED = "transferred"


_ACTIVE = frozenset({CallStatus.RINGING, CallStatus.CONNECTING, CallStatus.CONNECTED,
                     CallStatus.TRANSFERRED})
_IN_QUEUE = frozenset({CallStatus.WAITING, CallStatus.RINGING})


@dataclass(frozen=True, slots=True)
class AgentState:
    """What is true of an agent now (configuration lives in :class:`routing.model.Agent`)."""

    id: str
    logged_in: bool = False
    registered: bool = False
    pause_reason: str | None = None
    offer_id: str | None = None  # the one ringing offer, if any
    calls: tuple[str, ...] = ()  # calls this agent answered and has not finished
    wrap_until_us: int | None = None
    penalty_until_us: int | None = None
    penalty_cause: str | None = None
    failures: Mapping[str, int] = field(default_factory=dict)  # consecutive, per cause
    idle_since_us: int = 0  # login or end of last call (longest-idle)
    last_offer_us: int = 0
    calls_answered: int = 0  # since login
    talk_us: int = 0  # since login
    recent: tuple[tuple[int, int], ...] = ()  # (end_us, talk_us) of the last RECENT calls
    busy_us: int = 0  # offered + talking + wrap-up since login (occupancy)
    idle_us: int = 0  # ready and waiting since login (occupancy)
    mark_us: int = 0  # when busy_us/idle_us were last brought up to date
    # Legs on the agent's phone that no queue offered (direct calls, click-to-call). Last:
    # stored states are pickled positionally, and an older one simply lacks it.
    other_legs: tuple[str, ...] = ()

    @property
    def status(self) -> str:
        """The agent state a supervisor sees; busy states win over a pending pause."""
        if not self.logged_in:
            return Status.LOGGED_OUT
        if self.offer_id is not None:
            return Status.OFFERED
        if self.calls or self.other_legs:
            return Status.ON_CALL
        if self.wrap_until_us is not None:
            return Status.WRAP_UP
        if self.penalty_until_us is not None:
            return Status.PENALTY
        if self.pause_reason is not None:
            return Status.PAUSED
        if not self.registered:
            return Status.OFFLINE
        return Status.AVAILABLE

    def occupancy(self, now_us: int) -> float:
        """Busy ÷ (busy + idle) since login, counting the current stretch up to ``now_us``
        (busy while offered, talking or in wrap-up; idle otherwise while logged in)."""
        busy, idle = self.busy_us, self.idle_us
        if self.logged_in:
            if _busy(self):
                busy += max(0, now_us - self.mark_us)
            else:
                idle += max(0, now_us - self.mark_us)
        total = busy + idle
        return busy / total if total else 0.0


RECENT = 64
"""Calls remembered per agent for windowed load (``Queue.load_window_s``); an agent rarely
handles more than this many calls in any window worth balancing over."""


def handled_in_window(a: AgentState, now_us: int, window_s: int) -> tuple[int, int]:
    """(calls ended, talk µs) within the last ``window_s`` seconds before ``now_us``."""
    since = now_us - window_s * US
    n = talk = 0
    for end, t in a.recent:
        if end >= since:
            n += 1
            talk += t
    return n, talk


def is_ready(a: AgentState, cfg: Agent) -> bool:
    """May this agent be offered a call now (ignoring shift, skills and queue rules)?"""
    return (
        a.logged_in
        and a.registered
        and a.pause_reason is None
        and a.offer_id is None
        and a.wrap_until_us is None
        and a.penalty_until_us is None
        and not a.other_legs
        and len(a.calls) < cfg.max_concurrent
    )


def _busy(a: AgentState) -> bool:
    return (a.offer_id is not None or bool(a.calls) or bool(a.other_legs)
            or a.wrap_until_us is not None)


@dataclass(frozen=True, slots=True)
class Offer:
    """One agent leg being rung for one call."""

    offer_id: str
    call_id: str
    agent_id: str
    queue_id: str
    at_us: int
    expires_us: int
    answered: bool = False
    connect_ordered: bool = False


@dataclass(frozen=True, slots=True)
class CallState:
    """A call in a queue or talking to an agent."""

    call: Call
    enqueued_us: int
    region: str | None = None  # resolved: IVR choice, else DID, else caller area code
    caller_key: str = ""  # normalized caller number (sticky agent)
    status: str = CallStatus.WAITING
    offers: tuple[str, ...] = ()  # offer ids out (ringing or answered)
    offers_made: int = 0  # seeds deterministic offer ids
    last_offer_us: int = 0
    agent_id: str | None = None  # who answered
    connected_us: int | None = None

    @property
    def id(self) -> str:
        return self.call.id


_EMPTY: Mapping[Any, Any] = {}


@dataclass(frozen=True, slots=True)
class State:
    """Everything routing knows. Build it with :func:`replay` or ``apply`` from ``State()``."""

    tenants: Mapping[str, Tenant] = field(default_factory=dict)
    queues: Mapping[str, Queue] = field(default_factory=dict)
    agent_cfg: Mapping[str, Agent] = field(default_factory=dict)
    dids: Mapping[str, Did] = field(default_factory=dict)
    agents: Mapping[str, AgentState] = field(default_factory=dict)
    calls: Mapping[str, CallState] = field(default_factory=dict)
    offers: Mapping[str, Offer] = field(default_factory=dict)
    # Indexes, maintained by apply.
    queue_calls: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # arrival order
    members: Mapping[str, frozenset[str]] = field(default_factory=dict)
    ready: Mapping[str, frozenset[str]] = field(default_factory=dict)
    # (queue, agent region) → ready agents: a caller held to its region skips the others.
    ready_region: Mapping[tuple[str, str | None], frozenset[str]] = field(default_factory=dict)
    online: Mapping[str, int] = field(default_factory=dict)  # logged in and registered
    logged: Mapping[str, int] = field(default_factory=dict)  # logged in
    timers: Mapping[str, int] = field(default_factory=dict)  # agent → end of wrap-up/penalty
    tenant_active: Mapping[str, int] = field(default_factory=dict)
    # Sticky memory, caller → agent, split in buckets by the caller's last two digits: it
    # grows with every caller ever served, and copy-on-write must copy one bucket, not all.
    last_agent: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    rr: Mapping[str, str] = field(default_factory=dict)  # queue → last agent offered
    # Calls that left (ended, abandoned, overflowed) in the last GONE_KEEP_US, bucketed like
    # last_agent: a redelivered park must not bring a finished call back to ring agents.
    gone: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    clock_us: int = 0  # at_us of the latest event applied


class _Tx:
    """Copy-on-write builder: each mapping of the old state is copied at most once."""

    __slots__ = ("s", "w")

    def __init__(self, s: State) -> None:
        self.s = s
        self.w: dict[str, dict[Any, Any]] = {}

    def get(self, name: str) -> Mapping[Any, Any]:
        m = self.w.get(name)
        return m if m is not None else getattr(self.s, name)

    def put(self, name: str) -> dict[Any, Any]:
        m = self.w.get(name)
        if m is None:
            m = self.w[name] = dict(getattr(self.s, name))
        return m

    def done(self, at_us: int) -> State:
        return replace(self.s, clock_us=max(self.s.clock_us, at_us), **self.w)


def _bucket(key: str) -> str:
    return key[-2:]


GONE_KEEP_US = 3600 * US
"""How long a finished call id is remembered to drop redelivered ``CallEnqueued`` events."""


def _bury(tx: _Tx, call_id: str, at_us: int) -> None:
    b = _bucket(call_id)
    old = tx.get("gone").get(b, _EMPTY)
    # Prune only the bucket being written: cost stays proportional to one bucket.
    keep = {k: t for k, t in old.items() if t >= at_us - GONE_KEEP_US}
    keep[call_id] = at_us
    tx.put("gone")[b] = keep


def is_gone(state: State, call_id: str) -> bool:
    """Did this call already leave routing (recently enough to be remembered)?"""
    return call_id in state.gone.get(_bucket(call_id), _EMPTY)


def sticky_agent(state: State, caller: str) -> str | None:
    """The agent who last talked with this caller (``caller`` as :func:`caller_key` gives)."""
    return state.last_agent.get(_bucket(caller), _EMPTY).get(caller)


def caller_key(number: str) -> str:
    """The caller number as used for sticky-agent memory (E.164 when parseable)."""
    try:
        return to_e164(number)
    except ValueError:
        return number


# ------------------------------------------------------------------------------ indexes ---


def _flags(a: AgentState | None, cfg: Agent | None) -> tuple[bool, bool, bool]:
    if a is None or cfg is None:
        return (False, False, False)
    return (is_ready(a, cfg), a.logged_in and a.registered, a.logged_in)


def _index(tx: _Tx, cfg: Agent, flags: tuple[bool, bool, bool], sign: int) -> None:
    ready, online, logged = flags
    for q in cfg.queues:
        if ready:
            cur = tx.get("ready").get(q, frozenset())
            tx.put("ready")[q] = cur | {cfg.id} if sign > 0 else cur - {cfg.id}
            key = (q, cfg.region)
            cur = tx.get("ready_region").get(key, frozenset())
            tx.put("ready_region")[key] = cur | {cfg.id} if sign > 0 else cur - {cfg.id}
        if online:
            tx.put("online")[q] = tx.get("online").get(q, 0) + sign
        if logged:
            tx.put("logged")[q] = tx.get("logged").get(q, 0) + sign


def _put_agent(tx: _Tx, new: AgentState, at_us: int) -> None:
    """Store an agent's new state, keeping occupancy and the indexes up to date."""
    old = tx.get("agents").get(new.id)
    cfg = tx.get("agent_cfg").get(new.id)
    if old is not None and old.logged_in and new.logged_in:
        elapsed = max(0, at_us - old.mark_us)
        if _busy(old):
            new = replace(new, busy_us=new.busy_us + elapsed, mark_us=at_us)
        elif cfg is not None and is_ready(old, cfg):
            new = replace(new, idle_us=new.idle_us + elapsed, mark_us=at_us)
        else:
            new = replace(new, mark_us=at_us)
    tx.put("agents")[new.id] = new
    if cfg is not None:
        f_old, f_new = _flags(old, cfg), _flags(new, cfg)
        if f_old != f_new:
            _index(tx, cfg, tuple(a and not b for a, b in zip(f_old, f_new)), -1)  # type: ignore[arg-type]
            _index(tx, cfg, tuple(b and not a for a, b in zip(f_old, f_new)), +1)  # type: ignore[arg-type]
    until = new.wrap_until_us if new.wrap_until_us is not None else new.penalty_until_us
    if tx.get("timers").get(new.id) != until:
        if until is None:
            tx.put("timers").pop(new.id, None)
        else:
            tx.put("timers")[new.id] = until


def _put_call(tx: _Tx, new: CallState | None, call_id: str) -> None:
    """Store (or with ``None`` drop) a call, keeping the queue list and tenant count right."""
    old = tx.get("calls").get(call_id)
    ref = new or old
    if ref is None:
        return
    q, tenant = ref.call.queue, ref.call.tenant
    was_active = old is not None and old.status in _ACTIVE
    now_active = new is not None and new.status in _ACTIVE
    if was_active != now_active:
        tx.put("tenant_active")[tenant] = tx.get("tenant_active").get(tenant, 0) + (1 if now_active else -1)
    was_q = old is not None and old.status in _IN_QUEUE
    now_q = new is not None and new.status in _IN_QUEUE
    if was_q and not now_q:
        tx.put("queue_calls")[q] = tuple(c for c in tx.get("queue_calls").get(q, ()) if c != call_id)
    elif now_q and not was_q:
        tx.put("queue_calls")[q] = tx.get("queue_calls").get(q, ()) + (call_id,)
    if new is None:
        tx.put("calls").pop(call_id, None)
    else:
        tx.put("calls")[call_id] = new


# ------------------------------------------------------------------------------ dispatch ---
# One small function per event type, found by the event's exact type: the event and
# decision unions are closed and flat (no subclassing), so a table says the whole shape.

_Handler = Callable[..., None]
_ON_EVENT: dict[type, _Handler] = {}
_ON_DECISION: dict[type, _Handler] = {}


def _on(table: dict[type, _Handler], *types: type) -> Callable[[_Handler], _Handler]:
    def register(fn: _Handler) -> _Handler:
        for t in types:
            if t in table:  # pragma: no cover - a programming error caught at import
                raise TypeError(f"two handlers for {t.__name__}")
            table[t] = fn
        return fn

    return register


# ----------------------------------------------------------------------------- reducers ---


def _agent(tx: _Tx, agent_id: str) -> AgentState | None:
    return tx.get("agents").get(agent_id)


def _fail(a: AgentState, cfg: Agent | None, cause: str, at_us: int) -> AgentState:
    """Count a failed offer and apply the configured penalty for its cause."""
    penalties = cfg.penalties if cfg is not None else DEFAULT_PENALTIES
    pen = penalties.get(cause) or DEFAULT_PENALTIES.get(cause) or DEFAULT_PENALTIES[Cause.NO_ANSWER]
    count = a.failures.get(cause, 0) + 1
    failures = {**a.failures, cause: count}
    if pen.max_count and count >= pen.max_count:
        return replace(a, pause_reason=f"max_{cause}", failures=failures,
                       penalty_until_us=None, penalty_cause=None)
    if pen.delay_s > 0:
        return replace(a, failures=failures, penalty_until_us=at_us + pen.delay_s * US,
                       penalty_cause=cause)
    return replace(a, failures=failures)


def _drop_offer(tx: _Tx, offer: Offer, at_us: int, cause: str | None) -> None:
    """Remove an offer; ``cause`` (a CAUSES member) penalizes the agent, None does not."""
    tx.put("offers").pop(offer.offer_id, None)
    a = _agent(tx, offer.agent_id)
    if a is not None:
        calls = tuple(c for c in a.calls if c != offer.call_id) if offer.answered else a.calls
        na = replace(a, offer_id=None if a.offer_id == offer.offer_id else a.offer_id, calls=calls)
        if cause is not None and not offer.answered:
            na = _fail(na, tx.get("agent_cfg").get(a.id), cause, at_us)
        _put_agent(tx, na, at_us)
    c = tx.get("calls").get(offer.call_id)
    if c is not None and offer.offer_id in c.offers:
        left = tuple(o for o in c.offers if o != offer.offer_id)
        status = c.status
        if not left and status == CallStatus.RINGING:
            status = CallStatus.WAITING
        if status == CallStatus.CONNECTING and c.agent_id == offer.agent_id and offer.connect_ordered:
            status, agent_id = (CallStatus.RINGING if left else CallStatus.WAITING), None
        else:
            agent_id = c.agent_id
        _put_call(tx, replace(c, offers=left, status=status, agent_id=agent_id), c.id)


def _end_call(tx: _Tx, call_id: str, at_us: int) -> None:
    c = tx.get("calls").get(call_id)
    if c is None:
        return
    _agent_done(tx, c, at_us)
    _put_call(tx, None, call_id)
    _bury(tx, call_id, at_us)


def _agent_done(tx: _Tx, c: CallState, at_us: int) -> None:
    """The connected agent is done with call `c` (it ended, or the agent transferred it):
    wrap-up, talk time; its answered offer is finished business."""
    call_id = c.id
    if c.agent_id is not None and c.status in (CallStatus.CONNECTING, CallStatus.CONNECTED):
        a = _agent(tx, c.agent_id)
        cfg = tx.get("agent_cfg").get(c.agent_id)
        if a is not None and call_id in a.calls:
            q = tx.get("queues").get(c.call.queue)
            wrap = cfg.wrapup_s if cfg is not None and cfg.wrapup_s is not None else (q.wrapup_s if q else 0)
            talk = at_us - c.connected_us if c.connected_us is not None else 0
            _put_agent(tx, replace(
                a,
                calls=tuple(x for x in a.calls if x != call_id),
                wrap_until_us=at_us + wrap * US if wrap > 0 and a.logged_in else a.wrap_until_us,
                talk_us=a.talk_us + max(0, talk),
                recent=(a.recent + ((at_us, max(0, talk)),))[-RECENT:],
                idle_since_us=at_us,
            ), at_us)
        # The offer that carried the connected call is done with; others are cancelled by decide.
        for oid in c.offers:
            o = tx.get("offers").get(oid)
            if o is not None and o.agent_id == c.agent_id and o.answered:
                tx.put("offers").pop(oid, None)


@_on(_ON_EVENT, e.ConfigChanged)
def _config(tx: _Tx, ev: e.ConfigChanged) -> None:
    ent = ev.entity
    if isinstance(ent, Tenant):
        tx.put("tenants")[ent.id] = ent
    elif isinstance(ent, Queue):
        tx.put("queues")[ent.id] = ent
    elif isinstance(ent, Did):
        tx.put("dids")[ent.number] = ent
    elif isinstance(ent, Agent):
        old_cfg = tx.get("agent_cfg").get(ent.id)
        a = _agent(tx, ent.id) or AgentState(id=ent.id, mark_us=ev.at_us)
        if old_cfg is not None:
            _index(tx, old_cfg, _flags(a, old_cfg), -1)
            for q in old_cfg.queues:
                tx.put("members")[q] = tx.get("members").get(q, frozenset()) - {ent.id}
        tx.put("agent_cfg")[ent.id] = ent
        for q in ent.queues:
            tx.put("members")[q] = tx.get("members").get(q, frozenset()) | {ent.id}
        _index(tx, ent, _flags(a, ent), +1)
        tx.put("agents")[ent.id] = a
    else:  # pragma: no cover - the type union is closed
        raise TypeError(f"config_changed: unknown entity type {type(ent).__name__}")


@_on(_ON_EVENT, e.ConfigRemoved)
def _config_removed(tx: _Tx, ev: e.ConfigRemoved) -> None:
    name = {"tenant": "tenants", "queue": "queues", "did": "dids", "agent": "agent_cfg"}.get(ev.kind)
    if name is None:
        raise ValueError(f"config_removed: kind must be tenant/queue/agent/did, got {ev.kind!r}")
    if ev.kind == "agent":
        cfg = tx.get("agent_cfg").get(ev.id)
        if cfg is not None:
            _index(tx, cfg, _flags(_agent(tx, ev.id), cfg), -1)
            for q in cfg.queues:
                tx.put("members")[q] = tx.get("members").get(q, frozenset()) - {ev.id}
    if ev.id in tx.get(name):
        tx.put(name).pop(ev.id)


@_on(_ON_EVENT, e.CallEnqueued)
def _enqueue(tx: _Tx, ev: e.CallEnqueued) -> None:
    call = ev.call
    known = tx.get("calls").get(call.id)
    if known is not None and known.status == CallStatus.TRANSFERRED:
        pass  # transferred to one of the tenant's numbers: in a queue again, a new wait
    elif known is not None or call.id in tx.get("gone").get(_bucket(call.id), _EMPTY):
        return  # at-least-once delivery: the same park seen twice, maybe after the call left
    region = call.region
    if region is None and call.did:
        did = tx.get("dids").get(call.did)
        region = did.region if did is not None else None
    if region is None and call.caller:
        tenant = tx.get("tenants").get(call.tenant)
        r = region_of(call.caller, tenant.region_prefixes if tenant is not None else None)
        region = r.region if r is not None else None
    since = ev.since_us if ev.since_us is not None and ev.since_us < ev.at_us else ev.at_us
    # A transferred call's offers go on counting: its offer ids (the agent legs' uuids and
    # the actuator's command ids) must not repeat those of its first wait.
    _put_call(tx, CallState(call=call, enqueued_us=since, region=region,
                            caller_key=caller_key(call.caller) if call.caller else "",
                            offers_made=known.offers_made if known is not None else 0), call.id)


# ----------------------------------------------------------------------------- decisions ---


@_on(_ON_DECISION, d.OfferCall)
def _offer_call(tx: _Tx, dec: d.OfferCall, at: int) -> None:
    if dec.offer_id in tx.get("offers"):
        return
    tx.put("offers")[dec.offer_id] = Offer(dec.offer_id, dec.call_id, dec.agent_id, dec.queue_id,
                                          at, dec.expires_us)
    a = _agent(tx, dec.agent_id)
    if a is not None:
        _put_agent(tx, replace(a, offer_id=dec.offer_id, last_offer_us=at), at)
    c = tx.get("calls").get(dec.call_id)
    if c is not None:
        status = CallStatus.RINGING if c.status == CallStatus.WAITING else c.status
        _put_call(tx, replace(c, status=status, offers=c.offers + (dec.offer_id,),
                              offers_made=c.offers_made + 1, last_offer_us=at), c.id)
    tx.put("rr")[dec.queue_id] = dec.agent_id


@_on(_ON_DECISION, d.CancelOffer)
def _cancel_offer(tx: _Tx, dec: d.CancelOffer, at: int) -> None:
    o = tx.get("offers").get(dec.offer_id)
    if o is not None:
        _drop_offer(tx, o, at, dec.cause if dec.cause in CAUSES else None)


@_on(_ON_DECISION, d.ConnectCall)
def _connect_call(tx: _Tx, dec: d.ConnectCall, at: int) -> None:
    o = tx.get("offers").get(dec.offer_id)
    c = tx.get("calls").get(dec.call_id)
    if o is not None:
        tx.put("offers")[o.offer_id] = replace(o, connect_ordered=True)
    if c is not None and c.status in _IN_QUEUE:
        _put_call(tx, replace(c, status=CallStatus.CONNECTING, agent_id=dec.agent_id), c.id)


@_on(_ON_DECISION, d.ForwardToMobile)
def _forward_to_mobile(tx: _Tx, dec: d.ForwardToMobile, at: int) -> None:
    # The agent is busy on the mobile leg until call_ended, like on an extension call.
    c = tx.get("calls").get(dec.call_id)
    a = _agent(tx, dec.agent_id)
    if c is not None and c.status in _IN_QUEUE:
        _put_call(tx, replace(c, status=CallStatus.CONNECTING, agent_id=dec.agent_id), c.id)
        if a is not None and dec.call_id not in a.calls:
            _put_agent(tx, replace(a, calls=a.calls + (dec.call_id,)), at)


@_on(_ON_DECISION, d.RunAfterHoursAction, d.OverflowCall)
def _leave_queue(tx: _Tx, dec: d.RunAfterHoursAction | d.OverflowCall, at: int) -> None:
    c = tx.get("calls").get(dec.call_id)
    target = dec.action.target if dec.action.kind == ActionKind.QUEUE else None
    _put_call(tx, None, dec.call_id)
    if c is not None and target and target in tx.get("queues") and target != c.call.queue:
        # Overflow to another queue stays inside routing: the caller is still parked, so
        # the call just joins the target queue (its wait there starts now; priority kept).
        moved = replace(c, call=replace(c.call, queue=target), enqueued_us=at,
                        status=CallStatus.WAITING, offers=(), agent_id=None)
        _put_call(tx, moved, c.id)
    elif c is not None:
        _bury(tx, c.id, at)


# ------------------------------------------------------------------------------- events ---


def _offer_answered(tx: _Tx, offer_id: str, at: int) -> None:
    o = tx.get("offers").get(offer_id)
    if o is not None and not o.answered:
        tx.put("offers")[o.offer_id] = replace(o, answered=True)
        a = _agent(tx, o.agent_id)
        if a is not None:
            _put_agent(tx, replace(a, offer_id=None if a.offer_id == o.offer_id else a.offer_id,
                                   calls=a.calls + (o.call_id,), failures={}), at)


def _connected(tx: _Tx, call_id: str, at: int) -> None:
    c = tx.get("calls").get(call_id)
    if c is not None and c.agent_id is not None and c.status != CallStatus.CONNECTED:
        # The bridged offer is finished business; keeping it would make decide scan it.
        done = tuple(o for o in c.offers if (x := tx.get("offers").get(o)) is not None
                     and x.answered and x.agent_id == c.agent_id)
        for oid in done:
            tx.put("offers").pop(oid)
        _put_call(tx, replace(c, status=CallStatus.CONNECTED, connected_us=at,
                              offers=tuple(o for o in c.offers if o not in done)), c.id)
        a = _agent(tx, c.agent_id)
        if a is not None:
            _put_agent(tx, replace(a, calls_answered=a.calls_answered + 1), at)
        if c.caller_key:
            b = _bucket(c.caller_key)
            tx.put("last_agent")[b] = {**tx.get("last_agent").get(b, _EMPTY),
                                       c.caller_key: c.agent_id}


@_on(_ON_EVENT, e.DecisionMade)
def _decision_made(tx: _Tx, ev: e.DecisionMade) -> None:
    handler = _ON_DECISION.get(type(ev.decision))
    if handler is None:  # pragma: no cover - the decision union is closed
        raise TypeError(f"decision_made: unknown decision {type(ev.decision).__name__}")
    handler(tx, ev.decision, ev.at_us)


@_on(_ON_EVENT, e.OfferAnswered)
def _on_offer_answered(tx: _Tx, ev: e.OfferAnswered) -> None:
    _offer_answered(tx, ev.offer_id, ev.at_us)


@_on(_ON_EVENT, e.OfferBridged)
def _offer_bridged(tx: _Tx, ev: e.OfferBridged) -> None:
    o = tx.get("offers").get(ev.offer_id)
    c = tx.get("calls").get(o.call_id) if o is not None else None
    if o is not None and c is not None and c.status in _IN_QUEUE:
        _offer_answered(tx, o.offer_id, ev.at_us)
        _put_call(tx, replace(c, status=CallStatus.CONNECTING, agent_id=o.agent_id), c.id)
        _connected(tx, c.id, ev.at_us)


@_on(_ON_EVENT, e.OfferTakenLate)
def _offer_taken_late(tx: _Tx, ev: e.OfferTakenLate) -> None:
    c = tx.get("calls").get(ev.call_id)
    a = _agent(tx, ev.agent_id)
    if c is None or a is None or c.status not in _IN_QUEUE or ev.offer_id in tx.get("offers"):
        return  # gone, connected meanwhile, or the offer is still current (nothing late)
    tx.put("offers")[ev.offer_id] = Offer(ev.offer_id, c.id, a.id, c.call.queue, ev.at_us,
                                          ev.at_us, answered=True)
    _put_agent(tx, replace(a, calls=a.calls + (c.id,), failures={}, penalty_until_us=None,
                           penalty_cause=None), ev.at_us)
    _put_call(tx, replace(c, offers=c.offers + (ev.offer_id,), status=CallStatus.CONNECTING,
                          agent_id=a.id), c.id)
    _connected(tx, c.id, ev.at_us)


@_on(_ON_EVENT, e.OfferRejected)
def _offer_rejected(tx: _Tx, ev: e.OfferRejected) -> None:
    o = tx.get("offers").get(ev.offer_id)
    if o is not None:
        cause = ev.cause if ev.cause in CAUSES else (
            None if ev.cause == Cause.NOT_DELIVERED else Cause.REJECTED)
        _drop_offer(tx, o, ev.at_us, cause)


@_on(_ON_EVENT, e.CallConnected)
def _call_connected(tx: _Tx, ev: e.CallConnected) -> None:
    _connected(tx, ev.call_id, ev.at_us)


@_on(_ON_EVENT, e.CallEnded, e.CallAbandoned)
def _call_left(tx: _Tx, ev: e.CallEnded | e.CallAbandoned) -> None:
    _end_call(tx, ev.call_id, ev.at_us)


@_on(_ON_EVENT, e.CallTransferred)
def _call_transferred(tx: _Tx, ev: e.CallTransferred) -> None:
    c = tx.get("calls").get(ev.call_id)
    if c is not None and c.status == CallStatus.CONNECTED:
        _agent_done(tx, c, ev.at_us)
        _put_call(tx, replace(c, status=CallStatus.TRANSFERRED, agent_id=None,
                              offers=tuple(o for o in c.offers if o in tx.get("offers"))),
                  c.id)


def _expire(tx: _Tx, at_us: int) -> None:
    """End the wrap-ups and penalties that are over at ``at_us``."""
    timers = tx.get("timers")
    if not timers:
        return
    for aid, until in list(timers.items()):
        if until <= at_us:
            a = _agent(tx, aid)
            if a is not None:
                _put_agent(tx, replace(a, wrap_until_us=None, penalty_until_us=None,
                                       penalty_cause=None), at_us)


@_on(_ON_EVENT, e.Tick)
def _tick(tx: _Tx, ev: e.Tick) -> None:
    _expire(tx, ev.at_us)


@_on(_ON_EVENT, e.WrapUpEnded)
def _wrap_up_ended(tx: _Tx, ev: e.WrapUpEnded) -> None:
    a = _agent(tx, ev.agent_id)
    if a is not None and a.wrap_until_us is not None:
        _put_agent(tx, replace(a, wrap_until_us=None), ev.at_us)


@_on(_ON_EVENT, e.AgentLoggedIn)
def _logged_in(tx: _Tx, ev: e.AgentLoggedIn) -> None:
    a, at = _agent(tx, ev.agent_id), ev.at_us
    if a is not None and not a.logged_in:
        _put_agent(tx, replace(a, logged_in=True, idle_since_us=at, mark_us=at, failures={},
                               calls_answered=0, talk_us=0, busy_us=0, idle_us=0,
                               pause_reason=None), at)


@_on(_ON_EVENT, e.AgentLoggedOut)
def _logged_out(tx: _Tx, ev: e.AgentLoggedOut) -> None:
    a = _agent(tx, ev.agent_id)
    if a is not None and a.logged_in:
        _put_agent(tx, replace(a, logged_in=False, pause_reason=None, wrap_until_us=None,
                               penalty_until_us=None, penalty_cause=None), ev.at_us)


@_on(_ON_EVENT, e.AgentRegistered, e.AgentUnregistered)
def _registration(tx: _Tx, ev: e.AgentRegistered | e.AgentUnregistered) -> None:
    a = _agent(tx, ev.agent_id)
    reg = isinstance(ev, e.AgentRegistered)
    if a is not None and a.registered != reg:
        _put_agent(tx, replace(a, registered=reg), ev.at_us)


@_on(_ON_EVENT, e.ExtensionBusy)
def _extension_busy(tx: _Tx, ev: e.ExtensionBusy) -> None:
    a = _agent(tx, ev.agent_id)
    if a is not None and ev.leg_id not in a.other_legs:
        _put_agent(tx, replace(a, other_legs=a.other_legs + (ev.leg_id,)), ev.at_us)


@_on(_ON_EVENT, e.ExtensionIdle)
def _extension_idle(tx: _Tx, ev: e.ExtensionIdle) -> None:
    a = _agent(tx, ev.agent_id)
    if a is not None and ev.leg_id in a.other_legs:
        _put_agent(tx, replace(a, other_legs=tuple(x for x in a.other_legs
                                                   if x != ev.leg_id)), ev.at_us)


@_on(_ON_EVENT, e.AgentReleased)
def _released(tx: _Tx, ev: e.AgentReleased) -> None:
    a = _agent(tx, ev.agent_id)
    if a is not None:
        calls = tuple(c for c in a.calls if c != ev.call_id) if ev.call_id else a.calls
        offer = None if ev.offer_id and a.offer_id == ev.offer_id else a.offer_id
        if calls != a.calls or offer != a.offer_id:
            _put_agent(tx, replace(a, calls=calls, offer_id=offer, idle_since_us=ev.at_us),
                       ev.at_us)


@_on(_ON_EVENT, e.AgentPaused)
def _paused(tx: _Tx, ev: e.AgentPaused) -> None:
    a = _agent(tx, ev.agent_id)
    if a is not None and a.logged_in:
        _put_agent(tx, replace(a, pause_reason=ev.reason), ev.at_us)


@_on(_ON_EVENT, e.AgentResumed)
def _resumed(tx: _Tx, ev: e.AgentResumed) -> None:
    a = _agent(tx, ev.agent_id)
    if a is not None and a.pause_reason is not None:
        _put_agent(tx, replace(a, pause_reason=None, failures={}), ev.at_us)


def apply(state: State, event: e.Event) -> State:
    """Fold one event into the state and return the new state (the old one is unchanged).

    Deterministic: the result depends only on ``state`` and ``event``. Unknown agents, calls
    and offers are ignored, because duplicated and out-of-order events are normal on an
    at-least-once log.
    """
    handler = _ON_EVENT.get(type(event))
    if handler is None:
        raise TypeError(f"apply: unknown event type {type(event).__name__}")
    tx = _Tx(state)
    # Every event tells the time, not only ticks: an agent whose wrap-up ended before a
    # caller's park is free for that caller now. Waiting for the next tick (one a second)
    # held callers of a busy queue ~0.5 s at p50 (bench acd, 30 calls/s).
    _expire(tx, event.at_us)
    handler(tx, event)
    return tx.done(event.at_us)


def replay(events: Iterable[e.Event], state: State | None = None) -> State:
    """Fold ``events`` in order from ``state`` (default: empty). Same events, same state."""
    s = state if state is not None else State()
    for ev in events:
        s = apply(s, ev)
    return s
