"""Report, call search and call detail: query (load) and answer (dump) schemas."""
from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from marshmallow import ValidationError, fields, validate, validates_schema

from ..fields import ENTITY_ID, Phone
from ..rest import Out, Strict

MAX_PERIOD = dt.timedelta(days=400)
FORMATS = ("json", "csv", "xlsx")


def _zone(name: str) -> None:
    try:
        ZoneInfo(name)
    except Exception:
        raise ValidationError(f"{name!r} is not a time zone (e.g. Asia/Ho_Chi_Minh)") from None


class PeriodQuery(Strict):
    start = fields.AwareDateTime(required=True, metadata={
        "description": "ISO time with offset, e.g. 2026-11-22T00:00:00+07:00"})
    end = fields.AwareDateTime(required=True)
    tz = fields.String(validate=[validate.Length(max=64), _zone],
                       metadata={"description": "for day/hour boundaries (default "
                                                "Asia/Ho_Chi_Minh)"})
    format = fields.String(load_default="json", validate=validate.OneOf(FORMATS))

    @validates_schema
    def _period(self, data: dict, **_: Any) -> None:
        start, end = data.get("start"), data.get("end")
        if start and end:
            if end <= start:
                raise ValidationError("must be after start", "end")
            if end - start > MAX_PERIOD:
                raise ValidationError("the period may be at most 400 days", "end")
            if start.year < 2000 or end.year > 2200:
                raise ValidationError("must be between 2000 and 2200", "start")


_IDS = fields.List(fields.String(validate=ENTITY_ID), validate=validate.Length(max=100))


class QueueReportQuery(PeriodQuery):
    by = fields.String(load_default="queue",
                       validate=validate.OneOf(["queue", "day", "hour", "total"]))
    queue = fields.List(fields.String(validate=ENTITY_ID), validate=validate.Length(max=100))
    sl_threshold_s = fields.Integer(validate=validate.Range(min=1, max=3600), metadata={
        "description": "one service-level threshold for all queues (default: per queue)"})


class AgentReportQuery(PeriodQuery):
    agent = fields.List(fields.String(validate=ENTITY_ID), validate=validate.Length(max=500))


class MinutesQuery(PeriodQuery):
    queue = fields.List(fields.String(validate=ENTITY_ID), validate=validate.Length(max=100))


class StaffingQuery(PeriodQuery):
    queue = fields.List(fields.String(validate=ENTITY_ID), validate=validate.Length(max=100))
    target = fields.Float(load_default=0.8, validate=validate.Range(min=0.01, max=0.99),
                          metadata={"description": "service level to staff for (0.8 = 80 %)"})
    target_s = fields.Integer(load_default=20, validate=validate.Range(min=1, max=3600),
                              metadata={"description": "answered within this many seconds"})


class HeatmapQuery(PeriodQuery):
    direction = fields.String(load_default="inbound",
                              validate=validate.OneOf(["inbound", "outbound"]))


class MissedQuery(PeriodQuery):
    include_short = fields.Boolean(load_default=False)
    limit = fields.Integer(load_default=1000, validate=validate.Range(min=1, max=10000))


class CallSearchQuery(PeriodQuery):
    number = Phone(metadata={"description": "caller or callee, any +84/84/0 form"})
    queue = fields.List(fields.String(validate=ENTITY_ID), validate=validate.Length(max=100))
    agent = fields.List(fields.String(validate=ENTITY_ID), validate=validate.Length(max=100))
    disposition = fields.List(fields.String(validate=validate.Regexp(r"^[a-z_]{1,40}$")),
                              validate=validate.Length(max=20))
    direction = fields.List(fields.String(validate=validate.OneOf(
        ["inbound", "outbound", "internal"])))
    notes = fields.String(validate=validate.Length(min=1, max=200),
                          metadata={"description": "text contained in the call's notes"})
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0, max=1_000_000))


class KpiOut(Out):
    queue = fields.String()
    day = fields.String()
    hour = fields.String()
    offered = fields.Integer(required=True)
    answered = fields.Integer(required=True)
    abandoned = fields.Integer(required=True)
    short_abandoned = fields.Integer(required=True)
    overflowed = fields.Integer(required=True)
    answered_within_sl = fields.Integer(required=True)
    sl_threshold_s = fields.Raw(metadata={"description": "seconds, or {queue: seconds}"})
    service_level = fields.Float(allow_none=True)
    asa_ms = fields.Float(allow_none=True)
    aht_ms = fields.Float(allow_none=True)
    avg_talk_ms = fields.Float(allow_none=True)
    avg_hold_ms = fields.Float(allow_none=True)
    avg_wrap_ms = fields.Float(allow_none=True)
    abandonment_rate = fields.Float(allow_none=True)
    answer_rate = fields.Float(allow_none=True)
    max_wait_ms = fields.Integer()
    talk_ms = fields.Integer()
    hold_ms = fields.Integer()
    wrap_ms = fields.Integer()
    wait_answered_ms = fields.Integer()
    waiting = fields.Integer()


class AgentPerfOut(Out):
    agent_id = fields.String(required=True)
    handled = fields.Integer(required=True)
    talk_ms = fields.Integer(required=True)
    hold_ms = fields.Integer(required=True)
    wrap_ms = fields.Integer(required=True)
    aht_ms = fields.Float(allow_none=True)
    login_ms = fields.Integer(required=True)
    paused_ms = fields.Integer(required=True)
    available_ms = fields.Integer(required=True)
    occupancy = fields.Float(allow_none=True)
    ring_no_answer = fields.Integer(required=True)
    state_ms = fields.Dict(keys=fields.String(), values=fields.Integer())


