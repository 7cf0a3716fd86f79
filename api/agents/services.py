"""Agent commands (login/logout/pause/resume/ready) and click-to-call, as command records;
an agent's own state and recent calls (the agent page).

The routing worker consumes the agent commands from `tongdai.cc.commands.v1` (keyed by
tenant). An agent-role token may command only its own agent: the agent whose id is the
token's user, or the `agent_id` of the token's user record. The same rule scopes what an
agent may read: its own state, never the tenant's live view.
"""
from __future__ import annotations

import threading
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

from marshmallow import ValidationError

from routing import dialing, numbers
from routing.contract import Envelope, click_to_call_leg, topics

from ..audit.services import AuditLog
from ..auth import AGENT, Principal
from ..bus import Bus, envelope
from ..config.view import ConfigView
from ..errors import Conflict, Forbidden, NotFound
from ..live.services import LiveView
from .schemas import COMMANDS

RECENT_PER_AGENT = 10
C2C_ACTION = "call.click_to_call"
REMEMBERED_CALLS = 50_000


class RecentCalls:
    """The calls each agent answered lately, from the router's facts (`call_enqueued` gives
    the caller, `call_answered` the agent, `call_ended` the end), newest first.

    Followed from the end of `tongdai.cc.events.v1` (like pop-ups: what an agent needs after
    a call is the call it just had), so a process knows the calls answered since it started.
    """

    def __init__(self, keep: int = RECENT_PER_AGENT) -> None:
        self._lock = threading.Lock()
        self._keep = keep
        self._calls: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()
        self._by_agent: dict[tuple[str, str], deque[dict[str, Any]]] = {}
        # The last command of each agent the router would not carry out (a click-to-call
        # while the phone is busy or offline...): the agent page says why.
        self._refused: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()

    def apply(self, env: Envelope) -> None:
        if env.type == "command_refused":
            p = env.payload
            if p.get("agent_id"):
                with self._lock:
                    key = (env.tenant, p["agent_id"])
                    self._refused.pop(key, None)
                    self._refused[key] = {"request_id": p["request_id"], "command": p["command"],
                                          "reason": p["reason"], "at_us": env.occurred_at}
                    while len(self._refused) > REMEMBERED_CALLS:
                        self._refused.popitem(last=False)
            return
        if not env.call_id:
            return
        key = (env.tenant, env.call_id)
        p = env.payload
        with self._lock:
            if env.type == "call_enqueued":
                self._calls[key] = {"caller": p.get("caller", ""), "queue": p.get("queue", "")}
                while len(self._calls) > REMEMBERED_CALLS:
                    self._calls.popitem(last=False)
            elif env.type == "call_answered":
                known = self._calls.setdefault(key, {"caller": "", "queue": p["queue"]})
                entry = {"call_id": env.call_id, "queue": p["queue"],
                         "caller": known.get("caller", ""), "answered_at_us": env.occurred_at,
                         "ended_at_us": None, "talk_ms": None}
                known["entry"] = entry
                mine = self._by_agent.setdefault((env.tenant, p["agent_id"]),
                                                 deque(maxlen=self._keep))
                if all(c["call_id"] != env.call_id for c in mine):
                    mine.appendleft(entry)
            elif env.type == "call_ended":
                entry = self._calls.get(key, {}).get("entry")
                if entry is not None and entry["ended_at_us"] is None:
                    entry["ended_at_us"] = env.occurred_at
                    entry["talk_ms"] = int(p.get("talk_ms") or 0)

    def answered_by(self, tenant: str, call_id: str) -> set[str]:
        """The agents this process saw answer the call."""
        with self._lock:
            return {a for (t, a), calls in self._by_agent.items()
                    if t == tenant and any(c["call_id"] == call_id for c in calls)}

    def of_agent(self, tenant: str, agent_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(c) for c in self._by_agent.get((tenant, agent_id), ())]

    def refused(self, tenant: str, agent_id: str) -> dict[str, Any] | None:
        with self._lock:
            found = self._refused.get((tenant, agent_id))
            return dict(found) if found else None


