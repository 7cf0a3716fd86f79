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

from routing.contract import Envelope, edge


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
        if env is None:
            return {"as_of_us": None, "age_ms": None, "queues": [], "agents": [], "calls": [],
                    "recent": [], "agents_by_state": {}, "calls_waiting": 0,
                    "calls_in_progress": 0}
        p = env.payload
        agents = [dict(a, time_in_state_ms=max(0, (now - a["since_us"]) // 1000))
                  for a in p.get("agents", ())]
        calls = p.get("calls", ())
        return {"as_of_us": p["as_of_us"], "age_ms": max(0, (now - p["as_of_us"]) // 1000),
                "queues": list(p.get("queues", ())), "agents": agents, "calls": list(calls),
                "recent": list(p.get("recent", ())),
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
