"""Callbacks that keep the caller's place: the switch side of routing/callbacks.py.

The caller's keys (DTMF while waiting) are read here; the routing state is left as it is
for everything else: a confirmed callback is simply a call that stays in its queue when
its caller hangs up. When its turn comes the router's own offer rings an agent (parked on
answer, whatever the queue's `connect`: there is no caller to bridge), and the agent's leg
then dials the customer through the tenant's outbound dialplan (`transfer_leg` to
`<number> XML tongdai_<tenant>_outbound`, after `tongdai_outbound_caller_id` is set on it:
the agent's caller ID, else the tenant's, else its first geographic or mobile number, as
for click-to-call). The customer answering bridges the agent's leg (the call is connected
then); a leg that ends before that puts the callback back in its place for the next
agent, until the queue's attempts run out.

Every function takes the tenant router and a record, and returns what to send and the
routing facts to apply, like the router's other handlers.
"""
from __future__ import annotations

from typing import Any, Callable

from routing import callbacks as cbk
from routing import ewt
from routing import events as ev
from routing import model as m
from routing import numbers
from routing.contract import Envelope, deterministic_id, topics
from routing.state import CallStatus

Handler = Callable[[Any, Envelope], tuple[list, list]]


def book(router: Any) -> dict[str, cbk.Callback]:
    """The tenant's callbacks by call id (a router stored before callbacks has none)."""
    return router.__dict__.setdefault("callbacks", {})


def _caller_ids(router: Any) -> dict[str, Any]:
    return router.__dict__.setdefault("callback_caller_ids", {"tenant": None, "agents": {}})


def waiting(router: Any, call_id: str) -> bool:
    """Is this call a callback whose caller may have hung up (the switch no longer has
    its leg, and that is right)?"""
    cb = book(router).get(call_id)
    return cb is not None and cb.stage != cbk.ASKED


def number_of(router: Any, call_id: str) -> str | None:
    cb = book(router).get(call_id)
    return cb.number if cb is not None and cb.stage != cbk.ASKED else None


def direct(router: Any, env: Envelope) -> Handler | None:
    """The handler of a record that concerns a callback, else None (the router's own)."""
    t, p = env.type, env.payload
    if t == "config_changed":
        _learn(router, p)
        return None
    callbacks = book(router)
    state = router.state
    if t == "dtmf_received":
        call = state.calls.get(env.call_id or "")
        if call is None or p.get("leg_id") != env.call_id or call.status != CallStatus.WAITING:
            return None
        q = state.queues.get(call.call.queue)
        if env.call_id in callbacks or (q is not None and q.callback_key is not None):
            return on_key
        return None
    if t in ("channel_hungup", "channel_vanished"):
        leg = p.get("leg_id") or ""
        if leg == env.call_id and env.call_id in callbacks:
            return caller_left
        if _dialing_call(router, leg) is not None:
            return agent_leg_ended
        return None
    if t == "channel_bridged":
        for leg in (p.get("leg_id"), p.get("other_leg_id")):
            offer = state.offers.get(leg or "")
            if offer is not None and offer.answered and \
                    callbacks.get(offer.call_id, None) is not None and \
                    callbacks[offer.call_id].stage == cbk.DIALING:
                return customer_answered
        return None
    if t == "command_executed" and p.get("command") == "set_variable" and \
            str(p.get("command_id", "")).startswith("cbcid-"):
        return caller_id_set
    return None


def _dialing_call(router: Any, leg: str) -> str | None:
    """The callback whose agent leg this is, once the agent answered (the routing state
    drops the offer when the leg is bridged; the router keeps the leg per call)."""
    for call_id, cb in book(router).items():
        if cb.stage in (cbk.DIALING, cbk.DONE) and router.agent_legs.get(call_id) == leg:
            return call_id
    return None


def _learn(router: Any, p: dict[str, Any]) -> None:
    """The caller-ID rules' inputs, from the configuration records the router reads."""
    cids = _caller_ids(router)
    data = p.get("data") or {}
    if p["kind"] == "tenant":
        cids["tenant"] = data.get("outbound_caller_id")
    elif p["kind"] == "agent":
        cids["agents"][p["entity_id"]] = data.get("caller_id")


