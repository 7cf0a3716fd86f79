"""Supervisor reports, call search, call detail, recordings; CSV/XLSX with ?format=."""
from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from flask import Blueprint, Response

from ..auth import SUPERVISORS, Principal
from ..errors import Forbidden
from ..rest import endpoint, services
from . import exports
from . import schemas as s

bp = Blueprint("reports", __name__, url_prefix="/api/v1")
FILE_TYPES = ("application/json", exports.CSV_TYPE, exports.XLSX_TYPE)


def _answer(name: str, q: dict, rows: list[dict[str, Any]],
            columns: Sequence[str] | None = None) -> Any:
    fmt = q.get("format", "json")
    if fmt == "json":
        return {"items": rows}
    limit = services().settings.api_export_max_rows
    rows = rows[:limit]
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    if fmt == "csv":
        data, mime = exports.to_csv(rows, columns), exports.CSV_TYPE
    else:
        data, mime = exports.to_xlsx(rows, columns, sheet=name), exports.XLSX_TYPE
    return Response(data, mimetype=mime.split(";")[0], headers={
        "Content-Disposition": f'attachment; filename="{name}-{stamp}.{fmt}"',
        "Content-Type": mime})


@endpoint(bp, "/reports/queues", "GET", roles=SUPERVISORS, query=s.QueueReportQuery,
          response=s.KpiRows, produces=FILE_TYPES,
          summary="Queue KPIs (offered, answered, abandoned, SL, ASA, AHT, rates) by queue, "
                  "day, hour or total")
def queue_report(who: Principal, q: dict) -> Any:
    return _answer("queues", q, services().reports.queues(who.tenant, q))


@endpoint(bp, "/reports/agents", "GET", roles=SUPERVISORS, query=s.AgentReportQuery,
          response=s.AgentRows, produces=FILE_TYPES,
          summary="Agent performance: handled, AHT, login/pause/available time, occupancy")
def agent_report(who: Principal, q: dict) -> Any:
    return _answer("agents", q, services().reports.agents(who.tenant, q))


@endpoint(bp, "/reports/intervals", "GET", roles=SUPERVISORS, query=s.MinutesQuery,
          response=s.MinuteRows, produces=FILE_TYPES,
          summary="Queue KPIs per minute interval (charts)")
def interval_report(who: Principal, q: dict) -> Any:
    return _answer("intervals", q, services().reports.minutes(who.tenant, q))


@endpoint(bp, "/reports/staffing", "GET", roles=SUPERVISORS, query=s.StaffingQuery,
          response=s.StaffingRows, produces=FILE_TYPES,
          summary="Agents needed per queue and 15-minute interval for a target service "
                  "level (Erlang C and Erlang A with abandonment), next to the agents staffed")
def staffing_report(who: Principal, q: dict) -> Any:
    return _answer("staffing", q, services().reports.staffing(who.tenant, q))


@endpoint(bp, "/reports/heatmap", "GET", roles=SUPERVISORS, query=s.HeatmapQuery,
          response=s.HeatRows, produces=FILE_TYPES,
          summary="Calls per day of week and hour")
def heatmap_report(who: Principal, q: dict) -> Any:
    return _answer("heatmap", q, services().reports.heatmap(who.tenant, q))


@endpoint(bp, "/reports/missed-calls", "GET", roles=SUPERVISORS, query=s.MissedQuery,
          response=s.MissedRows, produces=FILE_TYPES,
          summary="Missed callers not reached since: the call-back list")
def missed_report(who: Principal, q: dict) -> Any:
    return _answer("missed-calls", q, services().reports.missed(who.tenant, q))


@endpoint(bp, "/calls", "GET", roles=SUPERVISORS, query=s.CallSearchQuery,
          response=s.CallPage, produces=FILE_TYPES,
          summary="Call search: number (any form), time range, queue, agent, disposition, "
                  "notes")
def search_calls(who: Principal, q: dict) -> Any:
    if q["format"] != "json":
        q = dict(q, limit=services().settings.api_export_max_rows, offset=0)
    page = services().reports.search(who.tenant, q)
    if q["format"] == "json":
        return page
    return _answer("calls", q, page["items"])


@endpoint(bp, "/calls/<call_id>", "GET", roles=SUPERVISORS, response=s.CallDetailOut,
          summary="One call: CDR, event timeline and routing reasons")
def call_detail(who: Principal, _: None, call_id: str) -> dict:
    return services().reports.call(who.tenant, _call_id(call_id))


@endpoint(bp, "/calls/<call_id>/recording", "GET", roles=SUPERVISORS,
          response=s.RecordingOut,
          summary="Where a call's recording is (VIP queues: only the tenant's "
                  "vip_recording_roles); every access is audited")
def call_recording(who: Principal, _: None, call_id: str) -> dict:
    queue, path = _allowed_recording(who, call_id)
    services().audit.record(who, "recording.read", f"call/{call_id}", {"queue": queue})
    return {"call_id": call_id, "queue": queue, "path": path}


@endpoint(bp, "/calls/<call_id>/recording/audio", "GET", roles=SUPERVISORS,
          query=s.RecordingAudioQuery, produces=("audio/wav",),
          summary="A call's recording (WAV), played in the browser with HTTP range requests "
                  "or downloaded (?download=true); same roles as the recording's entry, "
                  "every listen and download audited")
def call_recording_audio(who: Principal, q: dict, call_id: str) -> Response:
    from flask import request, send_file

    svc = services()
    queue, path = _allowed_recording(who, call_id)
    file = svc.reports.recording_file(who.tenant, path, svc.settings.api_recordings_dir)
    # A browser's player asks for the file in ranges (seeking, buffering): one listen is
    # the request that starts at the beginning; a download is always one.
    ranges = request.range.ranges if request.range is not None else [(0, None)]
    if q["download"] or ranges[0][0] == 0:
        svc.audit.record(who, "recording.download" if q["download"] else "recording.listen",
                         f"call/{call_id}", {"queue": queue})
    return send_file(file, mimetype="audio/wav", conditional=True, etag=True,
                     as_attachment=q["download"], download_name=f"{call_id}.wav",
                     max_age=0)


def _allowed_recording(who: Principal, call_id: str) -> tuple[str, str]:
    """(queue, path) of the call's recording if `who` may have it (VIP queues: only the
    tenant's vip_recording_roles; a refusal is audited)."""
    svc = services()
    queue, path = svc.reports.recording(who.tenant, _call_id(call_id))
    q = svc.view.get(who.tenant, "queue", queue)
    if q is not None and q.data.get("vip"):
        allowed = svc.config.get_tenant(who.tenant).get("vip_recording_roles") or ["admin"]
        if who.role not in allowed:
            svc.audit.record(who, "recording.denied", f"call/{call_id}", {"queue": queue})
            raise Forbidden(f"recordings of VIP queue {queue!r} are for roles: "
                            f"{', '.join(allowed)}")
    return queue, path


def _call_id(value: str) -> str:
    from marshmallow import ValidationError, validate

    try:
        validate.Regexp(r"^[A-Za-z0-9_.:-]{1,100}$", error="not a call id")(value)
    except ValidationError as exc:
        raise ValidationError({"call_id": exc.messages}) from None
    return value
