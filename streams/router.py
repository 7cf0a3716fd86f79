"""The router of one tenant: contract records in, routing events applied, decisions out.

Pure (no Kafka, no Faust, no clock): `handle(router, envelope)` returns the new router and
the records to send. The Faust agent (streams/app.py) is a thin shell around it, so the
whole ACD behaviour is testable and replayable without a broker.

Idempotency (at-least-once delivery): FreeSWITCH facts carry (source, seq). FreeSWITCH
numbers an event when it creates it, not when it fires it, so seqs arrive slightly out of
order: the router keeps per source the highest seq seen and the seqs seen within
SEQ_WINDOW below it; a seq seen before, or older than the window, is a duplicate. Records
without seq (commands, snapshots) are deduplicated by event_id over a bounded window.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import routing
from routing import announce
from routing import callbacks as cbk
from routing import decisions as d
from routing import dialing
from routing import ewt as routing_ewt
from routing import events as ev
from routing import model as m
from routing import numbers
from routing.contract import Envelope, click_to_call_leg, deterministic_id, encode, topics
from routing.state import CallStatus, State, is_gone

from . import callbacks
from . import config as cfg

SEEN_WINDOW = 5_000
SEQ_WINDOW = 10_000  # FreeSWITCH events per node (all kinds) within which order may vary
RECENT_DECISIONS = 20  # shown on the wallboard's ticker
SHORT_ABANDON_S = 5  # default short-abandon threshold (deploy/docs/DESIGN.md, "KPIs")
SNAPSHOT_GRACE_US = 5_000_000  # offers younger than this may not have a channel yet
CLICK_TO_CALL_TIMEOUT_S = 30  # how long the agent's phone rings for a click-to-call
MONITOR_TIMEOUT_S = 30  # how long the supervisor's phone rings for a monitoring
#: a call whose caller talks to someone: ended, not abandoned, when the caller hangs up
TALKING = frozenset({CallStatus.CONNECTED, CallStatus.TRANSFERRED})
#: sofia's endpoint_disposition of a leg whose phone transferred its other party (REFER)
TRANSFERS = frozenset({"BLIND_TRANSFER", "ATTENDED_TRANSFER"})
MONITORS_KEPT = 1_000
# FreeSWITCH eavesdrop's DTMF keys (switch_ivr_async.c, eavesdrop_enable_dtmf): 0 listen
# only, 2 speak with the eavesdropped leg (here the agent's: whisper), 3 three-way (barge).
MONITOR_DTMF = {"listen": "0", "whisper": "2", "barge": "3"}

# FreeSWITCH hangup causes and originate errors -> why an offer failed (routing.model.Cause).
_FAILURE_CAUSES = {
    "USER_BUSY": m.Cause.BUSY,
    "CALL_REJECTED": m.Cause.REJECTED,
    "USER_NOT_REGISTERED": m.Cause.NOT_REGISTERED,
    "SUBSCRIBER_ABSENT": m.Cause.NOT_REGISTERED,
    "UNALLOCATED_NUMBER": m.Cause.NOT_REGISTERED,
    "NO_USER_RESPONSE": m.Cause.NO_ANSWER,
    # The switch ended the leg, not the phone: another phone won the call (tongdai_connect's
    # fence), or the caller had gone when the phone answered. Not the agent's doing.
    "LOSE_RACE": m.Cause.NOT_DELIVERED,
    "ORIGINATOR_CANCEL": m.Cause.NOT_DELIVERED,
    "NO_ANSWER": m.Cause.NO_ANSWER,
    "ALLOTTED_TIMEOUT": m.Cause.NO_ANSWER,
}


def failure_cause(text: str | None) -> str:
    """The offer failure cause of a hangup cause or an `-ERR X` job result."""
    for key, cause in _FAILURE_CAUSES.items():
        if text and key in text:
            return cause
    return m.Cause.NO_ANSWER


@dataclass(frozen=True, slots=True)
class Out:
    topic: str
    key: bytes
    envelope: Envelope


@dataclass
class TenantRouter:
    """What the worker keeps per tenant (the value of its Faust table)."""

    tenant: str
    state: State = field(default_factory=State)
    last_seq: dict[str, int] = field(default_factory=dict)  # source -> highest seq seen
    recent_seqs: dict[str, set[int]] = field(default_factory=dict)  # within SEQ_WINDOW
    seen: OrderedDict = field(default_factory=OrderedDict)
    call_nodes: dict[str, str] = field(default_factory=dict)
    sip_domain: str | None = None
    short_abandon_s: dict[str, int] = field(default_factory=dict)  # per queue
    # extension -> the node it is registered on ("" = not registered), also for extensions
    # no agent has yet: config and registrations arrive on different topics, in any order.
    registrations: dict[str, str] = field(default_factory=dict)
    # Agent commands that arrived before the agent's configuration (the config topic is
    # re-keyed through the worker, so it can lag a login sent at the same moment).
    early: dict[str, list] = field(default_factory=dict)
    state_since: dict[str, int] = field(default_factory=dict)  # agent -> since (µs)
    agent_legs: dict[str, str] = field(default_factory=dict)  # connected call -> agent's leg
    # When each leg on an agent's phone that no queue offered was first seen (µs): a
    # snapshot listed just before it must not end it.
    leg_since: dict[str, int] = field(default_factory=dict)
    # Whose phone each offer's leg rings and since when (offer id -> (agent, µs)), kept as
    # long as the leg's node: an answer heard after the offer was given up names its agent.
    offer_agents: dict[str, tuple[str, int]] = field(default_factory=dict)
    # Monitorings running: monitor id (= the supervisor leg's uuid) -> (node, call id).
    monitors: dict[str, tuple[str, str]] = field(default_factory=dict)
    recent: list[dict] = field(default_factory=list)  # the last decisions, newest first
    version: int = 0  # grows whenever anything worth persisting changed
    applied: int = 0
    duplicates: int = 0
    undeliverable: int = 0  # commands with no node to run them: dead-lettered, not sent
    corrections: int = 0  # differences with a node's snapshot that were corrected

    def extension_agent(self, extension: str) -> str | None:
        for agent in self.state.agent_cfg.values():
            if agent.extension == extension:
                return agent.id
        return None


def _is_duplicate(router: TenantRouter, env: Envelope) -> bool:
    if env.seq is not None and env.type != "node_snapshot_taken":
        high = router.last_seq.get(env.source)
        seen = router.recent_seqs.setdefault(env.source, set())
        if env.seq in seen or (high is not None and env.seq <= high - SEQ_WINDOW):
            return True
        seen.add(env.seq)
        if high is None or env.seq > high:
            router.last_seq[env.source] = env.seq
            if len(seen) > 256:
                cutoff = env.seq - SEQ_WINDOW
                router.recent_seqs[env.source] = {q for q in seen if q > cutoff}
        return False
    if env.type == "tick":
        return False  # a repeated tick is harmless; remembering every tick is not
    if env.event_id in router.seen:
        return True
    router.seen[env.event_id] = None
    if len(router.seen) > SEEN_WINDOW:
        router.seen.popitem(last=False)
    return False


# ---- records -> routing events -----------------------------------------------------

def translate(router: TenantRouter, env: Envelope) -> list[ev.Event]:
    """The routing facts a contract record means for this tenant's state (may be none)."""
    p = env.payload
    at = env.occurred_at
    state = router.state
    kind = env.type
    if kind == "channel_parked":
        offer_id = p.get("offer_id")
        if offer_id:
            offer = state.offers.get(offer_id)
            return [ev.OfferAnswered(at_us=at, offer_id=offer_id)] if offer else []
        known = state.calls.get(env.call_id or "")
        # A caller parks once per wait: one that parks while talking to an agent was
        # transferred by the agent's phone to a number of the tenant (the agent leg's own
        # hangup may come later or earlier: the switch reports each leg on its own).
        handed_on = [ev.CallTransferred(at_us=at, call_id=known.id)] \
            if known is not None and known.status == CallStatus.CONNECTED else []
        if p.get("leg") == "a" and p.get("queue") and (
                known is None or known.status == CallStatus.TRANSFERRED or handed_on):
            router.call_nodes[env.call_id] = env.source
            skills = tuple(m.SkillReq(k, int(v)) for k, v in sorted((p.get("skills") or {}).items()))
            call = m.Call(id=env.call_id, tenant=router.tenant, queue=p["queue"],
                          caller=p.get("caller") or "", did=p.get("did") or "",
                          priority=int(p.get("priority") or 0), vip=bool(p.get("vip")),
                          skills=skills, language=p.get("language"), region=p.get("region"))
            return [*handed_on, ev.CallEnqueued(at_us=at, call=call)]
        return []
    if kind == "channel_bridged":
        call = state.calls.get(env.call_id or "")
        if call is None:
            return []
        for leg in (p.get("leg_id"), p.get("other_leg_id")):
            offer = state.offers.get(leg or "")
            if offer is not None and offer.call_id == call.id and not offer.answered:
                # The switch connected the phone that answered (the queue connects at the
                # switch): answered and bridged in one fact.
                return [ev.OfferBridged(at_us=at, offer_id=offer.offer_id)]
        late = next((leg for leg in (p.get("offer_id"), p.get("other_leg_id"), p.get("leg_id"))
                     if leg and leg not in state.offers and leg in router.offer_agents), None)
        if late is not None and call.status in (CallStatus.WAITING, CallStatus.RINGING):
            # An offer given up at its ring time, answered all the same: the switch bridged
            # it, so that is who the caller talks to.
            return [ev.OfferTakenLate(at_us=at, offer_id=late, call_id=call.id,
                                      agent_id=router.offer_agents[late][0])]
        if call.status not in TALKING:
            return [ev.CallConnected(at_us=at, call_id=env.call_id)]
        return []
    if kind in ("channel_created", "channel_answered"):
        agent_id = _phone_agent(router, p)
        if agent_id is None:
            return []
        router.call_nodes[p["leg_id"]] = env.source
        router.leg_since.setdefault(p["leg_id"], at)
        return [ev.ExtensionBusy(at_us=at, agent_id=agent_id, leg_id=p["leg_id"])]
    if kind in ("channel_hungup", "channel_vanished"):
        # A leg that vanished (it ended while no bridge was connected) ends as its hangup
        # would have; why it ended is unknown, so an offer's leg costs its agent nothing.
        leg = p.get("leg_id")
        if leg != env.call_id:
            router.call_nodes.pop(leg or "", None)  # an agent leg: nothing more to send it
            router.offer_agents.pop(leg or "", None)
        if leg in router.monitors:
            del router.monitors[leg]
            router.version += 1
        idle = _other_leg_ended(router, leg or "", at)
        if idle:
            return idle
        call = state.calls.get(env.call_id or "")
        if call is not None and call.status == CallStatus.CONNECTED and leg != call.id and \
                router.agent_legs.get(call.id) == leg and \
                (p.get("headers") or {}).get("variable_endpoint_disposition") in TRANSFERS:
            # The talking agent's phone transferred the caller (a REFER: sofia marks the
            # leg it ends so); otherwise a bridged agent leg ends with the call.
            return [ev.CallTransferred(at_us=at, call_id=call.id)]
        offer = state.offers.get(leg or "")
        if offer is not None:
            call = state.calls.get(offer.call_id)
            if offer.answered and call is not None and call.status == CallStatus.CONNECTED:
                return []  # a bridged agent leg ends with the call
            # Not answered, or answered but gone before the bridge was confirmed: the call
            # goes back to the queue.
            return [ev.OfferRejected(at_us=at, offer_id=leg,
                                     cause=failure_cause(p.get("hangup_cause"))
                                     if kind == "channel_hungup" else m.Cause.NOT_DELIVERED)]
        if p.get("leg") == "a":
            call = state.calls.get(env.call_id or "")
            if call is None:
                return []
            if call.status in TALKING:
                return [ev.CallEnded(at_us=at, call_id=env.call_id)]
            return [ev.CallAbandoned(at_us=at, call_id=env.call_id)]
        return []
    if kind in ("sip_registered", "sip_unregistered", "sip_registration_expired"):
        router.registrations[p["extension"]] = env.source if kind == "sip_registered" else ""
        router.version += 1
        agent_id = router.extension_agent(p["extension"])
        if agent_id is None:
            return []
        if kind == "sip_registered":
            return [ev.AgentRegistered(at_us=at, agent_id=agent_id)]
        return [ev.AgentUnregistered(at_us=at, agent_id=agent_id)]
    if kind == "command_executed":
        if p.get("command") == "originate_call" and not p.get("ok"):
            # The agent's phone never took the click-to-call: the leg is not busy.
            return _other_leg_ended(router, env.call_id or "", at)
        if p.get("command") == "offer_call" and not p.get("ok"):
            offer = state.offers.get(p["command_id"])  # an offer's command id is its offer id
            if offer is not None and not offer.answered:
                # A job result is FreeSWITCH's answer about the phone (busy, not registered,
                # no answer: the agent's doing). Without a job the command never ran (node
                # not connected, decision expired): not the agent's fault, no penalty;
                # else a node outage would pause every agent, one ring-no-answer at a time.
                cause = failure_cause(p.get("result")) if p.get("job_uuid") \
                    else m.Cause.NOT_DELIVERED
                return [ev.OfferRejected(at_us=at, offer_id=offer.offer_id, cause=cause)]
        if p.get("command") == "connect_call" and not p.get("ok"):
            # The bridge failed: the agent's leg (or the caller) is gone. Give the caller
            # back to the queue; handle() hangs the agent's leg up if it is still there.
            call = state.calls.get(env.call_id or "")
            if call is not None and call.status != CallStatus.CONNECTED:
                return [ev.OfferRejected(at_us=at, offer_id=o, cause=m.Cause.REJECTED)
                        for o in call.offers if o in state.offers and state.offers[o].answered]
        return []
    if kind == "tick":
        return [ev.Tick(at_us=at)]
    if kind in ("agent_login_requested", "agent_logout_requested", "agent_pause_requested",
                "agent_resume_requested"):
        agent_id = p["agent_id"]
        if agent_id not in state.agent_cfg:
            held = router.early.setdefault(agent_id, [])
            if len(held) < 16:
                held.append(env)
                router.version += 1
            return []
        return [_agent_command(kind, agent_id, at, p.get("reason"))]
    if kind == "agent_ready_requested":
        return [ev.WrapUpEnded(at_us=at, agent_id=p["agent_id"])]
    if kind == "config_changed":
        return configure(router, env)
    return []


