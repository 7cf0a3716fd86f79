"""Supervisors' live state: the latest `live_state_published` per tenant.

The routing worker publishes each tenant's view every tick on the compacted
`tongdai.live.v1`; a follower thread (from the beginning, then following) keeps the latest
here. Nothing is computed from raw events: the router's view is the one truth.
"""
from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

from marshmallow import fields, missing

from routing.contract import Envelope, edge
from routing.contract.schemas import LiveStateV1

_VIEW_FIELDS = LiveStateV1().fields


class LiveView:
    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._latest: dict[str, Envelope] = {}

    def apply(self, env: Envelope) -> None:
        if env.type != "live_state_published":
            return
        with self._lock:
            current = self._latest.get(env.tenant)
            if current is None or env.payload.get("as_of_us", 0) >= current.payload.get(
                    "as_of_us", 0):
                self._latest[env.tenant] = env
                self._lock.notify_all()

    def state(self, tenant: str, now_us: int | None = None) -> dict[str, Any]:
        """The tenant's live view with agents counted by state and the view's age."""
        with self._lock:
            env = self._latest.get(tenant)
        now = now_us if now_us is not None else edge.now_us()
        view = published(env.payload if env is not None else None)
        as_of, calls = view["as_of_us"], view["calls"]
        agents = [dict(a, time_in_state_ms=max(0, (now - a["since_us"]) // 1000))
                  for a in view["agents"]]
        return {**view, "agents": agents,
                "age_ms": None if as_of is None else max(0, (now - as_of) // 1000),
                "agents_by_state": dict(Counter(a["state"] for a in agents)),
                "calls_waiting": sum(1 for c in calls if c["status"] in ("waiting", "ringing")),
                "calls_in_progress": sum(1 for c in calls if c["status"] == "connected")}

    def version(self, tenant: str) -> int:
        with self._lock:
            env = self._latest.get(tenant)
            return env.payload.get("as_of_us", 0) if env else 0

    def wait_change(self, tenant: str, after: int, timeout: float) -> int:
        """Block until the tenant's view is newer than `after` (or timeout); its version."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                env = self._latest.get(tenant)
                version = env.payload.get("as_of_us", 0) if env else 0
                left = deadline - time.monotonic()
                if version > after or left <= 0:
                    return version
                self._lock.wait(left)


def published(payload: dict[str, Any] | None) -> dict[str, Any]:
    """Every field of the contract's view, whatever the record (None: no view yet) has:
    one that an older record lacks takes the contract's default, else it is empty (a
    list) or unknown (None)."""
    view: dict[str, Any] = {}
    for name, field in _VIEW_FIELDS.items():
        if payload is not None and name in payload:
            value = payload[name]
        elif field.load_default is not missing:
            value = field.load_default() if callable(field.load_default) else field.load_default
        else:
            value = [] if isinstance(field, fields.List) else None
        view[name] = list(value) if isinstance(value, list) else value
    return view
