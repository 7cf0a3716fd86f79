"""The webhook delivery log, for admins: /api/v1/webhooks/deliveries."""
from __future__ import annotations

from flask import Blueprint
from marshmallow import fields, validate

from ..auth import ADMINS, Principal
from ..rest import Out, Strict, endpoint, services

bp = Blueprint("webhooks", __name__, url_prefix="/api/v1")


class DeliveryQuery(Strict):
    status = fields.String(validate=validate.OneOf(["delivered", "failed"]))
    event_id = fields.String(validate=validate.Length(min=1, max=100))
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0, max=10_000_000))


class DeliveryOut(Out):
    id = fields.String(required=True)
    at_us = fields.Integer(required=True)
    delivery_id = fields.String(required=True, metadata={
        "description": "the X-Tongdai-Delivery header: one per event and subscription"})
    event_id = fields.String(required=True)
    event = fields.String(required=True)
    webhook_id = fields.String(required=True)
    url = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(["delivered", "failed"]))
    attempts = fields.Integer(required=True)
    http_status = fields.Integer(required=True, metadata={"description": "0: no answer"})
    error = fields.String(required=True)


class DeliveryPage(Out):
    items = fields.List(fields.Nested(DeliveryOut), required=True)
    total = fields.Integer(required=True)
    limit = fields.Integer(required=True)
    offset = fields.Integer(required=True)
    next_offset = fields.Integer(allow_none=True, required=True)


@endpoint(bp, "/webhooks/deliveries", "GET", roles=ADMINS, query=DeliveryQuery,
          response=DeliveryPage, summary="Webhook deliveries (outcome, attempts, HTTP status), "
                                         "newest first")
def deliveries(who: Principal, q: dict) -> dict:
    items = services().webhook_log.query(who.tenant, q.get("status"), q.get("event_id"))
    lo, n = q["offset"], q["limit"]
    return {"items": items[lo:lo + n], "total": len(items), "limit": n, "offset": lo,
            "next_offset": lo + n if lo + n < len(items) else None}
