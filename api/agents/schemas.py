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


class ClickToCallLoad(Strict):
    agent_id = fields.String(required=True, validate=ENTITY_ID)
    number = Phone(required=True, metadata={"description": "+84…, 84… or 0… form"})


class ClickToCallOut(Out):
    request_id = fields.String(required=True)
    agent_id = fields.String(required=True)
    number = fields.String(required=True)
    caller_id = fields.String(required=True,
                              metadata={"description": "presented to the customer"})
