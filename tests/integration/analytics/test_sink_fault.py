"""The sink under fault: its ClickHouse stops for 30 s while events flow; after the restart
every call is present exactly once and equal to the fold of its events.

The ClickHouse here is a throwaway server of our own (the local stack's service class on
other ports, with a temporary data folder), so the shared stack is never stopped.
"""
from __future__ import annotations

import random
import threading
import time
import uuid

import pytest

from analytics import migrations
from analytics.cdr import CDR_COLUMNS, fold_call
from analytics.db import NativeDatabase
from analytics.scenario import Scenario, random_calls, us
from analytics.settings import AnalyticsSettings
from analytics.sink import Sink

from .test_sink_kafka import encoded, produce

pytestmark = [pytest.mark.analytics, pytest.mark.stack]

DOWN_S = 30


def test_clickhouse_down_for_30s_loses_and_duplicates_nothing(local_stack, kafka_topic,
                                                              own_clickhouse):
    port = own_clickhouse.settings.clickhouse_tcp_port
    name = f"t_fault_{uuid.uuid4().hex[:8]}"
    own = own_clickhouse.settings
    db = NativeDatabase("127.0.0.1", port, name, own.clickhouse_user, own.clickhouse_password)
    migrations.migrate(db)

    scenario = Scenario("acme")
    ids = random_calls(scenario, 300, us("2026-11-22T08:00:00+07:00"), random.Random(5))
    records = encoded(scenario.events)
    settings = AnalyticsSettings(clickhouse_port=port, clickhouse_database=name,
                                 clickhouse_password=own.clickhouse_password,
                                 kafka_bootstrap=local_stack.kafka_bootstrap,
                                 deployment=uuid.uuid4().hex[:8], sink_topics=(kafka_topic,),
                                 sink_batch_rows=200, sink_batch_s=0.3, sink_retry_min_s=0.5,
                                 sink_retry_max_s=4.0)
    sink = Sink(settings, db)
    finished = threading.Event()
    errors: list[BaseException] = []

    def run_sink():
        try:
            sink.run(until=lambda: sink.stats.records >= len(records))
        except BaseException as exc:
            errors.append(exc)
        finally:
            finished.set()

    def flow():  # events keep flowing before, during and after the outage
        chunk = len(records) // 40
        for i in range(0, len(records), chunk):
            produce(local_stack.kafka_bootstrap, kafka_topic, records[i:i + chunk])
            time.sleep(1.0)

    producer = threading.Thread(target=flow, daemon=True)
    consumer = threading.Thread(target=run_sink, daemon=True)
    producer.start()
    consumer.start()
    time.sleep(4)
    written_before = sink.stats.rows_written
    own_clickhouse.stop()
    time.sleep(DOWN_S)
    consumed_while_down = sink.stats.records
    own_clickhouse.start()
    producer.join(120)
    if not finished.wait(120):
        import faulthandler
        import sys
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)  # where it hangs
        pytest.fail(f"sink stuck at {sink.stats} (thread stacks on stderr)")
    sink.close()
    assert not errors, errors

    assert written_before > 0
    # It paused (how long depends on when its first insert noticed: on a loaded machine a
    # connect timeout can take a third of the outage; what it took while down says more).
    assert sink.stats.insert_failures > 0 and sink.stats.paused_s > 0
    # Paused: it stopped taking records while it could not write them.
    assert consumed_while_down < len(records)

    per_call = dict(db.query(f"SELECT call_id, sum(sign) FROM {name}.calls GROUP BY call_id"))
    assert per_call == dict.fromkeys(ids, 1)
    live = db.query(f"SELECT {', '.join(CDR_COLUMNS)} FROM {name}.calls FINAL WHERE sign = 1")
    by_call: dict[str, list] = {}
    for e in scenario.events:
        if e.call_id:
            by_call.setdefault(e.call_id, []).append(e)
    mismatched = []
    for row in live:
        got = dict(zip(CDR_COLUMNS, row))
        expected = fold_call(by_call[got["call_id"]]).cdr
        for key in ("disposition", "queue", "agent_id", "wait_ms", "talk_ms", "hold_ms",
                    "answer_us", "end_us", "start_us"):
            if got[key] != expected[key]:
                mismatched.append((got["call_id"], key, got[key], expected[key]))
    assert not mismatched, mismatched[:5]
    (n_events,) = db.query(f"SELECT uniqExact(event_id) FROM {name}.events")[0]
    assert n_events == len(records)
    db.execute(f"DROP DATABASE {name}")
    db.close()
