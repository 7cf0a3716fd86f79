"""The audit log: who did what, when — every admin change and every recording access.

Where it is kept: ClickHouse has no audit table (analytics owns the schema and has none),
so audit entries are records of type `audit_recorded` on their own Kafka topic
(`tongdai.audit.v1`, keyed by tenant, never compacted: set its retention to your legal
period). Every API process reads the topic from the beginning into an in-memory index,
which `GET /api/v1/audit` queries (admins only, own tenant). The log outlives the API:
it can be replayed into ClickHouse or any archive later.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from marshmallow import RAISE, Schema, fields

from routing.contract import Envelope, topics

from ..auth import Principal
from ..bus import Bus, envelope

AUDIT_TYPE = "audit_recorded"
MAX_PER_TENANT = 200_000


class AuditRecordV1(Schema):
    """Payload of `audit_recorded` v1 (the API's own record type on tongdai.audit.v1)."""

    class Meta:
        unknown = RAISE

    user = fields.String(required=True)
    role = fields.String(required=True)
    token_id = fields.String(required=True)
    action = fields.String(required=True)  # e.g. queue.put, agent.delete, recording.read
    target = fields.String(required=True)  # e.g. queue/sales
    detail = fields.Dict(keys=fields.String(), load_default=dict)


class AuditLog:
    def __init__(self, bus: Bus, topic: str) -> None:
        self.bus = bus
        self.topic = topic
        self._lock = threading.Condition()
        self._entries: dict[str, list[dict[str, Any]]] = {}
        self._seen: set[str] = set()

    def record(self, who: Principal, action: str, target: str,
               detail: dict[str, Any] | None = None) -> None:
        """Write one entry (and index it now, so the writer sees it at once)."""
        payload = {"user": who.user, "role": who.role, "token_id": who.token_id,
                   "action": action, "target": target, "detail": detail or {}}
        AuditRecordV1().load(payload)
        env = envelope(AUDIT_TYPE, who.tenant, payload)
        self.bus.publish(self.topic, topics.tenant_key(who.tenant), env)
        self.apply(env)

    def apply(self, env: Envelope) -> None:
        if env.type != AUDIT_TYPE:
            return
        with self._lock:
            if env.event_id in self._seen:
                return
            self._seen.add(env.event_id)
            entries = self._entries.setdefault(env.tenant, [])
            entries.append({"id": env.event_id, "at_us": env.occurred_at, **env.payload})
            if len(entries) > MAX_PER_TENANT:
                del entries[: len(entries) - MAX_PER_TENANT]
            self._lock.notify_all()

    def apply_correction(self, env: Envelope) -> None:
        """The router's corrections against the switch (`state_corrected` on the contact-
        center events), indexed as entries of user `router`, role `system`: what was wrong
        and what was done, beside what people did. Followed from the API's start (the
        call log and ClickHouse's raw events keep the older ones)."""
        if env.type != "state_corrected":
            return
        p = env.payload
        target = (f"call/{env.call_id}" if env.call_id else
                  f"agent/{p['agent_id']}" if p.get("agent_id") else f"leg/{p.get('leg_id')}")
        self.apply(Envelope(env.event_id, AUDIT_TYPE, 1, env.occurred_at, env.tenant,
                            env.source, None, env.call_id, {
                                "user": "router", "role": "system", "token_id": "",
                                "action": f"state.corrected.{p['what']}", "target": target,
                                "detail": {k: p[k] for k in ("node", "action", "agent_id",
                                                             "leg_id", "detail") if p.get(k)}}))

    def find(self, tenant: str, match: Callable[[dict[str, Any]], bool],
             timeout_s: float = 0.0) -> dict[str, Any] | None:
        """The newest entry of a tenant that `match`es; waits up to `timeout_s` for one to
        arrive (an entry another API process wrote reaches this one within its follower's
        lag)."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while True:
                for entry in reversed(self._entries.get(tenant, ())):
                    if match(entry):
                        return entry
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._lock.wait(left)

    def query(self, tenant: str, start_us: int | None = None, end_us: int | None = None,
              user: str | None = None, action: str | None = None,
              target: str | None = None) -> list[dict[str, Any]]:
        """Entries of a tenant, newest first."""
        with self._lock:
            entries = list(self._entries.get(tenant, ()))
        out = [e for e in entries
               if (start_us is None or e["at_us"] >= start_us)
               and (end_us is None or e["at_us"] < end_us)
               and (user is None or e["user"] == user)
               and (action is None or e["action"].startswith(action))
               and (target is None or e["target"] == target)]
        out.sort(key=lambda e: (e["at_us"], e["id"]), reverse=True)
        return out
