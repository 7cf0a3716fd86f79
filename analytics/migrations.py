"""Ordered ClickHouse migrations and their runner (`tongdai db migrate`).

Every migration is a numbered script; the runner applies those not yet recorded in
`<db>.schema_migrations`, in order, and records each one after it succeeded, so running it
twice is a no-op. The SQL is written for the whole supported range — ClickHouse 18.16 (the
local stack's server) up to the current engine (chdb): no DateTime64, no TTL, no window
functions, no Map, no JSONExtract. Times are stored as UInt64 µs since the epoch (UTC) with
DateTime columns derived from them. Retention is `drop_partitions_before` (monthly
partitions), not TTL.

Updatable rows (`calls`, `queue_visits`) live in VersionedCollapsingMergeTree tables: the
sink cancels the row it wrote before (sign -1, same version) and writes the new one
(sign +1, higher version). Reports aggregate with `sign`, so they never see a call twice,
with or without merges, and the per-minute aggregates fed by materialized views stay exact
under updates.
"""
from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from .db import Database, DatabaseError, split_statements

#: Version from which LowCardinality needs no experimental switch (19.9 made it default).
LOW_CARDINALITY_SINCE = (19, 9)
#: Version from which SQL-driven access control (CREATE USER) exists.
CREATE_USER_SINCE = (20, 5)
BI_USER = "tongdai_bi"

MONTHLY_TABLES = ("events", "calls", "queue_visits", "queue_events", "agent_state_intervals",
                  "queue_minute_stats", "agent_minute_stats", "offers")


@dataclass(frozen=True)
class Features:
    """What the connected engine supports, decided from its version."""

    version: tuple[int, ...]

    @property
    def low_cardinality(self) -> bool:
        return self.version >= LOW_CARDINALITY_SINCE

    @property
    def create_user(self) -> bool:
        return self.version >= CREATE_USER_SINCE

    def lc(self) -> str:
        """Type of short repeated strings (tenant, queue, state, disposition)."""
        return "LowCardinality(String)" if self.low_cardinality else "String"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str = ""
    # For steps that depend on the engine beyond `{lc}` (run after `sql`).
    run: Callable[[Database, Features], None] | None = None


_EVENTS = """
CREATE TABLE IF NOT EXISTS {db}.events (
    event_id String,
    type {lc},
    version UInt16,
    occurred_at UInt64,
    ts DateTime DEFAULT toDateTime(intDiv(occurred_at, 1000000)),
    tenant {lc},
    source String,
    seq Int64,
    call_id String,
    payload String,
    topic {lc},
    partition UInt16,
    offset UInt64
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(ts)
ORDER BY (tenant, call_id, occurred_at, event_id);
"""

_CALLS = """
CREATE TABLE IF NOT EXISTS {db}.calls (
    tenant {lc},
    call_id String,
    start_us UInt64,
    start_time DateTime DEFAULT toDateTime(intDiv(start_us, 1000000)),
    direction {lc},
    did String,
    caller String,
    callee String,
    queue {lc},
    agent_id String,
    extension String,
    ivr_path String,
    enqueue_us UInt64,
    offer_us UInt64,
    answer_us UInt64,
    end_us UInt64,
    wait_ms UInt64,
    ring_ms UInt64,
    talk_ms UInt64,
    hold_ms UInt64,
    wrap_ms UInt64,
    disposition {lc},
    hangup_cause {lc},
    recording String,
    notes String,
    queues_visited UInt8,
    offers UInt16,
    ring_no_answer UInt16,
    transfers UInt16,
    final UInt8,
    version UInt64,
    sign Int8
) ENGINE = VersionedCollapsingMergeTree(sign, version)
PARTITION BY toYYYYMM(start_time)
ORDER BY (tenant, start_time, call_id);

CREATE TABLE IF NOT EXISTS {db}.queue_visits (
    tenant {lc},
    call_id String,
    visit UInt8,
    queue {lc},
    enqueue_us UInt64,
    enqueue_time DateTime DEFAULT toDateTime(intDiv(enqueue_us, 1000000)),
    caller String,
    did String,
    outcome {lc},
    short_abandon UInt8,
    agent_id String,
    wait_ms UInt64,
    ring_ms UInt64,
    talk_ms UInt64,
    hold_ms UInt64,
    wrap_ms UInt64,
    offers UInt16,
    ring_no_answer UInt16,
    overflow_target String,
    final UInt8,
    version UInt64,
    sign Int8
) ENGINE = VersionedCollapsingMergeTree(sign, version)
PARTITION BY toYYYYMM(enqueue_time)
ORDER BY (tenant, enqueue_time, queue, call_id, visit);
"""

