"""Named report queries: one definition of every contact-center KPI (deploy/docs/DESIGN.md,
"KPIs").

Counts and sums come from ClickHouse as integers; ratios and means are computed here from
them, once (`_kpis`), so both engines and every grouping agree to the last digit.

Definitions (per queue visit; a call that overflows from one queue to another is offered
to both):
  offered            calls that entered the queue
  answered           connected to an agent from the queue
  abandoned          caller hung up while in the queue (short abandons included)
  short_abandoned    abandoned within the short-abandon threshold (router's verdict, default 5 s)
  overflowed         left the queue by an overflow rule
  service_level      answered within T ÷ (offered − short abandons); T per queue (default 20 s),
                     returned with the result as sl_threshold_s
  asa_ms             mean wait of answered calls
  aht_ms             (talk + hold + wrap-up) ÷ answered
  avg_talk/hold/wrap_ms   per answered call
  abandonment_rate   (abandoned − short abandons) ÷ (offered − short abandons): short abandons
                     are out of both sides, so the rate stays within 0..1
  answer_rate        answered ÷ offered
  max_wait_ms        longest wait of any call in the queue (answered, abandoned or overflowed)
  occupancy          (on-call + wrap-up time) ÷ (on-call + wrap-up + available time)

Only live rows count: a row the sink replaced has a cancel row (sign −1, same version).
Counts and sums are weighted by `sign` (the pair cancels out); maxima, minima and listings
read only rows that have no cancel row (`_live`). Either way reports are exact before and
after background merges.
Times are stored in UTC; every report takes `tz` (default Asia/Ho_Chi_Minh) for day and
hour boundaries, and periods as timezone-aware datetimes (or ISO strings with offset).
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from .db import Database

DEFAULT_TZ = "Asia/Ho_Chi_Minh"
DEFAULT_SL_S = 20
#: Intervals longer than this before a period's start are not looked at (agent reports).
INTERVAL_LOOKBACK_S = 86400
_MISSED = ("abandoned", "abandoned_ringing", "abandoned_ivr", "closed", "overflowed",
           "forwarded", "voicemail", "no_answer", "busy", "failed", "callback_failed")


Thresholds = int | Mapping[str, int]


@dataclass(frozen=True)
class Period:
    start: dt.datetime
    end: dt.datetime

    @classmethod
    def of(cls, start: Any, end: Any) -> Period:
        s, e = _when(start), _when(end)
        if e <= s:
            raise ValueError(f"period end {e.isoformat()} must be after start {s.isoformat()}")
        return cls(s, e)

    @classmethod
    def day(cls, day: dt.date | str, tz: str = DEFAULT_TZ) -> Period:
        """A calendar day in `tz`."""
        d = dt.date.fromisoformat(day) if isinstance(day, str) else day
        start = dt.datetime.combine(d, dt.time(), ZoneInfo(tz))
        return cls(start, start + dt.timedelta(days=1))

    @classmethod
    def last_minutes(cls, minutes: int, now: dt.datetime | None = None) -> Period:
        end = _when(now) if now is not None else dt.datetime.now(dt.timezone.utc)
        return cls(end - dt.timedelta(minutes=minutes), end)

    def params(self) -> dict[str, int]:
        return {"start": int(self.start.timestamp()), "end": int(self.end.timestamp()),
                "start_us": int(self.start.timestamp() * 1_000_000),
                "end_us": int(self.end.timestamp() * 1_000_000)}


def _when(value: Any) -> dt.datetime:
    moment = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
    if not isinstance(moment, dt.datetime) or moment.tzinfo is None:
        raise ValueError(f"{value!r}: give a timezone-aware time (e.g. 2026-11-22T00:00+07:00)")
    return moment


def _thresholds(sl: Thresholds) -> dict[str, Any]:
    if isinstance(sl, int):
        return {"sl_queues": [""], "sl_values": [sl], "sl_default": sl}
    default = int(sl.get("*", DEFAULT_SL_S))
    queues = sorted(q for q in sl if q != "*")
    return {"sl_queues": queues or [""], "sl_values": [int(sl[q]) for q in queues] or [default],
            "sl_default": default}


def _live(table: str, key: str, time_col: str) -> str:
    """Rows not replaced by the sink: sign +1 and no cancel row of the same version."""
    return (f"sign = 1 AND ({key}, version) NOT IN (SELECT {key}, version FROM {{d}}.{table} "
            f"WHERE tenant = %(tenant)s AND {time_col} >= toDateTime(%(start)s) "
            f"AND {time_col} < toDateTime(%(end)s) AND sign = -1)")


_LIVE_VISITS = _live("queue_visits", "call_id, visit", "enqueue_time")
_LIVE_CALLS = _live("calls", "call_id", "start_time")

_GROUPS = {
    "queue": "queue",
    "day": "toString(toDate(enqueue_time, %(tz)s))",
    "hour": "toString(toStartOfHour(toTimeZone(enqueue_time, %(tz)s)))",
    "total": "''",
}

_KPI_SQL = """
SELECT {group} AS k,
       sum(sign) AS offered,
       sum(sign * (outcome = 'answered')) AS answered,
       sum(sign * (outcome = 'abandoned')) AS abandoned,
       sum(sign * (outcome = 'abandoned' AND short_abandon = 1)) AS short_abandoned,
       sum(sign * (outcome = 'overflowed')) AS overflowed,
       sum(sign * (outcome = 'answered' AND wait_ms <= 1000 * transform(
           queue, %(sl_queues)s, %(sl_values)s, %(sl_default)s))) AS answered_within_sl,
       max(transform(queue, %(sl_queues)s, %(sl_values)s, %(sl_default)s)) AS sl_threshold_s,
       sum(sign * if(outcome = 'answered', toInt64(wait_ms), 0)) AS wait_answered_ms,
       sum(sign * if(outcome = 'answered', toInt64(talk_ms), 0)) AS talk_ms,
       sum(sign * if(outcome = 'answered', toInt64(hold_ms), 0)) AS hold_ms,
       sum(sign * if(outcome = 'answered', toInt64(wrap_ms), 0)) AS wrap_ms,
       maxIf(wait_ms, sign = 1) AS max_wait_ms,
       sum(sign * (outcome = 'waiting')) AS waiting,
       minIf(enqueue_us, outcome = 'waiting' AND sign = 1) AS oldest_waiting_us,
       maxIf(wait_ms, sign = -1) AS max_wait_cancelled,
       minIf(enqueue_us, outcome = 'waiting' AND sign = -1) AS oldest_waiting_cancelled
