"""Notes on a call: POST/GET /api/v1/calls/<call_id>/notes."""
from __future__ import annotations

from typing import Any

from flask import Blueprint
from marshmallow import ValidationError, fields, validate, validates_schema

from ..auth import EVERYONE, Principal
from ..errors import NotFound
from ..fields import ENTITY_ID, Phone
from ..rest import Out, Strict, endpoint, services

bp = Blueprint("notes", __name__, url_prefix="/api/v1")
CALL_ID = validate.Regexp(r"^[A-Za-z0-9_.:-]{1,100}$", error="not a call id")


class NoteLoad(Strict):
    text = fields.String(required=True, validate=validate.Length(min=1, max=4000))
    disposition = fields.String(validate=validate.Regexp(
        r"^[a-z][a-z0-9_]{0,39}$", error="a lower-case code like sale, callback, wrong_number"))
    outbound_failed = fields.Boolean(load_default=False, metadata={
        "description": "an outbound call that never connected (recorded with 0 duration)"})
    number = Phone(allow_extension=False, metadata={"description": "the number called"})
    agent_id = fields.String(validate=ENTITY_ID)

    @validates_schema
    def _failed(self, data: dict, **_: Any) -> None:
        if data.get("outbound_failed") and not data.get("number"):
            raise ValidationError("required for a failed outbound call", "number")


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
    svc = services()
    call_id = _call_id(call_id)
    known = svc.notes.of_call(who.tenant, call_id) or svc.reports.exists(who.tenant, call_id)
    if not body["outbound_failed"] and not known:
        raise NotFound(f"no call {call_id!r} (for a click-to-call that never connected, "
                       f"set outbound_failed)")
    if who.role == "agent":
        body.setdefault("agent_id", svc.agents.own_agent(who) or "")
    return svc.notes.add(who, call_id, body)


@endpoint(bp, "/calls/<call_id>/notes", "GET", roles=EVERYONE, response=NotesOut,
          summary="The notes of a call, oldest first")
def list_notes(who: Principal, _: None, call_id: str) -> dict:
    svc = services()
    call_id = _call_id(call_id)
    notes = svc.notes.of_call(who.tenant, call_id)
    if not notes and not svc.reports.exists(who.tenant, call_id):
        raise NotFound(f"no call {call_id!r}")
    return {"items": notes}