_QUEUE_EVENTS = """
CREATE TABLE IF NOT EXISTS {db}.queue_events (
    tenant {lc},
    queue {lc},
    ts DateTime,
    occurred_at UInt64,
    type {lc},
    call_id String,
    event_id String,
    agent_id String,
    offer_id String,
    wait_ms UInt64,
    short_abandon UInt8,
    detail String
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(ts)
ORDER BY (tenant, queue, occurred_at, event_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.queue_events_mv TO {db}.queue_events AS
SELECT tenant, visitParamExtractString(payload, 'queue') AS queue, ts, occurred_at, type,
       call_id, event_id,
       visitParamExtractString(payload, 'agent_id') AS agent_id,
       visitParamExtractString(payload, 'offer_id') AS offer_id,
       toUInt64(greatest(visitParamExtractInt(payload, 'wait_ms'), 0)) AS wait_ms,
       toUInt8(visitParamExtractBool(payload, 'short')) AS short_abandon,
       concat(visitParamExtractString(payload, 'action'), ' ',
              visitParamExtractString(payload, 'target')) AS detail
FROM {db}.events
WHERE type IN ('call_enqueued', 'call_offered', 'call_answered', 'call_abandoned',
               'call_overflowed', 'call_ended');
"""

_AGENTS = """
CREATE TABLE IF NOT EXISTS {db}.agent_state_intervals (
    tenant {lc},
    agent_id String,
    extension String,
    state {lc},
    start_us UInt64,
    end_us UInt64,
    start_time DateTime DEFAULT toDateTime(intDiv(start_us, 1000000)),
    duration_ms UInt64 DEFAULT intDiv(end_us - start_us, 1000),
    call_id String,
    reason String
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(start_time)
ORDER BY (tenant, start_time, agent_id, start_us);
"""

_MINUTE_STATS = """
CREATE TABLE IF NOT EXISTS {db}.queue_minute_stats (
    tenant {lc},
    queue {lc},
    minute DateTime,
    offered AggregateFunction(sum, Int64),
    answered AggregateFunction(sum, Int64),
    abandoned AggregateFunction(sum, Int64),
    short_abandoned AggregateFunction(sum, Int64),
    overflowed AggregateFunction(sum, Int64),
    answered_10s AggregateFunction(sum, Int64),
    answered_20s AggregateFunction(sum, Int64),
    answered_30s AggregateFunction(sum, Int64),
    answered_60s AggregateFunction(sum, Int64),
    wait_answered_ms AggregateFunction(sum, Int64),
    talk_ms AggregateFunction(sum, Int64),
    hold_ms AggregateFunction(sum, Int64),
    wrap_ms AggregateFunction(sum, Int64),
    max_wait_ms AggregateFunction(max, UInt64)
) ENGINE = AggregatingMergeTree()
PARTITION BY toYYYYMM(minute)
ORDER BY (tenant, queue, minute);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.queue_minute_stats_mv TO {db}.queue_minute_stats AS
SELECT tenant, queue, toStartOfMinute(enqueue_time) AS minute,
       sumState(toInt64(sign)) AS offered,
       sumState(toInt64(sign * (outcome = 'answered'))) AS answered,
       sumState(toInt64(sign * (outcome = 'abandoned'))) AS abandoned,
       sumState(toInt64(sign * (outcome = 'abandoned' AND short_abandon = 1))) AS short_abandoned,
       sumState(toInt64(sign * (outcome = 'overflowed'))) AS overflowed,
       sumState(toInt64(sign * (outcome = 'answered' AND wait_ms <= 10000))) AS answered_10s,
       sumState(toInt64(sign * (outcome = 'answered' AND wait_ms <= 20000))) AS answered_20s,
       sumState(toInt64(sign * (outcome = 'answered' AND wait_ms <= 30000))) AS answered_30s,
       sumState(toInt64(sign * (outcome = 'answered' AND wait_ms <= 60000))) AS answered_60s,
       sumState(toInt64(sign * if(outcome = 'answered', toInt64(wait_ms), 0))) AS wait_answered_ms,
       sumState(toInt64(sign * toInt64(talk_ms))) AS talk_ms,
       sumState(toInt64(sign * toInt64(hold_ms))) AS hold_ms,
       sumState(toInt64(sign * toInt64(wrap_ms))) AS wrap_ms,
       maxState(if(sign > 0, wait_ms, toUInt64(0))) AS max_wait_ms
FROM {db}.queue_visits
GROUP BY tenant, queue, minute;

CREATE TABLE IF NOT EXISTS {db}.agent_minute_stats (
    tenant {lc},
    agent_id String,
    state {lc},
    minute DateTime,
    duration_ms AggregateFunction(sum, UInt64),
    entered AggregateFunction(sum, UInt64)
) ENGINE = AggregatingMergeTree()
PARTITION BY toYYYYMM(minute)
ORDER BY (tenant, agent_id, state, minute);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.agent_minute_stats_mv TO {db}.agent_minute_stats AS
SELECT tenant, agent_id, state,
       toDateTime(intDiv(start_us, 60000000) * 60
                  + arrayJoin(range(toUInt64(intDiv(end_us - 1, 60000000)
                                             - intDiv(start_us, 60000000) + 1))) * 60) AS minute,
       sumState(toUInt64(intDiv(least(end_us, (toUInt64(minute) + 60) * 1000000)
                                - greatest(start_us, toUInt64(minute) * 1000000), 1000)))
           AS duration_ms,
       sumState(toUInt64(start_us >= toUInt64(minute) * 1000000)) AS entered
FROM {db}.agent_state_intervals
WHERE state != 'logged_out' AND end_us > start_us
GROUP BY tenant, agent_id, state, minute;
"""

