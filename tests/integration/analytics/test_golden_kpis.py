"""Golden KPIs: hand-computed answers for scenario logs, asserted on ClickHouse 18.16
(the local stack's server) and on the current engine (chdb).

The events go through the sink's fold and writer out of order, in small batches, then
again (re-delivered after a "restart": a fresh call log reloading from ClickHouse), so
the numbers also prove that late events update rows and duplicates never show.
"""
from __future__ import annotations

import random

import pytest

from analytics import reports
from analytics.sink import replay
from tests.fixtures.analytics import golden

from .conftest import ENGINES, drop_database, make_database

pytestmark = [pytest.mark.analytics]


def _shuffled(events, seed):
    """What a consumer of two topics sees: each topic's records in order (one partition per
    tenant), the two topics interleaved at random, so FreeSWITCH facts and router facts of
    a call arrive late or early relative to each other by up to dozens of records."""
    rng = random.Random(seed)
    events = sorted(events, key=lambda e: e.occurred_at)  # a log is in time order
    fs = [e for e in events if e.source != "router"]
    cc = [e for e in events if e.source == "router"]
    out = []
    while fs or cc:
        src = fs if (fs and (not cc or rng.random() < 0.5)) else cc
        take = rng.randint(1, 40)
        out.extend(src[:take])
        del src[:take]
    return out


