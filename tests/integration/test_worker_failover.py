"""Workers crash and rebalance under load: no call lost, no agent double-offered or stuck.

The simulator's load generator places calls for one tenant; the worker is killed with
SIGKILL while about 50 calls are in flight and started again (same app id: same consumer
group and table changelog). Ground truth comes from a tap on the simulated FreeSWITCH.
"""
from __future__ import annotations

import signal
import threading
import time
import uuid

import pytest

from esl_bridge.simulator import Simulator
from esl_bridge.simulator.model import Distribution
from esl_bridge.simulator.scenario import LoadGenerator, LoadSpec
from routing.contract import topics

from .harness import (Publisher, Reader, bridge_env, start_process, stop_process, wait_ready,
                      worker_env)

pytestmark = [pytest.mark.streams, pytest.mark.stack]

AGENTS = 30
FIRST_EXT = 3000


class Tap:
    """Agent legs as the simulated FreeSWITCH saw them: (extension, created, destroyed)."""

    def __init__(self, sim: Simulator) -> None:
        self.lock = threading.Lock()
        self.legs: dict[str, dict] = {}
        self.callers: dict[str, dict] = {}
        sim.node.listeners.append(self._on)

    def _on(self, event) -> None:
        h = event.headers
        uid = h.get("Unique-ID")
        if not uid or event.name not in ("CHANNEL_CREATE", "CHANNEL_DESTROY", "CHANNEL_BRIDGE"):
            return
        at = int(h["Event-Date-Timestamp"])
        with self.lock:
            outbound = h.get("Call-Direction") == "outbound"
            book = self.legs if outbound else self.callers
            entry = book.setdefault(uid, {"ext": h.get("Caller-Destination-Number")})
            if event.name == "CHANNEL_CREATE":
                entry["created"] = at
            elif event.name == "CHANNEL_DESTROY":
                entry["destroyed"] = at
            else:
                entry["bridged"] = at

    def overlapping_offers(self) -> list[tuple[str, str, str]]:
        """Pairs of agent legs of one extension that were up at the same time."""
        by_ext: dict[str, list[tuple[int, int, str]]] = {}
        with self.lock:
            for uid, leg in self.legs.items():
                if "created" in leg:
                    by_ext.setdefault(leg["ext"], []).append(
                        (leg["created"], leg.get("destroyed", 1 << 62), uid))
        bad = []
        for ext, spans in by_ext.items():
            spans.sort()
            for (s1, e1, u1), (s2, _e2, u2) in zip(spans, spans[1:]):
                if s2 < e1:
                    bad.append((ext, u1, u2))
        return bad


def configure(api: Publisher, tenant: str) -> None:
    api.config("tenant", tenant, {"domain": tenant})
    api.config("queue", "support", {"strategy": "longest-idle-agent", "offer_timeout_s": 6,
                                    "wrapup_s": 1})
    for i in range(AGENTS):
        api.config("agent", f"a{i}", {"extension": str(FIRST_EXT + i),
                                      "queues": {"support": {}}})
        api.command("agent_login_requested", agent_id=f"a{i}")
    api.flush()


def run_load(sim: Simulator, tenant: str, calls: int, cps: float) -> None:
    LoadGenerator(sim.node, LoadSpec(
        cps=cps, agents=AGENTS, first_ext=FIRST_EXT, max_calls=calls, dids=["19001234"],
        variables={"tongdai_tenant": tenant, "tongdai_queue": "support"},
        handle_time=Distribution("uniform", 4, 9), patience=Distribution("uniform", 25, 40),
        answer_delay=Distribution("uniform", 0.3, 1.0))).start()