class HeatOut(Out):
    day_of_week = fields.Integer(required=True)
    hour = fields.Integer(required=True)
    calls = fields.Integer(required=True)
    answered = fields.Integer(required=True)


class MinuteOut(KpiOut):
    minute = fields.String(required=True)


class StaffingOut(Out):
    queue = fields.String(required=True)
    interval = fields.String(required=True, metadata={"description": "15-minute start, local"})
    offered = fields.Integer(required=True)
    answered = fields.Integer(required=True)
    abandoned = fields.Integer(required=True)
    calls_per_hour = fields.Float(required=True)
    aht_s = fields.Float(required=True)
    aht_from = fields.String(required=True, metadata={
        "description": "interval, period (no call answered in the interval) or default"})
    patience_s = fields.Float(allow_none=True, metadata={
        "description": "mean patience of the queue's callers over the period (null: nobody "
                       "gave up)"})
    service_level = fields.Float(allow_none=True)
    agents_erlang_c = fields.Integer(allow_none=True)
    agents_erlang_a = fields.Integer(allow_none=True)
    agents_staffed = fields.Float(required=True, metadata={
        "description": "the queue's agents logged in and not paused, on average"})
    target = fields.Float(required=True)
    target_s = fields.Integer(required=True)


class MissedOut(Out):
    number = fields.String(required=True)
    missed_calls = fields.Integer(required=True)
    last_missed_at = fields.String(required=True)
    queue = fields.String()
    did = fields.String()


def rows_of(item: type, name: str) -> type:
    return type(name, (Out,), {"items": fields.List(fields.Nested(item), required=True)})


KpiRows = rows_of(KpiOut, "KpiRows")
AgentRows = rows_of(AgentPerfOut, "AgentRows")
HeatRows = rows_of(HeatOut, "HeatRows")
MinuteRows = rows_of(MinuteOut, "MinuteRows")
MissedRows = rows_of(MissedOut, "MissedRows")
StaffingRows = rows_of(StaffingOut, "StaffingRows")


class CallOut(Out):
    call_id = fields.String(required=True)
    started_at = fields.String(required=True)
    start_us = fields.Integer(required=True)
    direction = fields.String()
    did = fields.String()
    caller = fields.String()
    callee = fields.String()
    queue = fields.String()
    agent_id = fields.String()
    extension = fields.String()
    ivr_path = fields.String()
    wait_ms = fields.Integer()
    ring_ms = fields.Integer()
    talk_ms = fields.Integer()
    hold_ms = fields.Integer()
    wrap_ms = fields.Integer()
    disposition = fields.String()
    hangup_cause = fields.String()
    has_recording = fields.Boolean()
    notes = fields.String()
    offers = fields.Integer()
    ring_no_answer = fields.Integer()
    transfers = fields.Integer()
    final = fields.Boolean()
    corrections = fields.String(metadata={
        "description": "what the router corrected about this call against the switch "
                       "(`what->action`, comma-separated), e.g. `offer_bridged_unseen->"
                       "connected` when the answer was lost in a gap; empty: nothing"})
    callback = fields.String(metadata={
        "description": "the callback the caller asked for while waiting (keeping its place): "
                       "`requested` (not over yet), `connected` (an agent reached the "
                       "customer: the call is answered then, by that agent), `failed` (not "
                       "reached after `callback_attempts` attempts), `cancelled`; empty: none"})
    callback_attempts = fields.Integer(metadata={
        "description": "how many times an agent's leg dialled the customer back"})


class CallPage(Out):
    items = fields.List(fields.Nested(CallOut), required=True)
    total = fields.Integer(required=True)
    limit = fields.Integer(required=True)
    offset = fields.Integer(required=True)
    next_offset = fields.Integer(allow_none=True, required=True)


class TimelineOut(Out):
    event_id = fields.String(required=True)
    type = fields.String(required=True)
    at_us = fields.Integer(required=True)
    source = fields.String(required=True)
    payload = fields.Dict(keys=fields.String(), required=True)


class CandidateOut(Out):
    agent_id = fields.String(required=True)
    score = fields.Float(required=True)
    note = fields.String()


class ReasonOut(Out):
    at_us = fields.Integer(required=True)
    decision_id = fields.String(required=True)
    action = fields.String(required=True)
    queue = fields.String(allow_none=True)
    reason = fields.String(required=True)
    chosen = fields.List(fields.String(), required=True)
    candidates = fields.List(fields.Nested(CandidateOut), required=True)


class CallNoteOut(Out):
    id = fields.String(required=True)
    at_us = fields.Integer(required=True)
    text = fields.String(required=True)
    disposition = fields.String(required=True)
    user = fields.String(required=True)
    role = fields.String(required=True)
    outbound_failed = fields.Boolean(required=True)


class CallDetailOut(Out):
    call_id = fields.String(required=True)
    call = fields.Nested(CallOut, allow_none=True, required=True)
    timeline = fields.List(fields.Nested(TimelineOut), required=True)
    routing = fields.List(fields.Nested(ReasonOut), required=True,
                          metadata={"description": "every routing decision with candidates, "
                                                   "scores and reason"})
    notes = fields.List(fields.Nested(CallNoteOut), required=True)


class RecordingAudioQuery(Strict):
    download = fields.Boolean(load_default=False, metadata={
        "description": "as an attachment (`<call id>.wav`) instead of inline playback"})


class RecordingOut(Out):
    call_id = fields.String(required=True)
    queue = fields.String(required=True)
    path = fields.String(required=True)
