"""Incoming-call pop-ups: `call_offered` (cc events) -> caller lookup -> the agent's stream
and the tenant's webhooks.

The follower reads `tongdai.cc.events.v1` from its end (pop-ups are about now). The caller's
number comes from the call's `call_enqueued` (remembered for a bounded number of calls).
Lookup order: customers, then contacts, then leads; within each, most recently changed
first; numbers match in any +84/84/0 form (all are stored in E.164).
"""
from __future__ import annotations

import json
import logging
import queue
import threading
import urllib.request
from collections import OrderedDict
from typing import Any

from routing import numbers
from routing.contract import Envelope

from ..config.view import ConfigView

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
    def __init__(self, view: ConfigView, webhook_timeout_s: float = 3.0) -> None:
        self.view = view
        self._lock = threading.Lock()
        self._callers: OrderedDict[str, str] = OrderedDict()
        self._subscribers: dict[tuple[str, str], list[queue.Queue]] = {}
        self._hooks: queue.Queue = queue.Queue(maxsize=10_000)
        self._timeout = webhook_timeout_s
        self._hook_thread: threading.Thread | None = None

    def apply(self, env: Envelope) -> None:
        if env.type == "call_enqueued" and env.call_id:
            with self._lock:
                self._callers[env.call_id] = env.payload.get("caller", "")
                while len(self._callers) > REMEMBERED_CALLS:
                    self._callers.popitem(last=False)
        elif env.type == "call_offered":
            self._offered(env)

    def _offered(self, env: Envelope) -> None:
        p = env.payload
        with self._lock:
            caller = self._callers.get(env.call_id or "", "")
            subs = list(self._subscribers.get((env.tenant, p["agent_id"]), ()))
        pop = {"call_id": env.call_id, "agent_id": p["agent_id"], "queue": p["queue"],
               "offer_id": p["offer_id"], "caller": caller, "at_us": env.occurred_at,
               "matches": lookup(self.view, env.tenant, caller) if caller else []}
        for q in subs:
            try:
                q.put_nowait(pop)
            except queue.Full:
                pass
        t = self.view.get(env.tenant, "tenant", env.tenant)
        for hook in (t.data.get("webhooks") or ()) if t else ():
            if "call_offered" in hook.get("events", ("call_offered",)):
                self._webhook(hook["url"], {"event": "call_offered", "tenant": env.tenant, **pop})

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

    def _webhook(self, url: str, body: dict[str, Any]) -> None:
        if self._hook_thread is None:
            self._hook_thread = threading.Thread(target=self._send_hooks, daemon=True,
                                                 name="webhooks")
            self._hook_thread.start()
        try:
            self._hooks.put_nowait((url, body))
        except queue.Full:
            log.warning("webhook queue full; dropping a call_offered for %s", body["tenant"])

    def _send_hooks(self) -> None:
        while True:
            url, body = self._hooks.get()
            req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
            try:
                urllib.request.urlopen(req, timeout=self._timeout).close()
            except Exception as exc:  # a CRM being down must not stop pop-ups
                log.warning("webhook for tenant %s failed: %s", body["tenant"],
                            type(exc).__name__)
