"""Live state answers: the contract's LiveStateV1 as the router published it, plus what the
API computes when it answers (the view's age, time in state, counts for wallboards).

The fields of the view are declared once, in routing/contract/schemas.py; these classes
subclass them, so a field added there is served and documented here without an edit.
"""
from __future__ import annotations

from marshmallow import fields

from routing.contract.schemas import LiveAgentV1, LiveStateV1

from ..rest import Out


class LiveAgentOut(LiveAgentV1, Out):
    time_in_state_ms = fields.Integer(required=True, metadata={
        "description": "how long the agent has been in its state at the time of the answer"})


class LiveOut(LiveStateV1, Out):
    # Both re-declared from the contract for what only the API has: no view before the
    # router's first one, and agents with their time in state.
    as_of_us = fields.Integer(allow_none=True, required=True, metadata={
        "description": "when the router took the view (null: no view yet)"})
    agents = fields.List(fields.Nested(LiveAgentOut), required=True)
    age_ms = fields.Integer(allow_none=True, required=True, metadata={
        "description": "how old the view is at the time of the answer"})
    agents_by_state = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
    calls_waiting = fields.Integer(required=True, metadata={
        "description": "calls waiting or ringing an agent"})
    calls_in_progress = fields.Integer(required=True, metadata={
        "description": "calls connected to an agent"})
