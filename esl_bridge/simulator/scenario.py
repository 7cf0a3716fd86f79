"""Scenario files (JSON or YAML) and the load generator.

A scenario::

    {
      "domain": "127.0.0.1",                     # agents' SIP domain (optional)
      "dids": {"19001234": {"tongdai_tenant": "acme", "tongdai_did": "19001234"}},
      "agents": [{"ext": "1000", "answer": "answer", "answer_delay": 1.0,
                  "register_at": 0, "unregister_at": null}],
      "numbers": [{"number": "0912345678", "answer": "busy"},     # click-to-call customers
                  {"number": "0987654321", "answer_delay": 3, "talk": 45}],
      "callers": [{"at": 0.5, "number": "0903123456", "name": "Nguyen Van A",
                   "did": "19001234", "queue": "support", "priority": 5, "vip": true,
                   "skills": ["billing:5"], "language": "vi", "region": "HN",
                   "variables": {"tongdai_custom": "x"},
                   "ivr": {"after": 2.0, "menu": "main", "choice": "1",
                           "variables": {"tongdai_queue": "sales", "tongdai_ivr_path": "main>1"}},
                   "patience": 30, "talk": 60, "hangup_by": "caller"}],
      "load": {"cps": 2, "agents": 10, "first_ext": 1000, "duration": 60, "max_calls": null,
               "dids": ["19001234"], "variables": {"tongdai_queue": "support"},
               "handle_time": {"dist": "exp", "mean": 120},
               "patience": {"dist": "exp", "mean": 60},
               "answer_delay": {"dist": "uniform", "min": 0.5, "max": 3},
               "ivr_ratio": 0.0, "start": 0}
    }

Times are seconds after the simulator starts. Channel variables are set only when given.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .model import AgentSpec, CallerSpec, Distribution, IvrSpec, NumberSpec, variable_text
from .node import Node


@dataclass
class LoadSpec:
    """Open-ended load: Poisson arrivals at ``cps`` onto ``agents`` answering agents."""

    cps: float = 1.0
    agents: int = 10
    first_ext: int = 1000
    duration: float | None = None
    max_calls: int | None = None
    dids: list[str] = field(default_factory=lambda: ["19001000"])
    variables: dict[str, str] = field(default_factory=dict)
    handle_time: Distribution | None = field(default_factory=lambda: Distribution("exp", 120.0))
    patience: Distribution | None = field(default_factory=lambda: Distribution("exp", 60.0))
    answer_delay: Distribution = field(default_factory=lambda: Distribution("const", 1.0))
    ivr_ratio: float = 0.0
    start: float = 0.0

    @classmethod
    def parse(cls, data: dict[str, Any] | None) -> LoadSpec | None:
        if data is None:
            return None
        spec = cls()
        if "cps" in data:
            spec.cps = float(data["cps"])
            if spec.cps <= 0:
                raise ValueError("load.cps: must be > 0")
        for key in ("agents", "first_ext", "max_calls"):
            if data.get(key) is not None:
                setattr(spec, key, int(data[key]))
        if data.get("duration") is not None:
            spec.duration = float(data["duration"])
        if "dids" in data:
            spec.dids = [str(d) for d in data["dids"]] or spec.dids
        spec.variables = {k: variable_text(v) for k, v in (data.get("variables") or {}).items()}
        for key in ("handle_time", "patience"):
            if key in data:
                setattr(spec, key, Distribution.parse(data[key], name=f"load.{key}"))
        if "answer_delay" in data:
            spec.answer_delay = Distribution.parse(data["answer_delay"],
                                                   name="load.answer_delay") or spec.answer_delay
        spec.ivr_ratio = float(data.get("ivr_ratio", 0.0))
        spec.start = float(data.get("start", 0.0))
        return spec


@dataclass
class Scenario:
    domain: str | None = None
    dids: dict[str, dict[str, str]] = field(default_factory=dict)
    agents: list[AgentSpec] = field(default_factory=list)
    callers: list[CallerSpec] = field(default_factory=list)
    load: LoadSpec | None = None
    numbers: list[NumberSpec] = field(default_factory=list)

    @classmethod
    def parse(cls, data: dict[str, Any]) -> Scenario:
        if not isinstance(data, dict):
            raise ValueError("scenario: expected an object at the top level")
        unknown = set(data) - {"domain", "dids", "agents", "callers", "load", "seed",
                               "heartbeat", "speed", "description", "numbers"}
        if unknown:
            raise ValueError(f"scenario: unknown keys {sorted(unknown)}")
        dids = {str(d): {k: variable_text(v) for k, v in (vs or {}).items()}
                for d, vs in (data.get("dids") or {}).items()}
        agents = [AgentSpec.parse(a, i) for i, a in enumerate(data.get("agents") or [])]
        callers = [CallerSpec.parse(c, i, dids) for i, c in enumerate(data.get("callers") or [])]
        numbers = [NumberSpec.parse(n, i) for i, n in enumerate(data.get("numbers") or [])]
        return cls(domain=data.get("domain"), dids=dids, agents=agents, callers=callers,
                   load=LoadSpec.parse(data.get("load")), numbers=numbers)


def load_scenario(path: str | Path) -> tuple[Scenario, dict[str, Any]]:
    """Read a scenario file (``.json``, ``.yaml``/``.yml``). Returns it and the raw mapping
    (for top-level options such as ``seed``, ``heartbeat``, ``speed``)."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml  # only needed for YAML scenarios

        raw = yaml.safe_load(text)
    else:
        raw = json.loads(text)
    return Scenario.parse(raw), raw