def caller_id(router: Any, agent_id: str | None) -> str | None:
    """The number the customer sees (the API's rule for click-to-call): never 1800/1900."""
    cids = _caller_ids(router)
    candidates = [cids["agents"].get(agent_id or ""), cids["tenant"]]
    candidates += sorted(n for n, did in router.state.dids.items()
                         if did.kind in (m.DidKind.GEOGRAPHIC, m.DidKind.MOBILE))
    for number in candidates:
        if number and not numbers.is_service_number(number):
            return numbers.national_number(number)
    return None


def _fact(router: Any, type_: str, at: int, cb: cbk.Callback, **payload: Any) -> Any:
    from streams.router import _out

    return _out(topics.CC_EVENTS, topics.tenant_key(router.tenant), type_, router.tenant, at,
                cb.call_id, {"queue": cb.queue, "number": cb.number, **payload},
                type_, cb.call_id, cb.attempts, at)


def _play(router: Any, env: Envelope, step: cbk.Step) -> list:
    from streams.router import _command

    at, leg = env.occurred_at, env.call_id or ""
    path = step.prompt or ""
    if step.hang_up:
        # uuid_broadcast's `app!cause::args`: the switch hangs up once the prompt is played.
        path = f"playback!NORMAL_CLEARING::{path}"
    return [_command(router, "break_playback", at, leg,
                     deterministic_id("cb-break", env.event_id), leg_id=leg),
            _command(router, "play_announcement", at, leg,
                     deterministic_id("cb-say", env.event_id), version=2, leg_id=leg,
                     path=path, then_music=step.then_music)]


def on_key(router: Any, env: Envelope) -> tuple[list, list]:
    callbacks = book(router)
    state = router.state
    call = state.calls[env.call_id]
    q = state.queues.get(call.call.queue)
    cb, step = cbk.press(callbacks.get(env.call_id), str(env.payload.get("dtmf_digit") or ""),
                         call_id=call.id, queue=call.call.queue, caller=call.call.caller,
                         callback_key=q.callback_key if q else None,
                         max_attempts=q.callback_attempts if q else 3, at_us=env.occurred_at)
    if step is None:
        return [], []
    if cb is None:
        callbacks.pop(env.call_id, None)
    else:
        callbacks[env.call_id] = cb
    router.version += 1
    outs = _play(router, env, step)
    if step.fact == "callback_requested" and cb is not None:
        est = ewt.estimate(state, env.occurred_at).calls.get(call.id)
        outs.append(_fact(router, "callback_requested", env.occurred_at, cb,
                          position=est.position if est else None,
                          ewt_s=est.ewt_s if est else None))
    return outs, []


def caller_left(router: Any, env: Envelope) -> tuple[list, list]:
    """The caller hung up: a confirmed callback keeps its place; one only asked about is
    forgotten and the call abandoned as usual."""
    from streams.router import translate

    cb = book(router)[env.call_id]
    if cb.stage == cbk.ASKED:
        del book(router)[env.call_id]
        return [], translate(router, env)
    router.version += 1
    return [], []


def rewrite(router: Any, outs: list) -> list:
    """The router's commands for callback calls: the agent's leg parks on answer (nobody
    to bridge), and instead of the bridge the leg gets its caller ID, then dials."""
    from streams.router import Out, _command

    callbacks = book(router)
    if not callbacks:
        return outs
    result = []
    for out in outs:
        env = out.envelope
        cb = callbacks.get(env.call_id or "")
        if cb is None or cb.stage == cbk.ASKED or out.topic != topics.ROUTING_DECISIONS:
            result.append(out)
            continue
        if env.type == "offer_call":
            # The agent's phone shows the customer's number (the caller ID it was given).
            # v3: the actuator must not refuse it because the caller's leg is gone.
            result.append(Out(out.topic, out.key, env.with_payload(
                {**env.payload, "connect": "router", "caller_id_number": cb.number,
                 "callback": True}, 3)))
        elif env.type == "connect_call":
            offer_id = env.payload["offer_id"]
            offer = router.state.offers.get(offer_id)
            agent_id = offer.agent_id if offer is not None else None
            callbacks[cb.call_id] = cbk.connected(cb, agent_id or "")
            node = router.call_nodes.get(offer_id, env.payload.get("node", ""))
            presented = caller_id(router, agent_id)
            if presented:
                result.append(_command(router, "set_variable", env.occurred_at, cb.call_id,
                                       f"cbcid-{offer_id}", node, leg_id=offer_id,
                                       name="tongdai_outbound_caller_id", value=presented))
            else:
                result.append(_dial(router, env.occurred_at, cb, offer_id, node))
        else:
            result.append(out)
    return result


