"""How a resource is declared: one decorator does auth, loading, dumping and documentation.

    @endpoint(bp, "/queues/<queue_id>", "PUT", roles=ADMINS, body=QueueLoad,
              response=QueueDump, summary="Create or replace a queue")
    def put_queue(who, body, queue_id): ...

The handler gets the caller (`Principal`) and the loaded body/query (a dict) and returns
what the response schema dumps (or a Flask response for files and streams). The same
metadata feeds the OpenAPI document (api/openapi.py), so the document cannot drift from
the code.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from marshmallow import RAISE, Schema, ValidationError, fields, validate

from .auth import Principal, bearer
from .errors import Forbidden, Unauthorized

ENDPOINTS: dict[str, "Doc"] = {}  # view function name -> documentation


class Strict(Schema):
    """Base of every request schema: unknown fields are errors."""

    class Meta:
        unknown = RAISE


class Out(Schema):
    """Base of every response schema."""


class Page(Strict):
    """Pagination of list endpoints."""

    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500),
                           metadata={"description": "items per page (1-500)"})
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0, max=10_000_000))


class ErrorDetail(Out):
    field = fields.String(required=True)
    rule = fields.String(required=True)


class ErrorOut(Out):
    error = fields.String(required=True)
    message = fields.String(required=True)
    details = fields.List(fields.Nested(ErrorDetail), required=True)


@dataclass
class Doc:
    rule: str
    method: str
    roles: frozenset[str]
    summary: str
    tag: str
    body: type[Schema] | None = None
    query: type[Schema] | None = None
    response: type[Schema] | None = None
    many: bool = False
    status: int = 200
    produces: tuple[str, ...] = ("application/json",)
    auth: str = "bearer"  # or "basic" (mod_xml_curl) or "none"
    extra_params: list[dict[str, Any]] = field(default_factory=list)


def services() -> Any:
    """The composition root's services of the running app."""
    return current_app.extensions["tongdai"]


def authenticate(allow_query_token: bool = False) -> Principal:
    token = bearer(request.headers.get("Authorization"))
    if token is None and allow_query_token:
        token = request.args.get("access_token")
    if not token:
        raise Unauthorized("missing bearer token (Authorization: Bearer <token>)")
    return services().authorize(token)


def _query_args(schema: Schema) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    for key in request.args:
        if key == "access_token":
            continue
        values = request.args.getlist(key)
        f = schema.fields.get(key)
        raw[key] = values if isinstance(f, fields.List) else values[-1]
    return schema.load(raw)


def _json_body(schema: Schema) -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ValidationError({"_body": ["must be a JSON object (Content-Type: "
                                         "application/json)"]})
    return schema.load(data)


def endpoint(bp: Blueprint, rule: str, method: str, *, roles: frozenset[str], summary: str,
             body: type[Schema] | None = None, query: type[Schema] | None = None,
             response: type[Schema] | None = None, many: bool = False, status: int = 200,
             produces: tuple[str, ...] = ("application/json",), auth: str = "bearer",
             stream: bool = False) -> Callable:
    """Register `handler(who, body|query|None, **path)` on `bp` with auth and schemas."""

    def wrap(handler: Callable) -> Callable:
        name = f"{bp.name}.{handler.__name__}"
        ENDPOINTS[name] = Doc(rule=bp.url_prefix + rule if bp.url_prefix else rule,
                              method=method, roles=roles, summary=summary,
                              tag=bp.name, body=body, query=query, response=response,
                              many=many, status=status, produces=produces, auth=auth)
        out_schema = response(many=many) if response else None

        @functools.wraps(handler)
        def view(**path: Any) -> Any:
            who = None
            if auth == "bearer":
                who = authenticate(allow_query_token=stream)
                if who.role not in roles:
                    raise Forbidden(f"role {who.role!r} may not {method} {rule} "
                                    f"(needs one of: {', '.join(sorted(roles))})")
            loaded = None
            if body is not None:
                loaded = _json_body(body())
            elif query is not None:
                loaded = _query_args(query())
            elif request.args and not stream and auth == "bearer":
                unknown = sorted(k for k in request.args if k != "access_token")
                if unknown:
                    raise ValidationError({k: ["Unknown field."] for k in unknown})
            result = handler(who, loaded, **path)
            if isinstance(result, Response):
                return result
            if out_schema is None:
                return Response(status=204 if status == 200 else status)
            return jsonify(out_schema.dump(result)), status

        bp.add_url_rule(rule, handler.__name__, view, methods=[method])
        return view

    return wrap