class AgentService:
    def __init__(self, view: ConfigView, bus: Bus, topic: str, live: LiveView | None = None,
                 recent: RecentCalls | None = None, audit: AuditLog | None = None,
                 publish_wait_s: float = 5.0) -> None:
        self.view = view
        self.audit = audit
        self.publish_wait_s = publish_wait_s
        self.bus = bus
        self.topic = topic
        self.live = live or LiveView()
        self.recent = recent or RecentCalls()

    def own_agent(self, who: Principal) -> str | None:
        user = self.view.get(who.tenant, "user", who.user)
        return str(user.data.get("agent_id") or who.user) if user else who.user

    def check_may_act(self, who: Principal, agent_id: str) -> None:
        if who.role == AGENT and self.own_agent(who) != agent_id:
            raise Forbidden("an agent may only act for itself")
        if self.view.get(who.tenant, "agent", agent_id) is None:
            raise NotFound(f"no agent {agent_id!r}")

    def me(self, who: Principal) -> dict:
        """Who the token is, and the agent it acts for (if that agent is configured)."""
        agent_id = self.own_agent(who)
        if agent_id is None or self.view.get(who.tenant, "agent", agent_id) is None:
            agent_id = None
        return {"tenant": who.tenant, "user": who.user, "role": who.role,
                "agent_id": agent_id, "expires_at": who.expires_at}

    def state(self, who: Principal, agent_id: str, now_us: int | None = None) -> dict:
        """One agent's state from the router's live view, its current call and the calls
        it answered lately. An agent reads only its own; another tenant's agent is 404."""
        self.check_may_act(who, agent_id)
        cfg = self.view.get(who.tenant, "agent", agent_id).data
        live = self.live.state(who.tenant, now_us)
        mine = next((a for a in live["agents"] if a["agent_id"] == agent_id), None)
        out: dict[str, Any] = {
            "agent_id": agent_id, "extension": str(cfg.get("extension") or ""),
            "queues": sorted(cfg.get("queues") or ()), "state": "unknown", "since_us": None,
            "time_in_state_ms": None, "pause_reason": None, "call": None,
            "recent_calls": self.recent.of_agent(who.tenant, agent_id),
            "last_refused": self.recent.refused(who.tenant, agent_id),
            "as_of_us": live["as_of_us"], "age_ms": live["age_ms"]}
        if live["as_of_us"] is None:
            return out
        if mine is None:  # the router never saw it log in
            out["state"] = "logged_out"
            return out
        out.update(state=mine["state"], since_us=mine["since_us"],
                   time_in_state_ms=mine["time_in_state_ms"],
                   pause_reason=mine.get("pause_reason"),
                   extension=mine.get("extension") or out["extension"])
        call_id = mine.get("call_id")
        if call_id:
            call = next((c for c in live["calls"] if c["call_id"] == call_id), None)
            out["call"] = {"call_id": call_id, "queue": call["queue"] if call else "",
                           "caller": call["caller"] if call else "",
                           "status": call["status"] if call else mine["state"],
                           "connected_us": call.get("connected_us") if call else None,
                           "vip": bool(call.get("vip")) if call else False}
        return out

    def command(self, who: Principal, agent_id: str, action: str, reason: str) -> dict:
        """An agent's own command, or a supervisor's (admin's) on an agent's behalf: that
        one needs a reason and is audited (`agent.state.<action>`, target `agent/<id>`), so
        the agent and the tenant's admins can see who paused or logged out whom, and why."""
        self.check_may_act(who, agent_id)
        on_behalf = who.role != AGENT and self.own_agent(who) != agent_id
        if on_behalf and not reason.strip():
            raise ValidationError({"reason": ["required when a supervisor or an admin changes "
                                              "another agent's state (it is audited)"]})
        type_ = COMMANDS[action]
        env = envelope(type_, who.tenant, {"agent_id": agent_id, "reason": reason},
                       source=f"api:{who.user}")
        stored = self.bus.publish(self.topic, topics.tenant_key(who.tenant), env,
                                  wait_s=self.publish_wait_s)
        if on_behalf and self.audit is not None:
            self.audit.record(who, f"agent.state.{action}", f"agent/{agent_id}",
                              {"reason": reason.strip(), "command_id": env.event_id})
        # `pending`: Kafka has not confirmed it yet; it is queued and applies when Kafka
        # takes it (the agent's state shows when). Never reported as failed meanwhile.
        return {"command_id": env.event_id, "type": type_, "agent_id": agent_id,
                "status": "accepted" if stored else "pending"}

    def caller_id(self, tenant: str, agent_id: str) -> str:
        """The number presented to the customer: the agent's, else the tenant's, else the
        tenant's first geographic or mobile DID. Never a 1800/1900 number."""
        agent = self.view.get(tenant, "agent", agent_id)
        t = self.view.get(tenant, "tenant", tenant)
        candidates = [agent.data.get("caller_id") if agent else None,
                      t.data.get("outbound_caller_id") if t else None]
        candidates += [number for number, entry in self.view.items(tenant, "did")
                       if entry.data.get("kind") in ("geographic", "mobile")]
        for number in candidates:
            if number and not numbers.is_service_number(number):
                return number
        raise Conflict("no caller id that may be presented outbound: set the agent's "
                       "caller_id or the tenant's outbound_caller_id (1800/1900 numbers "
                       "are inbound only)", [{"field": "caller_id", "rule": "required"}])

    def click_to_call_of(self, tenant: str, call_id: str,
                         wait_s: float = 1.0) -> dict[str, Any] | None:
        """The click-to-call that made `call_id` ({agent_id, number, user}), from its audit
        entry (every process indexes the audit topic; waits a little for another
        process's entry)."""
        if self.audit is None:
            return None
        entry = self.audit.find(tenant, lambda e: e["action"] == C2C_ACTION
                                and e["target"] == f"call/{call_id}", timeout_s=wait_s)
        return dict(entry["detail"], user=entry["user"]) if entry else None

    def handled(self, tenant: str, agent_id: str, call_id: str,
                call_log: Callable[[], bool]) -> bool:
        """Whether the agent handled the call: answered it lately (this process saw it),
        placed it by click-to-call, or the call log says it answered it."""
        if any(c["call_id"] == call_id for c in self.recent.of_agent(tenant, agent_id)):
            return True
        c2c = self.click_to_call_of(tenant, call_id, wait_s=0.0)
        if c2c is not None:
            return c2c.get("agent_id") == agent_id
        if self.recent.answered_by(tenant, call_id):
            return False  # another agent's call, and not (lately) this one's
        return call_log()

    def outbound_classes(self, tenant: str) -> tuple[str, ...]:
        t = self.view.get(tenant, "tenant", tenant)
        classes = t.data.get("outbound_classes") if t else None
        return tuple(classes) if classes is not None else dialing.DEFAULT_CLASSES

    def click_to_call(self, who: Principal, agent_id: str, number: str) -> dict:
        self.check_may_act(who, agent_id)
        verdict = dialing.check_outbound(number, self.outbound_classes(who.tenant))
        if not verdict.allowed:  # the dialplan's rule (routing/dialing.py), refused here
            raise Forbidden(f"number: {verdict.reason}",
                            [{"field": "number", "rule": verdict.reason}])
        agent = self.view.get(who.tenant, "agent", agent_id)
        if agent is not None and not agent.data.get("extension"):
            raise Conflict(f"agent {agent_id!r} has no extension")
        caller_id = self.caller_id(who.tenant, agent_id)
        request_id = uuid.uuid4().hex
        env = envelope("click_to_call_requested", who.tenant,
                       {"agent_id": agent_id, "number": number, "request_id": request_id,
                        "caller_id": caller_id},
                       source=f"api:{who.user}")
        self.bus.publish(self.topic, topics.tenant_key(who.tenant), env)
        call_id = click_to_call_leg(who.tenant, request_id)
        if self.audit is not None:  # who dialled what; also how notes know whose call it is
            self.audit.record(who, C2C_ACTION, f"call/{call_id}",
                              {"agent_id": agent_id, "number": number, "request_id": request_id})
        return {"request_id": request_id, "call_id": call_id,
                "agent_id": agent_id, "number": number, "caller_id": caller_id}