def agent_leg_parked(router: TenantRouter, env: Envelope) -> tuple[list[Out], list[ev.Event]]:
    """An agent's phone answered an offer and its leg parked (originate complete). If the
    offer is no longer wanted (the caller left, it was withdrawn or timed out while the
    phone was answering: FreeSWITCH parks the leg all the same), hang the leg up at once,
    on the node it is on, or the agent sits off-hook with no caller."""
    offer_id = env.payload["offer_id"]
    if offer_id in router.state.offers:
        return [], translate(router, env)
    if any(leg == offer_id for leg in router.agent_legs.values()):
        return [], []  # a redelivered park of a leg that is talking
    router.call_nodes.pop(offer_id, None)
    return [_command(router, "hangup_leg", env.occurred_at, env.call_id or offer_id,
                     deterministic_id("unwanted", offer_id), env.source, leg_id=offer_id,
                     cause="NORMAL_CLEARING")], []


def _phone_agent(router: TenantRouter, p: dict[str, Any]) -> str | None:
    """The agent whose phone a new leg is, for legs no queue offered (offers are tracked
    as offers)."""
    ext = p.get("extension")
    # An offer's leg is its offer id (origination_uuid): known before its CHANNEL_CREATE,
    # which may not carry the originate's variables yet.
    if not ext or p.get("offer_id") or p["leg_id"] in router.state.offers:
        return None
    return router.extension_agent(ext)


