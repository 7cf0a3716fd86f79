"""The router heals itself against the switch (issue 12): on real Kafka, with the ESL
simulator, the real bridge (snapshots every 2 s) and a real worker.

The simulator behaves as FreeSWITCH does in these cases: an event is lost when no client
is connected; a phone that answers an offer nobody wants any more parks all the same.
"""
from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator

import pytest

from esl_bridge.simulator import Simulator
from routing.contract import topics

from .harness import bridge_env, start_process, stop_process, wait_ready, worker_env
from .test_acd_end_to_end import Stack, Tenant

pytestmark = [pytest.mark.streams, pytest.mark.stack]


class Healing(Stack):
    def __init__(self, sim: Simulator, bootstrap: str, tmp, env: dict[str, str]) -> None:
        super().__init__(sim, bootstrap)
        self.tmp = tmp
        self.env = env
        self.bridge = start_process("bridge", tmp, env)

    def kill_bridge(self) -> None:
        """SIGKILL, as a crash: no goodbye; wait until the switch has no client."""
        os.kill(self.bridge.pid, signal.SIGKILL)
        self.bridge.wait()
        deadline = time.monotonic() + 10
        while self.sim.server.sessions and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not self.sim.server.sessions, "the killed bridge's session is still open"

    def restart_bridge(self) -> None:
        self.bridge = start_process("bridge", self.tmp, self.env)
        wait_ready(self.bridge, "subscribed")

    def channels(self) -> set[str]:
        return set(self.sim.node.channels)


@pytest.fixture(scope="module")
def healing(local_stack, tmp_path_factory) -> Iterator[Healing]:
    tmp = tmp_path_factory.mktemp("healing")
    sim = Simulator(port=0, password="heal-test", heartbeat=3600, seed=5,
                    core_uuid=str(uuid.uuid4()))
    sim.start()
    env = {**bridge_env(sim, tmp, local_stack.kafka_bootstrap), "TONGDAI_SNAPSHOT_INTERVAL_S": "2"}
    stack = Healing(sim, local_stack.kafka_bootstrap, tmp, env)
    worker = start_process("worker", tmp, worker_env(tmp, local_stack.kafka_bootstrap,
                                                     f"test-heal-{uuid.uuid4().hex[:8]}"))
    try:
        wait_ready(worker, "Ready")
        wait_ready(stack.bridge, "subscribed")
        yield stack
    finally:
        stop_process(worker)
        stop_process(stack.bridge)
        sim.stop()


def _corrections(t: Tenant, what: str) -> list[dict]:
    return [e.payload for e in t.reader.of_type("state_corrected") if e.payload["what"] == what]


def test_a_caller_who_parked_while_the_bridge_was_down_is_adopted_and_served(healing):
    t = Tenant(healing, {"a1": {"answer_delay": 0.3}}, first_ext=3000)
    try:
        healing.kill_bridge()
        call = t.call(patience=120, talk=1.0)
        time.sleep(1.5)  # the caller waits in silence: nobody heard the park
        healing.restart_bridge()
        t.reader.wait_for(lambda es: any(e.type == "call_ended" and e.call_id == call
                                         for e in es), timeout=60, what="call served")
    finally:
        t.close()
    adopted = _corrections(t, "caller_unknown")
    assert [a["leg_id"] for a in adopted] == [call] and adopted[0]["action"] == "enqueued"
    answered = next(e.payload for e in t.reader.of_type("call_answered") if e.call_id == call)
    assert answered["agent_id"] == "a1"
    assert answered["wait_ms"] >= 1500, "the wait counts from the park, not the adoption"


def test_a_phone_answering_an_offer_nobody_wants_is_hung_up_at_once(healing):
    """As after a worker outage: a decision carried out late rings an agent for a caller
    already gone; the phone answers and parks."""
    t = Tenant(healing, {"a1": {"answer_delay": 0.2}}, first_ext=3100)
    leg = str(uuid.uuid4())
    try:
        healing.sim.node.originate(
            f"{{origination_uuid={leg},tongdai_offer_id={leg},tongdai_call_id=gone-{leg},"
            f"tongdai_tenant={t.id},originate_timeout=10}}user/3100@{t.id} &park()",
            lambda body: None)
        t.reader.wait_for(lambda es: any(e.type == "hangup_leg" and e.payload["leg_id"] == leg
                                         for e in es), timeout=30, what="the leg hung up")
        deadline = time.monotonic() + 10
        while leg in healing.channels() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        t.close()
    assert leg not in healing.channels(), "the agent's phone is still off-hook"