def _dial(router: Any, at: int, cb: cbk.Callback, offer_id: str, node: str) -> Any:
    from streams.router import _command

    return _command(router, "transfer_leg", at, cb.call_id,
                    deterministic_id("cb-dial", offer_id), node, leg_id=offer_id,
                    destination=numbers.national_number(cb.number),
                    context=f"tongdai_{router.tenant}_outbound")


def caller_id_set(router: Any, env: Envelope) -> tuple[list, list]:
    """The agent's leg has its caller ID: dial the customer (or, the leg being gone,
    nothing: its hangup puts the callback back in its place)."""
    offer_id = str(env.payload["command_id"]).removeprefix("cbcid-")
    offer = router.state.offers.get(offer_id)
    cb = book(router).get(offer.call_id) if offer is not None else None
    if cb is None or cb.stage != cbk.DIALING or not env.payload.get("ok"):
        return [], []
    return [_dial(router, env.occurred_at, cb, offer_id,
                  router.call_nodes.get(offer_id, env.source))], []


def customer_answered(router: Any, env: Envelope) -> tuple[list, list]:
    callbacks = book(router)
    cb = callbacks[env.call_id] if env.call_id in callbacks else next(
        callbacks[o.call_id] for leg in (env.payload.get("leg_id"), env.payload.get("other_leg_id"))
        if (o := router.state.offers.get(leg or "")) is not None and o.call_id in callbacks)
    done, _ = cbk.attempt_ended(cb, reached=True)
    callbacks[cb.call_id] = done
    router.version += 1
    return ([_fact(router, "callback_completed", env.occurred_at, done, outcome="connected",
                   attempts=done.attempts, agent_id=done.agent_id)],
            [ev.CallConnected(at_us=env.occurred_at, call_id=cb.call_id)])


def agent_leg_ended(router: Any, env: Envelope) -> tuple[list, list]:
    """The agent's leg hung up: after talking with the customer the callback is over;
    before the customer answered, it goes back to its place (or fails)."""
    leg = env.payload["leg_id"]
    callbacks = book(router)
    cb = callbacks[_dialing_call(router, leg) or ""]
    at = env.occurred_at
    router.agent_legs.pop(cb.call_id, None)
    router.call_nodes.pop(leg, None)
    router.version += 1
    if cb.stage == cbk.DONE:
        del callbacks[cb.call_id]
        return [], [ev.CallEnded(at_us=at, call_id=cb.call_id)]
    again, step = cbk.attempt_ended(cb, reached=False)
    cause = str(env.payload.get("hangup_cause") or "")
    # Not the agent's doing: the customer did not answer. No ring-no-answer penalty.
    facts: list = ([ev.OfferRejected(at_us=at, offer_id=leg, cause=m.Cause.NOT_DELIVERED)]
                   if leg in router.state.offers else [])
    if step.requeue:
        callbacks[cb.call_id] = again
        return [_fact(router, "callback_attempted", at, again, attempt=again.attempts,
                      agent_id=cb.agent_id, result=cause)], facts
    del callbacks[cb.call_id]
    # The call first: the agent the rejected offer frees must not be offered it again.
    facts.insert(0, ev.CallAbandoned(at_us=at, call_id=cb.call_id))
    return [_fact(router, "callback_completed", at, again, outcome="failed",
                  attempts=again.attempts, agent_id=cb.agent_id)], facts