FROM {d}.queue_visits
WHERE tenant = %(tenant)s AND enqueue_time >= toDateTime(%(start)s)
  AND enqueue_time < toDateTime(%(end)s) {queue_filter}
GROUP BY k
HAVING offered != 0
ORDER BY k
"""

# Maxima and minima cannot be retracted by sign: when a replaced row could hold the
# extreme (rare: the longest wait belongs to a call updated since), take them from the
# live rows only.
_EXTREMES_SQL = """
SELECT {group} AS k, max(wait_ms),
       min(if(outcome = 'waiting', enqueue_us, toUInt64(18446744073709551615)))
FROM {d}.queue_visits
WHERE tenant = %(tenant)s AND enqueue_time >= toDateTime(%(start)s)
  AND enqueue_time < toDateTime(%(end)s) {queue_filter} AND {live}
GROUP BY k
"""

_KPI_COUNTS = ("offered", "answered", "abandoned", "short_abandoned", "overflowed",
               "answered_within_sl", "sl_threshold_s", "wait_answered_ms", "talk_ms",
               "hold_ms", "wrap_ms", "max_wait_ms", "waiting", "oldest_waiting_us")


def _ratio(num: float, den: float) -> float | None:
    return None if den <= 0 else num / den


def _kpis(raw: Mapping[str, int]) -> dict[str, Any]:
    """Every derived KPI from the counts and sums: the one place they are defined."""
    offered, answered = raw["offered"], raw["answered"]
    short = raw["short_abandoned"]
    handle = raw["talk_ms"] + raw["hold_ms"] + raw["wrap_ms"]
    out = dict(raw)
    out.update(
        service_level=_ratio(raw["answered_within_sl"], offered - short),
        asa_ms=_ratio(raw["wait_answered_ms"], answered),
        aht_ms=_ratio(handle, answered),
        avg_talk_ms=_ratio(raw["talk_ms"], answered),
        avg_hold_ms=_ratio(raw["hold_ms"], answered),
        avg_wrap_ms=_ratio(raw["wrap_ms"], answered),
        abandonment_rate=_ratio(raw["abandoned"] - short, offered - short),
        answer_rate=_ratio(answered, offered),
    )
    return out


def queue_kpis(db: Database, tenant: str, start: Any, end: Any, by: str = "queue",
               service_level_s: Thresholds = DEFAULT_SL_S, tz: str = DEFAULT_TZ,
               queues: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    """KPIs of queue calls entered in [start, end), grouped by queue, day, hour or total.

    `service_level_s` is one threshold or {queue: seconds, "*": default}.
    """
    if by not in _GROUPS:
        raise ValueError(f"by={by!r}: must be one of {', '.join(_GROUPS)}")
    period = Period.of(start, end)
    params = {"tenant": tenant, "tz": tz, **period.params(), **_thresholds(service_level_s)}
    queue_filter = ""
    if queues:
        queue_filter = "AND queue IN %(queues)s"
        params["queues"] = tuple(queues)
    sql = _KPI_SQL.format(group=_GROUPS[by], d=db.database, queue_filter=queue_filter)
    rows = db.query(sql, params)
    # row: k, the 14 counts (max wait at 12, oldest waiting at 14), then the cancelled ones.
    ambiguous = [r for r in rows
                 if (r[-2] and r[12] <= r[-2]) or (r[-1] and r[14] and r[14] >= r[-1])]
    extremes = {}
    if ambiguous:
        sql = _EXTREMES_SQL.format(group=_GROUPS[by], d="{d}", queue_filter=queue_filter,
                                   live=_LIVE_VISITS).format(d=db.database)
        extremes = {r[0]: (int(r[1]), int(r[2])) for r in db.query(sql, params)}
    out = []
    for row in rows:
        raw = dict(zip(_KPI_COUNTS, (int(v) for v in row[1:-2])))
        if row[0] in extremes:
            raw["max_wait_ms"], raw["oldest_waiting_us"] = extremes[row[0]]
        if raw["oldest_waiting_us"] >= 2 ** 63 or not raw["waiting"]:
            raw["oldest_waiting_us"] = 0
        item = {by: row[0], **_kpis(raw)}
        if by == "total":
            item.pop("total")
        if by != "queue":
            item["sl_threshold_s"] = (service_level_s if isinstance(service_level_s, int)
                                      else dict(service_level_s))
        out.append(item)
    if by == "total" and not out:
        zero = dict.fromkeys(_KPI_COUNTS, 0)
        zero["sl_threshold_s"] = service_level_s if isinstance(service_level_s, int) else 0
        out.append(_kpis(zero))
    return out


def realtime_queues(db: Database, tenant: str, minutes: int = 15, now: Any = None,
                    service_level_s: Thresholds = DEFAULT_SL_S,
                    tz: str = DEFAULT_TZ) -> list[dict[str, Any]]:
    """Queue KPIs of the last `minutes` (calls entered since), plus calls waiting now."""
    period = Period.last_minutes(minutes, now)
    rows = queue_kpis(db, tenant, period.start, period.end, "queue", service_level_s, tz)
    end_us = int(period.end.timestamp() * 1_000_000)
    for r in rows:
        r["oldest_wait_ms"] = ((end_us - r["oldest_waiting_us"]) // 1000
                               if r["waiting"] else 0)
        r["window_minutes"] = minutes
    return rows


_AGENT_CALLS_SQL = """
SELECT agent_id, sum(sign) AS handled, sum(sign * toInt64(talk_ms)),
       sum(sign * toInt64(hold_ms)), sum(sign * toInt64(wrap_ms))
