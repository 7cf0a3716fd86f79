"""The ACD in one process on simulated time: the ESL simulator's node on a manual clock, the
bridge's normalizer, the worker's tenant router and the actuator's command lines, with
nothing in between (no sockets, no Kafka). What the switch lives is the simulator's; what
the router decides goes back to it as the exact `bgapi` lines the actuator would send.

A benchmark that needs hours of calls in seconds (the estimated-wait accuracy) runs here;
latency and throughput benchmarks run the real processes instead (acd, soak).
"""
from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from esl_bridge import normalize
from esl_bridge.actuator import esl_command, job_succeeded
from esl_bridge.simulator import AgentSpec, CallerSpec, ManualClock, Node
from esl_bridge.simulator.ledger import Ledger
from routing.contract import Envelope, deterministic_id, topics
from streams.router import TenantRouter, handle

US = 1_000_000


class SimRun:
    """One tenant's ACD on a simulated switch. ``step_s`` is the router's reaction time (events
    of one step are routed at its end); ``tick_s`` the worker's tick."""

    def __init__(self, tenant: str, *, seed: int = 1, start_epoch: float = 1_795_320_000.0,
                 step_s: float = 0.05, tick_s: float = 1.0) -> None:
        self.tenant = tenant
        self.clock = ManualClock(start_epoch)
        self.node = Node(clock=self.clock, seed=seed, heartbeat=None, domain=tenant)
        self.ledger = Ledger(self.node)
        self.router = TenantRouter(tenant)
        self.step_s, self.tick_s = step_s, tick_s
        self._events: list[Any] = []
        self._jobs: list[tuple[Envelope, str]] = []
        self._ids = itertools.count(1)
        self._next_tick = start_epoch
        self.node.listeners.append(self._events.append)
        self.node.start()
        #: Called after each record the router handled, with that record.
        self.after: list[Callable[[Envelope], None]] = []
        #: What a worker's topics would hold: (topic, record) of every command fed (ticks
        #: aside) and every fact the router emitted, in order.
        self.log: list[tuple[str, Envelope]] = []
        self.commands = 0

    @property
    def now_us(self) -> int:
        return self.clock.now_us()

    # ---- inputs
    def command(self, type_: str, payload: dict[str, Any]) -> None:
        """A record on the commands topic (configuration, agent login), as the API sends."""
        at = self.now_us
        env = Envelope(deterministic_id("simrun", self.tenant, type_, next(self._ids)), type_, 1,
                       at, self.tenant, "api", None, None, payload)
        if type_ != "tick":
            self.log.append((topics.CC_COMMANDS, env))
        self.feed(env)

    def config(self, kind: str, entity_id: str, data: dict[str, Any]) -> None:
        self.command("config_changed", {"kind": kind, "entity_id": entity_id, "data": data})

    def add_agent(self, agent_id: str, ext: str, queues: dict[str, dict], *,
                  answer_delay: float = 1.0, **config: Any) -> None:
        self.config("agent", agent_id, {"extension": ext, "queues": queues, **config})
        self.command("agent_login_requested", {"agent_id": agent_id})
        self.node.add_agent(AgentSpec(ext=ext, answer_delay=answer_delay))
        self.run_for(0)

    def place_call(self, spec: CallerSpec) -> str:
        return self.node.place_call(spec)

    # ---- the loop
    def feed(self, env: Envelope) -> None:
        for out in handle(self.router, env):
            if out.topic == topics.ROUTING_DECISIONS:
                self._execute(out.envelope)
            elif out.topic == topics.CC_EVENTS:
                self.log.append((out.topic, out.envelope))
        for fn in self.after:
            fn(env)

    def _execute(self, env: Envelope) -> None:
        if env.type == "request_snapshot":
            return  # nothing is ever missed in one process
        line = esl_command(env)
        command, _, arg = line.partition(" ")
        self.commands += 1
        self.node.execute(command, arg, lambda body, env=env: self._jobs.append((env, body)))

    def _drain(self) -> None:
        while self._events or self._jobs:
            while self._events:
                event = self._events.pop(0)
                try:
                    env = normalize.normalize(event)
                except normalize.Skipped:
                    continue
                if topics.for_router(env.type, env.payload):
                    self.feed(env)
            while self._jobs:
                env, body = self._jobs.pop(0)
                cid = str(env.payload.get("command_id") or env.event_id)
                self.feed(Envelope(
                    deterministic_id("outcome", cid), "command_executed", 1, self.now_us,
                    self.tenant, str(env.payload.get("node") or "actuator"), None, env.call_id,
                    {"command_id": cid, "command": env.type, "ok": job_succeeded(env.type, body),
                     "result": body.strip(), "job_uuid": None}))

    def run_for(self, seconds: float) -> None:
        """Move simulated time on by ``seconds``, routing as it goes."""
        end = self.clock.now() + seconds
        while True:
            self._drain()
            now = self.clock.now()
            if now >= self._next_tick:
                self._next_tick = now + self.tick_s
                self.command("tick", {})
                self._drain()
            if now >= end:
                return
            self.node.advance(min(self.step_s, end - now))
