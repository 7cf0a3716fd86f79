"""A router the worker cannot read back (an older worker's pickle, a snapshot from the
future) is rebuilt from the routing log on real Kafka, never guessed at."""
from __future__ import annotations

import uuid

import pytest
from kafka import KafkaProducer

from routing.contract import Envelope, encode, topics
from streams.app import _partition_of, rebuild_from_log
from streams.router import TenantRouter, handle
from streams.settings import load as worker_settings

pytestmark = [pytest.mark.streams, pytest.mark.stack]

T0 = 1_795_300_000_000_000


def test_a_tenant_is_rebuilt_from_its_facts_and_commands(local_stack):
    tenant = f"t{uuid.uuid4().hex[:10]}.test"
    partitions = worker_settings({}).topic_partitions

    def rec(type_: str, at_s: float, payload: dict, call_id=None, seq=None, source="api"):
        return Envelope(uuid.uuid4().hex, type_, 1, T0 + int(at_s * 1e6), tenant, source, seq,
                        call_id, payload)

    def config(kind, entity_id, data):
        return rec("config_changed", 0, {"kind": kind, "entity_id": entity_id, "data": data})

    commands = [config("tenant", tenant, {"domain": tenant}),
                config("queue", "support", {"strategy": "longest-idle-agent"}),
                config("agent", "a1", {"extension": "1000", "queues": {"support": {}}}),
                config("agent", "a2", {"extension": "1001", "queues": {"support": {}}}),
                rec("agent_login_requested", 1, {"agent_id": "a1"}),
                rec("agent_login_requested", 1, {"agent_id": "a2"}),
                rec("agent_pause_requested", 2, {"agent_id": "a2", "reason": "lunch"})]
    facts = [rec("sip_registered", 1.5, {"fs_event": "sofia::register", "extension": ext,
                                         "domain": tenant}, seq=i + 1, source="node")
             for i, ext in enumerate(("1000", "1001"))]
    facts.append(rec("channel_parked", 3, {"leg_id": "c1", "leg": "a", "queue": "support",
                                           "fs_event": "CHANNEL_PARK"},
                     call_id="c1", seq=3, source="node"))
    producer = KafkaProducer(bootstrap_servers=local_stack.kafka_bootstrap, acks="all")
    for topic, batch in ((topics.CC_COMMANDS, commands), (topics.FS_ROUTING, facts)):
        for env in batch:
            meta = producer.send(topic, key=topics.tenant_key(tenant), value=encode(env)).get(10)
            assert meta.partition == _partition_of(tenant, partitions), "where the worker reads"
    producer.close()

    router = rebuild_from_log(local_stack.kafka_bootstrap, partitions, tenant)

    expected = TenantRouter(tenant)
    for env in commands + facts:
        handle(expected, env)
    assert router.state.agents == expected.state.agents
    assert router.state.agents["a2"].status == "paused"
    assert router.state.agents["a1"].status == "offered", "the waiting call was offered"
    assert set(router.state.calls) == {"c1"} and router.call_nodes["c1"] == "node"
