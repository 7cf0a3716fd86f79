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


#: JSON request bodies nested deeper than this are refused (400) before any schema runs
MAX_JSON_DEPTH = 400


def authenticate(allow_ticket: bool = False) -> Principal:
    """The caller, from `Authorization: Bearer` (or, for an event stream, `?ticket=`).
    A token in the URL (`?access_token=`) is refused: URLs are logged."""
    if "access_token" in request.args:
        raise Unauthorized("tokens are not accepted in URLs: send Authorization: Bearer, or "
                           "for an event stream a ticket (POST /api/v1/stream-tickets)")
    token = bearer(request.headers.get("Authorization"))
    if token is None and allow_ticket and request.args.get("ticket"):
        return services().authorize_ticket(request.args["ticket"], request.path)
    if not token:
        raise Unauthorized("missing bearer token (Authorization: Bearer <token>)")
    return services().authorize(token)


def json_depth(value: Any) -> int:
    """How deeply a decoded JSON value nests (iteratively: no recursion limit to hit)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            node = node.values()
        elif not isinstance(node, list):
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in node
                     if isinstance(child, (dict, list)))
    return deepest


def _query_args(schema: Schema) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    for key in request.args:
        if key == "ticket":
            continue
        values = request.args.getlist(key)
        f = schema.fields.get(key)
        raw[key] = values if isinstance(f, fields.List) else values[-1]
    return schema.load(raw)


def _json_body(schema: Schema) -> dict[str, Any]:
    """The body as a JSON object. orjson refuses nesting past 1024 levels by itself (the
    standard library recursed into a RecursionError: a 500); past MAX_JSON_DEPTH is
    refused here."""
    import orjson

    wrong = ValidationError({"_body": ["must be a JSON object (Content-Type: "
                                       "application/json)"]})
    if not request.is_json:
        raise wrong
    try:
        data = orjson.loads(request.get_data(cache=False))
    except orjson.JSONDecodeError as exc:
        if "depth" in str(exc).lower() or "recursion" in str(exc).lower():
            raise ValidationError({"_body": [f"nested deeper than {MAX_JSON_DEPTH} "
                                             f"levels"]}) from None
        raise wrong from None
    if not isinstance(data, dict):
        raise wrong
    if json_depth(data) > MAX_JSON_DEPTH:
        raise ValidationError({"_body": [f"nested deeper than {MAX_JSON_DEPTH} levels"]})
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
                who = authenticate(allow_ticket=stream)
                if who.role not in roles:
                    raise Forbidden(f"role {who.role!r} may not {method} {rule} "
                                    f"(needs one of: {', '.join(sorted(roles))})")
            loaded = None
            if body is not None:
                loaded = _json_body(body())
            elif query is not None:
                loaded = _query_args(query())
            elif request.args and not stream and auth == "bearer":
                unknown = sorted(request.args)
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
