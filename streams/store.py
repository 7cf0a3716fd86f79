"""Persistence of tenant routers in a key-value table (Faust's, or a dict for tests).

A save costs one changelog message per key: a stream processor pays per message (Faust
on this 2-core box: ~1k/s), so storing a router entity by entity made the worker lag.
A tenant is two keys: `<tenant>|config` (tenants, queues, agents' configuration: most of
the bytes, rarely changed, written only when it changed) and `<tenant>|router`
(everything else, written at each save that follows a change; the worker saves at its
offset commits, streams.app). routing's `gone` memory (finished calls, for dropping
redelivered parks) is not stored: the router's own (source, seq) / event_id marks already
drop redelivered records, and it grows with every call.

Both are versioned snapshots (streams.snapshot: data, never a pickle). A snapshot this
worker cannot read raises SnapshotError from `load`: the worker then rebuilds the tenant
from the log (streams.app).
"""
from __future__ import annotations

import dataclasses
from collections.abc import MutableMapping

from . import snapshot
from .router import TenantRouter

SEP = "|"
CONFIG_KEY, ROUTER_KEY = "config", "router"
CONFIG_FIELDS = ("tenants", "queues", "agent_cfg", "dids")
NOT_STORED = {"gone": {}}


def _config_ids(router: TenantRouter) -> tuple[int, ...]:
    # routing's state is copy-on-write: an unchanged mapping is the same object.
    return tuple(id(getattr(router.state, f)) for f in CONFIG_FIELDS)


class RouterStore:
    def __init__(self, table: MutableMapping[str, bytes]) -> None:
        self.table = table
        self._written: dict[str, tuple[int, tuple[int, ...]]] = {}  # tenant -> (version, ids)
        self.writes = 0

    def tenants(self) -> set[str]:
        suffix = SEP + ROUTER_KEY
        return {k[: -len(suffix)] for k in self.table.keys() if k.endswith(suffix)}

    def forget(self, tenant: str | None = None) -> None:
        """Forget what was written (after a revoke or a failed record): next save writes all."""
        if tenant is None:
            self._written.clear()
        else:
            self._written.pop(tenant, None)

    def save(self, router: TenantRouter) -> int:
        """Write the router if it changed since the last save; returns the values written."""
        t = router.tenant
        version, ids = self._written.get(t, (-1, ()))
        if router.version == version:
            return 0
        n = 0
        now_ids = _config_ids(router)
        if now_ids != ids:
            self.table[f"{t}{SEP}{CONFIG_KEY}"] = snapshot.dumps(
                CONFIG_KEY, {f: getattr(router.state, f) for f in CONFIG_FIELDS})
            n += 1
        state = dataclasses.replace(router.state, **{f: {} for f in CONFIG_FIELDS}, **NOT_STORED)
        self.table[f"{t}{SEP}{ROUTER_KEY}"] = snapshot.dumps(
            ROUTER_KEY, dataclasses.replace(router, state=state))
        n += 1
        self._written[t] = (router.version, now_ids)
        self.writes += n
        return n

    def load(self, tenant: str) -> TenantRouter:
        """The stored router of `tenant` (an empty one if there is none). Raises
        snapshot.SnapshotError when what is stored cannot be read (then rebuild it)."""
        blob = self.table.get(f"{tenant}{SEP}{ROUTER_KEY}")
        if not blob:
            return TenantRouter(tenant)
        router: TenantRouter = snapshot.loads(ROUTER_KEY, blob)
        config = self.table.get(f"{tenant}{SEP}{CONFIG_KEY}")
        if config:
            router.state = dataclasses.replace(router.state,
                                               **snapshot.loads(CONFIG_KEY, config))
        self._written[tenant] = (router.version, _config_ids(router))
        return router