_BI_VIEWS = """
CREATE VIEW IF NOT EXISTS {db}.bi_calls AS
SELECT tenant, call_id, start_time,
       toDateTime(intDiv(start_us, 1000000)) AS started_at,
       if(answer_us = 0, NULL, toDateTime(intDiv(answer_us, 1000000))) AS answered_at,
       if(end_us = 0, NULL, toDateTime(intDiv(end_us, 1000000))) AS ended_at,
       direction, did, caller, callee, queue, agent_id, extension, ivr_path,
       wait_ms, ring_ms, talk_ms, hold_ms, wrap_ms, disposition, hangup_cause,
       recording, notes, offers, ring_no_answer, transfers, final
FROM {db}.calls FINAL
WHERE sign = 1;

CREATE VIEW IF NOT EXISTS {db}.bi_queue_calls AS
SELECT tenant, call_id, visit, queue, enqueue_time, caller, did, outcome, short_abandon,
       agent_id, wait_ms, ring_ms, talk_ms, hold_ms, wrap_ms, offers, ring_no_answer,
       overflow_target, final
FROM {db}.queue_visits FINAL
WHERE sign = 1;

CREATE VIEW IF NOT EXISTS {db}.bi_agent_states AS
SELECT tenant, agent_id, extension, state, start_time,
       toDateTime(intDiv(end_us, 1000000)) AS end_time, duration_ms, call_id, reason
FROM {db}.agent_state_intervals FINAL;

CREATE VIEW IF NOT EXISTS {db}.bi_queue_minute AS
SELECT tenant, queue, minute,
       sumMerge(offered) AS offered, sumMerge(answered) AS answered,
       sumMerge(abandoned) AS abandoned, sumMerge(short_abandoned) AS short_abandoned,
       sumMerge(overflowed) AS overflowed,
       sumMerge(answered_10s) AS answered_10s, sumMerge(answered_20s) AS answered_20s,
       sumMerge(answered_30s) AS answered_30s, sumMerge(answered_60s) AS answered_60s,
       sumMerge(wait_answered_ms) AS wait_answered_ms, sumMerge(talk_ms) AS talk_ms,
       sumMerge(hold_ms) AS hold_ms, sumMerge(wrap_ms) AS wrap_ms,
       maxMerge(max_wait_ms) AS max_wait_ms
FROM {db}.queue_minute_stats
GROUP BY tenant, queue, minute;

CREATE VIEW IF NOT EXISTS {db}.bi_agent_minute AS
SELECT tenant, agent_id, state, minute, sumMerge(duration_ms) AS duration_ms,
       sumMerge(entered) AS entered
FROM {db}.agent_minute_stats
GROUP BY tenant, agent_id, state, minute;
"""