def _other_leg_ended(router: TenantRouter, leg: str, at: int) -> list[ev.Event]:
    for agent_id, a in router.state.agents.items():
        if leg in a.other_legs:
            router.call_nodes.pop(leg, None)
            return [ev.ExtensionIdle(at_us=at, agent_id=agent_id, leg_id=leg)]
    return []


# ---- API commands the router carries out itself (not routing facts) -----------------

def _refused(router: TenantRouter, env: Envelope, reason: str) -> tuple[list[Out], list]:
    p = env.payload
    request_id = p.get("request_id") or p.get("monitor_id") or env.event_id
    return [_out(topics.CC_EVENTS, topics.tenant_key(router.tenant), "command_refused",
                 router.tenant, env.occurred_at, env.call_id,
                 {"request_id": request_id, "command": env.type,
                  "agent_id": p.get("agent_id"), "reason": reason},
                 "refused", env.event_id)], []


def click_to_call(router: TenantRouter, env: Envelope) -> tuple[list[Out], list[ev.Event]]:
    """Ring the agent's phone; when it answers, the tenant's outbound dialplan calls the
    customer. The agent is busy for the queues from now on (no offer can race the click)."""
    p = env.payload
    state = router.state
    agent_id = p["agent_id"]
    agent = state.agent_cfg.get(agent_id)
    if agent is None:
        return _refused(router, env, f"no agent {agent_id!r}")
    node = router.registrations.get(agent.extension)
    if not node:
        return _refused(router, env, f"extension {agent.extension} of agent {agent_id} is not "
                                     "registered: the phone must be online to place the call")
    now = state.agents.get(agent_id)
    if now is not None and (now.offer_id or now.calls or now.other_legs):
        return _refused(router, env, f"agent {agent_id} is busy ({now.status})")
    caller_id = p.get("caller_id") or ""
    verdict = dialing.check_outbound(p["number"], dialing.CLASSES)  # the API checked the
    if not verdict.allowed:  # tenant's classes; the same rule, tenant-independent part here
        return _refused(router, env, verdict.reason)
    try:
        destination = verdict.destination
        presented = numbers.national_number(caller_id) if caller_id else ""
    except ValueError as exc:
        return _refused(router, env, str(exc))
    if not presented or numbers.is_service_number(presented):
        return _refused(router, env, "no caller id that may be presented outbound (never a "
                                     "1800/1900 number)")
    leg = click_to_call_leg(router.tenant, p["request_id"])
    router.call_nodes[leg] = node
    router.leg_since[leg] = env.occurred_at
    order = _command(router, "originate_call", env.occurred_at, leg, leg, node, leg_id=leg,
                   request_id=p["request_id"], agent_id=agent_id, extension=agent.extension,
                   domain=router.sip_domain or router.tenant, destination=destination,
                   context=f"tongdai_{router.tenant}_outbound", caller_id_number=destination,
                   outbound_caller_id=presented, timeout_s=CLICK_TO_CALL_TIMEOUT_S)
    return [order], [ev.ExtensionBusy(at_us=env.occurred_at, agent_id=agent_id, leg_id=leg)]


