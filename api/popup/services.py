"""Incoming-call pop-ups: `call_offered` (cc events) -> caller lookup -> the agent's stream.
(Webhooks are api/webhooks: sent once across processes, not by every process's pop-ups.)

The follower reads `tongdai.cc.events.v1` from its end (pop-ups are about now). The caller's
number comes from the call's `call_enqueued` (remembered for a bounded number of calls).
Lookup order: customers, then contacts, then leads; within each, most recently changed
first; numbers match in any +84/84/0 form (all are stored in E.164).
"""
from __future__ import annotations

import logging
import queue
import threading
from collections import OrderedDict
from typing import Any

from routing import numbers
from routing.contract import Envelope

from ..config.view import ConfigView
from ..live.services import LiveView

log = logging.getLogger("tongdai.api.popup")
CRM_ORDER = ("customer", "contact", "lead")
REMEMBERED_CALLS = 50_000


def lookup(view: ConfigView, tenant: str, number: str) -> list[dict[str, Any]]:
    try:
        wanted = numbers.to_e164(number)
    except ValueError:
        return []
    out = []
    for kind in CRM_ORDER:
        found = [(entry.changed_us, entity_id, entry)
                 for entity_id, entry in view.items(tenant, kind)
                 if wanted in (entry.data.get("phones") or ())]
        for changed, entity_id, entry in sorted(found, key=lambda x: (-x[0], x[1])):
            d = entry.data
            out.append({"kind": kind, "id": entity_id, "name": d.get("name", ""),
                        **{k: d[k] for k in ("company", "external_id", "url") if d.get(k)},
                        "changed_at_us": changed})
    return out


class PopupService:
    def __init__(self, view: ConfigView, live: LiveView | None = None) -> None:
        self.view = view
        self.live = live
        self._lock = threading.Lock()
        self._callers: OrderedDict[str, tuple[str, int]] = OrderedDict()
        self._subscribers: dict[tuple[str, str], list[queue.Queue]] = {}

    def apply(self, env: Envelope) -> None:
        if env.type == "call_enqueued" and env.call_id:
            with self._lock:
                self._callers[env.call_id] = (env.payload.get("caller", ""), env.occurred_at)
                while len(self._callers) > REMEMBERED_CALLS:
                    self._callers.popitem(last=False)
        elif env.type == "call_offered":
            self._offered(env)

    def _offered(self, env: Envelope) -> None:
        p = env.payload
        with self._lock:
            caller, enqueued_us = self._callers.get(env.call_id or "", ("", None))
            subs = list(self._subscribers.get((env.tenant, p["agent_id"]), ()))
        pop = {"call_id": env.call_id, "agent_id": p["agent_id"], "queue": p["queue"],
               "offer_id": p["offer_id"], "caller": caller, "at_us": env.occurred_at,
               "matches": lookup(self.view, env.tenant, caller) if caller else [],
               # How long this caller waited, and how the queue stands behind them (the
               # router's estimate for a caller entering now): the agent sees the pressure.
               "waited_ms": (max(0, env.occurred_at - enqueued_us) // 1000
                             if enqueued_us is not None else None),
               **self._queue_now(env.tenant, p["queue"])}
        for q in subs:
            try:
                q.put_nowait(pop)
            except queue.Full:
                pass

    def _queue_now(self, tenant: str, queue_id: str) -> dict[str, Any]:
        row = None
        if self.live is not None:
            row = next((q for q in self.live.state(tenant)["queues"] if q["queue"] == queue_id),
                       None)
        return {"queue_waiting": row["waiting"] if row else None,
                "queue_ewt_s": row.get("ewt_s") if row else None}

    def subscribe(self, tenant: str, agent_id: str) -> queue.Queue:
        q: queue.Queue = queue.Queue(maxsize=100)
        with self._lock:
            self._subscribers.setdefault((tenant, agent_id), []).append(q)
        return q

    def unsubscribe(self, tenant: str, agent_id: str, q: queue.Queue) -> None:
        with self._lock:
            subs = self._subscribers.get((tenant, agent_id), [])
            if q in subs:
                subs.remove(q)