_OFFERS = """
ALTER TABLE {db}.calls ADD COLUMN hangup_side {lc} DEFAULT '';

CREATE TABLE IF NOT EXISTS {db}.offers (
    tenant {lc},
    call_id String,
    offer UInt16,
    leg_id String,
    queue {lc},
    agent_id String,
    extension String,
    offered_us UInt64,
    offered_time DateTime DEFAULT toDateTime(intDiv(offered_us, 1000000)),
    answered_us UInt64,
    ended_us UInt64,
    ring_ms UInt64,
    result {lc},
    hangup_cause {lc},
    final UInt8,
    version UInt64,
    sign Int8
) ENGINE = VersionedCollapsingMergeTree(sign, version)
PARTITION BY toYYYYMM(offered_time)
ORDER BY (tenant, offered_time, call_id, offer);

CREATE VIEW IF NOT EXISTS {db}.bi_offers AS
SELECT tenant, call_id, offer, queue, agent_id, extension, offered_time AS offered_at,
       offered_us, if(answered_us = 0, NULL, toDateTime(intDiv(answered_us, 1000000)))
       AS answered_at, ring_ms, result, hangup_cause, leg_id, final
FROM {db}.offers FINAL
WHERE sign = 1;

DROP TABLE IF EXISTS {db}.bi_calls;

CREATE VIEW {db}.bi_calls AS
SELECT tenant, call_id, start_time,
       toDateTime(intDiv(start_us, 1000000)) AS started_at,
       if(answer_us = 0, NULL, toDateTime(intDiv(answer_us, 1000000))) AS answered_at,
       if(end_us = 0, NULL, toDateTime(intDiv(end_us, 1000000))) AS ended_at,
       if(offer_us = 0, NULL, toDateTime(intDiv(offer_us, 1000000))) AS first_offer_at,
       direction, did, caller, callee, queue, agent_id, extension, ivr_path,
       wait_ms, ring_ms, talk_ms, hold_ms, wrap_ms, disposition, hangup_cause, hangup_side,
       recording, notes, offers, ring_no_answer, transfers, final
FROM {db}.calls FINAL
WHERE sign = 1;
"""


_CORRECTIONS = """
ALTER TABLE {db}.calls ADD COLUMN corrections String DEFAULT '';

DROP TABLE IF EXISTS {db}.bi_calls;

CREATE VIEW {db}.bi_calls AS
SELECT tenant, call_id, start_time,
       toDateTime(intDiv(start_us, 1000000)) AS started_at,
       if(answer_us = 0, NULL, toDateTime(intDiv(answer_us, 1000000))) AS answered_at,
       if(end_us = 0, NULL, toDateTime(intDiv(end_us, 1000000))) AS ended_at,
       if(offer_us = 0, NULL, toDateTime(intDiv(offer_us, 1000000))) AS first_offer_at,
       direction, did, caller, callee, queue, agent_id, extension, ivr_path,
       wait_ms, ring_ms, talk_ms, hold_ms, wrap_ms, disposition, hangup_cause, hangup_side,
       recording, notes, offers, ring_no_answer, transfers, final, corrections
FROM {db}.calls FINAL
WHERE sign = 1;
"""


_CALLBACKS = """
ALTER TABLE {db}.calls ADD COLUMN callback {lc} DEFAULT '';

ALTER TABLE {db}.calls ADD COLUMN callback_attempts UInt8 DEFAULT 0;

DROP TABLE IF EXISTS {db}.bi_calls;

CREATE VIEW {db}.bi_calls AS
SELECT tenant, call_id, start_time,
       toDateTime(intDiv(start_us, 1000000)) AS started_at,
       if(answer_us = 0, NULL, toDateTime(intDiv(answer_us, 1000000))) AS answered_at,
       if(end_us = 0, NULL, toDateTime(intDiv(end_us, 1000000))) AS ended_at,
       if(offer_us = 0, NULL, toDateTime(intDiv(offer_us, 1000000))) AS first_offer_at,
       direction, did, caller, callee, queue, agent_id, extension, ivr_path,
       wait_ms, ring_ms, talk_ms, hold_ms, wrap_ms, disposition, hangup_cause, hangup_side,
       recording, notes, offers, ring_no_answer, transfers, final, corrections,
       callback, callback_attempts
FROM {db}.calls FINAL
WHERE sign = 1;
"""