def monitor(router: TenantRouter, env: Envelope) -> tuple[list[Out], list[ev.Event]]:
    """Ring the supervisor's phone and join it to the agent's leg of the call (eavesdrop)."""
    p = env.payload
    state = router.state
    if env.type == "monitor_mode_requested":
        running = router.monitors.get(p["monitor_id"])
        if running is None:
            return _refused(router, env, f"no monitoring {p['monitor_id']} in progress")
        node, call_id = running
        return [_command(router, "send_dtmf", env.occurred_at, call_id,
                         deterministic_id("monitor_mode", env.event_id), node,
                         leg_id=p["monitor_id"], digits=MONITOR_DTMF[p["mode"]])], []
    agent_id = p["agent_id"]
    now = state.agents.get(agent_id)
    call_id = env.call_id if env.call_id and now and env.call_id in now.calls else \
        (now.calls[0] if now and now.calls else None)
    leg = router.agent_legs.get(call_id or "")
    node = router.call_nodes.get(call_id or "")
    if not call_id or not leg or not node:
        return _refused(router, env, f"agent {agent_id} has no call in progress")
    router.monitors[p["monitor_id"]] = (node, call_id)
    while len(router.monitors) > MONITORS_KEPT:
        router.monitors.pop(next(iter(router.monitors)))
    return [_command(router, "monitor_call", env.occurred_at, call_id,
                     deterministic_id("monitor", p["monitor_id"]), node, leg_id=p["monitor_id"],
                     extension=p["extension"], domain=router.sip_domain or router.tenant,
                     target_leg=leg, mode=p["mode"], timeout_s=MONITOR_TIMEOUT_S)], []


DIRECT = {"click_to_call_requested": click_to_call, "monitor_requested": monitor,
          "monitor_mode_requested": monitor}  # reconcile joins below, once defined


def _agent_command(kind: str, agent_id: str, at: int, reason: str | None) -> ev.Event:
    if kind == "agent_login_requested":
        return ev.AgentLoggedIn(at_us=at, agent_id=agent_id)
    if kind == "agent_logout_requested":
        return ev.AgentLoggedOut(at_us=at, agent_id=agent_id)
    if kind == "agent_pause_requested":
        return ev.AgentPaused(at_us=at, agent_id=agent_id, reason=reason or "break")
    return ev.AgentResumed(at_us=at, agent_id=agent_id)


def configure(router: TenantRouter, env: Envelope) -> list[ev.Event]:
    p = env.payload
    kind, entity_id, data = p["kind"], p["entity_id"], p["data"]
    if kind not in cfg.KINDS:
        return []
    if data is None:
        return [ev.ConfigRemoved(at_us=env.occurred_at, kind=kind, id=entity_id)]
    if kind == "tenant":
        router.sip_domain = data.get("domain") or router.sip_domain
    if kind == "queue":
        router.short_abandon_s[entity_id] = int(data.get("short_abandon_s", SHORT_ABANDON_S))
    entity = cfg.entity(kind, router.tenant, entity_id, data)
    out: list[ev.Event] = [ev.ConfigChanged(at_us=env.occurred_at, entity=entity)]
    if kind == "agent":
        registered = router.registrations.get(entity.extension)
        now = router.state.agents.get(entity_id)
        if registered and not (now and now.registered):
            out.append(ev.AgentRegistered(at_us=env.occurred_at, agent_id=entity_id))
        for held in router.early.pop(entity_id, []):
            # Applied at the config's time: the agent did not exist before.
            out.append(_agent_command(held.type, entity_id,
                                      max(held.occurred_at, env.occurred_at),
                                      held.payload.get("reason")))
    return out


def _age_us(row: dict[str, Any], at: int) -> int:
    """How long a snapshot's channel has existed (`created_epoch` is in seconds: the age
    is rounded down to whole seconds, on the safe side)."""
    try:
        return at - (int(row.get("created_epoch") or 0) + 1) * 1_000_000
    except (TypeError, ValueError):
        return 0


def _adopted_call(router: TenantRouter, leg: str, info: dict[str, Any]) -> m.Call:
    skills = tuple(m.SkillReq(k, int(v)) for k, v in sorted((info.get("skills") or {}).items()))
    return m.Call(id=leg, tenant=router.tenant, queue=info["queue"],
                  caller=info.get("caller") or "", did=info.get("did") or "",
                  priority=int(info.get("priority") or 0), vip=bool(info.get("vip")),
                  skills=skills, language=info.get("language"), region=info.get("region"))


