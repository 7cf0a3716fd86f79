"""A FreeSWITCH inbound Event Socket simulator for tests, sandbox runs and load.

Plain threads and sockets (no gevent), so any process can import it::

    with Simulator(speed=20, seed=1) as sim:
        sim.add_agent(AgentSpec(ext="1000"))
        uuid = sim.place_call(CallerSpec(number="0903123456", did="19001234",
                                         variables={"tongdai_queue": "support"}))
        ... connect to 127.0.0.1:sim.port, password sim.password ...
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .clock import ManualClock, SimClock
from .model import AgentSpec, CallerSpec, Distribution, IvrSpec, NumberSpec
from .node import Node
from .scenario import LoadGenerator, LoadSpec, Scenario, apply_scenario, load_scenario
from .server import EslServer, Session
from .state import Monitor
from .syntax import parse_dtmf, parse_originate

__all__ = [
    "AgentSpec",
    "CallerSpec",
    "Distribution",
    "EslServer",
    "IvrSpec",
    "LoadGenerator",
    "LoadSpec",
    "ManualClock",
    "Monitor",
    "Node",
    "NumberSpec",
    "Scenario",
    "Session",
    "SimClock",
    "Simulator",
    "apply_scenario",
    "load_scenario",
    "parse_dtmf",
    "parse_originate",
]


class Simulator:
    """A simulated FreeSWITCH node listening for inbound ESL on ``host:port``."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, password: str = "ClueCon",
                 speed: float = 1.0, seed: int | None = None, heartbeat: float | None = 20.0,
                 scenario: Scenario | str | Path | dict[str, Any] | None = None,
                 load: LoadSpec | None = None, **node_options: Any) -> None:
        if isinstance(scenario, (str, Path)):
            scenario, _ = load_scenario(scenario)
        elif isinstance(scenario, dict):
            scenario = Scenario.parse(scenario)
        self.scenario: Scenario | None = scenario
        self.load = load
        self.clock = SimClock(speed)
        self.node = Node(clock=self.clock, seed=seed, heartbeat=heartbeat, **node_options)
        self.server = EslServer(self.node, host, port, password)
        self.password = password
        self.host = host

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    def start(self) -> Simulator:
        self.server.start()
        self.node.start()
        if self.scenario is not None:
            apply_scenario(self.node, self.scenario)
        if self.load is not None:
            LoadGenerator(self.node, self.load).start()
        return self

    def stop(self) -> None:
        self.server.stop()
        self.node.stop()

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # Shortcuts to the node, for tests and sandboxes.
    def add_agent(self, spec: AgentSpec) -> None:
        self.node.add_agent(spec)

    def place_call(self, spec: CallerSpec) -> str:
        return self.node.place_call(spec)

    def add_number(self, spec: NumberSpec) -> None:
        """How an outside number answers a click-to-call (busy, no answer, invalid...)."""
        self.node.add_number(spec)

    def monitor(self, key: str) -> Monitor | None:
        """A monitoring by the supervisor's leg uuid or its tongdai_monitor_id."""
        return self.node.monitor(key)

    def register(self, ext: str, domain: str | None = None) -> None:
        self.node.register(f"{ext}@{domain or self.node.domain}")

    def unregister(self, ext: str, domain: str | None = None, *, expire: bool = False) -> None:
        self.node.unregister(f"{ext}@{domain or self.node.domain}", expire=expire)

    def hangup(self, uuid: str, cause: str = "NORMAL_CLEARING") -> bool:
        return self.node.hangup(uuid, cause, disposition="recv_bye")
