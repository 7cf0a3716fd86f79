"""The OpenAPI 3 document, generated from the endpoint declarations and their schemas."""
from __future__ import annotations

import re
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, jsonify

from .rest import ENDPOINTS, ErrorOut

bp = Blueprint("openapi", __name__, url_prefix="/api/v1")
_PATH_PARAM = re.compile(r"<(?:[a-z]+:)?([A-Za-z_]+)>")

ERRORS = {"400": "invalid request: `details` names each field and the rule it broke",
          "401": "missing, invalid, expired or revoked token",
          "403": "the token's role may not do this",
          "404": "no such entity in the caller's tenant"}


def _schema_name(schema: type) -> str:
    name = schema.__name__ if isinstance(schema, type) else type(schema).__name__
    return name[:-6] if name.endswith("Schema") else name


def build(version: str = "1.0.0") -> dict[str, Any]:
    spec = APISpec(title="tongdai API", version=version, openapi_version="3.0.3",
                   plugins=[MarshmallowPlugin(schema_name_resolver=_schema_name)],
                   info={"description": "Contact-center API: admin configuration (event-"
                                        "sourced), agent commands, live state, reports. "
                                        "Every route needs a bearer token "
                                        "(see api/README.md); the tenant is the token's."})
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    spec.components.security_scheme("basic", {"type": "http", "scheme": "basic"})
    spec.components.schema("Error", schema=ErrorOut)
    paths: dict[str, dict[str, Any]] = {}
    for name, doc in sorted(ENDPOINTS.items()):
        path = _PATH_PARAM.sub(r"{\1}", doc.rule)
        op: dict[str, Any] = {"operationId": name.replace(".", "_"), "summary": doc.summary,
                              "tags": [doc.tag], "responses": {}}
        if doc.auth == "bearer":
            op["security"] = [{"bearer": []}]
            op["description"] = "Roles: " + ", ".join(sorted(doc.roles))
            op["x-roles"] = sorted(doc.roles)  # machine-readable: the authorization matrix
        elif doc.auth == "basic":
            op["security"] = [{"basic": []}]
        params: list[dict[str, Any]] = [
            {"in": "path", "name": p, "required": True, "schema": {"type": "string"}}
            for p in _PATH_PARAM.findall(doc.rule)]
        if doc.query is not None:
            params.append({"in": "query", "schema": doc.query})
        if "text/event-stream" in doc.produces:
            params.append({"in": "query", "name": "ticket", "required": False,
                           "schema": {"type": "string"},
                           "description": "a stream ticket (POST /api/v1/stream-tickets) "
                                          "instead of the Authorization header"})
        if params:
            op["parameters"] = params
        if doc.body is not None:
            op["requestBody"] = {"required": True,
                                 "content": {"application/json": {"schema": doc.body}}}
        elif doc.auth == "basic":
            op["requestBody"] = {"content": {"application/x-www-form-urlencoded": {
                "schema": {"type": "object", "additionalProperties": {"type": "string"}}}}}
        ok: dict[str, Any] = {"description": "OK"}
        if doc.response is not None:
            content = {"application/json": {"schema": doc.response}}
            for mime in doc.produces:
                if mime != "application/json":
                    content[mime.split(";")[0]] = {"schema": {"type": "string",
                                                              "format": "binary"}}
            ok["content"] = content
        elif doc.produces != ("application/json",):
            ok["content"] = {m: {"schema": {"type": "string"}} for m in doc.produces}
        op["responses"][str(doc.status if doc.response or doc.produces != ("application/json",)
                            else (doc.status if doc.status != 200 else 204))] = ok
        for code, text in ERRORS.items():
            op["responses"][code] = {"description": text, "content": {
                "application/json": {"schema": "Error"}}}
        if doc.tag == "reports":
            op["responses"]["503"] = {"description": "ClickHouse not reachable", "content": {
                "application/json": {"schema": "Error"}}}
        if doc.tag == "monitor":
            op["responses"]["409"] = {"description": "the agent has no call in progress, or "
                                                     "the user has no extension of its own "
                                                     "(`details` names the field and rule)",
                                      "content": {"application/json": {"schema": "Error"}}}
        paths.setdefault(path, {})[doc.method.lower()] = op
    for path, ops in paths.items():
        spec.path(path=path, operations=ops)
    return spec.to_dict()


_CACHE: dict[str, Any] = {}


@bp.get("/openapi.json")
def openapi_json():
    """The document (no token needed: it describes, it does not reveal data)."""
    if "doc" not in _CACHE:
        _CACHE["doc"] = build()
    return jsonify(_CACHE["doc"])
