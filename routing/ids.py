"""Deterministic ids: a uuid5 over a sequence of parts, the same parts always giving the same
id, so that a replayed input yields the ids it yielded the first time.

One implementation for the event contract (`routing.contract.deterministic_id`) and for the
routing decisions (`routing.decisions.make_id`); they differ only in namespace and in the
separator their ids were first made with. Pure: the policy may use it.

The parts are joined with the separator, as the ids have always been made, when that reads
back as exactly these parts: no part holds the separator (nor NUL), and not a single empty
part (which would read as no parts). Otherwise the joining is ambiguous — with ":",
("a:b", "c") and ("a", "b:c") both read "a:b:c" — and the name is NUL followed by the
parts as a JSON array instead, which no joined name can equal (a joined name holds no NUL).
So every id made before stays the same, and two different sequences never share a name.
"""
from __future__ import annotations

import hashlib
import json
import uuid


def id_name(parts: tuple[object, ...], separator: str) -> str:
    """The uuid5 name of ``parts``: unambiguous, and the plain join wherever that is."""
    texts = list(map(str, parts))
    joined = separator.join(texts)
    # No part holds the separator exactly when the join holds one per gap (counted in C).
    if texts == [""] or "\0" in joined or joined.count(separator) != max(len(texts) - 1, 0):
        return "\0" + json.dumps(texts, ensure_ascii=False)
    return joined


def uuid5_of(namespace: uuid.UUID, parts: tuple[object, ...], separator: str) -> str:
    """``str(uuid.uuid5(namespace, id_name(parts, separator)))``, computed without the UUID
    object (the bridge makes one per event)."""
    name = id_name(parts, separator).encode("utf-8")
    digest = bytearray(hashlib.sha1(namespace.bytes + name).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