FROM {d}.queue_visits
WHERE tenant = %(tenant)s AND enqueue_time >= toDateTime(%(start)s)
  AND enqueue_time < toDateTime(%(end)s)
  AND (outcome = 'answered' OR (outcome = 'callback' AND agent_id != ''))
GROUP BY agent_id
HAVING handled != 0
"""

_AGENT_STATES_SQL = """
SELECT agent_id, state,
       sum(intDiv(least(end_us, toUInt64(%(end_us)s)) - greatest(start_us, toUInt64(%(start_us)s)),
                  1000)) AS ms,
       countIf(start_us >= %(start_us)s) AS entered
FROM {d}.agent_state_intervals
WHERE tenant = %(tenant)s AND start_time >= toDateTime(%(lookback)s)
  AND start_time < toDateTime(%(end)s) AND start_us < %(end_us)s AND end_us > %(start_us)s
GROUP BY agent_id, state
"""

_HANDLE_STATES = ("on_call", "wrap_up")
_OUT_STATES = ("logged_out",)


def agent_performance(db: Database, tenant: str, start: Any, end: Any,
                      tz: str = DEFAULT_TZ) -> list[dict[str, Any]]:
    """Per agent: handled calls, AHT, state times (login, pause, ...), occupancy, ring-no-answer.

    Calls count in the period they entered the queue; state times are the parts of each
    state interval inside [start, end). Ring-no-answer = times the router put the agent in
    `ring_no_answer` after an offer rang out.
    """
    period = Period.of(start, end)
    p = {"tenant": tenant, "tz": tz, **period.params(),
         "lookback": period.params()["start"] - INTERVAL_LOOKBACK_S}
    calls = db.query(_AGENT_CALLS_SQL.format(d=db.database), p)
    states = db.query(_AGENT_STATES_SQL.format(d=db.database), p)
    agents: dict[str, dict[str, Any]] = {}

    def agent(agent_id: str) -> dict[str, Any]:
        return agents.setdefault(agent_id, {
            "agent_id": agent_id, "handled": 0, "talk_ms": 0, "hold_ms": 0, "wrap_ms": 0,
            "state_ms": {}, "ring_no_answer": 0})

    for agent_id, handled, talk, hold, wrap in calls:
        a = agent(agent_id)
        a.update(handled=int(handled), talk_ms=int(talk), hold_ms=int(hold), wrap_ms=int(wrap))
    for agent_id, state, ms, entered in states:
        a = agent(agent_id)
        a["state_ms"][state] = a["state_ms"].get(state, 0) + int(ms)
        if state == "ring_no_answer":
            a["ring_no_answer"] += int(entered)
    out = []
    for a in sorted(agents.values(), key=lambda x: x["agent_id"]):
        sm = a["state_ms"]
        handle_state_ms = sum(sm.get(s, 0) for s in _HANDLE_STATES)
        a["login_ms"] = sum(v for s, v in sm.items() if s not in _OUT_STATES)
        a["paused_ms"] = sm.get("paused", 0)
        a["available_ms"] = sm.get("available", 0)
        a["aht_ms"] = _ratio(a["talk_ms"] + a["hold_ms"] + a["wrap_ms"], a["handled"])
        a["occupancy"] = _ratio(handle_state_ms, handle_state_ms + a["available_ms"])
        out.append(a)
    return out


def realtime_agents(db: Database, tenant: str, minutes: int = 15, now: Any = None,
                    tz: str = DEFAULT_TZ) -> list[dict[str, Any]]:
    """Agent performance over the last `minutes`."""
    period = Period.last_minutes(minutes, now)
    return agent_performance(db, tenant, period.start, period.end, tz)


_HEATMAP_SQL = """
SELECT toDayOfWeek(toTimeZone(start_time, %(tz)s)) AS dow,
       toHour(toTimeZone(start_time, %(tz)s)) AS hour,
       sum(sign) AS calls, sum(sign * (disposition = 'answered')) AS answered