def _bi_user(db: Database, features: Features) -> None:
    """Create the read-only BI user where SQL access control exists.

    ClickHouse 18.16 has no CREATE USER: there the user comes from the server's users.xml
    (see analytics/BI.md and deploy/local/clickhouse/users.xml). chdb runs without access
    management (it answers ACCESS_DENIED), which is also fine: nobody connects to it.
    """
    if not features.create_user:
        return
    try:
        # A random password nobody knows: the user cannot log in until an operator gives
        # it one (ALTER USER ... IDENTIFIED BY, analytics/BI.md); never a passwordless user.
        db.execute(f"CREATE USER IF NOT EXISTS {BI_USER} IDENTIFIED WITH sha256_password "
                   f"BY '{secrets.token_hex(24)}' SETTINGS readonly = 1")
        db.execute(f"GRANT SELECT ON {db.database}.* TO {BI_USER}")
    except DatabaseError as exc:
        if "ACCESS_DENIED" in str(exc) or "access" in str(exc).lower():
            return
        raise


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "raw events", _EVENTS),
    Migration(2, "calls (CDR) and queue visits", _CALLS),
    Migration(3, "queue events from raw events", _QUEUE_EVENTS),
    Migration(4, "agent state intervals", _AGENTS),
    Migration(5, "per-minute queue and agent statistics", _MINUTE_STATS),
    Migration(6, "views for BI tools", _BI_VIEWS),
    Migration(7, "read-only BI user", run=_bi_user),
    Migration(8, "offers (bi_offers), hangup side of calls", _OFFERS),
    Migration(9, "the router's corrections of a call", _CORRECTIONS),
    Migration(10, "a callback the caller asked for, on its call", _CALLBACKS),
)


def _bootstrap(db: Database) -> None:
    db.execute(f"CREATE DATABASE IF NOT EXISTS {db.database}")
    db.execute(f"CREATE TABLE IF NOT EXISTS {db.database}.schema_migrations "
               f"(version UInt32, name String, applied_at DateTime) "
               f"ENGINE = MergeTree() ORDER BY version")


def applied_versions(db: Database) -> list[int]:
    _bootstrap(db)
    return sorted({r[0] for r in db.query(
        f"SELECT version FROM {db.database}.schema_migrations")})


def migrate(db: Database, migrations: tuple[Migration, ...] = MIGRATIONS,
            log: Callable[[str], None] = lambda _: None) -> list[int]:
    """Apply the migrations not yet recorded, in order; return the versions applied now."""
    versions = [m.version for m in migrations]
    if versions != sorted(set(versions)):
        raise ValueError("migration versions must be unique and ascending")
    done = set(applied_versions(db))
    features = Features(db.version())
    applied = []
    for m in migrations:
        if m.version in done:
            continue
        for statement in split_statements(m.sql.format(db=db.database, lc=features.lc())):
            db.execute(statement)
        if m.run is not None:
            m.run(db, features)
        db.insert(f"{db.database}.schema_migrations", ("version", "name", "applied_at"),
                  [(m.version, m.name, dt.datetime.now(dt.timezone.utc).replace(microsecond=0))])
        applied.append(m.version)
        log(f"applied {m.version:03d} {m.name}")
    return applied


def partitions(db: Database, table: str) -> list[str]:
    """Active monthly partitions (YYYYMM) of a table."""
    rows = db.query("SELECT DISTINCT partition FROM system.parts WHERE database = %(db)s "
                    "AND table = %(table)s AND active", {"db": db.database, "table": table})
    return sorted(str(r[0]).strip("'") for r in rows)


def drop_partitions_before(db: Database, month: str,
                           tables: tuple[str, ...] = MONTHLY_TABLES,
                           log: Callable[[str], None] = lambda _: None) -> list[tuple[str, str]]:
    """Retention: drop every monthly partition older than `month` ("YYYYMM" or "YYYY-MM")."""
    cutoff = month.replace("-", "")
    if len(cutoff) != 6 or not cutoff.isdigit():
        raise ValueError(f"month {month!r}: must be YYYYMM or YYYY-MM")
    dropped = []
    for table in tables:
        for part in partitions(db, table):
            if part.isdigit() and part < cutoff:
                db.execute(f"ALTER TABLE {db.database}.{table} DROP PARTITION {int(part)}")
                dropped.append((table, part))
                log(f"dropped {table} partition {part}")
    return dropped