def reconcile(router: TenantRouter, env: Envelope) -> tuple[list[Out], list[ev.Event]]:
    """A node said what really exists on it now (the switch is the truth; the router's
    state is a cache of it). Every difference is corrected, and every correction is said
    with a `state_corrected` fact:

    - a caller parked for a queue that the router does not know (its park was lost in a
      gap) is adopted, keeping the time it parked;
    - an agent leg whose caller is gone (unless it is a callback's, talking to the
      customer: that caller left by design), or that the router no longer offers and that
      is not bridged, is hung up (its agent is freed by the hangup);
    - an offer, a call or an agent's own leg the router believes in, with no channel, is
      ended; an agent busy with a call or offer the router no longer has is freed.
    Things younger than SNAPSHOT_GRACE_US are left alone: their events may still be on
    the way.
    """
    p = env.payload
    node = p["node"]
    at = env.occurred_at
    state = router.state
    rows = {str(c["uuid"]): c for c in p.get("channels") or () if c.get("uuid")}
    alive = set(rows)
    outs: list[Out] = []
    facts: list[ev.Event] = []

    def corrected(what: str, action: str, call_id: str | None, detail: str, *,
                  agent_id: str | None = None, leg_id: str | None = None) -> None:
        router.corrections += 1
        # On the wallboard's ticker with the decisions: a supervisor sees the healing.
        router.recent.insert(0, {"at_us": at, "call_id": call_id or "", "action": "state_corrected",
                                 "queue": None,
                                 "reason": f"{what} -> {action}: {detail}"
                                           + (f" (agent {agent_id})" if agent_id else "")})
        del router.recent[RECENT_DECISIONS:]
        router.version += 1
        outs.append(_out(topics.CC_EVENTS, topics.tenant_key(router.tenant), "state_corrected",
                         router.tenant, at, call_id,
                         {"node": node, "what": what, "action": action, "agent_id": agent_id,
                          "leg_id": leg_id, "detail": detail},
                         env.event_id, what, leg_id or call_id or agent_id))

    for leg, row in rows.items():
        info = row.get("tongdai") or {}
        if info.get("tenant") not in (None, router.tenant):
            continue
        # Only a caller still in `park`: one sent to voicemail or an announcement keeps the
        # queue it had, and `gone` is not kept across a worker restart.
        if (info.get("leg") == "a" and info.get("queue") and info.get("parked_us")
                and row.get("application") == "park"
                and leg not in state.calls and not is_gone(state, leg)):
            router.call_nodes[leg] = node
            facts.append(ev.CallEnqueued(at_us=at, call=_adopted_call(router, leg, info),
                                         since_us=int(info["parked_us"])))
            corrected("caller_unknown", "enqueued", leg,
                      f"caller parked for queue {info['queue']} on the switch, unknown to "
                      f"the router: adopted", leg_id=leg)
            continue
        offer_id = info.get("offer_id")
        if offer_id and offer_id == leg and _connected_unseen(router, leg, info, at, facts):
            o = state.offers.get(leg)
            corrected("offer_bridged_unseen", "connected", info.get("call_id") or None,
                      "agent leg bridged to its caller on the switch, the router had not "
                      "heard it answer: connected", agent_id=o.agent_id if o else None,
                      leg_id=leg)
            continue
        if not offer_id or offer_id != leg or _age_us(row, at) < SNAPSHOT_GRACE_US:
            continue
        call_id = str(info.get("call_id") or "")
        offer = state.offers.get(leg)
        call = state.calls.get(call_id)
        talking = call is not None and router.agent_legs.get(call_id) == leg and \
            call.status in (CallStatus.CONNECTING, CallStatus.CONNECTED)
        if call_id not in alive:
            if offer is not None and call is not None:
                continue  # the call ends below, and its offer is cancelled with it
            if talking and callbacks.waiting(router, call_id):
                continue  # a callback: its caller left by design, this leg talks to them
            why = "its caller is gone"
        elif offer is None and not talking and info.get("bridged") is False:
            why = "the router no longer offers it and it is not bridged"
        else:
            continue
        agent_id = offer.agent_id if offer is not None else (
            router.extension_agent(str(info.get("extension") or "")) or None)
        outs.append(_command(router, "hangup_leg", at, call_id,
                             deterministic_id("orphan", leg, env.event_id), node,
                             leg_id=leg, cause="NORMAL_CLEARING"))
        corrected("agent_leg_orphaned", "hung_up", call_id or None,
                  f"agent leg on the switch with no caller to bridge: {why}",
                  agent_id=agent_id, leg_id=leg)

    for offer in state.offers.values():
        if (_leg_node(router, offer.offer_id, offer.call_id) == node
                and offer.offer_id not in alive and at - offer.at_us > SNAPSHOT_GRACE_US):
            facts.append(ev.OfferRejected(at_us=at, offer_id=offer.offer_id,
                                          cause=m.Cause.NOT_DELIVERED))
            router.call_nodes.pop(offer.offer_id, None)
            corrected("offer_gone", "ended", offer.call_id,
                      f"offer {'answered' if offer.answered else 'ringing'} in the router, "
                      f"no channel on the switch", agent_id=offer.agent_id,
                      leg_id=offer.offer_id)
    for agent_id, a in state.agents.items():
        for leg in a.other_legs:
            if router.call_nodes.get(leg) == node and leg not in alive and \
                    at - router.leg_since.get(leg, 0) > SNAPSHOT_GRACE_US:
                router.call_nodes.pop(leg, None)
                facts.append(ev.ExtensionIdle(at_us=at, agent_id=agent_id, leg_id=leg))
                corrected("extension_leg_gone", "freed", None,
                          "a call on the agent's phone ended without its hangup being seen",
                          agent_id=agent_id, leg_id=leg)
        stale = [c for c in a.calls if c not in state.calls]
        if a.offer_id is not None and a.offer_id not in state.offers:
            facts.append(ev.AgentReleased(at_us=at, agent_id=agent_id, offer_id=a.offer_id))
            corrected("agent_busy_without_channel", "freed", None,
                      "agent ringing for an offer the router no longer has",
                      agent_id=agent_id, leg_id=a.offer_id)
        for call_id in stale:
            facts.append(ev.AgentReleased(at_us=at, agent_id=agent_id, call_id=call_id))
            corrected("agent_busy_without_channel", "freed", call_id,
                      "agent on a call the router no longer has", agent_id=agent_id)
    for call_id, call in state.calls.items():
        if router.call_nodes.get(call_id) == node and call_id not in alive and \
                not callbacks.waiting(router, call_id) and \
                at - call.enqueued_us > SNAPSHOT_GRACE_US:
            if call.status in TALKING:
                facts.append(ev.CallEnded(at_us=at, call_id=call_id))
            else:
                facts.append(ev.CallAbandoned(at_us=at, call_id=call_id))
            corrected("call_gone", "ended", call_id,
                      f"call {call.status} in the router, no channel on the switch")
    referenced = set(state.calls) | set(state.offers) | {
        leg for a in state.agents.values() for leg in a.other_legs}
    for key in [k for k, n in router.call_nodes.items()
                if n == node and k not in alive and k not in referenced]:
        del router.call_nodes[key]  # legs whose hangup was never seen
    for key in [k for k in router.leg_since if k not in router.call_nodes]:
        del router.leg_since[key]
    for key in [k for k in router.offer_agents if k not in router.call_nodes]:
        del router.offer_agents[key]
    facts += _reconcile_registrations(router, p, node, at)
    return outs, facts


def _connected_unseen(router: TenantRouter, leg: str,
                      info: dict[str, Any], at: int, facts: list[ev.Event]) -> bool:
    """An offer's leg the switch shows bridged to its caller while the router still waits
    for its answer (the answer and the bridge were lost in a gap): the call is connected.
    Without this the offer's ring time would run out and the router would hang up a
    talking agent. Told again by a late event, the same facts change nothing."""
    offer = router.state.offers.get(leg)
    if offer is None or not info.get("bridged") or \
            info.get("bridge_to") not in (None, offer.call_id):
        return False
    call = router.state.calls.get(offer.call_id)
    if call is None:
        return False
    if not offer.answered:
        facts.append(ev.OfferBridged(at_us=at, offer_id=leg))
        return True
    if call.status != CallStatus.CONNECTED:
        facts.append(ev.CallConnected(at_us=at, call_id=call.id))
        return True
    return False