FROM {d}.calls
WHERE tenant = %(tenant)s AND start_time >= toDateTime(%(start)s)
  AND start_time < toDateTime(%(end)s) AND direction = %(direction)s
GROUP BY dow, hour
HAVING calls != 0
ORDER BY dow, hour
"""


def calls_heatmap(db: Database, tenant: str, start: Any, end: Any, tz: str = DEFAULT_TZ,
                  direction: str = "inbound") -> list[dict[str, Any]]:
    """Calls per (ISO day of week 1=Mon..7, hour 0..23) in `tz`, with how many were answered."""
    period = Period.of(start, end)
    sql = _HEATMAP_SQL.format(d=db.database)
    rows = db.query(sql, {"tenant": tenant, "tz": tz, "direction": direction,
                          **period.params()})
    return [{"day_of_week": int(d), "hour": int(h), "calls": int(c), "answered": int(a)}
            for d, h, c, a in rows]


# Only numbers with a miss are grouped (the set may hold replaced rows: the HAVING
# below counts by sign).
_MISSED_SQL = """
SELECT number, sum(sign * missed) AS missed_calls,
       maxIf(start_us, missed AND sign = 1) AS last_missed_us,
       argMaxIf(queue, start_us, missed AND sign = 1) AS last_queue,
       argMaxIf(did, start_us, missed AND sign = 1) AS last_did,
       maxIf(start_us, reached AND sign = 1) AS last_reached_us
