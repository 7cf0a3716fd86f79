"""Migrations on both engines: idempotent, recorded, retention by partitions; the BI user."""
from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request

import pytest

from analytics import migrations
from analytics.db import NativeDatabase
from analytics.scenario import Scenario, us
from analytics.sink import replay

pytestmark = [pytest.mark.analytics]


def test_migrate_twice_is_a_no_op_and_records_versions(engine_db):
    # engine_db is migrated already: a second run applies nothing.
    assert migrations.migrate(engine_db) == []
    assert migrations.applied_versions(engine_db) == [m.version for m in migrations.MIGRATIONS]
    tables = {r[0] for r in engine_db.query(f"SHOW TABLES FROM {engine_db.database}")}
    assert {"events", "calls", "queue_visits", "queue_events", "agent_state_intervals",
            "queue_minute_stats", "agent_minute_stats", "bi_calls", "bi_queue_calls",
            "bi_agent_states", "bi_queue_minute", "bi_agent_minute"} <= tables


def test_retention_drops_whole_old_months(engine_db):
    s = Scenario()
    s.queue_call("old", us("2026-09-30T23:00:00+07:00"), "support", "+84911")  # UTC: Sept
    s.queue_call("new", us("2026-10-01T08:00:00+07:00"), "support", "+84912")
    replay(engine_db, sorted(s.events, key=lambda e: e.occurred_at))
    assert "202609" in migrations.partitions(engine_db, "calls")
    dropped = migrations.drop_partitions_before(engine_db, "2026-10")
    assert ("calls", "202609") in dropped and ("events", "202609") in dropped
    ids = {r[0] for r in engine_db.query(f"SELECT call_id FROM {engine_db.database}.calls")}
    assert ids == {"new"}
    with pytest.raises(ValueError):
        migrations.drop_partitions_before(engine_db, "October")


def test_queue_events_view_extracts_router_facts(engine_db):
    s = Scenario()
    s.queue_call("c", us("2026-11-22T09:00:00+07:00"), "support", "+84911", wait_s=12,
                 ring_s=3)
    replay(engine_db, s.events)
    rows = engine_db.query(
        f"SELECT type, queue, agent_id, wait_ms FROM {engine_db.database}.queue_events "
        f"ORDER BY occurred_at, type")
    assert ("call_answered", "support", "agent-7", 12000) in rows
    assert ("call_enqueued", "support", "", 0) in rows


@pytest.mark.stack
def test_bi_user_reads_views_over_http_and_cannot_write(own_clickhouse):
    """The local stack's users.xml defines tongdai_bi (18.16 has no CREATE USER), allowed
    the product's database only (`tongdai` on this throwaway server); more in
    test_bi_tenants.py."""
    own = own_clickhouse.settings
    port, http = own.clickhouse_tcp_port, own.clickhouse_http_port
    name = own.clickhouse_database
    db = NativeDatabase("127.0.0.1", port, name, own.clickhouse_user, own.clickhouse_password)
    migrations.migrate(db)
    s = Scenario()
    s.queue_call("c", us("2026-11-22T09:00:00+07:00"), "support", "+84911")
    replay(db, s.events)

    def http_query(sql: str) -> str:
        url = f"http://127.0.0.1:{http}/?" + urllib.parse.urlencode(
            {"user": "tongdai_bi", "password": own.clickhouse_passwords()["tongdai_bi"],
             "query": sql})
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.read().decode()

    assert http_query(f"SELECT call_id, disposition FROM {name}.bi_calls FORMAT TSV") \
        == "c\tanswered\n"
    with pytest.raises(urllib.error.HTTPError) as err:
        http_query(f"INSERT INTO {name}.events (event_id) SELECT 'x'")
    assert "readonly" in err.value.read().decode().lower()
    db.execute(f"DROP DATABASE {name}")
    db.close()
