"""Upcasters: turn an old version of a payload into the next one, step by step.

A change of meaning bumps a type's version (schemas.PAYLOADS) and adds one function here
that maps version N to N+1. Consumers call `upcast` before anything else, so code only
ever sees current versions and old records in the log stay readable forever.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .envelope import Envelope
from .schemas import CURRENT_VERSION

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]

# (type, from_version) -> function producing the payload of from_version + 1.
UPCASTERS: dict[tuple[str, int], Upcaster] = {
    # v2 adds the `periodic` reason and optional `tongdai` info per channel: a v1 snapshot
    # is a valid v2 one as it is.
    ("node_snapshot_taken", 1): lambda payload: payload,
    # v2 says who bridges the answered phone; every v1 offer parked and the router bridged.
    ("offer_call", 1): lambda payload: {**payload, "connect": "router"},
    # v3 marks callbacks' offers; no earlier offer was one.
    ("offer_call", 2): lambda payload: {**payload, "callback": False},
    # v2 may ask for the waiting music after the prompt; a v1 prompt was followed by none.
    ("play_announcement", 1): lambda payload: {**payload, "then_music": False},
}


class UpcastError(ValueError):
    """A record cannot be brought to the current version (no path, or from the future)."""


def upcast(envelope: Envelope,
           upcasters: Mapping[tuple[str, int], Upcaster] = UPCASTERS,
           current: Mapping[str, int] = CURRENT_VERSION) -> Envelope:
    """Return `envelope` at the current version of its type."""
    target = current.get(envelope.type)
    if target is None:
        raise UpcastError(f"unknown record type {envelope.type!r}")
    if envelope.version > target:
        raise UpcastError(f"{envelope.type} v{envelope.version} is newer than this reader "
                          f"(v{target}): upgrade the consumer")
    while envelope.version < target:
        step = upcasters.get((envelope.type, envelope.version))
        if step is None:
            raise UpcastError(f"no upcaster for {envelope.type} v{envelope.version}")
        envelope = envelope.with_payload(step(dict(envelope.payload)), envelope.version + 1)
    return envelope
