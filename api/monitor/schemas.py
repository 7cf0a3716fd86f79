"""Live monitoring as a command: requests and answers."""
from __future__ import annotations

from marshmallow import fields, validate

from ..fields import ENTITY_ID, EXTENSION
from ..rest import Out, Strict
from .services import MODE_NAMES

_MODE = validate.OneOf(MODE_NAMES)


class MonitorLoad(Strict):
    agent_id = fields.String(required=True, validate=ENTITY_ID,
                             metadata={"description": "whose call in progress"})
    mode = fields.String(load_default="listen", validate=_MODE, metadata={
        "description": "listen (hear both), whisper (speak to the agent only), barge "
                       "(speak to both)"})
    extension = fields.String(validate=EXTENSION, metadata={
        "description": "the phone that is called and joined (must have can_monitor: true); "
                       "default: the user's own (its user record's `extension`, else its "
                       "agent's)"})


class MonitorModeLoad(Strict):
    mode = fields.String(required=True, validate=_MODE)


class MonitorOut(Out):
    monitor_id = fields.String(required=True, metadata={
        "description": "the monitoring (also the uuid of the supervisor's leg)"})
    call_id = fields.String(required=True, metadata={"description": "the agent's call"})
    agent_id = fields.String(required=True)
    extension = fields.String(required=True)
    mode = fields.String(required=True)
    command_id = fields.String(required=True, metadata={
        "description": "the command record's event id on tongdai.cc.commands.v1"})
