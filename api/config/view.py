"""The API's view of the configuration: a fold over the compacted config topic.

Every process builds it by reading `tongdai.config.v1` from the beginning and following
it (api/bus.py). A write through this process is applied at once as well, so a client
reads its own writes; other processes see it as soon as their follower does (well under a
second on a healthy broker).

Claims. Numbers (DIDs) and SIP domains belong to one tenant across all tenants. A tenant
claims one with a record of kind `claim` (entity id `<claim kind>:<value>`, e.g.
`did:+842838123456`, key `<tenant>/claim/<claim kind>:<value>`; `data: null` releases it).
Claims are applied only as the follower reads them, never from the local write, so every
process folds them in the topic's order: the holder is the tenant whose claim was read
first among the live claims. The config topic has one partition (routing/contract/
topics.py), so that order is the same in every process, and after compaction (the last
record per tenant and value) replay gives the same holder.
"""
from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from routing.contract import Envelope

CLAIM = "claim"  # the config kind of claims on numbers and domains (see above)


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
        self._deleted: set[tuple[str, str, str]] = set()  # tombstones read (tenant, kind, id)
        self._claims: dict[str, list[str]] = {}  # "did:+84..." -> live claimants, in order
        self._changed = threading.Condition(self._lock)
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
            self._changed.notify_all()
            if kind == CLAIM:
                claimants = self._claims.setdefault(entity_id, [])
                if data is None:
                    if env.tenant in claimants:
                        claimants.remove(env.tenant)
                elif env.tenant not in claimants:
                    claimants.append(env.tenant)
                self.applied += 1
                return
            kinds = self._data.setdefault(env.tenant, {}).setdefault(kind, {})
            current = kinds.get(entity_id)
            if current is not None and current.changed_us > env.occurred_at:
                return  # an older record arriving after a newer local write
            if data is None:
                kinds.pop(entity_id, None)
                self._deleted.add((env.tenant, kind, entity_id))
            else:
                kinds[entity_id] = Entry(dict(data), env.occurred_at, env.event_id)
                self._deleted.discard((env.tenant, kind, entity_id))
            self.applied += 1

    def get(self, tenant: str, kind: str, entity_id: str) -> Entry | None:
        with self._lock:
            return self._data.get(tenant, {}).get(kind, {}).get(entity_id)

    def deleted(self, tenant: str, kind: str, entity_id: str) -> bool:
        """Whether the entity's last record read was a tombstone."""
        with self._lock:
            return (tenant, kind, entity_id) in self._deleted

    def items(self, tenant: str, kind: str) -> list[tuple[str, Entry]]:
        """(id, entry) of one kind of a tenant, sorted by id."""
        with self._lock:
            return sorted(self._data.get(tenant, {}).get(kind, {}).items())

    def tenants(self) -> list[str]:
        with self._lock:
            return sorted(self._data)

    def seen(self, event_id: str, timeout_s: float) -> bool:
        """Wait until the record `event_id` has been applied (read back by the follower)."""
        with self._changed:
            return self._changed.wait_for(lambda: event_id in self._seen, timeout_s)

    def holder(self, claim: str) -> str | None:
        """The tenant holding a claim (`did:+84...`, `domain:acme.example`), or None."""
        with self._lock:
            claimants = self._claims.get(claim)
            return claimants[0] if claimants else None

    def claimants(self, claim: str) -> list[str]:
        with self._lock:
            return list(self._claims.get(claim, ()))

    def _domains(self) -> dict[str, list[str]]:
        """domain -> tenants with a tenant record using it (a domain defaults to the id)."""
        out: dict[str, list[str]] = {}
        for tenant, kinds in self._data.items():
            entry = kinds.get("tenant", {}).get(tenant)
            if entry is not None:
                out.setdefault(str(entry.data.get("domain") or tenant), []).append(tenant)
        return out

    def domain_users(self, domain: str) -> set[str]:
        """Tenants that use `domain`: by a tenant record, by holding its claim, or by
        having configuration under a tenant id equal to it (its default domain)."""
        with self._lock:
            users = set(self._domains().get(domain, ()))
            users.update(self._claims.get(f"domain:{domain}", ()))
            if domain in self._data and "tenant" not in self._data[domain]:
                users.add(domain)
            return users

    def did_users(self, number: str) -> set[str]:
        """Tenants with the DID `number` configured or claimed."""
        with self._lock:
            users = {t for t, kinds in self._data.items() if number in kinds.get("did", {})}
            users.update(self._claims.get(f"did:{number}", ()))
            return users

    def tenant_of_domain(self, domain: str) -> str | None:
        """The tenant whose SIP domain is `domain` (a tenant's domain defaults to its id):
        the claim's holder; for configuration written before claims existed, the only
        tenant using it. None when two tenants use it and neither holds the claim."""
        with self._lock:
            using = self._domains().get(domain, [])
            holder = self.holder(f"domain:{domain}")
            if holder is not None:
                return holder if holder in using else None
            return using[0] if len(using) == 1 else None

    def tenant_of_did(self, number: str) -> str | None:
        """The tenant the DID `number` routes to: the claim's holder, else the only tenant
        that has it configured (None if ambiguous)."""
        with self._lock:
            having = [t for t, kinds in self._data.items() if number in kinds.get("did", {})]
            holder = self.holder(f"did:{number}")
            if holder is not None:
                return holder if holder in having else None
            return having[0] if len(having) == 1 else None

    def domain(self, tenant: str) -> str:
        entry = self.get(tenant, "tenant", tenant)
        return str((entry.data.get("domain") if entry else None) or tenant)

    def all(self, tenant: str) -> Iterator[tuple[str, str, Entry]]:
        with self._lock:
            snapshot = [(k, i, e) for k, ents in self._data.get(tenant, {}).items()
                        for i, e in ents.items()]
        yield from sorted(snapshot, key=lambda x: (x[0], x[1]))
