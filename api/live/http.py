"""Live state: /api/v1/live (JSON) and /api/v1/live/stream (server-sent events)."""
from __future__ import annotations

import time

import orjson
from flask import Blueprint, Response, stream_with_context

from ..auth import SUPERVISORS, Principal
from ..rest import endpoint, services
from .schemas import LiveOut

bp = Blueprint("live", __name__, url_prefix="/api/v1")


@endpoint(bp, "/live", "GET", roles=SUPERVISORS, response=LiveOut,
          summary="Calls waiting per queue (longest wait), agents by state, calls in progress")
def live(who: Principal, _: None) -> dict:
    return services().live.state(who.tenant)


@endpoint(bp, "/live/stream", "GET", roles=SUPERVISORS, produces=("text/event-stream",),
          stream=True, summary="The live state as server-sent events (`live` events, one "
                               "per change; `?ticket=` from POST /stream-tickets)")
def live_stream(who: Principal, _: None) -> Response:
    svc = services()
    schema = LiveOut()
    tenant, max_s = who.tenant, svc.settings.api_sse_max_s
    release = svc.streams.take(who)

    def events():
        end = time.monotonic() + max_s
        version = -1
        yield "retry: 2000\n\n"
        while time.monotonic() < end:
            new = svc.live.wait_change(tenant, version, timeout=min(15.0, end - time.monotonic()))
            if new == version:
                yield ": keep-alive\n\n"
                continue
            version = new
            data = orjson.dumps(schema.dump(svc.live.state(tenant))).decode()
            yield f"event: live\nid: {version}\ndata: {data}\n\n"

    response = Response(stream_with_context(events()), mimetype="text/event-stream",
                        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    response.call_on_close(release)  # also when the generator never started
    return response