def apply_scenario(node: Node, scenario: Scenario) -> None:
    """Schedule the scenario's registrations and calls relative to now."""
    with node.lock:
        if scenario.domain:
            node.domain = scenario.domain
        for did, variables in scenario.dids.items():
            node.set_did(did, variables)
        for number in scenario.numbers:
            node.add_number(number)
        start = node.clock.now()
        for agent in scenario.agents:
            node.add_agent(agent, at=start)
        for caller in scenario.callers:
            node.scheduler.call_at(start + caller.at, lambda c=caller: node.place_call(c))
        if scenario.load is not None:
            LoadGenerator(node, scenario.load, start=start).start()


class LoadGenerator:
    """Generates callers lazily (one arrival scheduled at a time), seeded from the node's rng."""

    def __init__(self, node: Node, spec: LoadSpec, *, start: float | None = None,
                 seed: int | None = None) -> None:
        self.node = node
        self.spec = spec
        self.rng = random.Random(node.rng.random() if seed is None else seed)
        self.start_at = node.clock.now() if start is None else start
        self.placed = 0
        self.stopped = False

    def start(self) -> None:
        with self.node.lock:
            for i in range(self.spec.agents):
                ext = str(self.spec.first_ext + i)
                key = f"{ext}@{self.node.domain}"
                if key not in self.node.agents:
                    self.node.add_agent(AgentSpec(
                        ext=ext, answer_delay=self.spec.answer_delay.sample(self.rng),
                        talk=None), at=self.start_at)
            self._schedule_next(self.start_at + self.spec.start)

    def stop(self) -> None:
        self.stopped = True

    def _schedule_next(self, after: float) -> None:
        due = after + self.rng.expovariate(self.spec.cps)
        end = self.start_at + self.spec.start + (self.spec.duration or 0.0)
        if self.spec.duration is not None and due > end:
            return
        if self.spec.max_calls is not None and self.placed >= self.spec.max_calls:
            return
        self.node.scheduler.call_at(due, lambda: self._arrive(due))

    def _arrive(self, due: float) -> None:
        if self.stopped:
            return
        self.placed += 1
        spec = self.spec
        number = "09" + "".join(str(self.rng.randrange(10)) for _ in range(8))
        did = self.rng.choice(spec.dids)
        variables = dict(self.node.dids.get(did, {}))
        variables.update(spec.variables)
        ivr = None
        if spec.ivr_ratio and self.rng.random() < spec.ivr_ratio:
            ivr = IvrSpec(choice=str(self.rng.randrange(1, 4)), after=2.0)
        caller = CallerSpec(
            number=number, did=did, variables=variables, ivr=ivr,
            patience=spec.patience.sample(self.rng) if spec.patience else None,
            talk=spec.handle_time.sample(self.rng) if spec.handle_time else None)
        self.node.place_call(caller)
        self._schedule_next(due)
