"""Reports, call search and call detail over ClickHouse, through `analytics`.

The KPI reports are analytics' named queries (analytics/reports.py: one definition of
every KPI); this module adds the tenant scope, the per-queue service-level thresholds from
the configuration, and call search/detail over analytics' `calls` and `events` tables.
"""
from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from typing import Any

import orjson

from routing import numbers

from ..config.view import ConfigView
from ..errors import NotFound, Unavailable

DEFAULT_SL_S = 20

_CALL_COLUMNS = ("call_id", "start_us", "direction", "did", "caller", "callee", "queue",
                 "agent_id", "extension", "ivr_path", "wait_ms", "ring_ms", "talk_ms",
                 "hold_ms", "wrap_ms", "disposition", "hangup_cause", "recording", "notes",
                 "offers", "ring_no_answer", "transfers", "final", "corrections",
                 "callback", "callback_attempts")

# Live rows only, without FINAL (slow on 18.16): a row the sink replaced has a cancel row
# (sign -1, same version), as analytics.reports does it.
_CALLS_WHERE = """
FROM {d}.calls
WHERE tenant = %(tenant)s AND sign = 1 AND start_time >= toDateTime(%(start)s)
  AND start_time < toDateTime(%(end)s) {filters}
  AND (call_id, version) NOT IN (
      SELECT call_id, version FROM {d}.calls WHERE tenant = %(tenant)s AND sign = -1
        AND start_time >= toDateTime(%(start)s) AND start_time < toDateTime(%(end)s))
"""


def number_forms(number: str) -> tuple[str, ...]:
    """The forms a number may be stored in: E.164, national (0…), bare digits."""
    forms = {number}
    try:
        e164 = numbers.to_e164(number)
        forms.add(e164)
        forms.add(e164.lstrip("+"))
        forms.add(numbers.national_number(e164))
    except ValueError:
        pass
    return tuple(sorted(f for f in forms if f))


