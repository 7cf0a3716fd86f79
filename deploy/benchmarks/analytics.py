"""Call log at scale: sink ingest rows/s and p50/p95 of every report at N CDRs (10M).

Generates `--rows` realistic CDRs (default 10,000,000; `--quick` 200,000) for 10 tenants
over 60 days, written in time order as the sink writes them (one tenant has 40% of the traffic, business hours weigh most, ~5% of calls
were updated once by the sink so cancel rows exist), with their queue visits and agent
state intervals, and writes them through the sink's own writer (`ClickHouseStore.write`,
batches of `--batch` rows) into a fresh database on the local ClickHouse server (native
protocol). Then it folds and writes the events behind a sample of calls (`--sample`
calls through `CallLog`, the sink's batch step) and times each named report on the
largest tenant: one day, seven days, the last 15 minutes.

Before timing reports it waits for background merges to settle (a running system's steady
state). Figures: ingest rows/s (CDR + queue-visit rows, insert time only; generation is
reported apart; agent intervals separately, their minute view makes them slower), events/s
and calls/s of the event->CDR path, p50/p95 per report (p95 of `--runs` runs).
Needs the local stack's ClickHouse (`tongdai stack up`).
"""
from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import time
import uuid
from typing import Any

import numpy as np

from analytics import migrations, reports
from analytics.agents import INTERVAL_COLUMNS
from analytics.scenario import Scenario, random_calls
from analytics.settings import connect, load
from analytics.sink import (CALL_ROW_COLUMNS, VISIT_ROW_COLUMNS, CallLog, ClickHouseStore,
                            Record)

TZ = reports.DEFAULT_TZ
BASE = dt.datetime(2026, 9, 1, tzinfo=dt.timezone(dt.timedelta(hours=7)))
DAYS = 60
TENANTS = [f"tenant-{i}" for i in range(10)]
TENANT_P = [0.4] + [0.6 / 9] * 9
QUEUES = ["support", "sales", "billing", "tech", "vip"]
AGENTS = {t: (300 if i == 0 else 50) for i, t in enumerate(TENANTS)}
US = 1_000_000

_INBOUND = (["answered", "abandoned", "short_abandoned", "overflowed", "voicemail", "failed",
             "no_answer"], [0.78, 0.10, 0.04, 0.03, 0.02, 0.01, 0.02])
_OUTBOUND = (["answered", "busy", "no_answer"], [0.6, 0.2, 0.2])
_OUTCOME = {"answered": "answered", "abandoned": "abandoned", "short_abandoned": "abandoned",
            "overflowed": "overflowed", "voicemail": "overflowed"}


def _calls_chunk(rng: np.random.Generator, chunk: int, n: int,
                 day: int) -> tuple[list[tuple], list[tuple]]:
    """`n` CDR rows of one day (plus cancel/new pairs for ~5% of them) and their visits."""
    tenant_i = rng.choice(len(TENANTS), n, p=TENANT_P)
    busy = rng.random(n) < 0.85
    local_s = np.where(busy, rng.integers(8 * 3600, 18 * 3600, n), rng.integers(0, 86400, n))
    start_us = ((int(BASE.timestamp()) + day * 86400 + local_s) * US
                + rng.integers(0, US, n)).astype(np.int64)
    kind = rng.random(n)
    direction = np.where(kind < 0.85, 0, np.where(kind < 0.95, 1, 2))
    disp_in = rng.choice(len(_INBOUND[0]), n, p=_INBOUND[1])
    disp_out = rng.choice(len(_OUTBOUND[0]), n, p=_OUTBOUND[1])
    wait = np.minimum(rng.exponential(25_000, n), 600_000).astype(np.int64)
    ring = rng.integers(1_000, 10_000, n)
    talk = np.minimum(rng.lognormal(11.8, 0.7, n), 3_600_000).astype(np.int64)
    hold = np.where(rng.random(n) < 0.2, rng.integers(5_000, 60_000, n), 0)
    wrap = rng.integers(0, 30_000, n)
    queue_i = rng.integers(0, len(QUEUES), n)
    agent_n = rng.integers(1, 301, n)
    caller_n = rng.integers(0, 2_000_000, n)
    updated = rng.random(n) < 0.05
    calls: list[tuple] = []
    visits: list[tuple] = []
    for i in range(n):
        tenant = TENANTS[tenant_i[i]]
        d = int(direction[i])
        s = int(start_us[i])
        call_id = f"b{chunk}-{i}"
        caller = f"+849{caller_n[i]:08d}"
        agent = f"agent-{1 + agent_n[i] % AGENTS[tenant]}"
        if d == 0:
            disp = _INBOUND[0][disp_in[i]]
            queue = QUEUES[queue_i[i]]
            enq = s + 2 * US
            w = int(wait[i]) if disp != "short_abandoned" else int(wait[i] % 5000)
            answered = disp == "answered"
            ans = enq + w * 1000 if answered else 0
            t_ms, h_ms, wr_ms = (int(talk[i]), int(hold[i]), int(wrap[i])) if answered else (0, 0, 0)
            end = ans + (t_ms + h_ms) * 1000 if answered else enq + w * 1000
            row = (tenant, call_id, s, "inbound", "19001234", caller, "19001234", queue,
                   agent if answered else "", "", "1", enq, enq + US if answered else 0, ans,
                   end, w, int(ring[i]) if answered else 0, t_ms, h_ms, wr_ms, disp,
                   "NORMAL_CLEARING", "", "", 1, 1 if answered else 0, 0, 0, 1)
            outcome = _OUTCOME.get(disp, "abandoned")
            visit = (tenant, call_id, 0, queue, enq, caller, "19001234", outcome,
                     1 if disp == "short_abandoned" else 0, agent if answered else "", w,
                     int(ring[i]) if answered else 0, t_ms, h_ms, wr_ms, 1 if answered else 0,
                     0, "voicemail:vm" if disp == "voicemail" else "", 1)
        else:
            disp = _OUTBOUND[0][disp_out[i]] if d == 1 else "answered"
            answered = disp == "answered"
            ans = s + int(ring[i]) * 1000 if answered else 0
            t_ms = int(talk[i]) if answered else 0
            end = (ans or s + int(ring[i]) * 1000) + t_ms * 1000
            row = (tenant, call_id, s, "outbound" if d == 1 else "internal", "",
                   f"1{agent_n[i] % 1000:03d}", caller, "", "", "", "", 0, 0, ans, end, 0, 0,
                   t_ms, 0, 0, disp, "NORMAL_CLEARING" if answered else "USER_BUSY", "", "",
                   0, 0, 0, 0, 1)
            visit = None
        if updated[i]:
            first = row[:19] + (0,) + row[20:28] + (0,)  # before the wrap-up was known
            calls.append(first + (1, 1))
            calls.append(first + (1, -1))
            calls.append(row + (2, 1))
            if visit is not None:
                v1 = visit[:14] + (0,) + visit[15:18] + (0,)
                visits.extend([v1 + (1, 1), v1 + (1, -1), visit + (2, 1)])
        else:
            calls.append(row + (1, 1))
            if visit is not None:
                visits.append(visit + (1, 1))
    return calls, visits


