"""Agent commands and click-to-call: requests and answers."""
from __future__ import annotations

from marshmallow import fields, validate

from ..fields import ENTITY_ID, Phone
from ..rest import Out, Strict

COMMANDS = {"login": "agent_login_requested", "logout": "agent_logout_requested",
            "pause": "agent_pause_requested", "resume": "agent_resume_requested",
            "ready": "agent_ready_requested"}


class AgentCommandLoad(Strict):
    reason = fields.String(load_default="", validate=validate.Length(max=100),
                           metadata={"description": "pause reason (e.g. lunch, training)"})


class CommandOut(Out):
    command_id = fields.String(required=True)
    type = fields.String(required=True)
    agent_id = fields.String(required=True)
    status = fields.String(required=True, metadata={
        "description": "accepted: stored in the log; pending: Kafka has not confirmed it "
                       "yet, it is queued and applies when Kafka takes it"})


class ClickToCallLoad(Strict):
    agent_id = fields.String(required=True, validate=ENTITY_ID)
    number = Phone(required=True, metadata={"description": "+84…, 84… or 0… form"})


class ClickToCallOut(Out):
    request_id = fields.String(required=True)
    call_id = fields.String(required=True, metadata={
        "description": "the call's id (the agent phone's leg): notes and the call log use it"})
    agent_id = fields.String(required=True)
    number = fields.String(required=True)
    caller_id = fields.String(required=True,
                              metadata={"description": "presented to the customer"})


STATES = ("available", "offered", "on_call", "wrap_up", "paused", "ring_no_answer",
          "offline", "logged_out", "unknown")


class MeOut(Out):
    tenant = fields.String(required=True)
    user = fields.String(required=True)
    role = fields.String(required=True)
    agent_id = fields.String(allow_none=True, required=True, metadata={
        "description": "the agent this token acts for (the user's agent_id, else the user "
                       "name) if that agent is configured; null otherwise"})
    expires_at = fields.Integer(required=True, metadata={"description": "epoch seconds"})


class AgentCurrentCallOut(Out):
    call_id = fields.String(required=True)
    queue = fields.String(required=True)
    caller = fields.String(required=True)
    status = fields.String(required=True)
    connected_us = fields.Integer(allow_none=True)
    vip = fields.Boolean()


class AgentRecentCallOut(Out):
    call_id = fields.String(required=True)
    queue = fields.String(required=True)
    caller = fields.String(required=True)
    answered_at_us = fields.Integer(required=True)
    ended_at_us = fields.Integer(allow_none=True, required=True)
    talk_ms = fields.Integer(allow_none=True, required=True)


class RefusedOut(Out):
    request_id = fields.String(required=True)
    command = fields.String(required=True)
    reason = fields.String(required=True)
    at_us = fields.Integer(required=True)


class AgentStateOut(Out):
    agent_id = fields.String(required=True)
    extension = fields.String(required=True)
    queues = fields.List(fields.String(), required=True,
                         metadata={"description": "the queues the agent is a member of"})
    state = fields.String(required=True, validate=validate.OneOf(STATES), metadata={
        "description": "the router's agent state; `logged_out` if the router never saw the "
                       "agent log in, `unknown` while no live view has been published"})
    since_us = fields.Integer(allow_none=True, required=True)
    time_in_state_ms = fields.Integer(allow_none=True, required=True)
    pause_reason = fields.String(allow_none=True, required=True, metadata={
        "description": "set while paused, and while a requested pause waits for the call "
                       "in progress to end"})
    call = fields.Nested(AgentCurrentCallOut, allow_none=True, required=True,
                         metadata={"description": "the call ringing or in progress"})
    recent_calls = fields.List(fields.Nested(AgentRecentCallOut), required=True, metadata={
        "description": "calls the agent answered lately, newest first (seen by this API "
                       "process since it started; for notes after the call)"})
    last_refused = fields.Nested(RefusedOut, allow_none=True, required=True, metadata={
        "description": "the agent's last command the router would not carry out, and why "
                       "(e.g. a click-to-call while the phone is busy)"})
    as_of_us = fields.Integer(allow_none=True, required=True)
    age_ms = fields.Integer(allow_none=True, required=True)