FROM (
    SELECT if(direction = 'inbound', caller, callee) AS number, start_us, queue, did, sign,
           toUInt8(direction = 'inbound' AND disposition IN %(missed)s) AS missed,
           toUInt8(disposition = 'answered') AS reached
    FROM {d}.calls
    WHERE tenant = %(tenant)s AND start_time >= toDateTime(%(start)s)
      AND start_time < toDateTime(%(end_reach)s)
      AND ((direction = 'inbound' AND start_time < toDateTime(%(end)s))
           OR (direction = 'outbound' AND disposition = 'answered'))
      AND if(direction = 'inbound', caller, callee) IN (
          SELECT caller FROM {d}.calls WHERE tenant = %(tenant)s
            AND start_time >= toDateTime(%(start)s) AND start_time < toDateTime(%(end)s)
            AND direction = 'inbound' AND disposition IN %(missed)s AND sign = 1)
)
GROUP BY number
HAVING missed_calls > 0 AND last_reached_us < last_missed_us
ORDER BY last_missed_us DESC
LIMIT %(limit)s
"""


def missed_calls(db: Database, tenant: str, start: Any, end: Any, tz: str = DEFAULT_TZ,
                 include_short: bool = False, limit: int = 1000,
                 reach_days: int = 1) -> list[dict[str, Any]]:
    """Callers to call back: inbound calls missed in [start, end) with no answered inbound
    call from them in the period, nor an answered outbound call to them up to `reach_days`
    after its end, later than their last miss.

    The count of misses is exact (weighted by sign); the time of the last miss is the
    latest start among the versions of a missed call (a call's start only moves when its
    first FreeSWITCH fact arrives after the router's, by seconds)."""
    period = Period.of(start, end)
    missed = _MISSED + (("short_abandoned",) if include_short else ())
    sql = _MISSED_SQL.format(d=db.database)
    # An answered call-back may come after the period's end: look a little further.
    p = {"tenant": tenant, "missed": missed, "limit": limit, **period.params(),
         "end_reach": period.params()["end"] + reach_days * 86400}
    rows = db.query(sql, p)
    zone = ZoneInfo(tz)
    return [{"number": n, "missed_calls": int(c),
             "last_missed_at": dt.datetime.fromtimestamp(int(t) / 1e6, zone).isoformat(),
             "queue": q, "did": d}
            for n, c, t, q, d, _reached in rows]


_MINUTES_SQL = """
SELECT queue, toString(toTimeZone(toDateTime(intDiv(toUInt32(minute), %(step)s) * %(step)s),
                                  %(tz)s)) AS m,
       sumMerge(offered), sumMerge(answered), sumMerge(abandoned), sumMerge(short_abandoned),
       sumMerge(overflowed), sumMerge(answered_20s), sumMerge(wait_answered_ms),
       sumMerge(talk_ms), sumMerge(hold_ms), sumMerge(wrap_ms), maxMerge(max_wait_ms)
FROM {d}.queue_minute_stats
WHERE tenant = %(tenant)s AND minute >= toDateTime(%(start)s) AND minute < toDateTime(%(end)s)
GROUP BY queue, m
ORDER BY queue, m
"""


def queue_minutes(db: Database, tenant: str, start: Any, end: Any, tz: str = DEFAULT_TZ,
                  step_minutes: int = 15) -> list[dict[str, Any]]:
    """Per queue and `step_minutes` (1 = every minute), from the pre-aggregated statistics
    (charts, wallboards). `minute` is the start of each step, in `tz`.

    Service level here uses the 20 s bucket; max wait is an upper bound when calls were
    corrected after the fact (a max cannot be retracted)."""
    period = Period.of(start, end)
    if step_minutes < 1:
        raise ValueError("step_minutes must be at least 1")
    rows = db.query(_MINUTES_SQL.format(d=db.database),
                    {"tenant": tenant, "tz": tz, "step": 60 * step_minutes, **period.params()})
    names = ("offered", "answered", "abandoned", "short_abandoned", "overflowed",
             "answered_within_sl", "wait_answered_ms", "talk_ms", "hold_ms", "wrap_ms",
             "max_wait_ms")
    out = []
    for row in rows:
        raw = dict(zip(names, (int(v) for v in row[2:])))
        raw["sl_threshold_s"] = 20
        out.append({"queue": row[0], "minute": row[1], **_kpis(raw)})
    return out


#: The named reports (what the API and the benchmark call).
REPORTS = {
    "queue_kpis": queue_kpis,
    "realtime_queues": realtime_queues,
    "agent_performance": agent_performance,
    "realtime_agents": realtime_agents,
    "calls_heatmap": calls_heatmap,
    "missed_calls": missed_calls,
    "queue_minutes": queue_minutes,
}
