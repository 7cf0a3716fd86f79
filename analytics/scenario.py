"""Envelopes of whole calls, shaped like the contract's golden records. Pure.

Used by the golden KPI tests (scenario logs with hand-computed answers), by the sink tests
and by `tongdai bench analytics` (the events behind a sample of the generated CDRs). Every
envelope it makes validates against `routing.contract.schemas.RecordSchema`.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from routing.contract.envelope import Envelope, deterministic_id

NODE = "7d8e2b34-0c5e-4e43-8a7f-3b1f9a2c6d10"
S = 1_000_000  # µs per second

_CHANNEL_FIELDS = ("caller", "caller_name", "callee", "domain", "did", "queue", "ivr_path",
                   "priority", "vip", "skills", "language", "region", "offer_id",
                   "other_leg_id", "channel_state", "answer_state", "hangup_cause",
                   "dtmf_digit", "recording_path", "ivr_choice")
_FS_NAMES = {
    "channel_created": "CHANNEL_CREATE", "channel_answered": "CHANNEL_ANSWER",
    "channel_parked": "CHANNEL_PARK", "channel_bridged": "CHANNEL_BRIDGE",
    "channel_unbridged": "CHANNEL_UNBRIDGE", "channel_held": "CHANNEL_HOLD",
    "channel_unheld": "CHANNEL_UNHOLD", "channel_hungup": "CHANNEL_HANGUP",
    "channel_hangup_completed": "CHANNEL_HANGUP_COMPLETE",
    "channel_destroyed": "CHANNEL_DESTROY", "recording_started": "RECORD_START",
    "recording_stopped": "RECORD_STOP", "ivr_choice_made": "DTMF",
}


def us(when: str | dt.datetime) -> int:
    """µs since the epoch of an ISO time with offset ('2026-11-22T08:00:00+07:00')."""
    moment = dt.datetime.fromisoformat(when) if isinstance(when, str) else when
    if moment.tzinfo is None:
        raise ValueError("give times with their UTC offset")
    return int(moment.timestamp()) * S + moment.microsecond


@dataclass
class Scenario:
    """Builds the events of a tenant's calls; `events` collects them in emission order."""

    tenant: str = "acme"
    node: str = NODE
    events: list[Envelope] = field(default_factory=list)
    _seq: int = 0

    def _add(self, type_: str, at: int, source: str, call_id: str | None,
             payload: dict[str, Any], seq: int | None) -> Envelope:
        ident = deterministic_id(self.tenant, type_, call_id, at, seq,
                                 payload.get("leg_id") or payload.get("agent_id") or "",
                                 len(self.events))
        e = Envelope(ident, type_, 1, at, self.tenant, source, seq, call_id, payload)
        self.events.append(e)
        return e

    def fs(self, type_: str, at: int, call_id: str, leg: str = "a", leg_id: str | None = None,
           direction: str = "inbound", headers: dict[str, str] | None = None,
           **fields: Any) -> Envelope:
        """A FreeSWITCH channel fact of `call_id` (leg a unless told); `headers`: the raw
        FreeSWITCH headers the normalizer keeps that the fact needs (Other-Type, ...)."""
        self._seq += 1
        payload: dict[str, Any] = {"fs_event": _FS_NAMES.get(type_, type_.upper()),
                                   "leg_id": leg_id or call_id, "leg": leg,
                                   "direction": direction}
        payload.update({k: None for k in _CHANNEL_FIELDS})
        payload.update(fields)
        payload["headers"] = {"Event-Name": payload["fs_event"], **(headers or {})}
        return self._add(type_, at, self.node, call_id, payload, self._seq)

    def cc(self, type_: str, at: int, call_id: str | None, **payload: Any) -> Envelope:
        """A router fact."""
        return self._add(type_, at, "router", call_id, payload, None)

    def agent(self, at: int, agent_id: str, state: str, previous: str | None = None,
              call_id: str | None = None, extension: str | None = None,
              reason: str = "") -> Envelope:
        return self.cc("agent_state_changed", at, call_id, agent_id=agent_id,
                       extension=extension or ext(agent_id),
                       state=state, previous_state=previous, reason=reason)

    # ---- whole calls ---------------------------------------------------------------
    def queue_call(self, call_id: str, at: int, queue: str, caller: str, did: str = "19001234",
                   wait_s: float = 10, agent_id: str | None = "agent-7",
                   ring_s: float = 3, talk_s: float = 60, hold_s: float = 0,
                   wrap_s: float | None = 15, abandon: bool = False, short: bool | None = None,
                   rna_agents: tuple[str, ...] = (), ivr_path: str = "1",
                   overflow_to: tuple[str, str] | None = None, overflow_after_s: float = 0,
                   recording: bool = True) -> dict[str, int]:
        """An inbound ACD call: IVR, queue, offers (the `rna_agents` ring out first), then
        answered by `agent_id`, abandoned, or overflowed. Returns its key times (µs)."""
        chan = dict(caller=caller, callee=did, did=did, queue=queue, ivr_path=ivr_path,
                    domain=f"{self.tenant}.tongdai.local")
        t = at
        self.fs("channel_created", t, call_id, **chan)
        self.fs("channel_answered", t + S // 2, call_id, **chan)
        enq = t + 2 * S
        self.fs("channel_parked", enq, call_id, **chan)
        self.cc("call_enqueued", enq, call_id, queue=queue, caller=caller, did=did)
        visit_q = queue
        visit_enq = enq
        if overflow_to is not None:
            of = enq + int(overflow_after_s * S)
            action, target = overflow_to
            self.cc("call_overflowed", of, call_id, queue=queue, action=action, target=target,
                    reason="max wait reached")
            if action != "queue":
                end = of + 20 * S
                self.fs("channel_hangup_completed", end, call_id, hangup_cause="NORMAL_CLEARING",
                        **chan)
                return {"enqueue": enq, "end": end}
            visit_q, visit_enq = target, of
            self.cc("call_enqueued", of, call_id, queue=target, caller=caller, did=did)
        leave = visit_enq + int(wait_s * S)
        t_offer = visit_enq + S
        attempt = 0
        for rna in rna_agents:
            attempt += 1
            oid = deterministic_id(call_id, "offer", attempt)
            self.cc("call_offered", t_offer, call_id, queue=visit_q, agent_id=rna,
                    extension=ext(rna), offer_id=oid, attempt=attempt)
            self.agent(t_offer + 15 * S, rna, "ring_no_answer", "offered")
            self.agent(t_offer + 45 * S, rna, "available", "ring_no_answer")
            t_offer += 16 * S
        if abandon:
            waited = _ms(leave - visit_enq)
            self.cc("call_abandoned", leave, call_id, queue=visit_q, wait_ms=waited,
                    short=bool(short) if short is not None else waited < 5000)
            self.fs("channel_hangup_completed", leave, call_id, hangup_cause="ORIGINATOR_CANCEL",
                    **chan)
            return {"enqueue": enq, "end": leave}
        assert agent_id is not None
        attempt += 1
        oid = deterministic_id(call_id, "offer", attempt)
        # The router offers at `leave - ring_s` and connects at `leave`; the switch made
        # the agent's leg 20 ms before the offer fact and the agent picked up 20 ms before
        # the bridge (the router connects on the agent leg's park): the caller's wait ends
        # at the bridge, `wait_s` after the enqueue, and the agent's phone rang `ring_s`.
        offer_at = leave - int(ring_s * S)
        picked_up = leave - 20_000
        self.cc("call_offered", offer_at, call_id, queue=visit_q, agent_id=agent_id,
                extension=ext(agent_id), offer_id=oid, attempt=attempt)
        self.agent(offer_at, agent_id, "offered", "available")
        self.fs("channel_created", offer_at - 20_000, call_id, leg="b", leg_id=oid,
                direction="outbound", offer_id=oid, caller=caller, callee=ext(agent_id))
        self.fs("channel_answered", picked_up, call_id, leg="b", leg_id=oid,
                direction="outbound", offer_id=oid)
        self.cc("call_answered", leave, call_id, queue=visit_q, agent_id=agent_id,
                offer_id=oid, wait_ms=_ms(leave - visit_enq), ring_ms=_ms(leave - offer_at))
        self.agent(leave, agent_id, "on_call", "offered", call_id=call_id)
        bridge = leave
        self.fs("channel_bridged", bridge, call_id, other_leg_id=oid, offer_id=oid, **chan)
        if recording:
            self.fs("recording_started", bridge, call_id,
                    recording_path=(f"/var/lib/freeswitch/recordings/{self.tenant}/"
                                    f"{_vn_date(bridge)}/{call_id}.wav"),
                    **chan)
        end = leave + int((talk_s + hold_s) * S)
        if hold_s:
            h = leave + int(talk_s / 2 * S)
            self.fs("channel_held", h, call_id, **chan)
            self.fs("channel_unheld", h + int(hold_s * S), call_id, **chan)
        self.fs("channel_hangup_completed", end, call_id, hangup_cause="NORMAL_CLEARING", **chan)
        self.cc("call_ended", end, call_id, queue=visit_q, agent_id=agent_id,
                hangup_cause="NORMAL_CLEARING", talk_ms=_ms(end - leave))
        if wrap_s is not None:
            self.agent(end, agent_id, "wrap_up", "on_call", call_id=call_id)
            self.agent(end + int(wrap_s * S), agent_id, "available", "wrap_up")
        else:
            self.agent(end, agent_id, "available", "on_call")
        return {"enqueue": enq, "answer": leave, "end": end}

    def callback_call(self, call_id: str, at: int, queue: str, caller: str,
                      attempts: tuple[str, ...] = ("answer",), did: str = "19001234",
                      wait_s: float = 30, agent_id: str = "agent-7", queued_s: float = 60,
                      talk_s: float = 45, wrap_s: float = 10, max_attempts: int = 3,
                      number: str | None = None, exported: bool = True) -> dict[str, int]:
        """A caller who asks to be called back, as the simulator and the real switch run it
        (tests/unit/streams/test_callback_sim.py, tests/realfs/test_callback.py): it waits
        `wait_s` in the queue, presses the key and confirms (`callback_requested`); the
        switch thanks it and hangs it up 4 s later (its BYE). `queued_s` after entering the
        queue the call's turn comes: each of `attempts` is an offer to `agent_id`, whose
        leg (answered after 1 s, parked) dials the customer through the outbound dialplan
        (recorded; the customer's leg carries the call's id, which the offer exported):
        "answer" (after 2 s: bridged, `talk_s`, the customer hangs up, the agent wraps
        up), "busy" or "no_answer" (the customer's leg fails and the agent's leg with it;
        `callback_attempted`, or after the last one `callback_completed` failed).
        `exported=False`: the customer's leg belongs to the agent's leg that dialled it, as
        before the callback offer exported the call's id. Returns its key times (µs)."""
        number = number or caller
        chan = dict(caller=caller, callee=did, did=did, queue=queue,
                    domain=f"{self.tenant}.tongdai.local")
        self.fs("channel_created", at, call_id, **chan)
        self.fs("channel_answered", at + S // 2, call_id, **chan)
        enq = at + 2 * S
        self.fs("channel_parked", enq, call_id, **chan)
        self.cc("call_enqueued", enq, call_id, queue=queue, caller=caller, did=did)
        asked = enq + int(wait_s * S)
        self.fs("dtmf_received", asked - 2 * S, call_id, dtmf_digit="1", **chan)
        self.fs("dtmf_received", asked, call_id, dtmf_digit="1", **chan)
        self.cc("callback_requested", asked, call_id, queue=queue, number=number, position=1,
                ewt_s=int(queued_s - wait_s))
        # playback!NORMAL_CLEARING::<the thanks>: the switch hangs the caller up.
        left = asked + 4 * S
        self.fs("channel_hangup_completed", left, call_id, hangup_cause="NORMAL_CLEARING",
                headers={"variable_sip_hangup_disposition": "send_bye"}, **chan)
        times = {"enqueue": enq, "requested": asked, "left": left}
        t = enq + int(queued_s * S)
        for n, how in enumerate(attempts, 1):
            oid = deterministic_id(call_id, "callback-offer", n)
            cust = deterministic_id(call_id, "callback-customer", n)
            agent_leg = dict(leg="b", leg_id=oid, direction="outbound", offer_id=oid)
            customer_leg = dict(leg="b", leg_id=cust, direction="outbound", caller=number,
                                callee=number, headers={"Other-Type": "originator",
                                                        "Other-Leg-Unique-ID": oid})
            self.cc("call_offered", t, call_id, queue=queue, agent_id=agent_id,
                    extension=ext(agent_id), offer_id=oid, attempt=n)
            self.agent(t, agent_id, "offered", "available")
            self.fs("channel_created", t, call_id, caller=number, callee=ext(agent_id),
                    **agent_leg)
            picked_up = t + S
            self.fs("channel_answered", picked_up, call_id, **agent_leg)
            self.cc("call_answered", picked_up + 20_000, call_id, queue=queue,
                    agent_id=agent_id, offer_id=oid, wait_ms=_ms(picked_up + 20_000 - enq),
                    ring_ms=_ms(picked_up + 20_000 - t))
            self.agent(picked_up + 20_000, agent_id, "on_call", "offered")
            self.fs("channel_parked", picked_up + 20_000, call_id, **agent_leg)
            dial = picked_up + 50_000
            recording = (f"/var/lib/freeswitch/recordings/{self.tenant}/{_vn_date(dial)}/"
                         f"{oid}.wav")
            self.fs("recording_started", dial, call_id, recording_path=recording, **agent_leg)
            customer_call = call_id if exported else oid
            self.fs("channel_created", dial, customer_call, **customer_leg)
            if how == "answer":
                bridge = dial + 2 * S
                self.fs("channel_answered", bridge, customer_call, **customer_leg)
                self.cc("callback_completed", bridge, call_id, queue=queue, number=number,
                        outcome="connected", attempts=n, agent_id=agent_id)
                self.fs("channel_bridged", bridge, call_id, other_leg_id=cust,
                        headers={"Bridge-A-Unique-ID": oid, "Bridge-B-Unique-ID": cust},
                        **agent_leg)
                end = bridge + int(talk_s * S)
                self.fs("channel_hangup_completed", end, customer_call,
                        hangup_cause="NORMAL_CLEARING", **{**customer_leg, "headers": {
                            **customer_leg["headers"],
                            "variable_sip_hangup_disposition": "recv_bye"}})
                self.fs("recording_stopped", end, call_id, recording_path=recording,
                        **agent_leg)
                self.fs("channel_unbridged", end, call_id, other_leg_id=cust,
                        headers={"Bridge-A-Unique-ID": oid, "Bridge-B-Unique-ID": cust},
                        **agent_leg)
                self.fs("channel_hangup_completed", end, call_id, hangup_cause="NORMAL_CLEARING",
                        headers={"variable_sip_hangup_disposition": "send_bye"}, **agent_leg)
                self.cc("call_ended", end, call_id, queue=queue, agent_id=agent_id,
                        hangup_cause="NORMAL_CLEARING", talk_ms=_ms(end - bridge))
                self.agent(end, agent_id, "wrap_up", "on_call")
                self.agent(end + int(wrap_s * S), agent_id, "available", "wrap_up")
                times.update(answer=bridge, end=end)
                return times
            cause, after, side = (("USER_BUSY", 50_000, "recv_refuse") if how == "busy"
                                  else ("NO_ANSWER", 60 * S, "send_cancel"))
            gone = dial + after
            self.fs("channel_hangup_completed", gone, customer_call, hangup_cause=cause,
                    **{**customer_leg, "headers": {**customer_leg["headers"],
                                                   "variable_sip_hangup_disposition": side}})
            self.fs("recording_stopped", gone, call_id, recording_path=recording, **agent_leg)
            self.fs("channel_hangup_completed", gone, call_id, hangup_cause=cause,
                    headers={"variable_sip_hangup_disposition": "send_bye"}, **agent_leg)
            if n < min(len(attempts), max_attempts):
                self.cc("callback_attempted", gone, call_id, queue=queue, number=number,
                        attempt=n, agent_id=agent_id, result=cause)
                self.agent(gone, agent_id, "available", "on_call")
                t = gone + 30 * S  # the next agent free
                continue
            self.cc("callback_completed", gone, call_id, queue=queue, number=number,
                    outcome="failed", attempts=n, agent_id=agent_id)
            self.cc("call_abandoned", gone, call_id, queue=queue, wait_ms=_ms(gone - enq),
                    short=False)
            self.agent(gone, agent_id, "wrap_up", "on_call")
            self.agent(gone + int(wrap_s * S), agent_id, "available", "wrap_up")
            times["end"] = gone
            return times
        return times

    def plain_call(self, call_id: str, at: int, caller: str, callee: str,
                   direction: str = "internal", answered_after_s: float | None = 5,
                   talk_s: float = 30, cause: str = "NORMAL_CLEARING") -> dict[str, int]:
        """A call FreeSWITCH handled alone (no queue): only channel facts."""
        chan = dict(caller=caller, callee=callee, domain=f"{self.tenant}.tongdai.local")
        self.fs("channel_created", at, call_id, direction=direction, **chan)
        b = deterministic_id(call_id, "b")
        self.fs("channel_created", at + S // 10, call_id, leg="b", leg_id=b,
                direction="outbound", **chan)
        if answered_after_s is None:
            end = at + 30 * S
            self.fs("channel_hangup_completed", end, call_id, direction=direction,
                    hangup_cause=cause, **chan)
            return {"end": end}
        ans = at + int(answered_after_s * S)
        self.fs("channel_answered", ans, call_id, leg="b", leg_id=b, direction="outbound", **chan)
        self.fs("channel_bridged", ans, call_id, direction=direction, other_leg_id=b, **chan)
        end = ans + int(talk_s * S)
        self.fs("channel_hangup_completed", end, call_id, direction=direction,
                hangup_cause=cause, **chan)
        return {"answer": ans, "end": end}


def ext(agent_id: str) -> str:
    """The extension of a test agent: agent-7 -> 1007."""
    digits = "".join(c for c in agent_id if c.isdigit())
    return f"1{int(digits or 0):03d}"


def _ms(delta_us: int) -> int:
    return delta_us // 1000


def random_calls(s: Scenario, n: int, start_us: int, rng, spacing_s: float = 7.0,
                 queues: tuple[str, ...] = ("support", "sales", "billing"),
                 agents: int = 20, prefix: str = "call") -> list[str]:
    """`n` varied calls (answered, abandoned, short abandons, ring-no-answer, overflow,
    plain calls) starting every ~`spacing_s` seconds from `start_us`; returns their ids.

    Each agent takes at most one call at a time (agents are picked round-robin and a call
    ends well before the agent's next one when spacing_s * agents exceeds talk + wrap)."""
    ids = []
    at = start_us
    for i in range(n):
        call_id = f"{prefix}-{i:07d}"
        ids.append(call_id)
        at += int(rng.uniform(0.2, 1.8) * spacing_s * S)
        caller = f"+849{rng.randrange(10**8):08d}"
        kind = rng.random()
        agent = f"agent-{i % agents + 1}"
        queue = queues[i % len(queues)]
        if kind < 0.08:
            s.plain_call(call_id, at, f"1{i % agents:03d}", caller, "outbound",
                         answered_after_s=None if rng.random() < 0.3 else rng.uniform(3, 20),
                         talk_s=rng.uniform(10, 200),
                         cause="USER_BUSY" if rng.random() < 0.5 else "NORMAL_CLEARING")
        elif kind < 0.18:
            s.queue_call(call_id, at, queue, caller, wait_s=rng.uniform(1, 90), abandon=True)
        elif kind < 0.22:
            s.queue_call(call_id, at, queue, caller, wait_s=rng.uniform(2, 20), agent_id=agent,
                         overflow_to=("queue", queues[(i + 1) % len(queues)]),
                         overflow_after_s=rng.uniform(30, 120), talk_s=rng.uniform(20, 100),
                         wrap_s=rng.uniform(0, 20))
        else:
            s.queue_call(call_id, at, queue, caller, wait_s=rng.uniform(2, 60), agent_id=agent,
                         ring_s=rng.uniform(1, 8), talk_s=rng.uniform(20, 240),
                         hold_s=rng.choice((0, 0, 0, rng.uniform(5, 60))),
                         wrap_s=rng.uniform(0, 30))
    return ids


def _vn_date(at_us: int) -> str:
    """The Vietnam date of an instant: the switch files a recording under it
    (<recordings>/<tenant>/<date>/<call>.wav, fs-conf's enqueue)."""
    import datetime as dt

    return (dt.datetime.fromtimestamp(at_us / 1e6, dt.timezone.utc)
            + dt.timedelta(hours=7)).date().isoformat()
