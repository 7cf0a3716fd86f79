"""Builders for routing tests: a tenant, queues and agents logged in, and a clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from routing import (
    US,
    Agent,
    AgentLoggedIn,
    AgentRegistered,
    Call,
    CallEnqueued,
    ConfigChanged,
    Decision,
    Event,
    Membership,
    OfferCall,
    Queue,
    State,
    Tenant,
    step,
)

T0 = 1_780_282_800 * US
"""Monday 2026-06-01 10:00 in Asia/Ho_Chi_Minh (03:00 UTC)."""


def agent(id: str, queues: Any = ("q",), **kw: Any) -> Agent:
    """An agent of tenant t; ``queues`` is an iterable of ids or a mapping id → Membership."""
    if not isinstance(queues, dict):
        queues = {q: Membership(position=int("".join(ch for ch in id if ch.isdigit()) or 1))
                  for q in queues}
    kw.setdefault("extension", "1" + "".join(ch for ch in id if ch.isdigit()).zfill(3))
    return Agent(id=id, tenant="t", queues=queues, **kw)


@dataclass
class World:
    """A routing state driven through ``step``, keeping every decision taken."""

    state: State = field(default_factory=State)
    now: int = T0
    log: list[Decision] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    def ev(self, event: Event) -> list[Decision]:
        self.events.append(event)
        self.state, out = step(self.state, event)
        self.log.extend(out)
        return out

    def at(self, seconds: float) -> int:
        """Set the clock to T0 + seconds and return it in µs."""
        self.now = T0 + int(seconds * US)
        return self.now

    def call(self, id: str, queue: str = "q", at: float | None = None, **kw: Any) -> list[Decision]:
        if at is not None:
            self.at(at)
        return self.ev(CallEnqueued(at_us=self.now, call=Call(id=id, tenant="t", queue=queue, **kw)))

    def offers(self, out: list[Decision] | None = None) -> list[OfferCall]:
        return [x for x in (self.log if out is None else out) if isinstance(x, OfferCall)]


def world(*agents: Agent, queues: tuple[Queue, ...] = (), tenant: Tenant | None = None,
          login: bool = True, **queue_kw: Any) -> World:
    """Tenant t, queue q (with ``queue_kw``) unless ``queues`` given, agents logged in at T0-60 s."""
    w = World()
    w.now = T0 - 60 * US
    w.ev(ConfigChanged(at_us=w.now, entity=tenant or Tenant("t")))
    for q in queues or (Queue(id="q", tenant="t", **queue_kw),):
        w.ev(ConfigChanged(at_us=w.now, entity=q))
    for i, a in enumerate(agents):
        w.now = T0 - 60 * US + i  # distinct login times: longest-idle order = given order
        w.ev(ConfigChanged(at_us=w.now, entity=a))
        if login:
            w.ev(AgentLoggedIn(at_us=w.now, agent_id=a.id))
            w.ev(AgentRegistered(at_us=w.now, agent_id=a.id))
    w.now = T0
    return w
