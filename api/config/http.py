"""Admin resources: /api/v1/tenant, /api/v1/<kind> CRUD, /api/v1/tokens, /api/v1/lookup."""
from __future__ import annotations

from typing import Any

from flask import Blueprint
from marshmallow import fields, validate

from ..auth import ADMINS, EVERYONE, SUPERVISORS, Principal
from ..fields import ENTITY_ID, Phone
from ..rest import Out, Page, Strict, endpoint, services
from . import schemas as s
from .services import KINDS

bp = Blueprint("config", __name__, url_prefix="/api/v1")

#: Who reads each kind (writes are admins only).
READERS = {"queue": SUPERVISORS, "agent": SUPERVISORS, "did": SUPERVISORS,
           "ivr": SUPERVISORS, "blocklist": SUPERVISORS, "extension": ADMINS,
           "user": ADMINS, "customer": SUPERVISORS, "contact": SUPERVISORS,
           "lead": SUPERVISORS}


def _crud(kind: str) -> None:
    spec = KINDS[kind]
    item = f"/{spec.plural}/<entity_id>"
    page_schema = s.page_of(spec.dump)

    def list_(who: Principal, q: dict, **_: Any) -> dict:
        return services().config.list(who.tenant, kind, q["limit"], q["offset"])

    def get_(who: Principal, _b: None, entity_id: str) -> dict:
        svc = services().config
        return svc.get(who.tenant, kind, _normal(kind, entity_id))

    def put_(who: Principal, body: dict, entity_id: str) -> dict:
        return services().config.put(who, kind, entity_id, body)

    def delete_(who: Principal, _b: None, entity_id: str) -> None:
        services().config.delete(who, kind, entity_id)

    for fn, verb in ((list_, "list"), (get_, "get"), (put_, "put"), (delete_, "delete")):
        fn.__name__ = f"{verb}_{kind}"
    endpoint(bp, f"/{spec.plural}", "GET", roles=READERS[kind], query=Page,
             response=page_schema, summary=f"List {spec.plural}")(list_)
    endpoint(bp, item, "GET", roles=READERS[kind], response=spec.dump,
             summary=f"One {kind}")(get_)
    endpoint(bp, item, "PUT", roles=ADMINS, body=spec.load, response=spec.dump,
             summary=f"Create or replace a {kind} (writes a config record)")(put_)
    endpoint(bp, item, "DELETE", roles=ADMINS, status=204,
             summary=f"Delete a {kind} (writes a tombstone record)")(delete_)


def _normal(kind: str, entity_id: str) -> str:
    from marshmallow import ValidationError

    try:
        return KINDS[kind].id_rule(entity_id)
    except ValidationError as exc:
        raise ValidationError({"id": exc.messages}) from None


for _kind in KINDS:
    _crud(_kind)


@endpoint(bp, "/tenant", "GET", roles=EVERYONE, response=s.TenantOut,
          summary="The caller's tenant settings")
def get_tenant(who: Principal, _: None) -> dict:
    return services().config.get_tenant(who.tenant)


@endpoint(bp, "/tenant", "PUT", roles=ADMINS, body=s.TenantLoad, response=s.TenantOut,
          summary="Replace the caller's tenant settings (domain, limits, regions, policy)")
def put_tenant(who: Principal, body: dict) -> dict:
    return services().config.put_tenant(who, body)


@endpoint(bp, "/tokens", "POST", roles=ADMINS, body=s.TokenCreate, response=s.TokenOut,
          status=201, summary="Mint a token for a user of the caller's tenant")
def create_token(who: Principal, body: dict) -> dict:
    return services().config.mint(who, body["user"], body["role"], body.get("ttl_s"))


@endpoint(bp, "/tokens/<token_id>", "DELETE", roles=ADMINS, status=204,
          summary="Revoke a token")
def revoke_token(who: Principal, _: None, token_id: str) -> None:
    from marshmallow import ValidationError

    try:
        ENTITY_ID(token_id)
    except ValidationError as exc:
        raise ValidationError({"token_id": exc.messages}) from None
    services().config.revoke(who, token_id)


class LookupQuery(Strict):
    number = Phone(required=True, allow_extension=False)


class LookupMatch(Out):
    kind = fields.String(required=True, validate=validate.OneOf(["customer", "contact", "lead"]))
    id = fields.String(required=True)
    name = fields.String(required=True)
    company = fields.String()
    external_id = fields.String()
    url = fields.String()
    changed_at_us = fields.Integer(required=True)


class LookupOut(Out):
    number = fields.String(required=True)
    matches = fields.List(fields.Nested(LookupMatch), required=True)


@endpoint(bp, "/lookup", "GET", roles=EVERYONE, query=LookupQuery, response=LookupOut,
          summary="Caller lookup: customers, then contacts, then leads; most recently "
                  "changed first (+84/84/0 forms match)")
def lookup(who: Principal, q: dict) -> dict:
    return {"number": q["number"], "matches": services().lookup(who.tenant, q["number"])}