def _reconcile_registrations(router: TenantRouter, p: dict[str, Any], node: str,
                             at: int) -> list[ev.Event]:
    state = router.state
    out: list[ev.Event] = []
    registered = {str(r.get("reg_user") or r.get("user") or "") for r in p.get("registrations") or ()}
    for ext in registered:
        if ext:
            router.registrations[ext] = node  # also for extensions no agent has (yet)
            router.version += 1
    for agent in state.agent_cfg.values():
        now = state.agents.get(agent.id)
        if now is None:
            continue
        if agent.extension in registered:
            router.registrations[agent.extension] = node
            if not now.registered:
                out.append(ev.AgentRegistered(at_us=at, agent_id=agent.id))
        elif router.registrations.get(agent.extension) == node:
            # Registered on this node as far as we knew, and the node says it is not:
            # (an extension registered on another node is that node's snapshot's business)
            router.registrations[agent.extension] = ""
            if now.registered:
                out.append(ev.AgentUnregistered(at_us=at, agent_id=agent.id))
    return out


DIRECT["node_snapshot_taken"] = reconcile


# ---- decisions -> commands and domain facts -----------------------------------------

def _out(topic: str, key: bytes, type_: str, tenant: str, at: int, call_id: str | None,
         payload: dict[str, Any], *id_parts: object, version: int = 1) -> Out:
    return Out(topic, key, Envelope(
        event_id=deterministic_id(type_, *id_parts), type=type_, version=version, occurred_at=at,
        tenant=tenant, source="router", seq=None, call_id=call_id, payload=payload))


def _leg_node(router: TenantRouter, leg: str, call_id: str) -> str:
    """The node an agent leg lives on (kept from its offer until it hangs up); a router
    stored before legs had their own entry knows only the call's node."""
    return router.call_nodes.get(leg) or router.call_nodes.get(call_id, "")


def _command(router: TenantRouter, type_: str, at: int, call_id: str, command_id: str,
             node: str | None = None, version: int = 1, **payload: Any) -> Out:
    """A command for the actuator of `node` (default: the node the call is on). A command
    with no node could never run: it goes to the dead letters with the reason (counted in
    `undeliverable`), never silently nowhere."""
    node = router.call_nodes.get(call_id, "") if node is None else node
    out = _out(topics.ROUTING_DECISIONS, topics.node_key(node), type_, router.tenant, at,
               call_id, {"command_id": command_id, "node": node, **payload}, command_id,
               version=version)
    if node:
        return out
    router.undeliverable += 1
    reason = f"{type_} for call {call_id}: no node known for it (its leg is gone?)"
    return _out(topics.DEAD_LETTERS, topics.ROUTING_DECISIONS.encode(), "dead_lettered",
                router.tenant, at, call_id,
                {"topic": topics.ROUTING_DECISIONS, "reason": reason,
                 "raw": encode(out.envelope).decode("latin-1")}, "undeliverable", command_id)


def _action_commands(router: TenantRouter, dec: Any, action: m.Action, at: int) -> list[Out]:
    cid = dec.call_id
    base = dec.decision_id
    if action.kind == m.ActionKind.VOICEMAIL:
        return [_command(router, "transfer_leg", at, cid, base, leg_id=cid,
                         destination=f"voicemail_{dec.queue_id}", context=f"tongdai_{router.tenant}")]
    if action.kind == m.ActionKind.ANNOUNCEMENT:
        return [_command(router, "play_announcement", at, cid, base, leg_id=cid,
                         path=action.target or "after_hours")]
    if action.kind == m.ActionKind.FORWARD:
        return [_command(router, "transfer_leg", at, cid, base, leg_id=cid,
                         destination=action.target, context=f"tongdai_{router.tenant}_outbound")]
    if action.kind == m.ActionKind.QUEUE:
        return [_command(router, "set_variable", at, cid, base, leg_id=cid,
                         name="tongdai_queue", value=action.target)]
    return [_command(router, "hangup_leg", at, cid, base, leg_id=cid, cause="NORMAL_CLEARING")]