_SHIFT = [("available", 600), ("offered", 10), ("on_call", 240), ("wrap_up", 20),
          ("available", 300), ("offered", 15), ("ring_no_answer", 30), ("available", 120),
          ("offered", 8), ("on_call", 300), ("wrap_up", 25), ("paused", 900)]


def _intervals(tenant: str, agents: int, days: int) -> list[tuple]:
    """An 8-hour shift per agent and day (the last `days` of the range), cycling states."""
    rows = []
    for day in range(DAYS - days, DAYS):
        for a in range(1, agents + 1):
            t = (int(BASE.timestamp()) + day * 86400 + 8 * 3600 + (a % 60) * 7) * US
            end_shift = t + 8 * 3600 * US
            k = a % len(_SHIFT)
            while t < end_shift:
                state, secs = _SHIFT[k % len(_SHIFT)]
                nxt = t + secs * US
                rows.append((tenant, f"agent-{a}", f"1{a:03d}", state, t, nxt, "", ""))
                t, k = nxt, k + 1
    return rows


def _timed(fn, runs: int) -> tuple[float, float]:
    fn()  # warm-up (caches, first connection)
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    p95 = samples[min(len(samples) - 1, int(round(0.95 * (len(samples) - 1))))]
    return statistics.median(samples), p95