@pytest.fixture(scope="module", params=ENGINES)
def loaded(request):
    db = make_database(request, request.param, "golden")
    try:
        events = golden.acme().events + golden.beta().events
        replay(db, _shuffled(events, 7), batch_size=17)
        # Re-delivery after a restart: a new call log, state reloaded from ClickHouse.
        replay(db, _shuffled(events, 11)[: len(events) // 2], batch_size=23)
        yield db
    finally:
        drop_database(db)


def _check(row, expected):
    for key, value in expected.items():
        assert row[key] == pytest.approx(value), (key, row[key], value)


def test_queue_kpis_per_queue(loaded):
    day = reports.Period.day(golden.DAY, golden.TZ)
    rows = reports.queue_kpis(loaded, "acme", day.start, day.end, service_level_s=golden.SL,
                              tz=golden.TZ)
    by_queue = {r["queue"]: r for r in rows}
    assert set(by_queue) == {"support", "sales"}
    _check(by_queue["support"], golden.SUPPORT)
    _check(by_queue["sales"], golden.SALES)


def test_queue_kpis_total_and_by_day(loaded):
    day = reports.Period.day(golden.DAY)
    (total,) = reports.queue_kpis(loaded, "acme", day.start, day.end, by="total",
                                  service_level_s=golden.SL)
    assert total["offered"] == 13 and total["answered"] == 7
    assert total["answered_within_sl"] == 6  # sales counts with its own 30 s threshold
    assert total["service_level"] == pytest.approx(6 / 12)
    # Local days: c08 (UTC 21 Nov) belongs to the 22nd, c09 (UTC 22 Nov) to the 23rd.
    wide = reports.Period.of("2026-11-21T00:00:00+07:00", "2026-11-24T00:00:00+07:00")
    days = reports.queue_kpis(loaded, "acme", wide.start, wide.end, by="day",
                              service_level_s=golden.SL)
    assert [(d["day"], d["offered"]) for d in days] == [("2026-11-22", 13), ("2026-11-23", 1)]
    utc_days = reports.queue_kpis(loaded, "acme", wide.start, wide.end, by="day", tz="UTC")
    assert [(d["day"], d["offered"]) for d in utc_days] == [
        ("2026-11-21", 1), ("2026-11-22", 13)]


def test_dispositions_and_cdr_fields(loaded):
    rows = loaded.query(
        f"SELECT call_id, disposition, transfers, ring_no_answer, wrap_ms, final, recording "
        f"FROM {loaded.database}.bi_calls WHERE tenant = 'acme' ORDER BY call_id")
    got = {r[0]: r for r in rows}
    assert {k: v[1] for k, v in got.items()} == golden.DISPOSITIONS
    assert got["c10"][2] == 1  # transferred once
    assert got["c02"][3] == 1  # agent-5 rang out
    assert got["c01"][4] == 15000 and got["c01"][5] == 1
    assert got["c01"][6].endswith("c01.wav")
    # Exactly one live row per call in the collapsed view and in the sign sums.
    (n,) = loaded.query(f"SELECT sum(sign) FROM {loaded.database}.calls WHERE tenant = 'acme'")[0]
    assert n == len(golden.DISPOSITIONS)


def test_heatmap(loaded):
    day = reports.Period.day(golden.DAY)
    rows = reports.calls_heatmap(loaded, "acme", day.start, day.end)
    assert {(r["day_of_week"], r["hour"]): (r["calls"], r["answered"]) for r in rows} \
        == golden.HEATMAP


def test_missed_calls_to_call_back(loaded):
    day = reports.Period.day(golden.DAY)
    rows = reports.missed_calls(loaded, "acme", day.start, day.end)
    assert [(r["number"], r["missed_calls"], r["last_missed_at"]) for r in rows] == golden.MISSED
    with_short = reports.missed_calls(loaded, "acme", day.start, day.end, include_short=True)
    assert len(with_short) == 3


def test_agent_performance(loaded):
    rows = reports.agent_performance(loaded, "beta", "2026-11-22T08:00:00+07:00",
                                     "2026-11-22T12:00:00+07:00")
    (agent,) = rows
    _check({**agent, **{f"state_{k}": v for k, v in agent["state_ms"].items()}},
           {**{k: v for k, v in golden.AGENT_DAY.items() if k != "state_ms"},
            **{f"state_{k}": v for k, v in golden.AGENT_DAY["state_ms"].items()}})
    (window,) = reports.agent_performance(loaded, "beta", "2026-11-22T09:15:00+07:00",
                                          "2026-11-22T09:45:00+07:00")
    _check(window, golden.AGENT_WINDOW)


def test_acme_agents_ring_no_answer_and_handled(loaded):
    day = reports.Period.day(golden.DAY)
    rows = {r["agent_id"]: r for r in reports.agent_performance(loaded, "acme", day.start, day.end)}
    assert rows["agent-5"]["ring_no_answer"] == 1 and rows["agent-5"]["handled"] == 0
    assert rows["agent-7"]["handled"] == 3  # c01, c07, c10
    assert rows["agent-3"]["handled"] == 3  # c02, c08, c11 (c09 is the next local day)
    assert rows["agent-7"]["aht_ms"] == pytest.approx((135 + 135 + 95) * 1000 / 3)  # talk+hold+wrap


def test_realtime_reports(loaded):
    rows = reports.realtime_queues(loaded, "acme", minutes=30, now="2026-11-22T09:40:00+07:00",
                                   service_level_s=golden.SL)
    (support,) = rows
    # 09:10-09:40: c02 (entered 09:10:00, answered), c03 (short), c04 (abandoned)
    assert (support["offered"], support["answered"], support["abandoned"]) == (3, 1, 2)
    assert support["window_minutes"] == 30
    agents = reports.realtime_agents(loaded, "beta", minutes=60, now="2026-11-22T10:00:00+07:00")
    assert agents[0]["paused_ms"] == 1_800_000


def test_minute_aggregates_match_the_call_log(loaded):
    day = reports.Period.day(golden.DAY)
    minutes = reports.queue_minutes(loaded, "acme", day.start, day.end)
    support = [m for m in minutes if m["queue"] == "support"]
    for key in ("offered", "answered", "abandoned", "short_abandoned", "overflowed",
                "wait_answered_ms", "talk_ms", "hold_ms", "wrap_ms"):
        assert sum(m[key] for m in support) == golden.SUPPORT[key], key
    assert sum(m["answered_within_sl"] for m in support) == golden.SUPPORT["answered_within_sl"]
    agent = loaded.query(
        f"SELECT state, sum(duration_ms) FROM {loaded.database}.bi_agent_minute "
        f"WHERE tenant = 'beta' GROUP BY state ORDER BY state")
    assert dict(agent) == golden.AGENT_DAY["state_ms"]


def test_the_bi_guides_kpi_query_gives_the_same_numbers(loaded):
    from pathlib import Path

    guide = Path(__file__).resolve().parents[3] / "analytics" / "BI.md"
    sql = guide.read_text().split("```sql")[1].split("```")[0]
    rows = {r[0]: r for r in loaded.query(sql.replace("tongdai.", f"{loaded.database}."))}
    s = golden.SUPPORT
    assert rows["support"][1:5] == (s["offered"], s["answered"], s["abandoned"],
                                    s["short_abandoned"])
    assert rows["support"][5:10] == pytest.approx((s["service_level"], s["asa_ms"], s["aht_ms"],
                                                   s["abandonment_rate"], s["answer_rate"]))
