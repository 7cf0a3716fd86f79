"""The audit log, for admins: /api/v1/audit."""
from __future__ import annotations

from flask import Blueprint
from marshmallow import fields, validate

from ..auth import ADMINS, Principal
from ..rest import Out, Strict, endpoint, services

bp = Blueprint("audit", __name__, url_prefix="/api/v1")


class AuditQuery(Strict):
    start = fields.AwareDateTime()
    end = fields.AwareDateTime()
    user = fields.String(validate=validate.Length(min=1, max=64))
    action = fields.String(validate=validate.Length(min=1, max=64),
                           metadata={"description": "prefix, e.g. `queue.` or `recording.read`"})
    target = fields.String(validate=validate.Length(min=1, max=200))
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0, max=10_000_000))


class AuditEntryOut(Out):
    id = fields.String(required=True)
    at_us = fields.Integer(required=True)
    user = fields.String(required=True)
    role = fields.String(required=True)
    token_id = fields.String(required=True)
    action = fields.String(required=True)
    target = fields.String(required=True)
    detail = fields.Dict(keys=fields.String(), required=True)


class AuditPage(Out):
    items = fields.List(fields.Nested(AuditEntryOut), required=True)
    total = fields.Integer(required=True)
    limit = fields.Integer(required=True)
    offset = fields.Integer(required=True)
    next_offset = fields.Integer(allow_none=True, required=True)


def _us(value) -> int | None:
    return None if value is None else int(value.timestamp() * 1_000_000)


@endpoint(bp, "/audit", "GET", roles=ADMINS, query=AuditQuery, response=AuditPage,
          summary="Who changed what and who read which recording, newest first")
def audit(who: Principal, q: dict) -> dict:
    entries = services().audit.query(who.tenant, _us(q.get("start")), _us(q.get("end")),
                                     q.get("user"), q.get("action"), q.get("target"))
    lo, n = q["offset"], q["limit"]
    return {"items": entries[lo:lo + n], "total": len(entries), "limit": n, "offset": lo,
            "next_offset": lo + n if lo + n < len(entries) else None}
