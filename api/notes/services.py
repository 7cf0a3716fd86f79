"""Notes on calls, written by agents after a call ends (also on failed outbound calls).

Notes are facts, not configuration, and the call log belongs to the sink, so they are
records of type `call_note_added` on their own topic (`tongdai.call_notes.v1`, keyed by
tenant); every API process indexes them in memory (read from the beginning). Call detail
shows them, call search's `notes` filter matches them as well as the CDR's own notes, and
a failed outbound call (a click-to-call that never connected: no CDR row) is recorded
by its note with a duration of 0 and shown in search and detail as disposition `failed`.
"""
from __future__ import annotations

import threading
from typing import Any

from marshmallow import RAISE, Schema, fields

from routing.contract import Envelope, topics

from ..auth import Principal
from ..bus import Bus, envelope

NOTE_TYPE = "call_note_added"


class CallNoteV1(Schema):
    """Payload of `call_note_added` v1 (the API's own record type)."""

    class Meta:
        unknown = RAISE

    call_id = fields.String(required=True)
    text = fields.String(required=True)
    disposition = fields.String(load_default="")
    user = fields.String(required=True)
    role = fields.String(required=True)
    outbound_failed = fields.Boolean(load_default=False)
    number = fields.String(load_default="")
    agent_id = fields.String(load_default="")


class Notes:
    def __init__(self, bus: Bus, topic: str) -> None:
        self.bus = bus
        self.topic = topic
        self._lock = threading.Lock()
        self._by_call: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._seen: set[str] = set()

    def add(self, who: Principal, call_id: str, body: dict[str, Any]) -> dict[str, Any]:
        payload = {"call_id": call_id, "text": body["text"],
                   "disposition": body.get("disposition", ""), "user": who.user,
                   "role": who.role, "outbound_failed": bool(body.get("outbound_failed")),
                   "number": body.get("number", ""), "agent_id": body.get("agent_id", "")}
        CallNoteV1().load(payload)
        env = envelope(NOTE_TYPE, who.tenant, payload, call_id=call_id)
        self.bus.publish(self.topic, topics.tenant_key(who.tenant), env)
        self.apply(env)
        return self._note(env)

    @staticmethod
    def _note(env: Envelope) -> dict[str, Any]:
        return {"id": env.event_id, "at_us": env.occurred_at, **env.payload}

    def apply(self, env: Envelope) -> None:
        if env.type != NOTE_TYPE:
            return
        with self._lock:
            if env.event_id in self._seen:
                return
            self._seen.add(env.event_id)
            self._by_call.setdefault((env.tenant, env.payload["call_id"]), []).append(
                self._note(env))

    def of_call(self, tenant: str, call_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return sorted(self._by_call.get((tenant, call_id), ()), key=lambda n: n["at_us"])

    def matching(self, tenant: str, text: str) -> set[str]:
        """Ids of the tenant's calls with a note containing `text` (case-insensitive)."""
        low = text.lower()
        with self._lock:
            return {cid for (t, cid), notes in self._by_call.items()
                    if t == tenant and any(low in n["text"].lower() for n in notes)}

    def failed_outbound(self, tenant: str) -> list[dict[str, Any]]:
        """Failed outbound calls known only by their notes, as call rows of 0 duration."""
        with self._lock:
            items = [(cid, notes) for (t, cid), notes in self._by_call.items() if t == tenant]
        rows = []
        for cid, notes in items:
            failed = [n for n in notes if n["outbound_failed"]]
            if not failed:
                continue
            first = min(failed, key=lambda n: n["at_us"])
            rows.append({"call_id": cid, "start_us": first["at_us"], "direction": "outbound",
                         "did": "", "caller": "", "callee": first["number"], "queue": "",
                         "agent_id": first["agent_id"], "extension": "", "ivr_path": "",
                         "wait_ms": 0, "ring_ms": 0, "talk_ms": 0, "hold_ms": 0, "wrap_ms": 0,
                         "disposition": "failed", "hangup_cause": "",
                         "has_recording": False,
                         "notes": "; ".join(n["text"] for n in notes),
                         "offers": 0, "ring_no_answer": 0, "transfers": 0, "final": True})
        return rows
