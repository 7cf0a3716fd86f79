"""Agent commands (login/logout/pause/resume/ready) and click-to-call, as command records.

The routing worker consumes the agent commands from `tongdai.cc.commands.v1` (keyed by
tenant). An agent-role token may command only its own agent: the agent whose id is the
token's user, or the `agent_id` of the token's user record.
"""
from __future__ import annotations

import uuid

from routing import numbers
from routing.contract import topics

from ..auth import AGENT, Principal
from ..bus import Bus, envelope
from ..config.view import ConfigView
from ..errors import Conflict, Forbidden, NotFound
from .schemas import COMMANDS


class AgentService:
    def __init__(self, view: ConfigView, bus: Bus, topic: str) -> None:
        self.view = view
        self.bus = bus
        self.topic = topic

    def own_agent(self, who: Principal) -> str | None:
        user = self.view.get(who.tenant, "user", who.user)
        return str(user.data.get("agent_id") or who.user) if user else who.user

    def check_may_act(self, who: Principal, agent_id: str) -> None:
        if who.role == AGENT and self.own_agent(who) != agent_id:
            raise Forbidden("an agent may only act for itself")
        if self.view.get(who.tenant, "agent", agent_id) is None:
            raise NotFound(f"no agent {agent_id!r}")

    def command(self, who: Principal, agent_id: str, action: str, reason: str) -> dict:
        self.check_may_act(who, agent_id)
        type_ = COMMANDS[action]
        env = envelope(type_, who.tenant, {"agent_id": agent_id, "reason": reason},
                       source=f"api:{who.user}")
        self.bus.publish(self.topic, topics.tenant_key(who.tenant), env)
        return {"command_id": env.event_id, "type": type_, "agent_id": agent_id}

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

    def click_to_call(self, who: Principal, agent_id: str, number: str) -> dict:
        self.check_may_act(who, agent_id)
        agent = self.view.get(who.tenant, "agent", agent_id)
        if agent is not None and not agent.data.get("extension"):
            raise Conflict(f"agent {agent_id!r} has no extension")
        caller_id = self.caller_id(who.tenant, agent_id)
        request_id = uuid.uuid4().hex
        env = envelope("click_to_call_requested", who.tenant,
                       {"agent_id": agent_id, "number": number, "request_id": request_id},
                       source=f"api:{who.user}")
        self.bus.publish(self.topic, topics.tenant_key(who.tenant), env)
        return {"request_id": request_id, "agent_id": agent_id, "number": number,
                "caller_id": caller_id}
