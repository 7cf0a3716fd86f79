"""The envelope every record on every tongdai topic carries.

One shape for FreeSWITCH facts, domain facts, commands and routing decisions, so
every consumer can deduplicate (`event_id`), order (`seq` per `source`) and upcast
(`type` + `version`) the same way. Pure values: no I/O, safe to import anywhere.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from routing.ids import uuid5_of

# Namespace for deterministic ids (uuid5): a replayed input yields the same id.
TONGDAI_NAMESPACE = uuid.UUID("5b0c7a52-3f0e-4f5b-9a57-8d1f2e6c4a10")

ENVELOPE_FIELDS = ("event_id", "type", "version", "occurred_at", "tenant", "source", "seq",
                   "call_id", "payload")


@dataclass(frozen=True, slots=True)
class Envelope:
    """A fact or a command, as written to Kafka.

    `occurred_at` is an integer count of microseconds since the Unix epoch, UTC: exactly
    FreeSWITCH's `Event-Date-Timestamp` for events that came from FreeSWITCH. Integers keep
    the µs precision through JSON and ClickHouse 18.16 (which has no DateTime64).
    `seq` is the source's own sequence (FreeSWITCH `Event-Sequence`); None where the source
    has none. `call_id` is the caller's leg (a-leg) uuid, or None for non-call records.
    """

    event_id: str
    type: str
    version: int
    occurred_at: int
    tenant: str
    source: str
    seq: int | None = None
    call_id: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The wire form (a plain dict, in field order)."""
        return {
            "event_id": self.event_id,
            "type": self.type,
            "version": self.version,
            "occurred_at": self.occurred_at,
            "tenant": self.tenant,
            "source": self.source,
            "seq": self.seq,
            "call_id": self.call_id,
            "payload": self.payload,
        }

    def with_payload(self, payload: dict[str, Any], version: int) -> Envelope:
        """A copy with a new payload and version (what an upcaster returns)."""
        return replace(self, payload=payload, version=version)


def deterministic_id(*parts: object) -> str:
    """A uuid5 over `parts`: the same inputs always give the same id.

    Used for ids that must survive a replay, e.g. a FreeSWITCH event's id from
    (Core-UUID, Event-Sequence) so a re-read after reconnect deduplicates, or a
    routing command id from (call id, attempt). Equal to
    `uuid.uuid5(TONGDAI_NAMESPACE, "\x1f".join(map(str, parts)))` wherever no part holds
    "\x1f"; see `routing.ids` for the rest.
    """
    return uuid5_of(TONGDAI_NAMESPACE, parts, "\x1f")


def click_to_call_leg(tenant: str, request_id: str) -> str:
    """The uuid of a click-to-call's first leg (the agent's phone), which is also the
    call's id: the API answers it, the router originates it, the CDR carries it."""
    return deterministic_id("click_to_call", tenant, request_id)
