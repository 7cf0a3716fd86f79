"""The one place that turns failures into HTTP answers.

Every error body has the same shape, documented in the OpenAPI document as `Error`:
`{"error": <code>, "message": <text>, "details": [{"field": ..., "rule": ...}]}`.
A marshmallow ValidationError becomes a 400 whose details name each field (dotted path,
e.g. `queues.sales.level`) and the rule it broke.
"""
from __future__ import annotations

import logging
from typing import Any

from flask import Flask, jsonify
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException

log = logging.getLogger("tongdai.api")


class ApiError(Exception):
    """A refusal a service raises; `status` and `code` go to the client as they are."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, details: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []


class Unauthorized(ApiError):
    status, code = 401, "unauthorized"


class Forbidden(ApiError):
    status, code = 403, "forbidden"


class NotFound(ApiError):
    status, code = 404, "not_found"


class Conflict(ApiError):
    status, code = 409, "conflict"


class TooMany(ApiError):
    status, code = 429, "too_many_requests"


class Unavailable(ApiError):
    status, code = 503, "unavailable"


def flatten(messages: Any, prefix: str = "") -> list[dict[str, str]]:
    """marshmallow's nested error dict -> [{"field": "a.b", "rule": "..."}], sorted."""
    out: list[dict[str, str]] = []
    if isinstance(messages, dict):
        for key, value in messages.items():
            name = "_body" if key == "_schema" and not prefix else str(key)
            path = f"{prefix}.{name}" if prefix else name
            if prefix and key in ("value", "key") and isinstance(value, (dict, list)):
                # marshmallow's Dict field nests {"<k>": {"value": ...}}: name the entry
                path = prefix if key == "value" else f"{prefix} (key)"
            if key == "_schema" and prefix:
                path = prefix
            out += flatten(value, path)
    elif isinstance(messages, (list, tuple)):
        for item in messages:
            if isinstance(item, (dict, list)):
                out += flatten(item, prefix)
            else:
                out.append({"field": prefix or "_body", "rule": str(item)})
    else:
        out.append({"field": prefix or "_body", "rule": str(messages)})
    return out


def body(code: str, message: str, details: list[dict[str, str]] | None = None) -> dict:
    return {"error": code, "message": message, "details": details or []}


def register(app: Flask) -> None:
    """Install the error handlers (the app factory calls this once)."""

    @app.errorhandler(ValidationError)
    def _invalid(exc: ValidationError):
        details = flatten(exc.messages)
        first = details[0] if details else {"field": "_body", "rule": "invalid"}
        message = f"{first['field']}: {first['rule']}"
        if len(details) > 1:
            message += f" (and {len(details) - 1} more)"
        return jsonify(body("invalid_request", message, details)), 400

    @app.errorhandler(ApiError)
    def _refused(exc: ApiError):
        response = jsonify(body(exc.code, exc.message, exc.details))
        if exc.status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="tongdai"'
        return response, exc.status

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        code = (exc.name or "error").lower().replace(" ", "_")
        return jsonify(body(code, exc.description or exc.name)), exc.code or 500

    @app.errorhandler(Exception)
    def _crash(exc: Exception):
        log.exception("unhandled error: %s", type(exc).__name__)
        return jsonify(body("internal_error", "internal error (logged)")), 500
