"""Router snapshots as versioned data, not pickles.

A stored router is read back from the worker's changelog topic: unpickling it would run
whatever code anyone able to write that topic put there, and a pickle has no version
while every event does. A snapshot is JSON (orjson) of a tagged tree:

- JSON scalars as they are; a list as a list;
- ``{"t": [...]}`` a tuple, ``{"s": [...]}`` a set, ``{"fs": [...]}`` a frozenset,
  ``{"m": [[k, v], ...]}`` a
  dict (keys may be tuples), ``{"o": [[k, v], ...]}`` an OrderedDict; a dict or an
  OrderedDict with string keys and scalar values as a JSON object: ``{"d": {...}}``,
  ``{"od": {...}}`` (most of the bytes: event ids seen, sticky callers);
- ``{"c": "Name", "f": {...}}`` an instance of one of the dataclasses in ``CLASSES`` (and
  only those: decoding never looks a name up anywhere else), built by calling the class
  with its stored fields, so a field added since gets its default and one removed is
  dropped.

The document is ``{"v": VERSION, "kind": ..., "data": tree}``. A change of meaning bumps
VERSION and adds an upgrade function of the document (``UPGRADES``), as the event
contract does; a version this reader does not know is refused (``SnapshotError``) and the
worker rebuilds the tenant from the log instead.
"""
from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import orjson

from routing import decisions, model, numbers, state
from routing.contract.envelope import Envelope

from .router import TenantRouter

VERSION = 1


class SnapshotError(ValueError):
    """A stored snapshot this worker cannot read (unknown version, not a snapshot)."""


def _dataclasses(*modules: Any) -> dict[str, type]:
    out: dict[str, type] = {}
    for module in modules:
        for value in vars(module).values():
            if isinstance(value, type) and dataclasses.is_dataclass(value) \
                    and value.__module__ == module.__name__:
                out[value.__name__] = value
    return out


CLASSES: dict[str, type] = {**_dataclasses(model, state, numbers, decisions),
                            "Envelope": Envelope, "TenantRouter": TenantRouter}

# (kind, from_version) -> function of the document's data giving the next version's.
UPGRADES: dict[tuple[str, int], Callable[[Any], Any]] = {}

_SCALARS = (str, int, float, bool, type(None))


def _flat(d: dict) -> bool:
    """A str-keyed dict of scalars: stored as a JSON object as it is (most of a router's
    bytes are such: event ids seen, sticky callers)."""
    return all(type(k) is str and type(v) in _FLAT for k, v in d.items())


_FLAT = frozenset({str, int, float, bool, type(None)})


def _enc(value: Any) -> Any:
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, list):
        return [_enc(v) for v in value]
    if isinstance(value, tuple):
        return {"t": [_enc(v) for v in value]}
    if isinstance(value, (set, frozenset)):
        items = list(value) if all(type(v) in _FLAT for v in value) else [_enc(v) for v in value]
        return {"fs" if isinstance(value, frozenset) else "s": items}
    if isinstance(value, OrderedDict):
        return {"od": dict(value)} if _flat(value) else \
            {"o": [[_enc(k), _enc(v)] for k, v in value.items()]}
    if isinstance(value, dict):
        return {"d": dict(value)} if _flat(value) else \
            {"m": [[_enc(k), _enc(v)] for k, v in value.items()]}
    name = type(value).__name__
    if dataclasses.is_dataclass(value) and CLASSES.get(name) is type(value):
        return {"c": name, "f": {f.name: _enc(getattr(value, f.name))
                                 for f in dataclasses.fields(value)}}
    raise TypeError(f"cannot snapshot a {type(value).__qualname__}")


def _dec(node: Any) -> Any:
    if isinstance(node, _SCALARS):
        return node
    if isinstance(node, list):
        return [_dec(v) for v in node]
    if not isinstance(node, dict) or len(node) not in (1, 2):
        raise SnapshotError(f"not a snapshot node: {str(node)[:80]}")
    if "t" in node:
        return tuple(_dec(v) for v in node["t"])
    if "fs" in node:
        return frozenset(_dec(v) for v in node["fs"])
    if "s" in node:
        return {_dec(v) for v in node["s"]}
    if "d" in node:
        return dict(node["d"])
    if "od" in node:
        return OrderedDict(node["od"])
    if "m" in node:
        return {_dec(k): _dec(v) for k, v in node["m"]}
    if "o" in node:
        return OrderedDict((_dec(k), _dec(v)) for k, v in node["o"])
    if "c" in node:
        cls = CLASSES.get(node["c"])
        if cls is None:
            raise SnapshotError(f"unknown class {node['c']!r} in a snapshot")
        known = {f.name for f in dataclasses.fields(cls) if f.init}
        return cls(**{k: _dec(v) for k, v in node["f"].items() if k in known})
    raise SnapshotError(f"not a snapshot node: {str(node)[:80]}")


def dumps(kind: str, value: Any) -> bytes:
    return orjson.dumps({"v": VERSION, "kind": kind, "data": _enc(value)})


def loads(kind: str, blob: bytes) -> Any:
    try:
        doc = orjson.loads(blob)
    except orjson.JSONDecodeError:
        raise SnapshotError("not a snapshot (an older worker's pickle?)") from None
    if not isinstance(doc, dict) or doc.get("kind") != kind or not isinstance(doc.get("v"), int):
        raise SnapshotError(f"not a {kind} snapshot")
    version, data = doc["v"], doc["data"]
    if version > VERSION:
        raise SnapshotError(f"{kind} snapshot v{version} is newer than this worker (v{VERSION})")
    while version < VERSION:
        step = UPGRADES.get((kind, version))
        if step is None:
            raise SnapshotError(f"no upgrade for {kind} snapshot v{version}")
        data, version = step(data), version + 1
    return _dec(data)
