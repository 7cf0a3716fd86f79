"""Notes on a call: POST/GET /api/v1/calls/<call_id>/notes."""
from __future__ import annotations

from flask import Blueprint
from marshmallow import ValidationError, fields, validate

from ..auth import AGENT, EVERYONE, Principal
from ..errors import Forbidden, NotFound
from ..fields import Phone
from ..rest import Out, Strict, endpoint, services

bp = Blueprint("notes", __name__, url_prefix="/api/v1")
CALL_ID = validate.Regexp(r"^[A-Za-z0-9_.:-]{1,100}$", error="not a call id")


class NoteLoad(Strict):
    text = fields.String(required=True, validate=validate.Length(min=1, max=4000))
    disposition = fields.String(validate=validate.Regexp(
        r"^[a-z][a-z0-9_]{0,39}$", error="a lower-case code like sale, callback, wrong_number"))
    outbound_failed = fields.Boolean(load_default=False, metadata={
        "description": "an outbound call that never connected (recorded with 0 duration)"})
    number = Phone(allow_extension=False, metadata={
        "description": "the number called (optional: the click-to-call's own number is "
                       "recorded; a different one is refused)"})


class NoteOut(Out):
    id = fields.String(required=True)
    at_us = fields.Integer(required=True)
    call_id = fields.String(required=True)
    text = fields.String(required=True)
    disposition = fields.String(required=True)
    user = fields.String(required=True)
    role = fields.String(required=True)
    outbound_failed = fields.Boolean(required=True)
    number = fields.String(required=True)
    agent_id = fields.String(required=True)


class NotesOut(Out):
    items = fields.List(fields.Nested(NoteOut), required=True)


def _call_id(value: str) -> str:
    try:
        CALL_ID(value)
    except ValidationError as exc:
        raise ValidationError({"call_id": exc.messages}) from None
    return value


@endpoint(bp, "/calls/<call_id>/notes", "POST", roles=EVERYONE, body=NoteLoad,
          response=NoteOut, status=201,
          summary="Add a note to a call after it ended (also a failed outbound call)")
def add_note(who: Principal, body: dict, call_id: str) -> dict:
    """The note's agent comes from the token (an agent's own) or from the call's click-to-
    call, never from the body. An agent writes only on calls it handled; a failed outbound
    call is only a click-to-call the API placed (its audit entry), for its own agent."""
    svc = services()
    call_id = _call_id(call_id)
    own = svc.agents.own_agent(who) if who.role == AGENT else None
    if body["outbound_failed"]:
        c2c = svc.agents.click_to_call_of(who.tenant, call_id)
        if c2c is None:
            raise NotFound(f"no click-to-call {call_id!r}: outbound_failed is for a "
                           f"click-to-call that never connected",
                           [{"field": "outbound_failed", "rule": "only on a click-to-call"}])
        if own is not None and c2c.get("agent_id") != own:
            raise Forbidden("an agent writes notes only on the calls it handled",
                            [{"field": "call_id", "rule": "a call this agent handled"}])
        if body.get("number") and body["number"] != c2c.get("number"):
            raise ValidationError({"number": ["not the number this click-to-call dialled"]})
        return svc.notes.add(who, call_id, {**body, "agent_id": c2c.get("agent_id", ""),
                                            "number": c2c.get("number", "")})
    if own is not None:
        if not svc.agents.handled(who.tenant, own, call_id,
                                  lambda: svc.reports.handled_by(who.tenant, call_id, own)):
            raise Forbidden("an agent writes notes only on the calls it handled",
                            [{"field": "call_id", "rule": "a call this agent handled"}])
    elif not (svc.notes.of_call(who.tenant, call_id)
              or svc.agents.click_to_call_of(who.tenant, call_id, wait_s=0.0)
              or svc.reports.exists(who.tenant, call_id)):
        raise NotFound(f"no call {call_id!r} (for a click-to-call that never connected, "
                       f"set outbound_failed)")
    return svc.notes.add(who, call_id, {**body, "agent_id": own or "", "number": ""})


@endpoint(bp, "/calls/<call_id>/notes", "GET", roles=EVERYONE, response=NotesOut,
          summary="The notes of a call, oldest first")
def list_notes(who: Principal, _: None, call_id: str) -> dict:
    svc = services()
    call_id = _call_id(call_id)
    notes = svc.notes.of_call(who.tenant, call_id)
    if not notes and not svc.reports.exists(who.tenant, call_id):
        raise NotFound(f"no call {call_id!r}")
    return {"items": notes}