def emit(router: TenantRouter, before: State, dec: d.Decision, at: int) -> list[Out]:
    """The actuator commands and domain facts of one decision."""
    t = router.tenant
    key = topics.tenant_key(t)
    out: list[Out] = []
    if isinstance(dec, d.OfferCall):
        call = router.state.calls.get(dec.call_id)
        agent = router.state.agent_cfg.get(dec.agent_id)
        # The agent's leg is originated on the caller's node and keeps that node until it
        # hangs up, whatever becomes of the call (a leg to release after the caller left).
        router.call_nodes[dec.offer_id] = router.call_nodes.get(dec.call_id, "")
        router.offer_agents[dec.offer_id] = (dec.agent_id, at)
        out.append(_command(router, "offer_call", at, dec.call_id, dec.offer_id, version=2,
                            offer_id=dec.offer_id, extension=dec.extension,
                            domain=router.sip_domain or t, caller_id_number=dec.caller or "unknown",
                            caller_id_name="", timeout_s=max(1, math.ceil((dec.expires_us - at) / 1e6)),
                            connect=dec.connect))
        out.append(_out(topics.CC_EVENTS, key, "call_offered", t, at, dec.call_id,
                        {"queue": dec.queue_id, "agent_id": dec.agent_id,
                         "extension": agent.extension if agent else dec.extension,
                         "offer_id": dec.offer_id,
                         "attempt": call.offers_made if call else 1}, dec.offer_id))
    elif isinstance(dec, d.CancelOffer):
        if dec.offer_id in router.call_nodes:  # else its leg hung up already
            out.append(_command(router, "hangup_leg", at, dec.call_id, dec.decision_id,
                                router.call_nodes[dec.offer_id], leg_id=dec.offer_id,
                                cause="ORIGINATOR_CANCEL"))
    elif isinstance(dec, d.ConnectCall):
        out.append(_command(router, "connect_call", at, dec.call_id, dec.decision_id,
                            offer_id=dec.offer_id))
        router.agent_legs[dec.call_id] = dec.offer_id  # the leg a supervisor may monitor
        call = before.calls.get(dec.call_id)
        offer = before.offers.get(dec.offer_id)
        out.append(_out(topics.CC_EVENTS, key, "call_answered", t, at, dec.call_id,
                        {"queue": dec.queue_id, "agent_id": dec.agent_id, "offer_id": dec.offer_id,
                         "wait_ms": (at - call.enqueued_us) // 1000 if call else 0,
                         "ring_ms": (at - offer.at_us) // 1000 if offer else 0}, dec.decision_id))
    elif isinstance(dec, (d.RunAfterHoursAction, d.OverflowCall)):
        out += _action_commands(router, dec, dec.action, at)
        out.append(_out(topics.CC_EVENTS, key, "call_overflowed", t, at, dec.call_id,
                        {"queue": dec.queue_id, "action": dec.action.kind,
                         "target": dec.action.target or None, "reason": dec.reason,
                         "after_hours": isinstance(dec, d.RunAfterHoursAction)},
                        dec.decision_id))
    elif isinstance(dec, d.ForwardToMobile):
        out += _action_commands(router, dec, m.Action(m.ActionKind.FORWARD, dec.mobile), at)
        out.append(_out(topics.CC_EVENTS, key, "call_overflowed", t, at, dec.call_id,
                        {"queue": dec.queue_id, "action": "forward_to_mobile",
                         "target": dec.mobile, "reason": dec.reason}, dec.decision_id))
    out.append(_out(topics.CC_EVENTS, key, "decision_made", t, at, dec.call_id, {
        "decision_id": dec.decision_id, "action": dec.type, "queue": dec.queue_id,
        "candidates": [{"agent_id": c.agent_id, "score": float(c.score[0]) if c.score else 0.0,
                        "note": c.why if c.eligible else f"excluded: {c.why}"}
                       for c in dec.candidates],
        "chosen": list(dec.chosen), "reason": dec.reason}, dec.decision_id))
    return out


def _facts(router: TenantRouter, before: State, fact: ev.Event, env: Envelope, n: int) -> list[Out]:
    """Domain facts of an applied routing event: the call's, and agents' state changes."""
    t = router.tenant
    key = topics.tenant_key(t)
    at = fact.at_us
    out: list[Out] = []
    if isinstance(fact, ev.CallEnqueued):
        c = fact.call
        out.append(_out(topics.CC_EVENTS, key, "call_enqueued", t, at, c.id, {
            "queue": c.queue, "caller": c.caller, "did": c.did or None, "priority": c.priority,
            "vip": c.vip, "skills": {s.skill: s.min_level for s in c.skills},
            "language": c.language, "region": c.region}, env.event_id, n))
    elif isinstance(fact, ev.OfferBridged):
        offer = before.offers.get(fact.offer_id)
        call = before.calls.get(offer.call_id) if offer is not None else None
        if offer is not None and call is not None and call.status in (
                CallStatus.WAITING, CallStatus.RINGING):
            router.agent_legs[call.id] = offer.offer_id  # the leg a supervisor may monitor
            out.append(_out(topics.CC_EVENTS, key, "call_answered", t, at, call.id,
                            {"queue": offer.queue_id, "agent_id": offer.agent_id,
                             "offer_id": offer.offer_id,
                             "wait_ms": (at - call.enqueued_us) // 1000,
                             "ring_ms": (at - offer.at_us) // 1000}, env.event_id, n))
    elif isinstance(fact, ev.OfferTakenLate):
        call = before.calls.get(fact.call_id)
        now = router.state.calls.get(fact.call_id)
        if call is not None and now is not None and now.status == CallStatus.CONNECTED \
                and call.status != CallStatus.CONNECTED:
            router.agent_legs[call.id] = fact.offer_id
            sent = router.offer_agents.get(fact.offer_id, (fact.agent_id, at))[1]
            out.append(_out(topics.CC_EVENTS, key, "call_answered", t, at, call.id,
                            {"queue": call.call.queue, "agent_id": fact.agent_id,
                             "offer_id": fact.offer_id,
                             "wait_ms": (at - call.enqueued_us) // 1000,
                             "ring_ms": (at - sent) // 1000}, env.event_id, n))
    elif isinstance(fact, ev.CallAbandoned):
        call = before.calls.get(fact.call_id)
        if call is not None:
            wait_ms = (at - call.enqueued_us) // 1000
            threshold = router.short_abandon_s.get(call.call.queue, SHORT_ABANDON_S)
            out.append(_out(topics.CC_EVENTS, key, "call_abandoned", t, at, fact.call_id, {
                "queue": call.call.queue, "wait_ms": wait_ms,
                "short": wait_ms < threshold * 1000}, env.event_id, n))
        router.call_nodes.pop(fact.call_id, None)
        router.agent_legs.pop(fact.call_id, None)
    elif isinstance(fact, ev.CallEnded):
        call = before.calls.get(fact.call_id)
        if call is not None:
            out.append(_out(topics.CC_EVENTS, key, "call_ended", t, at, fact.call_id, {
                "queue": call.call.queue, "agent_id": call.agent_id,
                "hangup_cause": env.payload.get("hangup_cause") or "NORMAL_CLEARING",
                "talk_ms": (at - call.connected_us) // 1000 if call.connected_us else 0},
                env.event_id, n))
        router.call_nodes.pop(fact.call_id, None)
        router.agent_legs.pop(fact.call_id, None)
    return out


def _release_answered_legs(router: TenantRouter, before: State, fact: ev.Event) -> list[Out]:
    """Hang up agent legs that answered but will never be bridged: their offer was dropped
    (caller gone before the bridge, bridge failed) while the leg sits parked at the phone."""
    out = []
    for offer_id, offer in before.offers.items():
        if not offer.answered or offer_id in router.state.offers:
            continue
        call = before.calls.get(offer.call_id)
        if call is not None and call.status == CallStatus.CONNECTED:
            continue  # bridged: FreeSWITCH ends the agent leg with the call
        if isinstance(fact, ev.CallConnected) and fact.call_id == offer.call_id:
            continue  # the bridge consumed the offer: the leg is talking, not dropped
        if isinstance(fact, ev.OfferRejected) and fact.offer_id == offer_id and \
                fact.cause != m.Cause.REJECTED:
            continue  # the leg itself hung up
        if offer_id not in router.call_nodes:
            continue  # its leg hung up already: nothing to release
        out.append(_command(router, "hangup_leg", fact.at_us, offer.call_id,
                            deterministic_id("release", offer_id),
                            router.call_nodes[offer_id], leg_id=offer_id,
                            cause="NORMAL_CLEARING"))
    return out


def _agent_changes(router: TenantRouter, before: State, env: Envelope, reason: str) -> list[Out]:
    out = []
    after = router.state
    if after.agents is before.agents:
        return out
    for agent_id, now in after.agents.items():
        old = before.agents.get(agent_id)
        if old is now:
            continue
        old_status = old.status if old is not None else None
        if old_status != now.status:
            router.state_since[agent_id] = after.clock_us
            cfg_ = after.agent_cfg.get(agent_id)
            out.append(_out(topics.CC_EVENTS, topics.tenant_key(router.tenant), "agent_state_changed",
                            router.tenant, after.clock_us, None, {
                                "agent_id": agent_id,
                                "extension": cfg_.extension if cfg_ else "",
                                "state": now.status, "previous_state": old_status,
                                "reason": now.pause_reason or now.penalty_cause or reason},
                            env.event_id, agent_id, now.status))
    return out


def handle(router: TenantRouter, env: Envelope) -> list[Out]:
    """Apply one record to the tenant's router (in place) and return what to send."""
    if _is_duplicate(router, env):
        router.duplicates += 1
        return []
    clock_before = router.state.clock_us
    out: list[Out] = []
    direct = DIRECT.get(env.type)
    direct = callbacks.direct(router, env) or direct  # a callback's keys, legs, caller ID
    if env.type == "channel_parked" and env.payload.get("offer_id"):
        direct = agent_leg_parked
    if direct is not None:
        out, facts = direct(router, env)
        router.version += 1
    else:
        facts = translate(router, env)
    for n, fact in enumerate(facts):
        before = router.state
        state, decisions = routing.step(before, fact)
        router.state = state
        router.applied += 1
        router.version += 1
        out += _facts(router, before, fact, env, n)
        out += _release_answered_legs(router, before, fact)
        for dec in decisions:
            out += emit(router, before, dec, fact.at_us)
            router.recent.insert(0, {"at_us": fact.at_us, "call_id": dec.call_id,
                                     "action": dec.type, "queue": dec.queue_id,
                                     "reason": dec.reason})
        del router.recent[RECENT_DECISIONS:]
        out += _agent_changes(router, before, env, fact.type)
    out = callbacks.rewrite(router, out)
    out += announcements(router, clock_before)
    return out


def announcements(router: TenantRouter, before_us: int) -> list[Out]:
    """Waiting callers whose announcement moment (routing/announce.py) fell between the
    router's clock before the record just handled and after it: play them their position
    and estimated wait, then their waiting music again.

    The music is a broadcast that never ends and holds the channel's event lock: a prompt
    broadcast behind it waits for ever (measured on the real switch: accepted, never
    played), and would play once the music stops — over the agent, after the bridge. So
    the music is stopped first (`uuid_break`) and the prompt brings it back. The two
    commands may run in either order: a prompt queued first plays as the break ends the
    music."""
    state = router.state
    now = state.clock_us
    if now <= before_us:
        return []
    due_calls: list[tuple[str, int, str | None]] = []
    for qid, cids in state.queue_calls.items():
        q = state.queues.get(qid)
        if q is None or q.announce_every_s is None:
            continue
        for cid in cids:
            c = state.calls.get(cid)
            if c is None or c.status != CallStatus.WAITING or cid in callbacks.book(router):
                continue  # a phone rings for it, or it is in a callback's questions or gone
            moment = announce.due(c.enqueued_us, q.announce_every_s, before_us, now)
            if moment is not None:
                due_calls.append((cid, moment, q.callback_key))
    if not due_calls:
        return []
    estimates = routing_ewt.estimate(state, now)
    out: list[Out] = []
    for cid, moment, key in due_calls:
        e = estimates.calls.get(cid)
        if e is None or e.position < 1:
            continue
        path = announce.prompt(e.position, e.ewt_s)
        if key == "1":  # the recorded offer says "press 1"
            path += "!" + cbk.offer_prompt().removeprefix("file_string://")
        out.append(_command(router, "break_playback", now, cid,
                            deterministic_id("announce-break", router.tenant, cid, moment),
                            leg_id=cid))
        out.append(_command(router, "play_announcement", now, cid,
                            deterministic_id("announce", router.tenant, cid, moment),
                            version=2, leg_id=cid, path=path, then_music=True))
    return out


def _ewt_inputs(e: routing_ewt.QueueEstimate) -> dict[str, Any]:
    """What a queue's estimated wait was computed from (explained by its output)."""
    return {"position": e.position, "agents_serving": e.agents_serving,
            "agents_free": e.agents_free, "agents_shared": e.agents_shared,
            "talk_s": e.talk_s, "wrapup_s": e.wrapup_s, "ring_s": e.ring_s,
            "samples": e.samples, "reason": e.reason}


def _call_ewt(e: routing_ewt.CallEstimate | None) -> dict[str, Any]:
    return {"position": e.position if e is not None else None,
            "ewt_s": e.ewt_s if e is not None else None}


def live_view(router: TenantRouter, now_us: int) -> dict[str, Any]:
    """What a supervisor sees now (payload of `live_state_published`)."""
    state = router.state
    estimates = routing_ewt.estimate(state, now_us)
    queues = []
    for qid in sorted(set(state.queues) | set(state.queue_calls)):
        cids = state.queue_calls.get(qid, ())
        calls = [state.calls[c] for c in cids if c in state.calls]
        members = state.members.get(qid, frozenset())
        statuses = [state.agents[a].status for a in members if a in state.agents]
        ewt = estimates.queues.get(qid)
        queues.append({
            "queue": qid, "waiting": len(calls),
            "ringing": sum(1 for c in calls if c.status == CallStatus.RINGING),
            "longest_wait_ms": max(((now_us - c.enqueued_us) // 1000 for c in calls), default=0),
            "agents_logged_in": sum(1 for st in statuses if st != "logged_out"),
            "agents_available": sum(1 for st in statuses if st == "available"),
            "ewt_s": ewt.ewt_s if ewt is not None else None,
            "ewt": _ewt_inputs(ewt) if ewt is not None else None})
    agents = []
    for agent_id in sorted(state.agent_cfg):
        a = state.agents.get(agent_id)
        if a is None:
            continue
        agents.append({
            "agent_id": agent_id, "extension": state.agent_cfg[agent_id].extension,
            "state": a.status, "since_us": router.state_since.get(agent_id, a.mark_us),
            "pause_reason": a.pause_reason,
            "call_id": a.calls[0] if a.calls else (state.offers[a.offer_id].call_id
                                                    if a.offer_id in state.offers else
                                                    a.other_legs[0] if a.other_legs else None)})
    calls = [{"call_id": cid, "queue": c.call.queue, "caller": c.call.caller,
              "status": c.status, "enqueued_us": c.enqueued_us, "agent_id": c.agent_id,
              "connected_us": c.connected_us, "vip": c.call.vip,
              "callback": callbacks.number_of(router, cid),
              **_call_ewt(estimates.calls.get(cid))}
             for cid, c in sorted(state.calls.items(), key=lambda kv: kv[1].enqueued_us)]
    return {"as_of_us": now_us, "queues": queues, "agents": agents, "calls": calls,
            "recent": list(router.recent)}