class ReportService:
    """Everything that reads ClickHouse. `connect` makes the analytics Database (lazily:
    the API starts without ClickHouse and answers 503 on these routes until it is up)."""

    def __init__(self, connect: Callable[[], Any] | None, view: ConfigView, tz: str,
                 notes: Any = None) -> None:
        self._connect = connect
        self.notes = notes
        self._db = None
        self._lock = threading.Lock()
        self.view = view
        self.tz = tz
        try:
            from analytics import reports as _reports
            self._reports = _reports
        except ImportError:  # analytics not installed with this API
            self._reports = None

    @property
    def db(self) -> Any:
        if self._connect is None or self._reports is None:
            raise Unavailable("reports not available (analytics is not configured)")
        with self._lock:
            if self._db is None:
                self._db = self._connect()
            return self._db

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        from analytics.db import DatabaseError

        db = self.db
        try:
            return fn(db, *args, **kwargs)
        except DatabaseError as exc:
            raise Unavailable(f"reports not available: {str(exc)[:200]}") from None

    def thresholds(self, tenant: str) -> dict[str, int]:
        out = {"*": DEFAULT_SL_S}
        for qid, entry in self.view.items(tenant, "queue"):
            if entry.data.get("sl_threshold_s"):
                out[qid] = int(entry.data["sl_threshold_s"])
        return out

    # ---- KPI reports (analytics.reports) ------------------------------------------

    def queues(self, tenant: str, q: dict[str, Any]) -> list[dict[str, Any]]:
        sl = q.get("sl_threshold_s") or self.thresholds(tenant)
        return self._call(self._reports.queue_kpis, tenant, q["start"], q["end"], q["by"],
                          sl, q.get("tz") or self.tz, tuple(q["queue"]) if q.get("queue") else None)

    def agents(self, tenant: str, q: dict[str, Any]) -> list[dict[str, Any]]:
        rows = self._call(self._reports.agent_performance, tenant, q["start"], q["end"],
                          q.get("tz") or self.tz)
        if q.get("agent"):
            rows = [r for r in rows if r["agent_id"] in q["agent"]]
        return rows

    def heatmap(self, tenant: str, q: dict[str, Any]) -> list[dict[str, Any]]:
        return self._call(self._reports.calls_heatmap, tenant, q["start"], q["end"],
                          q.get("tz") or self.tz, q["direction"])

    def minutes(self, tenant: str, q: dict[str, Any]) -> list[dict[str, Any]]:
        rows = self._call(self._reports.queue_minutes, tenant, q["start"], q["end"],
                          q.get("tz") or self.tz)
        if q.get("queue"):
            rows = [r for r in rows if r["queue"] in q["queue"]]
        return rows

    def staffing(self, tenant: str, q: dict[str, Any]) -> list[dict[str, Any]]:
        from analytics import staffing

        members: dict[str, list[str]] = {}
        for agent_id, entry in self.view.items(tenant, "agent"):
            for qid in (entry.data.get("queues") or {}):
                members.setdefault(qid, []).append(agent_id)
        # A tenant with no agent configured here (its configuration not read yet) counts
        # every agent seen in the call log, rather than none.
        rows = self._call(staffing.staffing, tenant, q["start"], q["end"],
                          q.get("tz") or self.tz, q["target"], q["target_s"],
                          members if any(True for _ in self.view.items(tenant, "agent"))
                          else None)
        if q.get("queue"):
            rows = [r for r in rows if r["queue"] in q["queue"]]
        return rows

    def missed(self, tenant: str, q: dict[str, Any]) -> list[dict[str, Any]]:
        return self._call(self._reports.missed_calls, tenant, q["start"], q["end"],
                          q.get("tz") or self.tz, q["include_short"], q["limit"])

    # ---- calls ----------------------------------------------------------------------

    def _call_filters(self, tenant: str, q: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        params: dict[str, Any] = {"tenant": tenant, "start": int(q["start"].timestamp()),
                                  "end": int(q["end"].timestamp())}
        filters = []
        if q.get("number"):
            params["numbers"] = number_forms(q["number"])
            filters.append("AND (caller IN %(numbers)s OR callee IN %(numbers)s)")
        for name, column in (("queue", "queue"), ("agent", "agent_id"),
                             ("disposition", "disposition"), ("direction", "direction")):
            if q.get(name):
                params[name] = tuple(q[name])
                filters.append(f"AND {column} IN %({name})s")
        if q.get("notes"):
            params["notes"] = q["notes"]
            noted = self.notes.matching(tenant, q["notes"]) if self.notes else set()
            if noted:
                params["noted"] = tuple(sorted(noted))
                filters.append("AND (positionCaseInsensitiveUTF8(notes, %(notes)s) > 0 "
                               "OR call_id IN %(noted)s)")
            else:
                filters.append("AND positionCaseInsensitiveUTF8(notes, %(notes)s) > 0")
        return " ".join(filters), params

    def search(self, tenant: str, q: dict[str, Any]) -> dict[str, Any]:
        from analytics.db import DatabaseError

        filters, params = self._call_filters(tenant, q)
        db = self.db
        where = _CALLS_WHERE.format(d=db.database, filters=filters)
        extras = self._failed_outbound(tenant, q)
        if extras:  # merge the note-only failed calls by time: read the SQL rows up to the page end
            params.update(limit=min(q["offset"] + q["limit"], 20000), offset=0)
        else:
            params.update(limit=q["limit"], offset=q["offset"])
        try:
            total = int(db.query("SELECT count() " + where, params)[0][0])
            rows = db.query(f"SELECT {', '.join(_CALL_COLUMNS)} {where} "
                            f"ORDER BY start_us DESC, call_id LIMIT %(offset)s, %(limit)s",
                            params)
        except DatabaseError as exc:
            raise Unavailable(f"call search not available: {str(exc)[:200]}") from None
        items = [self._call_row(r) for r in rows]
        if self.notes is not None:
            for item in items:
                extra = [n["text"] for n in self.notes.of_call(tenant, item["call_id"])]
                if extra:
                    item["notes"] = "; ".join(([item["notes"]] if item["notes"] else []) + extra)
        if extras:
            total += len(extras)
            merged = sorted(items + extras, key=lambda c: (-c["start_us"], c["call_id"]))
            items = merged[q["offset"]:q["offset"] + q["limit"]]
        nxt = q["offset"] + q["limit"]
        return {"items": items, "total": total, "limit": q["limit"], "offset": q["offset"],
                "next_offset": nxt if nxt < total else None}

    def _failed_outbound(self, tenant: str, q: dict[str, Any]) -> list[dict[str, Any]]:
        """Note-only failed outbound calls that match the search (0 duration)."""
        if self.notes is None:
            return []
        start_us, end_us = int(q["start"].timestamp() * 1e6), int(q["end"].timestamp() * 1e6)
        forms = set(number_forms(q["number"])) if q.get("number") else None
        out = []
        for row in self.notes.failed_outbound(tenant):
            if not start_us <= row["start_us"] < end_us:
                continue
            if forms is not None and row["callee"] not in forms:
                continue
            if q.get("agent") and row["agent_id"] not in q["agent"]:
                continue
            if q.get("queue") or (q.get("disposition") and "failed" not in q["disposition"]):
                continue
            if q.get("direction") and "outbound" not in q["direction"]:
                continue
            if q.get("notes") and q["notes"].lower() not in row["notes"].lower():
                continue
            out.append(self._dated(dict(row)))
        return out

    @staticmethod
    def _dated(item: dict[str, Any]) -> dict[str, Any]:
        item["started_at"] = dt.datetime.fromtimestamp(
            item["start_us"] / 1e6, dt.timezone.utc).isoformat()
        return item

    def _call_row(self, row: tuple) -> dict[str, Any]:
        item = dict(zip(_CALL_COLUMNS, row))
        for k in ("start_us", "wait_ms", "ring_ms", "talk_ms", "hold_ms", "wrap_ms", "offers",
                  "ring_no_answer", "transfers", "callback_attempts"):
            item[k] = int(item[k])
        item["final"] = bool(item["final"])
        item["has_recording"] = bool(item.pop("recording"))
        item["started_at"] = dt.datetime.fromtimestamp(
            item["start_us"] / 1e6, dt.timezone.utc).isoformat()
        return item

    def call(self, tenant: str, call_id: str) -> dict[str, Any]:
        """One call: its CDR row, its event timeline and the routing reasons."""
        from analytics.db import DatabaseError

        db = self.db
        try:
            rows = db.query(f"SELECT {', '.join(_CALL_COLUMNS)} FROM {db.database}.calls FINAL "
                            f"WHERE tenant = %(tenant)s AND call_id = %(call_id)s AND sign = 1 "
                            f"ORDER BY version DESC LIMIT 1",
                            {"tenant": tenant, "call_id": call_id})
            events = db.query(f"SELECT event_id, type, occurred_at, source, payload "
                              f"FROM {db.database}.events WHERE tenant = %(tenant)s "
                              f"AND call_id = %(call_id)s ORDER BY occurred_at, event_id",
                              {"tenant": tenant, "call_id": call_id})
        except DatabaseError as exc:
            raise Unavailable(f"call detail not available: {str(exc)[:200]}") from None
        notes = self.notes.of_call(tenant, call_id) if self.notes else []
        if not rows and not events and not notes:
            raise NotFound(f"no call {call_id!r}")
        seen: set[str] = set()
        timeline, reasons = [], []
        for event_id, type_, at, source, payload in events:
            if event_id in seen:
                continue
            seen.add(event_id)
            body = orjson.loads(payload) if payload else {}
            timeline.append({"event_id": event_id, "type": type_, "at_us": int(at),
                             "source": source, "payload": body})
            if type_ == "decision_made":
                reasons.append({"at_us": int(at), "decision_id": body.get("decision_id", ""),
                                "action": body.get("action", ""), "queue": body.get("queue"),
                                "reason": body.get("reason", ""),
                                "chosen": body.get("chosen", []),
                                "candidates": body.get("candidates", [])})
        call = self._call_row(rows[0]) if rows else None
        if call is None and notes:
            failed = [r for r in self.notes.failed_outbound(tenant) if r["call_id"] == call_id]
            call = self._dated(dict(failed[0])) if failed else None
        return {"call_id": call_id, "call": call, "timeline": timeline, "routing": reasons,
                "notes": notes}

    def exists(self, tenant: str, call_id: str) -> bool:
        """Whether the tenant's call log knows this call (CDR row or any event)."""
        from analytics.db import DatabaseError

        db = self.db
        try:
            rows = db.query(f"SELECT count() FROM {db.database}.events "
                            f"WHERE tenant = %(tenant)s AND call_id = %(call_id)s",
                            {"tenant": tenant, "call_id": call_id})
        except DatabaseError as exc:
            raise Unavailable(f"call log not available: {str(exc)[:200]}") from None
        return bool(rows and int(rows[0][0]))

    def handled_by(self, tenant: str, call_id: str, agent_id: str) -> bool:
        """Whether the call log says `agent_id` answered this call of the tenant."""
        from analytics.db import DatabaseError

        db = self.db
        try:
            rows = db.query(f"SELECT count() FROM {db.database}.events "
                            f"WHERE tenant = %(tenant)s AND call_id = %(call_id)s "
                            f"AND type = 'call_answered' "
                            f"AND visitParamExtractString(payload, 'agent_id') = %(agent)s",
                            {"tenant": tenant, "call_id": call_id, "agent": agent_id})
        except DatabaseError as exc:
            raise Unavailable(f"call log not available: {str(exc)[:200]}") from None
        return bool(rows and int(rows[0][0]))

    @staticmethod
    def recording_file(tenant: str, path: str, recordings_dir: str) -> str:
        """The file of a recording the switch wrote at `path`, in this API's view of the
        recordings folder: only its last three parts count (<tenant>/<date>/<call>.wav),
        the tenant must be the caller's, and nothing outside the folder is ever served."""
        import os
        import re

        if not recordings_dir:
            raise Unavailable("recordings are not served here (set TONGDAI_API_RECORDINGS_DIR)")
        parts = path.replace("\\", "/").split("/")[-3:]
        if (len(parts) != 3 or parts[0] != tenant
                or not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", parts[1])
                or not re.fullmatch(r"[A-Za-z0-9_.:-]{1,100}\.wav", parts[2])):
            raise NotFound("no recording file for this call")
        file = os.path.join(recordings_dir, *parts)
        if not os.path.isfile(file):
            raise NotFound("the recording's file is not (or no longer) there")
        return file

    def recording(self, tenant: str, call_id: str) -> tuple[str, str]:
        """(queue, recording path) of a call; NotFound if it has no recording."""
        from analytics.db import DatabaseError

        db = self.db
        try:
            rows = db.query(f"SELECT queue, recording FROM {db.database}.calls FINAL "
                            f"WHERE tenant = %(tenant)s AND call_id = %(call_id)s AND sign = 1 "
                            f"ORDER BY version DESC LIMIT 1",
                            {"tenant": tenant, "call_id": call_id})
        except DatabaseError as exc:
            raise Unavailable(f"recordings not available: {str(exc)[:200]}") from None
        if not rows or not rows[0][1]:
            raise NotFound(f"no recording of call {call_id!r}")
        return str(rows[0][0]), str(rows[0][1])
