"""The API's view of the configuration: a fold over the compacted config topic.

Every process builds it by reading `tongdai.config.v1` from the beginning and following
it (api/bus.py). A write through this process is applied at once as well, so a client
reads its own writes; other processes see it as soon as their follower does (well under a
second on a healthy broker).
"""
from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from routing.contract import Envelope


@dataclass(frozen=True, slots=True)
class Entry:
    data: dict[str, Any]
    changed_us: int  # occurred_at of the record that set it (most recently changed first)
    event_id: str


class ConfigView:
    """{tenant: {kind: {entity_id: Entry}}} plus the indexes FreeSWITCH lookups need."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._data: dict[str, dict[str, dict[str, Entry]]] = {}
        self._seen: set[str] = set()
        self.applied = 0

    def apply(self, env: Envelope) -> None:
        if env.type != "config_changed":
            return
        p = env.payload
        kind, entity_id, data = p.get("kind"), p.get("entity_id"), p.get("data")
        if not isinstance(kind, str) or not isinstance(entity_id, str):
            return
        with self._lock:
            if env.event_id in self._seen:
                return  # our own write, read back from the topic
            self._seen.add(env.event_id)
            kinds = self._data.setdefault(env.tenant, {}).setdefault(kind, {})
            current = kinds.get(entity_id)
            if current is not None and current.changed_us > env.occurred_at:
                return  # an older record arriving after a newer local write
            if data is None:
                kinds.pop(entity_id, None)
            else:
                kinds[entity_id] = Entry(dict(data), env.occurred_at, env.event_id)
            self.applied += 1

    def get(self, tenant: str, kind: str, entity_id: str) -> Entry | None:
        with self._lock:
            return self._data.get(tenant, {}).get(kind, {}).get(entity_id)

    def items(self, tenant: str, kind: str) -> list[tuple[str, Entry]]:
        """(id, entry) of one kind of a tenant, sorted by id."""
        with self._lock:
            return sorted(self._data.get(tenant, {}).get(kind, {}).items())

    def tenants(self) -> list[str]:
        with self._lock:
            return sorted(self._data)

    def tenant_of_domain(self, domain: str) -> str | None:
        """The tenant whose SIP domain is `domain` (a tenant's domain defaults to its id)."""
        with self._lock:
            for tenant, kinds in self._data.items():
                entry = kinds.get("tenant", {}).get(tenant)
                if entry is not None and (entry.data.get("domain") or tenant) == domain:
                    return tenant
            return None

    def tenant_of_did(self, number: str) -> str | None:
        with self._lock:
            for tenant, kinds in self._data.items():
                if number in kinds.get("did", {}):
                    return tenant
            return None

    def domain(self, tenant: str) -> str:
        entry = self.get(tenant, "tenant", tenant)
        return str((entry.data.get("domain") if entry else None) or tenant)

    def all(self, tenant: str) -> Iterator[tuple[str, str, Entry]]:
        with self._lock:
            snapshot = [(k, i, e) for k, ents in self._data.get(tenant, {}).items()
                        for i, e in ents.items()]
        yield from sorted(snapshot, key=lambda x: (x[0], x[1]))
