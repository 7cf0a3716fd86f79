"""Agent state intervals from `agent_state_changed` facts. Pure (no I/O).

An interval [start, end) of one state closes when the agent's next state change arrives;
the tracker hands back the closed rows once each, and tells which call a closed wrap-up
belonged to (so that call's CDR learns its wrap-up time).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from routing.contract.envelope import Envelope

INTERVAL_COLUMNS = ("tenant", "agent_id", "extension", "state", "start_us", "end_us",
                    "call_id", "reason")

AgentKey = tuple[str, str]  # (tenant, agent_id)


@dataclass
class OpenState:
    """The state an agent is in now, since `start_us`."""

    state: str
    start_us: int
    extension: str = ""
    call_id: str = ""
    reason: str = ""
    event_id: str = ""

    @classmethod
    def of(cls, e: Envelope) -> OpenState:
        p = e.payload
        return cls(p["state"], e.occurred_at, p.get("extension") or "", e.call_id or "",
                   p.get("reason") or "", e.event_id)


@dataclass
class AgentTracker:
    """Open state per agent, and how far intervals were already written (for replays)."""

    current: dict[AgentKey, OpenState] = field(default_factory=dict)
    written_up_to: dict[AgentKey, int] = field(default_factory=dict)
    late_events: int = 0

    def known(self, key: AgentKey) -> bool:
        return key in self.current

    def restore(self, key: AgentKey, state: OpenState | None, written_up_to_us: int) -> None:
        """Resume an agent from what ClickHouse holds (after a restart or a rebalance)."""
        if state is not None:
            self.current[key] = state
        self.written_up_to[key] = written_up_to_us

    def apply(self, e: Envelope) -> tuple[list[dict[str, Any]], str | None]:
        """Apply one state change: (closed interval rows, call whose handling ended here).

        The event that ends an agent's on-call or wrap-up interval of a call belongs to
        that call too (it fixes the call's wrap-up time), even when it carries no call id."""
        key = (e.tenant, e.payload["agent_id"])
        now = self.current.get(key)
        if now is not None and (e.event_id == now.event_id):
            return [], None
        if now is not None and e.occurred_at < now.start_us:
            # Older than the open state: its interval was already cut; keep intervals
            # consistent rather than rewrite history (the raw event is kept in `events`).
            self.late_events += 1
            return [], None
        rows: list[dict[str, Any]] = []
        wrap_call = None
        if now is not None:
            if now.start_us > self.written_up_to.get(key, -1) and e.occurred_at > now.start_us:
                rows.append({"tenant": e.tenant, "agent_id": key[1],
                             "extension": now.extension or e.payload.get("extension") or "",
                             "state": now.state, "start_us": now.start_us,
                             "end_us": e.occurred_at, "call_id": now.call_id,
                             "reason": now.reason})
            if now.state in ("on_call", "wrap_up") and now.call_id:
                wrap_call = now.call_id
        self.current[key] = OpenState.of(e)
        return rows, wrap_call

    def forget(self, tenants: set[str] | None = None) -> None:
        """Drop state (of some tenants) when their partitions move to another sink."""
        for key in [k for k in self.current if tenants is None or k[0] in tenants]:
            self.current.pop(key, None)
            self.written_up_to.pop(key, None)
