"""The ACD end to end on real Kafka: the ESL simulator, the real bridge and a real worker.

One simulator, bridge and worker serve the module; every test has its own tenant (whose
SIP domain is its name) and its own agents, so tests do not see each other's records.
"""
from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from esl_bridge.simulator import Simulator
from esl_bridge.simulator.model import AgentSpec, CallerSpec
from routing.contract import encode, topics

from .harness import (Publisher, Reader, bridge_env, start_process, stop_process, wait_ready,
                      worker_env)

pytestmark = [pytest.mark.streams, pytest.mark.stack]


class Stack:
    def __init__(self, sim: Simulator, bootstrap: str) -> None:
        self.sim = sim
        self.bootstrap = bootstrap


@pytest.fixture(scope="module")
def acd(local_stack, tmp_path_factory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("acd")
    sim = Simulator(port=0, password="acd-test", heartbeat=3600, seed=3,
                    core_uuid=str(uuid.uuid4()))  # a node of its own: decisions are per node
    sim.start()
    bridge = start_process("bridge", tmp, bridge_env(sim, tmp, local_stack.kafka_bootstrap))
    worker = start_process("worker", tmp, worker_env(tmp, local_stack.kafka_bootstrap,
                                                     f"test-router-{uuid.uuid4().hex[:8]}"))
    try:
        wait_ready(worker, "Ready")
        wait_ready(bridge, "subscribed")
        yield Stack(sim, local_stack.kafka_bootstrap)
    finally:
        stop_process(worker)
        stop_process(bridge)
        sim.stop()


class Tenant:
    """A fresh tenant with a queue and agents, configured and logged in through Kafka."""

    def __init__(self, acd: Stack, agents: dict[str, dict], queue: dict | None = None,
                 first_ext: int = 2000, agent_cfg: dict[str, dict] | None = None) -> None:
        self.id = f"t{uuid.uuid4().hex[:10]}.test"
        self.acd = acd
        self.reader = Reader(acd.bootstrap, [topics.CC_EVENTS, topics.ROUTING_DECISIONS],
                             lambda e: e.tenant == self.id)
        self.api = Publisher(acd.bootstrap, self.id)
        self.api.config("tenant", self.id, {"domain": self.id})
        self.api.config("queue", "support", {"strategy": "longest-idle-agent",
                                             "offer_timeout_s": 4, "wrapup_s": 1,
                                             **(queue or {})})
        self.ext: dict[str, str] = {}
        for i, (agent_id, phone) in enumerate(agents.items()):
            ext = str(first_ext + i)
            self.ext[agent_id] = ext
            acd.sim.add_agent(AgentSpec.parse({"ext": ext, "domain": self.id,
                                               "register_at": None, **phone}))
            self.api.config("agent", agent_id, {"extension": ext, "queues": {"support": {}},
                                                **(agent_cfg or {}).get(agent_id, {})})
            self.api.command("agent_login_requested", agent_id=agent_id)
        self.api.flush()
        for agent_id in agents:
            acd.sim.register(self.ext[agent_id], self.id)
        self.reader.wait_for(
            lambda es: {e.payload["agent_id"] for e in es if e.type == "agent_state_changed"
                        and e.payload["state"] == "available"} >= set(agents),
            what="every agent available")

    def call(self, number: str = "0903123456", **extra) -> str:
        variables = {"tongdai_tenant": self.id, "tongdai_queue": "support",
                     **extra.pop("variables", {})}
        return self.acd.sim.place_call(CallerSpec.parse(
            {"at": 0, "number": number, "did": "19001234", "variables": variables, **extra}))

    def states(self, agent_id: str) -> list[str]:
        return [e.payload["state"] for e in self.reader.of_type("agent_state_changed")
                if e.payload["agent_id"] == agent_id]

    def close(self) -> None:
        self.reader.close()
        self.api.close()


def test_a_full_inbound_call(acd):
    t = Tenant(acd, {"a1": {"answer_delay": 0.3}, "a2": {"answer_delay": 0.3}})
    try:
        call = t.call(patience=60, talk=1.5)
        t.reader.wait_for(lambda es: any(e.type == "call_ended" and e.call_id == call for e in es),
                          timeout=40, what="call_ended")
        offered = t.reader.of_type("call_offered")[0].payload
        agent = offered["agent_id"]
        t.reader.wait_for(lambda es: t.states(agent)[-1:] == ["available"], timeout=20,
                          what="agent available after wrap-up")
    finally:
        t.close()
    types = [e.type for e in t.reader.envelopes(topics.CC_EVENTS) if e.call_id == call]
    for earlier, later in [("call_enqueued", "call_offered"), ("call_offered", "call_answered"),
                           ("call_answered", "call_ended")]:
        assert types.index(earlier) < types.index(later), types
    # The switch bridges the phone that answered (tongdai_connect): no connect_call.
    assert [e.type for e in t.reader.envelopes(topics.ROUTING_DECISIONS)
            if e.call_id == call] == ["offer_call"]
    states = t.states(agent)
    assert states[-4:] == ["offered", "on_call", "wrap_up", "available"], states
    made = [e.payload for e in t.reader.of_type("decision_made") if e.call_id == call]
    assert made[0]["action"] == "offer_call" and made[0]["chosen"] == [agent]
    assert made[0]["reason"] and made[0]["candidates"]
    answered = t.reader.of_type("call_answered")[0].payload
    assert answered["agent_id"] == agent and answered["wait_ms"] > 0


def test_a_queue_the_router_connects_bridges_after_the_agent_leg_parks(acd):
    t = Tenant(acd, {"a1": {"answer_delay": 0.3}}, first_ext=2050, queue={"connect": "router"})
    try:
        call = t.call(patience=60, talk=1.0)
        t.reader.wait_for(lambda es: any(e.type == "call_ended" and e.call_id == call
                                         for e in es), timeout=40, what="call_ended")
    finally:
        t.close()
    assert [e.type for e in t.reader.envelopes(topics.ROUTING_DECISIONS)
            if e.call_id == call] == ["offer_call", "connect_call"]
    assert next(e for e in t.reader.envelopes(topics.ROUTING_DECISIONS)
                if e.type == "offer_call").payload["connect"] == "router"


def test_ring_no_answer_penalizes_and_the_next_agent_gets_the_call(acd):
    t = Tenant(acd, {"sleepy": {"answer": "no_answer"}, "awake": {"answer_delay": 0.3}},
               first_ext=2100)
    try:
        # longest-idle: "sleepy" logged in first, so it is offered first
        call = t.call(patience=60, talk=1)
        t.reader.wait_for(lambda es: any(e.type == "call_answered" and e.call_id == call
                                         for e in es), timeout=40, what="call_answered")
    finally:
        t.close()
    offers = [e.payload["agent_id"] for e in t.reader.of_type("call_offered")]
    assert offers[:2] == ["sleepy", "awake"], offers
    assert "ring_no_answer" in t.states("sleepy")
    assert t.reader.of_type("call_answered")[0].payload["agent_id"] == "awake"
    # The unanswered leg is gone: ended by the originate timeout (which carries the same
    # offer timeout) or cancelled by the router, whichever came first.
    first_offer = t.reader.of_type("call_offered")[0].payload["offer_id"]
    assert first_offer not in acd.sim.node.channels


def test_caller_abandons_while_the_agent_rings(acd):
    t = Tenant(acd, {"slow": {"answer": "no_answer"}}, first_ext=2200)
    try:
        call = t.call(patience=1.0)
        t.reader.wait_for(lambda es: any(e.type == "call_abandoned" and e.call_id == call
                                         for e in es), timeout=30, what="call_abandoned")
        t.reader.wait_for(lambda es: t.states("slow")[-1:] == ["available"], timeout=20,
                          what="agent back to available")
    finally:
        t.close()
    abandoned = t.reader.of_type("call_abandoned")[0].payload
    assert abandoned["short"] is True and abandoned["wait_ms"] < 5000
    offer_id = t.reader.of_type("call_offered")[0].payload["offer_id"]
    cancel = [e.payload for e in t.reader.envelopes(topics.ROUTING_DECISIONS)
              if e.type == "hangup_leg"]
    assert cancel and cancel[0]["leg_id"] == offer_id
    assert "offered" in t.states("slow")


def _offer_wait_s(t: Tenant, call: str) -> float:
    enq = next(e for e in t.reader.of_type("call_enqueued") if e.call_id == call)
    off = next(e for e in t.reader.of_type("call_offered") if e.call_id == call)
    return (off.occurred_at - enq.occurred_at) / 1e6


def test_skill_relaxation_offers_a_less_skilled_agent_after_the_wait(acd):
    t = Tenant(acd, {"junior": {"answer_delay": 0.3}}, first_ext=2300,
               queue={"relax": [{"after_s": 2, "min_level": 3}]},
               agent_cfg={"junior": {"skills": {"billing": 4}}})
    try:
        call = t.call(patience=30, talk=0.5, variables={"tongdai_skills": "billing:8"})
        t.reader.wait_for(lambda es: any(e.type == "call_offered" and e.call_id == call
                                         for e in es), timeout=30, what="call_offered")
    finally:
        t.close()
    assert t.reader.of_type("call_offered")[0].payload["agent_id"] == "junior"
    assert _offer_wait_s(t, call) >= 2.0


def test_geo_routing_prefers_the_callers_region_then_widens(acd):
    t = Tenant(acd, {"hanoi": {"answer_delay": 0.3}}, first_ext=2400,
               queue={"geo_widen_after_s": 2},
               agent_cfg={"hanoi": {"region": "north"}})
    try:
        call = t.call("02873001234", patience=30, talk=0.5)  # Ho Chi Minh City: south
        t.reader.wait_for(lambda es: any(e.type == "call_offered" and e.call_id == call
                                         for e in es), timeout=30, what="call_offered")
    finally:
        t.close()
    assert _offer_wait_s(t, call) >= 2.0, "held for a southern agent first"
    assert t.reader.of_type("call_offered")[0].payload["agent_id"] == "hanoi"


def test_a_closed_queue_runs_the_after_hours_action(acd):
    import datetime as dt

    tomorrow = (dt.datetime.now(dt.timezone(dt.timedelta(hours=7))).weekday() + 1) % 7
    day = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"][tomorrow]
    t = Tenant(acd, {"a1": {}}, first_ext=2500,
               queue={"schedule": {"hours": {day: ["08:00-17:00"]}}, "after_hours": "voicemail"})
    try:
        call = t.call(patience=30)
        t.reader.wait_for(lambda es: any(e.type == "call_overflowed" and e.call_id == call
                                         for e in es), timeout=30, what="call_overflowed")
        acd.sim.hangup(call)
    finally:
        t.close()
    assert not t.reader.of_type("call_offered"), "nobody is offered a call after hours"
    overflow = t.reader.of_type("call_overflowed")[0].payload
    assert overflow["action"] == "voicemail" and overflow["after_hours"] is True
    transfer = [e.payload for e in t.reader.envelopes(topics.ROUTING_DECISIONS)
                if e.type == "transfer_leg"][0]
    assert transfer["leg_id"] == call and transfer["destination"] == "voicemail_support"


def test_overflow_on_max_wait(acd):
    t = Tenant(acd, {"busy": {}}, first_ext=2600,
               queue={"max_wait_s": 2, "max_wait_action": {"kind": "forward",
                                                           "target": "+84903000999"}})
    try:
        t.api.command("agent_pause_requested", agent_id="busy", reason="meeting")
        t.api.flush()
        t.reader.wait_for(lambda es: t.states("busy")[-1:] == ["paused"], what="paused")
        call = t.call(patience=30)
        t.reader.wait_for(lambda es: any(e.type == "call_overflowed" and e.call_id == call
                                         for e in es), timeout=30, what="call_overflowed")
        acd.sim.hangup(call)
    finally:
        t.close()
    overflow = next(e for e in t.reader.of_type("call_overflowed") if e.call_id == call)
    enq = next(e for e in t.reader.of_type("call_enqueued") if e.call_id == call)
    assert (overflow.occurred_at - enq.occurred_at) / 1e6 >= 2.0
    assert overflow.payload["action"] == "forward" and overflow.payload["target"] == "+84903000999"
    assert overflow.payload["after_hours"] is False, "an overflow on max wait is not a closure"
    forward = [e.payload for e in t.reader.envelopes(topics.ROUTING_DECISIONS)
               if e.type == "transfer_leg"][0]
    assert forward["destination"] == "+84903000999"


def test_a_vip_caller_is_served_before_earlier_normal_callers(acd):
    t = Tenant(acd, {"only": {"answer_delay": 0.3}}, first_ext=2700)
    try:
        t.api.command("agent_pause_requested", agent_id="only", reason="break")
        t.api.flush()
        t.reader.wait_for(lambda es: t.states("only")[-1:] == ["paused"], what="paused")
        normal = t.call("0903000001", patience=60, talk=0.5)
        t.reader.wait_for(lambda es: any(e.type == "call_enqueued" and e.call_id == normal
                                         for e in es), what="normal enqueued")
        vip = t.call("0903000002", patience=60, talk=0.5, variables={"tongdai_vip": "true"})
        t.reader.wait_for(lambda es: any(e.type == "call_enqueued" and e.call_id == vip
                                         for e in es), what="vip enqueued")
        t.api.command("agent_resume_requested", agent_id="only")
        t.api.flush()
        t.reader.wait_for(lambda es: any(e.type == "call_offered" for e in es), timeout=30,
                          what="call_offered")
        for c in (normal, vip):
            acd.sim.hangup(c)
    finally:
        t.close()
    assert t.reader.of_type("call_offered")[0].call_id == vip


def test_a_call_on_an_agents_own_phone_keeps_queue_calls_away(acd):
    """Presence from call activity: the longest-idle agent is on a call it placed from its
    own phone (no queue), so the queue's call goes to the other agent; when the phone's
    call ends the agent is available again."""
    t = Tenant(acd, {"a1": {"answer_delay": 0.3}, "a2": {"answer_delay": 0.3}})
    try:
        own = acd.sim.place_call(CallerSpec.parse({
            "at": 0, "number": t.ext["a1"], "did": "0912345678",
            "variables": {"tongdai_tenant": t.id, "tongdai_domain": t.id}}))
        t.reader.wait_for(lambda es: t.states("a1")[-1:] == ["on_call"], timeout=20,
                          what="a1 busy on its own call")
        call = t.call(patience=60, talk=1)
        t.reader.wait_for(lambda es: any(e.type == "call_offered" and e.call_id == call
                                         for e in es), timeout=20, what="call_offered")
        offered = [e.payload["agent_id"] for e in t.reader.of_type("call_offered")
                   if e.call_id == call]
        assert acd.sim.hangup(own)
        t.reader.wait_for(lambda es: t.states("a1")[-1:] == ["available"], timeout=20,
                          what="a1 available once its own call ended")
    finally:
        t.close()
    assert offered == ["a2"]


def _fs_reader(acd: Stack, t: Tenant):
    return Reader(acd.bootstrap, [topics.FS_EVENTS], lambda e: e.tenant == t.id)


def test_click_to_call_rings_the_agent_then_the_customer(acd):
    from esl_bridge.simulator.model import NumberSpec

    t = Tenant(acd, {"a1": {"answer_delay": 0.3}})
    fs = _fs_reader(acd, t)
    acd.sim.add_number(NumberSpec(number="0912000111", answer_delay=0.5, talk=2.0))
    try:
        t.api.command("click_to_call_requested", agent_id="a1", number="+84 912 000 111",
                      request_id="r-1", caller_id="02873001234")
        t.api.flush()
        t.reader.wait_for(lambda es: any(e.type == "originate_call" for e in es), timeout=20,
                          what="originate_call")
        order = t.reader.of_type("originate_call")[0]
        leg = order.payload["leg_id"]
        fs.wait_for(lambda es: any(e.type == "command_executed" and e.call_id == leg
                                   for e in es), timeout=30, what="originate executed")
        # The customer's leg belongs to the tenant and to the call (the agent's leg).
        fs.wait_for(lambda es: any(e.type == "channel_answered" and e.call_id == leg
                                   and e.payload["leg"] == "b" for e in es),
                    timeout=30, what="customer answered")
        fs.wait_for(lambda es: any(e.type == "channel_hungup" and e.payload["leg_id"] == leg
                                   for e in es), timeout=30, what="call over")
        t.reader.wait_for(lambda es: t.states("a1")[-1:] == ["available"], timeout=20,
                          what="a1 available after its click-to-call")
    finally:
        fs.close()
        t.close()
    p = order.payload
    assert (p["extension"], p["destination"], p["outbound_caller_id"]) == \
        (t.ext["a1"], "0912000111", "02873001234")
    done = next(e for e in fs.of_type("command_executed") if e.call_id == leg).payload
    assert done["ok"] and done["command"] == "originate_call", done
    customer = next(e for e in fs.of_type("channel_created") if e.call_id == leg
                    and e.payload["leg"] == "b").payload
    assert customer["callee"] == "+84912000111" and customer["caller"] == "+842873001234"
    assert t.states("a1")[-2:] == ["on_call", "available"]


def test_a_click_to_call_from_an_unregistered_phone_is_refused(acd):
    t = Tenant(acd, {"a1": {"answer_delay": 0.3}})
    try:
        acd.sim.unregister(t.ext["a1"], t.id)
        t.reader.wait_for(lambda es: t.states("a1")[-1:] == ["offline"], timeout=20,
                          what="a1 offline")
        t.api.command("click_to_call_requested", agent_id="a1", number="0912000112",
                      request_id="r-2", caller_id="02873001234")
        t.api.flush()
        t.reader.wait_for(lambda es: any(e.type == "command_refused" for e in es), timeout=20,
                          what="command_refused")
    finally:
        t.close()
    refused = t.reader.of_type("command_refused")[0].payload
    assert refused["request_id"] == "r-2" and "not registered" in refused["reason"]
    assert not t.reader.of_type("originate_call")


def test_a_supervisor_listens_then_barges_into_an_agents_call(acd):
    t = Tenant(acd, {"a1": {"answer_delay": 0.3}})
    fs = _fs_reader(acd, t)
    acd.sim.add_agent(AgentSpec.parse({"ext": "2099", "domain": t.id, "register_at": None,
                                       "answer_delay": 0.3}))
    acd.sim.register("2099", t.id)
    monitor_id = str(uuid.uuid4())
    try:
        call = t.call(patience=60, talk=12)
        t.reader.wait_for(lambda es: any(e.type == "call_answered" and e.call_id == call
                                         for e in es), timeout=20, what="call_answered")
        t.api.producer.send(topics.CC_COMMANDS, key=topics.tenant_key(t.id), value=encode(
            t.api._env("monitor_requested", {"monitor_id": monitor_id, "agent_id": "a1",
                                             "extension": "2099", "mode": "listen",
                                             "requested_by": "sup"}, call_id=call)))
        t.api.flush()
        fs.wait_for(lambda es: any(e.type == "command_executed"
                                   and e.payload["command"] == "monitor_call" for e in es),
                    timeout=30, what="monitor_call executed")
        assert acd.sim.monitor(monitor_id).mode == "listen"
        t.api.command("monitor_mode_requested", monitor_id=monitor_id, mode="barge")
        t.api.flush()
        fs.wait_for(lambda es: any(e.type == "command_executed"
                                   and e.payload["command"] == "send_dtmf" for e in es),
                    timeout=30, what="send_dtmf executed")
        mode = acd.sim.monitor(monitor_id).mode
    finally:
        fs.close()
        t.close()
    started = next(e for e in fs.of_type("command_executed")
                   if e.payload["command"] == "monitor_call").payload
    switched = next(e for e in fs.of_type("command_executed")
                    if e.payload["command"] == "send_dtmf").payload
    assert started["ok"] and switched["ok"], (started, switched)
    answered = t.reader.of_type("call_answered")[0].payload
    assert acd.sim.monitor(monitor_id).target == answered["offer_id"]
    assert mode == "barge"


def test_a_record_the_router_cannot_apply_is_dead_lettered_and_changes_nothing(acd):
    """The worker saves a router at commits, not per record: a record that fails half-way
    rebuilds the router from its last save plus the records since, so the pause just
    before the bad record still holds afterwards."""
    t = Tenant(acd, {"a1": {}, "a2": {}})
    dead = Reader(acd.bootstrap, [topics.DEAD_LETTERS],
                  lambda e: e.payload.get("topic") == topics.CC_COMMANDS
                  and "KeyError" in e.payload.get("reason", "")
                  and t.id.encode() in e.payload.get("raw", "").encode("latin-1"))
    try:
        t.api.command("agent_pause_requested", agent_id="a1", reason="lunch")
        t.api.command("agent_pause_requested")  # no agent_id: decodes, cannot be applied
        t.api.flush()
        dead.wait_for(lambda es: len(es) >= 1, timeout=30, what="the bad record dead-lettered")
        t.api.command("agent_resume_requested", agent_id="a1")
        t.api.flush()
        # "available" again only if the router still knew a1 was paused
        t.reader.wait_for(lambda es: t.states("a1")[-2:] == ["paused", "available"],
                          timeout=30, what="a1 resumed from its pause")
    finally:
        dead.close()
        t.close()