def settle(sim: Simulator, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while sim.node.channels and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not sim.node.channels, f"{len(sim.node.channels)} channels still up"


def check_outcome(reader: Reader, tap: Tap, tenant: str) -> None:
    enqueued = {e.call_id for e in reader.of_type("call_enqueued")}
    answered = {e.call_id for e in reader.of_type("call_answered")}
    abandoned = {e.call_id for e in reader.of_type("call_abandoned")}
    assert enqueued, "no call was routed"
    assert enqueued <= answered | abandoned, f"lost calls: {sorted(enqueued - answered - abandoned)}"
    assert tap.overlapping_offers() == [], "an agent was offered two calls at once"
    last = {}
    for e in reader.of_type("agent_state_changed"):
        last[e.payload["agent_id"]] = e.payload["state"]
    stuck = {a: s for a, s in last.items() if s not in ("available", "wrap_up")}
    assert stuck == {}, f"agents left stuck: {stuck}"


@pytest.fixture
def world(local_stack, tmp_path):
    tenant = f"t{uuid.uuid4().hex[:10]}.test"
    # A node of its own (seeded simulators share a Core-UUID: decisions are keyed by node)
    sim = Simulator(port=0, password="failover", heartbeat=3600, seed=5, domain=tenant,
                    core_uuid=str(uuid.uuid4()))
    sim.start()
    tap = Tap(sim)
    bridge = start_process("bridge", tmp_path, bridge_env(sim, tmp_path,
                                                          local_stack.kafka_bootstrap))
    reader = Reader(local_stack.kafka_bootstrap, [topics.CC_EVENTS, topics.ROUTING_DECISIONS],
                    lambda e: e.tenant == tenant)
    api = Publisher(local_stack.kafka_bootstrap, tenant)
    try:
        wait_ready(bridge, "subscribed")
        yield sim, tap, reader, api, tenant, tmp_path
    finally:
        api.close()
        reader.close()
        stop_process(bridge)
        sim.stop()


def test_killing_the_worker_mid_traffic_loses_nothing(local_stack, world):
    sim, tap, reader, api, tenant, tmp = world
    env = worker_env(tmp, local_stack.kafka_bootstrap, f"test-failover-{uuid.uuid4().hex[:8]}")
    worker = start_process("worker", tmp, env)
    wait_ready(worker, "Ready")
    configure(api, tenant)
    run_load(sim, tenant, calls=60, cps=10)
    time.sleep(4.5)  # ~45 calls placed, most in flight
    in_flight = len([c for c in tap.callers.values() if "destroyed" not in c])
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    time.sleep(2)
    restarted_at = time.time_ns() // 1000
    worker = start_process("worker", tmp, env)
    try:
        wait_ready(worker, "Ready", timeout=60)
        reader.wait_for(lambda es: any(e.type == "offer_call" and e.occurred_at > restarted_at
                                       for e in es) or not sim.node.channels,
                        timeout=30, what="routing after the restart")
        settle(sim)
        reader.poll(5)
    finally:
        stop_process(worker)
    assert in_flight >= 30, f"only {in_flight} calls were in flight at the kill"
    after = [e.occurred_at for e in reader.envelopes(topics.ROUTING_DECISIONS)
             if e.type == "offer_call" and e.occurred_at > restarted_at]
    if after:
        resumed_s = (after[0] - restarted_at) / 1e6
        print(f"routing resumed {resumed_s:.1f} s after the restart")
        assert resumed_s < 10, f"routing resumed {resumed_s:.1f} s after the restart (goal 10 s)"
    check_outcome(reader, tap, tenant)


def test_two_workers_rebalance_and_keep_the_invariants(local_stack, world):
    sim, tap, reader, api, tenant, tmp = world
    app_id = f"test-pair-{uuid.uuid4().hex[:8]}"
    env = worker_env(tmp, local_stack.kafka_bootstrap, app_id)
    first = start_process("worker", tmp, env)
    wait_ready(first, "Ready")
    configure(api, tenant)
    run_load(sim, tenant, calls=40, cps=8)
    time.sleep(2)
    second = start_process("worker", tmp, env)  # joins the group: partitions move
    try:
        wait_ready(second, "Ready", timeout=60)
        time.sleep(3)
        stop_process(first)  # leaves cleanly: its partitions move back to the second
        settle(sim)
        reader.poll(5)
    finally:
        stop_process(first)
        stop_process(second)
    check_outcome(reader, tap, tenant)
