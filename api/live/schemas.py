"""Live state answers (LiveStateV1 of the contract, plus counts for wallboards)."""
from __future__ import annotations

from marshmallow import fields

from ..rest import Out


class LiveEwtOut(Out):
    position = fields.Integer(required=True)
    agents_serving = fields.Integer(required=True)
    agents_free = fields.Integer(required=True)
    agents_shared = fields.Integer(required=True)
    talk_s = fields.Integer(required=True)
    wrapup_s = fields.Integer(required=True)
    ring_s = fields.Integer(required=True)
    samples = fields.Integer(required=True)
    reason = fields.String(required=True)


class LiveQueueOut(Out):
    queue = fields.String(required=True)
    waiting = fields.Integer(required=True)
    ringing = fields.Integer(required=True)
    longest_wait_ms = fields.Integer(required=True)
    agents_logged_in = fields.Integer(required=True)
    agents_available = fields.Integer(required=True)
    ewt_s = fields.Integer(allow_none=True, metadata={
        "description": "estimated wait of a caller entering now, seconds (null: no agent serves)"})
    ewt = fields.Nested(LiveEwtOut, allow_none=True, metadata={
        "description": "what the estimate was computed from"})


class LiveAgentOut(Out):
    agent_id = fields.String(required=True)
    extension = fields.String(required=True)
    state = fields.String(required=True)
    since_us = fields.Integer(required=True)
    time_in_state_ms = fields.Integer(required=True)
    pause_reason = fields.String(allow_none=True)
    call_id = fields.String(allow_none=True)


class LiveCallOut(Out):
    call_id = fields.String(required=True)
    queue = fields.String(required=True)
    caller = fields.String(required=True)
    status = fields.String(required=True)
    enqueued_us = fields.Integer(required=True)
    agent_id = fields.String(allow_none=True)
    connected_us = fields.Integer(allow_none=True)
    vip = fields.Boolean()
    position = fields.Integer(allow_none=True, metadata={
        "description": "place in line: 1 = next, 0 = a phone rings for it; null when not in queue"})
    ewt_s = fields.Integer(allow_none=True, metadata={
        "description": "estimated wait left, seconds"})
    callback = fields.String(allow_none=True, metadata={
        "description": "a callback that keeps the caller's place: the number to call back"})


class LiveDecisionOut(Out):
    at_us = fields.Integer(required=True)
    call_id = fields.String(required=True)
    action = fields.String(required=True)
    queue = fields.String(allow_none=True)
    reason = fields.String(required=True)


class LiveOut(Out):
    as_of_us = fields.Integer(allow_none=True, required=True)
    age_ms = fields.Integer(allow_none=True, required=True)
    queues = fields.List(fields.Nested(LiveQueueOut), required=True)
    agents = fields.List(fields.Nested(LiveAgentOut), required=True)
    calls = fields.List(fields.Nested(LiveCallOut), required=True)
    recent = fields.List(fields.Nested(LiveDecisionOut), metadata={
        "description": "the router's latest decisions with their reasons, newest first"})
    agents_by_state = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
    calls_waiting = fields.Integer(required=True)
    calls_in_progress = fields.Integer(required=True)
