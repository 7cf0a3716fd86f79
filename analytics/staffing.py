"""Staffing advice per queue and 15-minute interval, next to the staffing there was.

For each interval with calls: the arrival rate (calls offered less short abandons, per
second of the interval), the handle time (talk + hold + wrap-up of its answered calls; the
queue's over the whole period when the interval answered none), and the callers' patience
(the queue's over the period: total time waited by every caller ÷ callers who gave up, the
estimate of an exponential patience that counts the answered callers' waits as censored).
From these, the agents Erlang C and Erlang A (analytics/erlang.py) say the target service
level needs; beside them, the agents there were: the average number of the queue's agents
logged in and not paused (available, ringing, talking, in wrap-up or held out after a
missed call) over the interval, from the agent state intervals.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any
from zoneinfo import ZoneInfo

from . import erlang
from .db import Database
from .reports import DEFAULT_TZ, INTERVAL_LOOKBACK_S, Period, queue_minutes

__all__ = ["staffing", "INTERVAL_S", "STAFFED_STATES", "DEFAULT_AHT_S"]

INTERVAL_S = 900
STAFFED_STATES = frozenset({"available", "offered", "on_call", "wrap_up", "ring_no_answer"})
DEFAULT_AHT_S = 180.0  # a queue that answered nothing in the whole period

_PATIENCE_SQL = """
SELECT queue, sum(sign * toInt64(wait_ms)), sum(sign * toInt64(outcome = 'abandoned'))
FROM {d}.queue_visits
WHERE tenant = %(tenant)s AND enqueue_time >= toDateTime(%(start)s)
  AND enqueue_time < toDateTime(%(end)s)
GROUP BY queue
"""

_STATES_SQL = """
SELECT agent_id, state, start_us, end_us
FROM {d}.agent_state_intervals
WHERE tenant = %(tenant)s AND start_time >= toDateTime(%(lookback)s)
  AND start_time < toDateTime(%(end)s) AND start_us < %(end_us)s AND end_us > %(start_us)s
"""


def _label(slot_s: int, zone: ZoneInfo) -> str:
    return dt.datetime.fromtimestamp(slot_s, zone).strftime("%Y-%m-%d %H:%M:%S")


def staffed_by_interval(rows: Iterable[tuple[str, str, int, int]], start_us: int,
                        end_us: int) -> dict[str, dict[int, float]]:
    """{agent: {interval start (epoch s): share of the interval staffed}} from state
    intervals (agent, state, start µs, end µs); duplicates (a re-written interval) count once."""
    seen: set[tuple[str, int]] = set()
    out: dict[str, dict[int, float]] = {}
    span_us = INTERVAL_S * 1_000_000
    for agent, state, s, e in rows:
        s, e = int(s), int(e)
        if state not in STAFFED_STATES or (agent, s) in seen:
            continue
        seen.add((agent, s))
        s, e = max(s, start_us), min(e, end_us)
        slot = s // span_us * span_us
        while slot < e:
            part = min(e, slot + span_us) - max(s, slot)
            if part > 0:
                cell = out.setdefault(agent, {})
                cell[slot // 1_000_000] = cell.get(slot // 1_000_000, 0.0) + part / span_us
            slot += span_us
    return out


def staffing(db: Database, tenant: str, start: Any, end: Any, tz: str = DEFAULT_TZ,
             target: float = 0.8, t_s: int = 20,
             members: Mapping[str, Iterable[str]] | None = None) -> list[dict[str, Any]]:
    """Per queue and 15-minute interval: demand, agents needed (Erlang C and A) for
    ``target`` answered within ``t_s`` s, and agents staffed. ``members`` (queue → agent
    ids) says whose time counts for a queue; without it, every agent of the tenant."""
    if not 0 < target < 1:
        raise ValueError(f"target must be between 0 and 1 (exclusive), got {target}")
    if t_s <= 0:
        raise ValueError(f"t_s must be > 0, got {t_s}")
    period = Period.of(start, end)
    p = {"tenant": tenant, **period.params(),
         "lookback": period.params()["start"] - INTERVAL_LOOKBACK_S}
    intervals = queue_minutes(db, tenant, start, end, tz, step_minutes=INTERVAL_S // 60)
    patience: dict[str, tuple[float, int]] = {
        q: (int(w) / 1000, int(n)) for q, w, n in db.query(_PATIENCE_SQL.format(d=db.database), p)}
    staffed = staffed_by_interval(db.query(_STATES_SQL.format(d=db.database), p),
                                  p["start_us"], p["end_us"])
    zone = ZoneInfo(tz)
    by_label: dict[str, dict[str, float]] = {}  # label -> agent -> share
    for agent, slots in staffed.items():
        for slot, share in slots.items():
            by_label.setdefault(_label(slot, zone), {})[agent] = share
    handle: dict[str, tuple[float, int]] = {}
    for r in intervals:
        h = handle.get(r["queue"], (0.0, 0))
        handle[r["queue"]] = (h[0] + (r["talk_ms"] + r["hold_ms"] + r["wrap_ms"]) / 1000,
                              h[1] + r["answered"])
    out = []
    for r in intervals:
        q = r["queue"]
        demand = max(0, r["offered"] - r["short_abandoned"])
        rate = demand / INTERVAL_S
        if r["answered"]:
            aht, aht_from = r["aht_ms"] / 1000, "interval"
        elif handle.get(q, (0, 0))[1]:
            aht, aht_from = handle[q][0] / handle[q][1], "period"
        else:
            aht, aht_from = DEFAULT_AHT_S, "default"
        aht = max(aht, 1.0)
        waited_s, gave_up = patience.get(q, (0.0, 0))
        patience_s = waited_s / gave_up if gave_up else None
        need_c = erlang.agents_c(rate, aht, target, t_s)
        need_a = (erlang.agents_a(rate, aht, max(patience_s, 1.0), target, t_s)
                  if patience_s is not None else need_c)
        shares = by_label.get(r["minute"], {})
        wanted = set(members.get(q, ())) if members is not None else None
        had = sum(v for a, v in shares.items() if wanted is None or a in wanted)
        out.append({
            "queue": q, "interval": r["minute"], "offered": r["offered"],
            "answered": r["answered"], "abandoned": r["abandoned"],
            "calls_per_hour": round(rate * 3600, 1), "aht_s": round(aht, 1),
            "aht_from": aht_from,
            "patience_s": round(patience_s, 1) if patience_s is not None else None,
            "service_level": r["service_level"],
            "agents_erlang_c": need_c, "agents_erlang_a": need_a,
            "agents_staffed": round(had, 2), "target": target, "target_s": t_s})
    return out