def test_an_agent_leg_left_while_the_bridge_was_down_is_found_and_hung_up(healing):
    """Nothing was heard of the leg at all: the snapshot finds it (uuid_dump says whose it
    is), the router hangs it up and says so."""
    t = Tenant(healing, {"a1": {"answer_delay": 0.2}}, first_ext=3200)
    leg = str(uuid.uuid4())
    try:
        healing.kill_bridge()
        healing.sim.node.originate(
            f"{{origination_uuid={leg},tongdai_offer_id={leg},tongdai_call_id=gone-{leg},"
            f"tongdai_tenant={t.id},originate_timeout=10}}user/3200@{t.id} &park()",
            lambda body: None)
        healing.restart_bridge()
        t.reader.wait_for(lambda es: any(e.type == "state_corrected"
                                         and e.payload["leg_id"] == leg for e in es),
                          timeout=40, what="the orphaned leg found")
        deadline = time.monotonic() + 10
        while leg in healing.channels() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        t.close()
    orphan = _corrections(t, "agent_leg_orphaned")
    assert [(o["leg_id"], o["action"], o["agent_id"]) for o in orphan] == [(leg, "hung_up", "a1")]
    assert leg not in healing.channels()
    kills = [e for e in t.reader.envelopes(topics.ROUTING_DECISIONS)
             if e.type == "hangup_leg" and e.payload["leg_id"] == leg]
    assert kills and all(k.payload["node"] for k in kills)


def test_a_call_answered_while_the_bridge_was_down_talks_on_and_is_told_answered(healing):
    """The agent's phone answered and the switch bridged the caller while no bridge was
    connected: the answer and the bridge were never heard. After the restart the snapshot
    shows the caller bridged to the offer's leg (uuid_dump's bridge_to): the router takes
    the call as connected and says so; it never ends the call nor hangs up the talking
    agent when the offer's ring time runs out."""
    t = Tenant(healing, {"a1": {"answer_delay": 1.5}}, first_ext=3300,
               queue={"offer_timeout_s": 6})
    try:
        call = t.call(patience=120, talk=20.0)
        t.reader.wait_for(lambda es: any(e.type == "offer_call" and e.call_id == call
                                         for e in es), timeout=30, what="the offer")
        offer = next(e.payload["offer_id"] for e in t.reader.of_type("offer_call")
                     if e.call_id == call)
        deadline = time.monotonic() + 10
        while offer not in healing.channels() and time.monotonic() < deadline:
            time.sleep(0.02)  # the phone rings: the bridge goes down before it answers
        healing.kill_bridge()
        deadline = time.monotonic() + 10
        node = healing.sim.node
        while time.monotonic() < deadline:
            with node.lock:
                ch = node.channels.get(call)
                if ch is not None and ch.bridged_to == offer:
                    break
            time.sleep(0.05)
        else:
            raise AssertionError("the switch never bridged the caller to the agent")
        healing.restart_bridge()
        t.reader.wait_for(lambda es: any(e.type in ("call_ended", "call_abandoned")
                                         and e.call_id == call for e in es),
                          timeout=60, what="the call's end")
    finally:
        t.close()
    assert [e.type for e in t.reader.envelopes() if e.call_id == call
            and e.type in ("call_ended", "call_abandoned")] == ["call_ended"]
    kills = [e.payload for e in t.reader.envelopes(topics.ROUTING_DECISIONS)
             if e.type == "hangup_leg" and e.call_id == call]
    assert kills == [], f"the router hung up a talking call: {kills}"
    assert [c["action"] for c in _corrections(t, "offer_bridged_unseen")] == ["connected"]
    assert not _corrections(t, "call_gone") and not _corrections(t, "offer_gone")
    answered = [e.payload for e in t.reader.of_type("call_answered") if e.call_id == call]
    assert [a["agent_id"] for a in answered] == ["a1"]


def test_a_caller_who_left_while_the_bridge_was_down_is_told_vanished_and_ends(healing):
    """The bridge knew the caller waiting (nobody free to answer); the caller hung up while
    the bridge was killed, so the hangup was never heard. The restarted bridge reads its
    journal of the legs it knew, finds the caller gone from the switch and says so; the
    router ends the call as abandoned (no correction needed)."""
    t = Tenant(healing, {"a1": {"answer": "busy"}}, first_ext=3400,
               queue={"offer_timeout_s": 3})
    try:
        call = t.call(patience=3.0)
        t.reader.wait_for(lambda es: any(e.type == "call_enqueued" and e.call_id == call
                                         for e in es), timeout=30, what="the caller queued")
        healing.kill_bridge()
        deadline = time.monotonic() + 15
        while call in healing.channels() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert call not in healing.channels(), "the caller never hung up"
        healing.restart_bridge()
        t.reader.wait_for(lambda es: any(e.type == "call_abandoned" and e.call_id == call
                                         for e in es), timeout=60, what="the call ended")
    finally:
        t.close()
    assert not _corrections(t, "call_gone"), "ended by a correction, not by the vanish fact"
