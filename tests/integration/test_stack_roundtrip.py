"""Round trips through the real servers of the local stack."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from routing.contract import Envelope, decode, deterministic_id, encode, topics

pytestmark = pytest.mark.stack


def test_stack_status_reports_both_servers_healthy(local_stack):
    from deploy.local import stack

    healths = {h.name: h for h in stack.status(local_stack)}
    assert healths["kafka"].healthy, healths["kafka"].detail
    assert "Kafka 4." in healths["kafka"].detail
    assert healths["clickhouse"].healthy, healths["clickhouse"].detail
    assert "ClickHouse 18.16" in healths["clickhouse"].detail


def test_kafka_produce_consume_round_trip_keeps_per_tenant_order(local_stack, kafka_topic):
    from kafka import KafkaConsumer, KafkaProducer

    producer = KafkaProducer(bootstrap_servers=local_stack.kafka_bootstrap, acks="all",
                             enable_idempotence=True, linger_ms=5)
    sent = []
    for i in range(300):
        tenant = f"tenant-{i % 3}"
        env = Envelope(deterministic_id("test", i), "call_enqueued", 1, 1_700_000_000_000_000 + i,
                       tenant, "test", i, f"call-{i}", {"queue": "q", "caller": "+84912345678"})
        producer.send(kafka_topic, key=topics.tenant_key(tenant), value=encode(env))
        sent.append(env)
    producer.flush(timeout=30)
    producer.close()

    consumer = KafkaConsumer(kafka_topic, bootstrap_servers=local_stack.kafka_bootstrap,
                             group_id=f"{kafka_topic}-g", auto_offset_reset="earliest",
                             consumer_timeout_ms=10000)
    received = []
    for record in consumer:
        env = decode(record.value)
        assert record.key == topics.tenant_key(env.tenant)
        received.append((record.partition, env))
        if len(received) == len(sent):
            break
    consumer.close()

    assert sorted(e.event_id for _, e in received) == sorted(e.event_id for e in sent)
    for tenant in ("tenant-0", "tenant-1", "tenant-2"):
        mine = [(p, e.seq) for p, e in received if e.tenant == tenant]
        assert len({p for p, _ in mine}) == 1, "a tenant's records must share one partition"
        assert [s for _, s in mine] == sorted(s for _, s in mine)


def test_clickhouse_insert_select_round_trip(clickhouse_db):
    client, db = clickhouse_db
    client.execute(f"""
        CREATE TABLE {db}.events (
            tenant String, event_id String, occurred_at_us UInt64, type String, payload String
        ) ENGINE = MergeTree ORDER BY (tenant, occurred_at_us)""")
    # Compact JSON (as orjson writes it): 18.16's visitParamExtract* misses `"n": 42`.
    rows = [("acme", f"e{i}", 1_700_000_000_000_000 + i, "call_enqueued",
             json.dumps({"queue": "q", "n": i}, separators=(",", ":"))) for i in range(1000)]
    client.execute(f"INSERT INTO {db}.events VALUES", rows)  # rows as data, never as SQL text
    count, max_us = client.execute(
        f"SELECT count(), max(occurred_at_us) FROM {db}.events WHERE tenant = %(t)s",
        {"t": "acme"})[0]
    assert (count, max_us) == (1000, 1_700_000_000_000_999)
    assert client.execute(
        f"SELECT visitParamExtractUInt(payload, 'n') FROM {db}.events "
        f"WHERE event_id = 'e42'") == [(42,)]


def test_chdb_runs_the_same_sql(tmp_path: Path):
    # chdb's embedded server is process-wide and bound to one data path: run it in a
    # process of its own (other tests of this session may have opened chdb elsewhere).
    import subprocess
    import sys

    script = f"""
from chdb import session
sess = session.Session({str(tmp_path / 'chdb')!r})
sess.query("CREATE DATABASE db")
sess.query("CREATE TABLE db.events (tenant String, n UInt64) ENGINE = MergeTree ORDER BY tenant")
sess.query("INSERT INTO db.events SELECT 'acme', number FROM numbers(1000)")
print(str(sess.query("SELECT count(), sum(n) FROM db.events", "CSV")).strip())
sess.close()
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "1000,499500"
