"""The sink on the real stack: Kafka 4.1 in, ClickHouse 18.16 out."""
from __future__ import annotations

import threading
import uuid

import pytest

from analytics import migrations, reports
from analytics.db import NativeDatabase
from analytics.settings import AnalyticsSettings
from analytics.sink import Sink
from routing.contract import encode
from routing.contract.topics import tenant_key
from tests.fixtures.analytics import golden

pytestmark = [pytest.mark.analytics, pytest.mark.stack]


def produce(bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes]]) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all")
    for key, value in records:
        producer.send(topic, value, key=key)
    producer.flush(30)
    producer.close()


def encoded(events) -> list[tuple[bytes, bytes]]:
    events = sorted(events, key=lambda e: e.occurred_at)  # the log's order
    return [(tenant_key(e.tenant), encode(e)) for e in events]


@pytest.fixture
def db(clickhouse_db, local_stack):
    _, name = clickhouse_db
    database = NativeDatabase("127.0.0.1", local_stack.clickhouse_tcp_port, name,
                              local_stack.clickhouse_user, local_stack.clickhouse_password)
    migrations.migrate(database)
    yield database
    database.close()


def settings_for(local_stack, db, topic, deployment) -> AnalyticsSettings:
    return AnalyticsSettings(clickhouse_port=local_stack.clickhouse_tcp_port,
                             clickhouse_password=local_stack.clickhouse_password,
                             clickhouse_database=db.database,
                             kafka_bootstrap=local_stack.kafka_bootstrap,
                             deployment=deployment, sink_topics=(topic,), sink_batch_rows=50,
                             sink_batch_s=0.2, sink_retry_min_s=0.2, sink_retry_max_s=1.0)


def consume(settings, db, until_records: int, timeout_s: float = 90, sink: Sink | None = None,
            **kw) -> Sink:
    """Run a sink in a thread until it consumed `until_records` (bounded: fails, not hangs)."""
    sink = sink or Sink(settings, db, **kw)
    done = threading.Event()
    result: dict = {}

    def run():
        try:
            result["stats"] = sink.run(until=lambda: sink.stats.records >= until_records)
        except BaseException as exc:  # surfaced below
            result["error"] = exc
        finally:
            done.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    if not done.wait(timeout_s):
        sink.stop()
        done.wait(10)
        import faulthandler
        import sys
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)  # where it hangs
        consumer = sink._consumer
        assigned = sorted(map(str, consumer.assignment())) if consumer is not None else None
        pytest.fail(f"sink consumed {sink.stats.records} of {until_records} records in "
                    f"{timeout_s} s (partitions assigned: {assigned})")
    sink.close()
    if "error" in result:
        raise result["error"]
    return sink


def _golden_ok(db):
    day = reports.Period.day(golden.DAY)
    rows = {r["queue"]: r for r in reports.queue_kpis(db, "acme", day.start, day.end,
                                                       service_level_s=golden.SL)}
    for key, value in golden.SUPPORT.items():
        assert rows["support"][key] == pytest.approx(value), key
    per_call = db.query(f"SELECT call_id, sum(sign) FROM {db.database}.calls "
                        f"WHERE tenant = 'acme' GROUP BY call_id")
    assert dict(per_call) == dict.fromkeys(golden.DISPOSITIONS, 1)


def test_golden_calls_through_kafka(local_stack, kafka_topic, db):
    events = golden.acme().events + golden.beta().events
    produce(local_stack.kafka_bootstrap, kafka_topic, encoded(events))
    sink = consume(settings_for(local_stack, db, kafka_topic, uuid.uuid4().hex[:8]), db,
                   len(events))
    assert sink.stats.batches >= 2 and sink.stats.insert_failures == 0
    _golden_ok(db)


def test_redelivery_after_a_crash_before_commit_shows_no_duplicates(local_stack, kafka_topic, db):
    events = golden.acme().events + golden.beta().events
    produce(local_stack.kafka_bootstrap, kafka_topic, encoded(events))
    deployment = uuid.uuid4().hex[:8]
    settings = settings_for(local_stack, db, kafka_topic, deployment)

    class CrashesBeforeCommit(Sink):
        def _commit(self, offsets):  # inserted, then "crashed": no offset reaches Kafka
            pass

    first = consume(settings, db, len(events) // 2, sink=CrashesBeforeCommit(settings, db))
    assert first.stats.rows_written > 0
    # A new process of the same deployment: everything is read again from offset 0.
    second = consume(settings, db, len(events))
    assert second.stats.records == len(events)
    _golden_ok(db)
    (events_kept,) = db.query(f"SELECT uniqExact(event_id) FROM {db.database}.events")[0]
    assert events_kept == len(events)


def test_unreadable_records_go_to_dead_letters(local_stack, kafka_topic, db):
    good = golden.acme().events[:10]
    records = encoded(good) + [(b"acme", b"{not json"), (b"acme", b'{"event_id": "x"}')]
    produce(local_stack.kafka_bootstrap, kafka_topic, records)
    dead = []
    sink = consume(settings_for(local_stack, db, kafka_topic, uuid.uuid4().hex[:8]), db,
                   len(records), dead_letters=dead.append)
    assert len(dead) == 2
    assert {d.payload["topic"] for d in dead} == {kafka_topic}
    assert "not JSON" in dead[0].payload["reason"] or "not JSON" in dead[1].payload["reason"]
    assert sink.stats.dead_letters == 2
    (n,) = db.query(f"SELECT count() FROM {db.database}.events")[0]
    assert n == 10
