"""The distributed claim of deploy/SCALING.md, on real brokers: a three-broker KRaft cluster
(replication 3, min.insync.replicas 2, producers with acks=all) loses no acknowledged fact
when one broker is killed under load, producing goes on after a bounded pause, and the ACD
keeps routing through it.

The cluster is the stack's own (`deploy.local.stack`, as `tongdai stack up --brokers 3`
runs it) but private to this module: its own folder and free ports, never the shared
stack on 9092. It runs only while the module's tests do.
"""
from __future__ import annotations

import dataclasses
import os
import random
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.local import settings as stack_settings
from deploy.local import stack
from routing.contract import Envelope, decode, deterministic_id, encode, topics

pytestmark = pytest.mark.stack

PARTITIONS = 8


def _free_block(count: int) -> int:
    """A first port of `count` consecutive free loopback ports (the cluster's layout)."""
    for _ in range(200):
        base = random.randrange(20000, 60000, 2)
        if all(stack.port_free(base + i) for i in range(count)):
            return base
    raise RuntimeError(f"no {count} consecutive free ports found")


@dataclasses.dataclass
class Cluster:
    settings: stack_settings.StackSettings
    tmp: Path

    @property
    def bootstrap(self) -> str:
        return self.settings.kafka_bootstrap

    def node(self, node_id: int) -> stack.Kafka:
        return stack.Kafka(self.settings, log=print, node=node_id)

    def admin(self):
        from kafka import KafkaAdminClient

        return KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=10000,
                                client_id="test-kafka-cluster")

    def leaders(self, topic: str) -> dict[int, int]:
        """partition -> leader node id."""
        admin = self.admin()
        try:
            described = admin.describe_topics([topic])[0]
        finally:
            admin.close()
        return {p["partition_index"]: p["leader_id"] for p in described["partitions"]}

    def wait_full_isr(self, topic: str, timeout: float = 90) -> None:
        """Until every partition of `topic` has all its replicas in sync again."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            admin = self.admin()
            try:
                described = admin.describe_topics([topic])[0]
                parts = described["partitions"] if described["error_code"] == 0 else []
            except Exception as exc:  # a broker still electing: ask again
                last = exc
                parts = []
            finally:
                admin.close()
            last = last if not parts else {p["partition_index"]: p["isr_nodes"] for p in parts}
            if parts and all(len(p["isr_nodes"]) == len(p["replica_nodes"]) for p in parts):
                return
            time.sleep(0.5)
        raise AssertionError(f"{topic}: replicas not back in sync after {timeout} s: {last}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[Cluster]:
    shared = stack_settings.load()
    tmp = tmp_path_factory.mktemp("kafka-cluster")
    root = tmp / "stack"
    root.mkdir()
    if not (shared.root / "kafka-dist").exists():
        stack.Kafka(shared).install()
    os.symlink(shared.root / "kafka-dist", root / "kafka-dist")  # the jars, not a download
    base = _free_block(6)
    settings = dataclasses.replace(
        shared, stack_dir=str(root), kafka_port=base, kafka_controller_port=base + 1,
        kafka_brokers=3, clickhouse_tcp_port=base + 6, clickhouse_http_port=base + 7,
        start_timeout_s=150)
    settings.check()
    started = time.monotonic()
    try:
        healths = stack.kafka_up(settings, log=print)
        print(f"cluster of {len(healths)} brokers healthy in "
              f"{time.monotonic() - started:.1f} s on {settings.kafka_bootstrap}")
        yield Cluster(settings, tmp)
    finally:
        stack.kafka_down(settings, log=print)


def test_the_cluster_replicates_the_products_topics_three_times(cluster):
    from kafka.admin import ConfigResource, ConfigResourceType

    from streams.app import ensure_topics

    s = cluster.settings
    assert (s.kafka_replication, s.kafka_min_insync) == (3, 2)
    healths = stack.status(s)
    assert [h.name for h in healths if h.healthy] == ["kafka-1", "kafka-2", "kafka-3"], healths
    assert "3 of 3 brokers up" in healths[0].detail

    ensure_topics(cluster.bootstrap, PARTITIONS, s.kafka_replication)  # as the worker does
    for spec in topics.TOPICS:  # created: known to every broker, replicas in sync
        cluster.wait_full_isr(spec.name, timeout=30)
    admin = cluster.admin()
    try:
        described = admin.describe_topics([spec.name for spec in topics.TOPICS])
        wanted = ["min.insync.replicas", "default.replication.factor"]
        config = admin.describe_configs(
            [ConfigResource(ConfigResourceType.BROKER, str(i), wanted) for i in (1, 2, 3)],
            config_filter="all")["broker"]
    finally:
        admin.close()
    for topic in described:
        assert topic["error_code"] == 0 and topic["partitions"], topic
        for p in topic["partitions"]:
            assert len(p["replica_nodes"]) == 3 and len(p["isr_nodes"]) == 3, (topic["name"], p)
    for broker, entries in config.items():
        assert entries["min.insync.replicas"]["value"] == "2", broker
        assert entries["default.replication.factor"]["value"] == "3", broker


def _producer(bootstrap: str):
    """The bridge's producer (esl_bridge/publisher.py, librdkafka): acks=all, idempotent,
    murmur2, 5 ms linger; a delivery timeout long enough to outlast a leader election."""
    from confluent_kafka import Producer

    return Producer({"bootstrap.servers": bootstrap, "client.id": "test-cluster-facts",
                     "acks": "all", "enable.idempotence": True,
                     "partitioner": "murmur2_random", "linger.ms": 5,
                     "message.timeout.ms": 60000, "socket.timeout.ms": 10000})


def _kill(cluster: Cluster, node_id: int) -> None:
    pid = cluster.node(node_id).pid()
    assert pid is not None, f"kafka-{node_id} is not running"
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while stack.pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not stack.pid_alive(pid), f"kafka-{node_id} (pid {pid}) survived SIGKILL"


def _busiest_leader(cluster: Cluster, topic: str) -> int:
    leaders = list(cluster.leaders(topic).values())
    return max(set(leaders), key=leaders.count)


def test_a_broker_killed_under_load_loses_no_fact(cluster):
    from kafka import KafkaConsumer, TopicPartition

    from streams.app import ensure_topics

    ensure_topics(cluster.bootstrap, PARTITIONS, cluster.settings.kafka_replication)
    topic = topics.FS_EVENTS
    run = uuid.uuid4().hex[:8]
    rate = 200  # facts/s: a busy node's bridge (≈ 14 events per call, ≈ 14 calls/s)
    tenants = [f"t{i}.{run}" for i in range(16)]
    producer = _producer(cluster.bootstrap)
    sent_at: dict[int, float] = {}
    acked: dict[int, tuple[int, int, float]] = {}  # fact -> (partition, offset, when)
    failed: dict[int, str] = {}

    def delivered(n: int):
        def report(err, msg) -> None:
            if err is not None:
                failed[n] = str(err)
            else:
                acked[n] = (msg.partition(), msg.offset(), time.monotonic())
        return report

    def send(n: int) -> None:
        tenant = tenants[n % len(tenants)]
        now = time.time_ns() // 1000
        env = Envelope(deterministic_id("fact", run, n), "channel_created", 1, now, tenant,
                       f"cluster-test-{run}", n, f"call-{run}-{n}", {"run": run, "n": n})
        sent_at[n] = time.monotonic()
        producer.produce(topic, key=topics.tenant_key(tenant), value=encode(env),
                         on_delivery=delivered(n))

    victim = _busiest_leader(cluster, topic)
    start = time.monotonic()
    killed_at = None
    first_after = None
    recovered_at = None
    n = 0
    # Steady rate; the broker dies 4 s in; production goes on until acknowledgements have
    # flowed again for 3 s after the kill (bounded: 60 s in all).
    while time.monotonic() - start < 60:
        elapsed = time.monotonic() - start
        while n < elapsed * rate:
            send(n)
            n += 1
        producer.poll(0.005)
        if killed_at is None and elapsed >= 4:
            _kill(cluster, victim)
            killed_at = time.monotonic()
            print(f"killed kafka-{victim} (leader of the most {topic} partitions) "
                  f"after {n} facts")
        if killed_at is not None and first_after is None \
                and time.monotonic() > killed_at + 0.5:
            first_after = n  # the first fact sent once the broker was surely gone
        if first_after is not None and recovered_at is None \
                and all(k in acked for k in range(first_after, min(first_after + 50, n))) \
                and n > first_after + 50:
            recovered_at = time.monotonic()
        if recovered_at is not None and time.monotonic() - recovered_at >= 3:
            break
    produced = n
    left = producer.flush(60)
    assert killed_at is not None
    assert recovered_at is not None, "producing never recovered within 60 s of the kill"
    assert left == 0, f"{left} facts neither acknowledged nor failed after 60 s"

    # The pause: the longest time no acknowledgement arrived, and the slowest fact.
    times = sorted(t for _, _, t in acked.values())
    gaps = [(b - a, a) for a, b in zip(times, times[1:]) if b > killed_at]
    pause_s, pause_from = max(gaps)
    slowest_s = max(acked[k][2] - sent_at[k] for k in acked)

    # Read everything back from the brokers that are left.
    consumer = KafkaConsumer(bootstrap_servers=cluster.bootstrap, enable_auto_commit=False,
                             group_id=None, auto_offset_reset="earliest")
    tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    consumer.assign(tps)
    consumer.seek_to_beginning()
    ends = consumer.end_offsets(tps)
    read: dict[int, list[tuple[int, int]]] = {p: [] for p in range(PARTITIONS)}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(consumer.position(tp) < ends[tp] for tp in tps):
        for tp, batch in consumer.poll(timeout_ms=500).items():
            for r in batch:
                env = decode(r.value)
                if env.payload.get("run") == run:
                    read[tp.partition].append((env.payload["n"], r.offset))
    consumer.close()

    read_all = [k for facts in read.values() for k, _ in facts]
    duplicated = len(read_all) - len(set(read_all))
    lost = sorted(set(acked) - set(read_all))
    print(f"\nfacts produced {produced}, acknowledged {len(acked)}, failed {len(failed)}, "
          f"read {len(read_all)}, lost {len(lost)}, duplicated {duplicated}; broker "
          f"kafka-{victim} killed {killed_at - start:.1f} s in; longest time without an "
          f"acknowledgement {pause_s * 1000:.0f} ms (from {pause_from - killed_at:+.2f} s "
          f"after the kill); slowest fact {slowest_s * 1000:.0f} ms from send to ack")
    assert not failed, f"{len(failed)} facts failed: {sorted(failed.items())[:5]}"
    assert len(acked) == produced
    assert not lost, f"acknowledged but not readable: {lost[:20]}"
    assert duplicated == 0
    for p, facts in read.items():
        # In each partition, in the order they were sent, at the offsets acknowledged.
        numbers = [k for k, _ in facts]
        assert numbers == sorted(numbers, key=lambda k: sent_at[k]), f"partition {p} order"
        assert all(acked[k][:2] == (p, off) for k, off in facts), f"partition {p} offsets"
    assert pause_s < 30, f"producing paused {pause_s:.1f} s"

    # The killed broker comes back and catches up: every replica in sync again.
    restarted = cluster.node(victim).start()
    assert restarted.healthy, restarted.detail
    cluster.wait_full_isr(topic)


def test_routing_goes_on_when_a_broker_dies(cluster):
    """The ESL simulator, `tongdai bridge` and `tongdai worker` on the cluster: calls placed
    before, during and after the loss of the broker leading the tenant's partition are all
    offered and answered."""
    from esl_bridge.simulator import Simulator
    from esl_bridge.simulator.model import AgentSpec, CallerSpec

    from .harness import (Publisher, Reader, bridge_env, start_process, stop_process,
                          wait_ready, worker_env)

    from streams.app import ensure_topics

    ensure_topics(cluster.bootstrap, PARTITIONS, cluster.settings.kafka_replication)
    for spec in topics.TOPICS:  # a broker killed before is back: every replica in sync
        cluster.wait_full_isr(spec.name)
    tmp = cluster.tmp / f"routing-{uuid.uuid4().hex[:6]}"
    tmp.mkdir()
    bootstrap = cluster.bootstrap
    sim = Simulator(port=0, password="cluster-test", heartbeat=3600, seed=5,
                    core_uuid=str(uuid.uuid4()))
    sim.start()
    worker_vars = {**worker_env(tmp, bootstrap, f"test-router-{uuid.uuid4().hex[:8]}"),
                   "TONGDAI_TOPIC_REPLICATION": str(cluster.settings.kafka_replication)}
    # PYTHONFAULTHANDLER: a stuck process's threads are dumped into its log (SIGABRT below).
    worker = start_process("worker", tmp, {**worker_vars, "PYTHONFAULTHANDLER": "1"})
    bridge = start_process("bridge", tmp, {**bridge_env(sim, tmp, bootstrap),
                                           "PYTHONFAULTHANDLER": "1"})
    tenant = f"t{uuid.uuid4().hex[:10]}.test"
    reader = api = None
    try:
        wait_ready(worker, "Ready", timeout=90)
        wait_ready(bridge, "subscribed", timeout=60)
        reader = Reader(bootstrap, [topics.CC_EVENTS, topics.ROUTING_DECISIONS],
                        lambda e: e.tenant == tenant)
        api = Publisher(bootstrap, tenant)
        api.config("tenant", tenant, {"domain": tenant})
        api.config("queue", "support", {"strategy": "longest-idle-agent",
                                        "offer_timeout_s": 8, "wrapup_s": 1})
        agents = {f"a{i}": str(3000 + i) for i in range(6)}
        for agent_id, ext in agents.items():
            sim.add_agent(AgentSpec.parse({"ext": ext, "domain": tenant, "register_at": None,
                                           "answer_delay": 0.3}))
            api.config("agent", agent_id, {"extension": ext, "queues": {"support": {}}})
            api.command("agent_login_requested", agent_id=agent_id)
        api.flush()
        for ext in agents.values():
            sim.register(ext, tenant)
        reader.wait_for(
            lambda es: {e.payload["agent_id"] for e in es if e.type == "agent_state_changed"
                        and e.payload["state"] == "available"} >= set(agents),
            timeout=60, what="every agent available")
        partition = next(p for t, p, _, _ in reader.records if t == topics.CC_EVENTS)
        victim = cluster.leaders(topics.FS_ROUTING)[partition]

        calls: list[str] = []
        killed_at = None
        start = time.monotonic()
        while len(calls) < 30:  # one call every 0.5 s; the broker dies after the 8th
            if time.monotonic() - start >= len(calls) * 0.5:
                calls.append(sim.place_call(CallerSpec.parse(
                    {"at": 0, "number": "0903123456", "did": "19001234", "patience": 120,
                     "talk": 1.0, "variables": {"tongdai_tenant": tenant,
                                                "tongdai_queue": "support"}})))
                if len(calls) == 8:
                    _kill(cluster, victim)
                    killed_at = time.time()
                    print(f"killed kafka-{victim} (leader of the tenant's "
                          f"{topics.FS_ROUTING} partition {partition}) with 8 calls placed")
            reader.poll(0.05)
        try:
            reader.wait_for(lambda es: {e.call_id for e in es if e.type == "call_answered"}
                            >= set(calls), timeout=90, what="every call answered")
        except AssertionError:
            for proc in (bridge, worker):
                proc.send_signal(signal.SIGABRT)
            print(f"stacks of the bridge and worker dumped into {tmp}")
            raise
    finally:
        for proc in (worker, bridge):
            stop_process(proc)
        sim.stop()
        for closing in (reader, api):
            if closing is not None:
                closing.close()

    offered = {e.call_id for e in reader.of_type("call_offered")}
    answered = [e for e in reader.of_type("call_answered") if e.call_id in calls]
    waits = {e.call_id: e.payload["wait_ms"] for e in answered}
    after = [waits[c] for c in calls[8:]]
    print(f"\ncalls placed {len(calls)}, offered {len(offered & set(calls))}, answered "
          f"{len(waits)}; wait to answer: before the kill max {max(waits[c] for c in calls[:8])} "
          f"ms, after it max {max(after)} ms, median {sorted(after)[len(after) // 2]} ms")
    assert set(calls) <= offered
    assert set(waits) == set(calls)
    answered_twice = len(answered) - len(waits)
    assert answered_twice == 0, f"{answered_twice} calls answered twice"
    assert killed_at is not None
