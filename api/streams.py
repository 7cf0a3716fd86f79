"""Event streams (server-sent events): their tickets and their share of the threads.

- `POST /api/v1/stream-tickets {"path": "/api/v1/live/stream"}` -> a ticket valid 30 s for
  that one stream path, standing for the caller's token in the stream's URL (`?ticket=`):
  EventSource cannot send an Authorization header, and a URL ends up in proxy and browser
  logs, so the token itself never goes there.
- Every open stream holds one gunicorn thread until it ends: `StreamSlots` caps them per
  user (`API_SSE_MAX_PER_USER`, 3) and per process (`API_SSE_MAX_STREAMS`, default
  `API_THREADS - 2`), so one client's streams cannot take the threads other requests
  need: one more gets 429 with Retry-After.
"""
from __future__ import annotations

import re
import threading
from collections.abc import Callable

from flask import Blueprint
from marshmallow import fields, validate

from .auth import EVERYONE, Principal
from .errors import TooMany
from .rest import Out, Strict, endpoint, services

bp = Blueprint("streams", __name__, url_prefix="/api/v1")
STREAM_PATH = re.compile(r"^/api/v1/(live/stream|agents/[A-Za-z0-9][A-Za-z0-9_.@+-]{0,63}/popups)$")


class StreamSlots:
    """Counts open streams per (tenant, user) and in all; `take` or 429."""

    def __init__(self, per_user: int, total: int) -> None:
        self.per_user = per_user
        self.total = total
        self._lock = threading.Lock()
        self._open: dict[tuple[str, str], int] = {}

    def take(self, who: Principal) -> Callable[[], None]:
        """Reserve a slot; returns its release (safe to call more than once)."""
        key = (who.tenant, who.user)
        with self._lock:
            if self._open.get(key, 0) >= self.per_user:
                raise TooMany(f"at most {self.per_user} open event streams per user; close "
                              f"one (or wait for it to end)",
                              [{"field": "_stream", "rule": f"at most {self.per_user} per user"}])
            if sum(self._open.values()) >= self.total:
                raise TooMany("this API process has no room for another event stream; retry",
                              [{"field": "_stream", "rule": f"at most {self.total} per process"}])
            self._open[key] = self._open.get(key, 0) + 1
        released = threading.Event()

        def release() -> None:
            if released.is_set():
                return
            released.set()
            with self._lock:
                left = self._open.get(key, 1) - 1
                if left:
                    self._open[key] = left
                else:
                    self._open.pop(key, None)

        return release

    def open_count(self) -> int:
        with self._lock:
            return sum(self._open.values())


class TicketLoad(Strict):
    path = fields.String(required=True, validate=validate.Regexp(
        STREAM_PATH, error="an event stream path: /api/v1/live/stream or "
                           "/api/v1/agents/<agent_id>/popups"))


class TicketOut(Out):
    ticket = fields.String(required=True, metadata={"description": "for `?ticket=`"})
    path = fields.String(required=True)
    expires_at = fields.Integer(required=True, metadata={"description": "epoch seconds"})


@endpoint(bp, "/stream-tickets", "POST", roles=EVERYONE, body=TicketLoad, response=TicketOut,
          status=201, summary="A 30 s ticket for one event stream's URL (`?ticket=`), so "
                              "the token never goes in a URL")
def stream_ticket(who: Principal, body: dict) -> dict:
    ticket, expires = services().tokens.ticket(who, body["path"])
    return {"ticket": ticket, "path": body["path"], "expires_at": expires}
