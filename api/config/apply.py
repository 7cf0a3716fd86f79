"""`tongdai config apply FILE.yaml`: validate every entity of a file, then write them.

File shape (one tenant per file; every section optional):

    tenant: acme
    settings: {domain: acme.example, max_concurrent_calls: 30}
    queues:  {support: {strategy: longest-idle-agent, wrapup_s: 10}}
    ivrs:    {main: {greeting: ivr/main.wav, options: {"1": {queue: support}}}}
    dids:    {"028 3812 3456": {ivr: main}}
    extensions: {"1001": {display_name: Lan}}
    agents:  {lan: {extension: "1001", queues: {support: {}}}}
    blocklist: {"0912345678": {reason: spam}}
    users:   {lan: {role: agent, agent_id: lan}}
    customers / contacts / leads: {c1: {name: ..., phones: [...]}}

The file is validated as a set: a reference (a DID's or an IVR option's IVR or queue, an
agent's queues, a queue's overflow queue, a user's extension) may point at any entity of
the file, wherever it is written, or at one the configuration already holds; one that is
in neither makes its entity invalid, naming the field and the missing target
(`ivr main invalid / options.2: unknown IVR 'sub' (neither in this file nor in the
configuration)`). Two agents may not end up with the same extension. Nothing is written
unless every entity is valid. Then the entities are written referenced-first (a DID after
its IVR, a menu after its sub-menus), so a reader of the config topic sees few dangling
references on the way; menus that refer to each other (a sub-menu's "back to the main menu"
option) are allowed: FreeSWITCH's menus refer to each other by name (`menu-sub`), so a
cycle is written in file order. Entities equal to what the config topic already holds are
left alone, so applying the same file twice writes nothing the second time.

With `missing_only` (`tongdai config apply --missing-only`, what `tongdai up` does with the
demo file at every start) only entities the configuration has never held are written: one
that exists is `kept` as it is (an admin's change through the API stays), and so is one an
admin deleted (it is not brought back). A new entity of the file (an extension added to the
demo in a later version) is still created on a configuration made by an earlier one.

With the switch's sounds folder (`TONGDAI_API_SOUNDS_DIR`), a menu's greeting or
invalid-entry sound and a queue's music on hold that the switch would not find make their
entity invalid (api/config/sounds.py): a caller would hear silence.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from marshmallow import ValidationError

from ..auth import Principal
from ..errors import ApiError, flatten
from . import sounds as sound_files
from .services import APPLY_ORDER, KINDS, ConfigService, references

WHERE = " (neither in this file nor in the configuration)"

SECTIONS = {"settings": "tenant", **{spec.plural: name for name, spec in KINDS.items()}}


@dataclass
class Outcome:
    kind: str
    entity_id: str
    status: str  # created | updated | unchanged | kept | invalid | failed
    errors: list[dict[str, str]] = field(default_factory=list)
    secret: str | None = None  # a new SIP password (shown once)


class FileError(ValueError):
    """The file is not a tongdai configuration (message names the problem)."""


def parse(doc: Any) -> tuple[str, list[tuple[str, str, dict[str, Any]]]]:
    if not isinstance(doc, dict):
        raise FileError("the file must be a mapping with `tenant:` and sections")
    tenant = doc.get("tenant")
    if not isinstance(tenant, str) or not tenant:
        raise FileError("`tenant:` is required (the tenant id)")
    unknown = sorted(set(doc) - set(SECTIONS) - {"tenant"})
    if unknown:
        raise FileError(f"unknown section(s): {', '.join(unknown)}; known: "
                        f"{', '.join(sorted(SECTIONS))}")
    entities = []
    for section, kind in SECTIONS.items():
        body = doc.get(section)
        if body is None:
            continue
        if kind == "tenant":
            if not isinstance(body, dict):
                raise FileError("`settings:` must be a mapping")
            entities.append(("tenant", tenant, body))
            continue
        if not isinstance(body, dict):
            raise FileError(f"`{section}:` must be a mapping of id -> fields")
        for entity_id, data in body.items():
            if data is not None and not isinstance(data, dict):
                raise FileError(f"{section}.{entity_id}: must be a mapping")
            entities.append((kind, str(entity_id), dict(data or {})))
    entities.sort(key=lambda e: APPLY_ORDER.index(e[0]))
    return tenant, entities


def _comparable(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    if kind == "extension":
        return {k: v for k, v in data.items() if k not in ("a1_hash", "domain",
                                                           "rotate_password")}
    if kind == "user":
        return {k: v for k, v in data.items() if k != "tokens_after_ms"}
    if kind == "tenant" and data.get("webhooks"):
        from ..webhooks.services import hook_id

        return {**data, "webhooks": [
            {**{k: v for k, v in h.items() if k not in ("secret", "rotate_secret")},
             "id": hook_id(h)} for h in data["webhooks"]]}
    return data


def apply(svc: ConfigService, who: Principal, doc: Any, dry_run: bool = False,
          missing_only: bool = False, sounds: Path | None = None) -> list[Outcome]:
    """Validate all, then (unless invalid or dry_run) write the changed entities; with
    `missing_only`, only those the configuration never held (the others are `kept`); with
    `sounds` (the switch's sounds folder), an entity whose sound is not there is invalid."""
    tenant, entities = parse(doc)
    if tenant != who.tenant:
        raise FileError(f"the file is for tenant {tenant!r}, not {who.tenant!r}")
    kept: list[Outcome] = []
    if missing_only:
        def held(kind: str, eid: str) -> bool:
            eid = _normal(kind, eid)
            return (svc.view.get(tenant, kind, eid) is not None
                    or svc.view.deleted(tenant, kind, eid))

        kept = [Outcome(kind, _normal(kind, eid), "kept") for kind, eid, _ in entities
                if held(kind, eid)]
        entities = [e for e in entities if not held(e[0], e[1])]
    # A kept entity is not in the file any more: a reference to one an admin deleted is
    # then refused like any other dangling reference.
    in_file = {(kind, _normal(kind, eid)) for kind, eid, _ in entities}

    def exists(kind: str, entity_id: str) -> bool:
        return (kind, entity_id) in in_file or svc.view.get(tenant, kind, entity_id) is not None

    prepared, outcomes = [], []
    for kind, entity_id, raw in entities:
        try:
            eid, data = svc.prepare(tenant, kind, entity_id, raw, exists, WHERE)
            if sounds is not None and (absent := sound_files.missing(kind, data, sounds)):
                raise ValidationError(absent)
        except ValidationError as exc:
            outcomes.append(Outcome(kind, entity_id, "invalid", flatten(exc.messages)))
            continue
        current = svc.view.get(tenant, kind, eid)
        if current is None:
            status = "created"
        elif _comparable(kind, current.data) == _comparable(kind, data) and not raw.get(
                "rotate_password"):
            status = "unchanged"
        else:
            status = "updated"
        prepared.append((kind, eid, raw, data, status))
        outcomes.append(Outcome(kind, eid, status))
    _check_agent_extensions(svc, tenant, prepared, outcomes)
    if any(o.status == "invalid" for o in outcomes) or dry_run:
        return outcomes + kept
    by_key = {(kind, eid): o for (kind, eid, *_), o in zip(prepared, outcomes)}
    for kind, eid, raw, _data, status in write_order(prepared):
        if status == "unchanged":
            continue
        outcome = by_key[(kind, eid)]
        try:
            if kind == "tenant":
                svc.put_tenant(who, raw)
            else:
                item = svc.put(who, kind, eid, raw, exists, extension_checked=True)
                outcome.secret = item.get("sip_password")
        except (ApiError, ValidationError) as exc:
            outcome.status = "failed"
            outcome.errors = (flatten(exc.messages) if isinstance(exc, ValidationError)
                              else exc.details or [{"field": "_entity", "rule": exc.message}])
    return outcomes + kept


def write_order(prepared: list[tuple]) -> list[tuple]:
    """The prepared entities, each after the entities of the file it refers to (depth-first
    from the file's order; a cycle is cut where it closes)."""
    index = {(p[0], p[1]): p for p in prepared}
    done: set[tuple[str, str]] = set()
    visiting: set[tuple[str, str]] = set()
    order: list[tuple] = []

    def visit(key: tuple[str, str]) -> None:
        if key in done or key in visiting:
            return  # written already, or a cycle: written in file order
        visiting.add(key)
        for _path, ref_kind, ref_id in references(key[0], index[key][3]):
            if (ref_kind, ref_id) in index:
                visit((ref_kind, ref_id))
        visiting.discard(key)
        done.add(key)
        order.append(index[key])

    for p in prepared:
        visit((p[0], p[1]))
    return order


def _check_agent_extensions(svc: ConfigService, tenant: str, prepared: list[tuple],
                            outcomes: list[Outcome]) -> None:
    """An extension belongs to one agent, in the configuration the file leads to."""
    final = {agent_id: entry.data.get("extension")
             for agent_id, entry in svc.view.items(tenant, "agent")}
    final.update({eid: data.get("extension") for kind, eid, _, data, _ in prepared
                  if kind == "agent"})
    owners: dict[str, list[str]] = {}
    for agent_id, ext in final.items():
        if ext:
            owners.setdefault(ext, []).append(agent_id)
    for outcome in outcomes:
        if outcome.kind != "agent" or outcome.status == "invalid":
            continue
        ext = final.get(outcome.entity_id)
        others = sorted(a for a in owners.get(ext, ()) if a != outcome.entity_id)
        if others:
            outcome.status = "invalid"
            outcome.errors = [{"field": "extension",
                               "rule": f"unique per tenant: {ext} is also agent "
                                       f"{others[0]!r}'s"}]


def _normal(kind: str, entity_id: str) -> str:
    spec = KINDS.get(kind)
    if spec is None:
        return entity_id
    try:
        return spec.id_rule(entity_id)
    except ValidationError:
        return entity_id