def _load(db, args, quick: bool) -> dict[str, Any]:
    """Generate and write the CDRs, visits, intervals and the sample's events."""
    store = ClickHouseStore(db)
    rng = np.random.default_rng(20261122)
    figures: dict[str, Any] = {"cdr_rows": args.rows}
    gen_s = insert_s = 0.0
    rows_written = 0
    done = 0
    chunk = 0
    chunks = max(DAYS, -(-args.rows // args.batch))  # at least one insert per day
    per_chunk = -(-args.rows // chunks)
    while done < args.rows:
        n = min(per_chunk, args.rows - done)
        t0 = time.perf_counter()
        # In time order, as the sink writes: each insert holds calls of one day.
        calls, visits = _calls_chunk(rng, chunk, n, chunk * DAYS // chunks)
        t1 = time.perf_counter()
        store.write("calls", CALL_ROW_COLUMNS, calls)
        store.write("queue_visits", VISIT_ROW_COLUMNS, visits)
        t2 = time.perf_counter()
        gen_s += t1 - t0
        insert_s += t2 - t1
        rows_written += len(calls) + len(visits)
        done += n
        chunk += 1
    figures.update(ingest_rows=rows_written, ingest_s=round(insert_s, 2),
                   ingest_rows_per_s=round(rows_written / insert_s),
                   generate_s=round(gen_s, 2))
    # Agent state intervals of the last two weeks (their minute view splits each one).
    intervals = []
    for i, tenant in enumerate(TENANTS):
        intervals.extend(_intervals(tenant, AGENTS[tenant] if i == 0 else 20, 14))
    t0 = time.perf_counter()
    for k in range(0, len(intervals), args.batch):
        store.write("agent_state_intervals", INTERVAL_COLUMNS, intervals[k:k + args.batch])
    t = time.perf_counter() - t0
    figures.update(interval_rows=len(intervals),
                   interval_ingest_rows_per_s=round(len(intervals) / t))

    # The events behind a sample: the sink's batch step (fold + reloads + writes).
    s = Scenario("sample-tenant")
    random_calls(s, args.sample, int(BASE.timestamp() * US), random.Random(1))
    events = sorted(s.events, key=lambda e: e.occurred_at)
    log = CallLog(store)
    t0 = time.perf_counter()
    for k in range(0, len(events), 5000):
        batch = log.prepare([Record("bench", 0, k + j, e)
                             for j, e in enumerate(events[k:k + 5000])])
        for table, columns, rows in batch.parts():
            if rows:
                store.write(table, columns, rows)
    e2e = time.perf_counter() - t0
    figures.update(sample_events=len(events), sample_calls=args.sample,
                   sink_events_per_s=round(len(events) / e2e),
                   sink_calls_per_s=round(args.sample / e2e))
    figures["merge_wait_s"] = _settle(db)
    return figures


def _settle(db, limit_s: float = 180) -> float:
    """Wait until background merges of the fresh data are done (the steady state of a
    running system), at most `limit_s`; returns the seconds waited."""
    t0 = time.perf_counter()
    quiet = 0
    while time.perf_counter() - t0 < limit_s and quiet < 3:
        (n,) = db.query("SELECT count() FROM system.merges WHERE database = %(d)s",
                        {"d": db.database})[0]
        quiet = quiet + 1 if n == 0 else 0
        time.sleep(1)
    return round(time.perf_counter() - t0, 1)


def run(quick: bool = False, argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="tongdai bench analytics")
    parser.add_argument("--rows", type=int, default=200_000 if quick else 10_000_000,
                        help="CDRs to generate")
    parser.add_argument("--batch", type=int, default=100_000, help="rows per insert")
    parser.add_argument("--sample", type=int, default=300 if quick else 2000,
                        help="calls whose events go through the sink's fold")
    parser.add_argument("--runs", type=int, default=10 if quick else 30,
                        help="timed runs per report")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--reuse", metavar="DATABASE",
                        help="time the reports on a database kept by an earlier --keep run "
                             "(no generation); it is kept unless --drop")
    parser.add_argument("--drop", action="store_true", help="with --reuse: drop it at the end")
    args = parser.parse_args(argv or [])

    settings = load()
    db = connect(settings)
    db.database = args.reuse or f"bench_analytics_{uuid.uuid4().hex[:8]}"
    figures: dict[str, Any] = {}
    try:
        if args.reuse:
            (n,) = db.query(f"SELECT sum(sign) FROM {db.database}.calls")[0]
            figures["cdr_rows"] = int(n)
        else:
            migrations.migrate(db)
            figures.update(_load(db, args, quick))
        # Reports on the largest tenant, on a day near the end of the range.
        tenant = TENANTS[0]
        day = reports.Period.day((BASE + dt.timedelta(days=DAYS - 2)).date())
        week = reports.Period(day.start - dt.timedelta(days=6), day.end)
        now = day.start + dt.timedelta(hours=11)
        (count,) = db.query(f"SELECT count() FROM {db.database}.calls WHERE tenant = %(t)s "
                            f"AND start_time >= toDateTime(%(s)s) AND start_time < "
                            f"toDateTime(%(e)s) AND sign = 1",
                            {"t": tenant, "s": day.params()["start"], "e": day.params()["end"]})[0]
        figures["report_day_calls_count"] = int(count)
        checks = {
            "queue_kpis_day": lambda: reports.queue_kpis(db, tenant, day.start, day.end),
            "queue_kpis_week_by_day": lambda: reports.queue_kpis(db, tenant, week.start,
                                                                 week.end, by="day"),
            "queue_kpis_day_by_hour": lambda: reports.queue_kpis(db, tenant, day.start,
                                                                 day.end, by="hour"),
            "realtime_queues_15min": lambda: reports.realtime_queues(db, tenant, 15, now),
            "agent_performance_day": lambda: reports.agent_performance(db, tenant, day.start,
                                                                       day.end),
            "realtime_agents_15min": lambda: reports.realtime_agents(db, tenant, 15, now),
            "calls_heatmap_week": lambda: reports.calls_heatmap(db, tenant, week.start,
                                                                week.end),
            "missed_calls_day": lambda: reports.missed_calls(db, tenant, day.start, day.end),
            "queue_minutes_day": lambda: reports.queue_minutes(db, tenant, day.start, day.end),
        }
        for name, fn in checks.items():
            p50, p95 = _timed(fn, args.runs)
            figures[f"{name}_p50_ms"] = round(p50, 1)
            figures[f"{name}_p95_ms"] = round(p95, 1)
        figures["worst_report_p95_ms"] = max(v for k, v in figures.items()
                                             if k.endswith("_p95_ms"))
    finally:
        if (not args.keep and not args.reuse) or (args.reuse and args.drop):
            db.execute(f"DROP DATABASE IF EXISTS {db.database}")
        db.close()
    return figures
