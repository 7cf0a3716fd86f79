"""Callbacks in the call log on ClickHouse (issue 19): the router's and the switch's facts
of callbacks (connected after a busy attempt, never reached, still due) among ordinary
calls go through Kafka and the sink (`tongdai sink`'s loop) into ClickHouse 18.16; each
inbound call is one row with its callback's outcome, legs and talk, and the reports read
them as the README says. The views and migration 10 are checked on both engines."""
from __future__ import annotations

import datetime as dt
import uuid

import pytest

from analytics import reports
from analytics.scenario import S, Scenario, us
from analytics.sink import replay

from .test_sink_kafka import consume, db, encoded, produce, settings_for  # noqa: F401

pytestmark = [pytest.mark.analytics, pytest.mark.stack]

T0 = us("2026-11-22T09:00:00+07:00")
DAY = (dt.datetime(2026, 11, 22, tzinfo=dt.timezone.utc), dt.datetime(2026, 11, 23,
                                                                     tzinfo=dt.timezone.utc))


def day_of_callbacks(tenant: str) -> tuple[Scenario, dict[str, dict[str, int]]]:
    s = Scenario(tenant=tenant)
    times = {
        "cb-ok": s.callback_call("cb-ok", T0, "support", "+84912000001",
                                 attempts=("busy", "answer"), agent_id="agent-1"),
        "cb-fail": s.callback_call("cb-fail", T0 + 60 * S, "support", "+84912000002",
                                   attempts=("busy", "no_answer"), max_attempts=2,
                                   agent_id="agent-2"),
        "plain": s.queue_call("plain", T0 + 120 * S, "support", "+84912000003",
                              agent_id="agent-3", wait_s=8, talk_s=30, wrap_s=5),
    }
    due = Scenario(tenant=tenant)
    times["cb-due"] = due.callback_call("cb-due", T0 + 180 * S, "support", "+84912000004")
    s.events += [e for e in due.events if e.occurred_at <= times["cb-due"]["left"] + S]
    return s, times


def bi_calls(database) -> dict[str, dict]:
    cols = ("call_id", "disposition", "callback", "callback_attempts", "agent_id", "talk_ms",
            "wait_ms", "recording", "notes", "final", "answered_at", "ended_at")
    rows = database.query(f"SELECT {', '.join(cols)} FROM {database.database}.bi_calls")
    return {r[0]: dict(zip(cols, r)) for r in rows}


def test_callbacks_through_kafka_are_one_row_per_inbound_call(local_stack, kafka_topic, db):
    tenant = f"cb{uuid.uuid4().hex[:6]}"
    s, times = day_of_callbacks(tenant)
    produce(local_stack.kafka_bootstrap, kafka_topic, encoded(s.events))
    sink = consume(settings_for(local_stack, db, kafka_topic, uuid.uuid4().hex[:8]), db,
                   len(s.events))
    assert sink.stats.batches >= 2 and sink.stats.insert_failures == 0
    assert sink.log.fold_errors == 0

    per_call = dict(db.query(f"SELECT call_id, sum(sign) FROM {db.database}.calls "
                             f"WHERE tenant = %(t)s GROUP BY call_id HAVING sum(sign) != 0",
                             {"t": tenant}))
    assert per_call == {"cb-ok": 1, "cb-fail": 1, "plain": 1, "cb-due": 1}  # no leg's row

    calls = bi_calls(db)
    ok = calls["cb-ok"]
    assert (ok["disposition"], ok["callback"], ok["callback_attempts"], ok["agent_id"],
            ok["talk_ms"], ok["final"]) == ("answered", "connected", 2, "agent-1", 45000, 1)
    assert ok["wait_ms"] == (times["cb-ok"]["answer"] - times["cb-ok"]["enqueue"]) // 1000
    assert ok["answered_at"] == dt.datetime.fromtimestamp(
        times["cb-ok"]["answer"] // S, dt.timezone.utc).replace(tzinfo=None)
    assert ok["recording"].endswith(".wav")
    assert ok["notes"] == "callback to +84912000001: connected at attempt 2"
    fail = calls["cb-fail"]
    assert (fail["disposition"], fail["callback"], fail["callback_attempts"], fail["talk_ms"],
            fail["answered_at"], fail["final"]) == ("callback_failed", "failed", 2, 0, None, 1)
    assert fail["notes"] == ("callback to +84912000002: not reached after 2 attempts "
                             "(USER_BUSY, NO_ANSWER)")
    due = calls["cb-due"]
    assert (due["disposition"], due["callback"], due["ended_at"], due["final"]) == (
        "callback", "requested", None, 0)
    assert (calls["plain"]["disposition"], calls["plain"]["callback"]) == ("answered", "")

    outcomes = dict(db.query(f"SELECT call_id, outcome FROM {db.database}.bi_queue_calls "
                             f"WHERE tenant = %(t)s", {"t": tenant}))
    assert outcomes == {"cb-ok": "callback", "cb-fail": "callback", "cb-due": "callback",
                        "plain": "answered"}

    (kpis,) = reports.queue_kpis(db, tenant, *DAY, by="total")
    assert (kpis["offered"], kpis["answered"], kpis["abandoned"]) == (4, 1, 0)
    handled = {a["agent_id"]: (a["handled"], a["talk_ms"])
               for a in reports.agent_performance(db, tenant, *DAY)}
    assert handled["agent-1"] == (1, 45000) and handled["agent-3"] == (1, 30000)
    assert "agent-2" not in handled or handled["agent-2"][0] == 0
    missed = {m["number"] for m in reports.missed_calls(db, tenant, *DAY)}
    assert missed == {"+84912000002"}  # the callback nobody reached; not the one reached


def test_the_callback_columns_and_views_on_both_engines(engine_db):
    s, times = day_of_callbacks("acme")
    replay(engine_db, sorted(s.events, key=lambda e: e.occurred_at), batch_size=9)
    calls = bi_calls(engine_db)
    assert set(calls) == {"cb-ok", "cb-fail", "plain", "cb-due"}
    assert {k: (c["callback"], c["callback_attempts"]) for k, c in calls.items()} == {
        "cb-ok": ("connected", 2), "cb-fail": ("failed", 2), "plain": ("", 0),
        "cb-due": ("requested", 0)}
