"""Caller pop-up stream of one agent: GET /api/v1/agents/<id>/popups (server-sent events)."""
from __future__ import annotations

import queue
import time

import orjson
from flask import Blueprint, Response, stream_with_context

from ..auth import EVERYONE, Principal
from ..rest import endpoint, services

bp = Blueprint("popup", __name__, url_prefix="/api/v1")


@endpoint(bp, "/agents/<agent_id>/popups", "GET", roles=EVERYONE, stream=True,
          produces=("text/event-stream",),
          summary="Incoming-call pop-ups of an agent (SSE `call_offered` events with caller "
                  "lookup; `?ticket=` from POST /stream-tickets)")
def popups(who: Principal, _: None, agent_id: str) -> Response:
    svc = services()
    svc.agents.check_may_act(who, agent_id)
    tenant, max_s = who.tenant, svc.settings.api_sse_max_s
    release = svc.streams.take(who)
    inbox = svc.popup.subscribe(tenant, agent_id)

    def close() -> None:
        svc.popup.unsubscribe(tenant, agent_id, inbox)
        release()

    def events():
        end = time.monotonic() + max_s
        try:
            yield "retry: 2000\n\n: subscribed\n\n"
            while time.monotonic() < end:
                try:
                    pop = inbox.get(timeout=min(15.0, max(0.1, end - time.monotonic())))
                except queue.Empty:
                    yield ": keep-alive\n\n"
                    continue
                yield (f"event: call_offered\nid: {pop['offer_id']}\n"
                       f"data: {orjson.dumps(pop).decode()}\n\n")
        finally:
            close()

    response = Response(stream_with_context(events()), mimetype="text/event-stream",
                        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    response.call_on_close(close)  # also when the generator never started
    return response
