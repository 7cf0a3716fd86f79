"""Admin configuration: validate, write `config_changed` records, answer from the view.

Event-sourced: nothing is stored here. A write is one record on the compacted config
topic keyed `<tenant>/<kind>/<id>` (the worker re-keys it by tenant); the view is rebuilt
by every reader from the topic. References (an agent's queues, a DID's queue or IVR) must
name entities that exist, in the view or in the same batch (`tongdai config apply`).
"""
from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from marshmallow import Schema, ValidationError

from routing import numbers
from routing.contract import Envelope, topics

from ..audit.services import AuditLog
from ..auth import Principal, Tokens
from ..bus import Bus, envelope
from ..errors import Conflict, NotFound, Unavailable
from ..fields import ENTITY_ID, EXTENSION
from . import schemas as s
from .view import CLAIM, ConfigView

#: how long a claim waits to be read back from the config topic before giving up (503)
CLAIM_WAIT_S = 10.0


@dataclass(frozen=True)
class Kind:
    name: str  # the config record kind
    plural: str  # URL segment
    load: type[Schema]
    dump: type[Schema]
    id_rule: Callable[[str], str]  # validates and normalizes an entity id


def _plain_id(value: str) -> str:
    ENTITY_ID(value)
    return value


def _extension_id(value: str) -> str:
    EXTENSION(value)
    return value


def _did_id(value: str) -> str:
    try:
        number = numbers.to_e164(value)
    except ValueError as exc:
        raise ValidationError(f"not a telephone number: {exc}") from None
    if numbers.is_extension(number):
        raise ValidationError("a DID is a telephone number, not an extension")
    return number


def _phone_id(value: str) -> str:
    try:
        return numbers.to_e164(value)
    except ValueError as exc:
        raise ValidationError(f"not a telephone number: {exc}") from None


KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("queue", "queues", s.QueueLoad, s.QueueOut, _plain_id),
    Kind("agent", "agents", s.AgentLoad, s.AgentOut, _plain_id),
    Kind("did", "dids", s.DidLoad, s.DidOut, _did_id),
    Kind("extension", "extensions", s.ExtensionLoad, s.ExtensionOut, _extension_id),
    Kind("ivr", "ivrs", s.IvrLoad, s.IvrOut, _plain_id),
    Kind("blocklist", "blocklist", s.BlocklistLoad, s.BlocklistOut, _phone_id),
    Kind("user", "users", s.UserLoad, s.UserOut, _plain_id),
    Kind("customer", "customers", s.CrmLoad, s.CrmOut, _plain_id),
    Kind("contact", "contacts", s.CrmLoad, s.CrmOut, _plain_id),
    Kind("lead", "leads", s.CrmLoad, s.CrmOut, _plain_id),
)}
TENANT = Kind("tenant", "tenant", s.TenantLoad, s.TenantOut, _plain_id)
#: Kinds a YAML file may carry, in the order they are applied (referenced ones first).
APPLY_ORDER = ("tenant", "queue", "ivr", "did", "extension", "agent", "blocklist", "user",
               "customer", "contact", "lead")


def a1_hash(extension: str, domain: str, password: str) -> str:
    """FreeSWITCH's `a1-hash` directory parameter: md5(user:domain:password) (SIP digest HA1).
    The directory needs only this, so the password itself is never stored."""
    return hashlib.md5(f"{extension}:{domain}:{password}".encode()).hexdigest()


def new_sip_password() -> str:
    """A strong SIP password: 24 URL-safe characters (144 bits)."""
    return secrets.token_urlsafe(18)


def did_kind(number: str) -> str:
    if number.startswith("1800"):
        return "toll_free"
    if number.startswith("1900"):
        return "premium"
    return "mobile" if numbers.is_mobile(number) else "geographic"


Lookup = Callable[[str, str], bool]  # (kind, id) -> exists


#: how a referenced kind is named in error messages
_LABELS = {"queue": "queue", "ivr": "IVR", "extension": "extension"}
_ACTIONS = ("after_hours", "max_wait_action", "max_len_action", "no_agent_action")


def references(kind: str, data: Mapping[str, Any]) -> list[tuple[tuple[str, ...], str, str]]:
    """The entities `data` of a `kind` refers to: (field path, referenced kind, id)."""
    refs: list[tuple[tuple[str, ...], str, str]] = []
    if kind == "agent":
        refs += [(("queues", qid), "queue", qid) for qid in data.get("queues") or {}]
    if kind == "did":
        refs += [((ref,), ref, data[ref]) for ref in ("queue", "ivr") if data.get(ref)]
    if kind == "ivr":
        for digit, option in (data.get("options") or {}).items():
            refs += [(("options", digit), ref, option[ref]) for ref in ("queue", "ivr")
                     if option.get(ref)]
        if data.get("default_queue"):
            refs.append((("default_queue",), "queue", data["default_queue"]))
    if kind == "queue":
        for name in _ACTIONS:
            action = data.get(name) or {}
            if action.get("kind") == "queue":
                refs.append(((name, "target"), "queue", action.get("target", "")))
    if kind == "user" and data.get("extension"):
        refs.append((("extension",), "extension", data["extension"]))
    return refs


def check_refs(kind: str, data: Mapping[str, Any], exists: Lookup, where: str = "") -> None:
    """Refuse references to entities that do not exist (field named in the error; `where`
    says where they were looked for)."""
    errors: dict[str, Any] = {}
    for path, ref_kind, ref_id in references(kind, data):
        if exists(ref_kind, ref_id):
            continue
        node = errors
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node.setdefault(path[-1], []).append(f"unknown {_LABELS[ref_kind]} {ref_id!r}{where}")
    if errors:
        raise ValidationError(errors)


def check_did(number: str, data: dict[str, Any]) -> dict[str, Any]:
    expected = did_kind(number)
    if "kind" not in data:
        data["kind"] = expected
    elif expected in ("toll_free", "premium") and data["kind"] != expected:
        raise ValidationError({"kind": [f"{number} is a {expected} number"]})
    elif data["kind"] in ("toll_free", "premium") and expected != data["kind"]:
        raise ValidationError({"kind": [f"{number} is not a {data['kind']} number"]})
    return data


class ConfigService:
    def __init__(self, view: ConfigView, bus: Bus, topic: str, audit: AuditLog,
                 tokens: Tokens) -> None:
        self.view = view
        self.bus = bus
        self.topic = topic
        self.audit = audit
        self.tokens = tokens

    # ---- reads ----------------------------------------------------------------------

    def out(self, kind: str, entity_id: str, entry: Any) -> dict[str, Any]:
        item = {k: v for k, v in entry.data.items() if k != "a1_hash"}
        item.update(id=entity_id, changed_at_us=entry.changed_us)
        if kind in ("customer", "contact", "lead"):
            item["kind"] = kind
        return item

    def get(self, tenant: str, kind: str, entity_id: str) -> dict[str, Any]:
        entry = self.view.get(tenant, kind, entity_id)
        if entry is None:
            raise NotFound(f"no {kind} {entity_id!r}")
        return self.out(kind, entity_id, entry)

    def list(self, tenant: str, kind: str, limit: int, offset: int) -> dict[str, Any]:
        items = self.view.items(tenant, kind)
        page = items[offset:offset + limit]
        nxt = offset + limit if offset + limit < len(items) else None
        return {"items": [self.out(kind, i, e) for i, e in page], "total": len(items),
                "limit": limit, "offset": offset, "next_offset": nxt}

    # ---- writes ---------------------------------------------------------------------

    def prepare(self, tenant: str, kind: str, entity_id: str, raw: Mapping[str, Any],
                exists: Lookup | None = None, where: str = "") -> tuple[str, dict[str, Any]]:
        """Validate one entity: (normalized id, data of the record). Raises ValidationError
        with fields named (used by the HTTP resources and by `config apply`, whose `exists`
        also knows the other entities of its file)."""
        spec = TENANT if kind == "tenant" else KINDS[kind]
        try:
            entity_id = spec.id_rule(entity_id)
        except ValidationError as exc:
            raise ValidationError({"id": exc.messages}) from None
        data = spec.load().load(dict(raw))
        if kind == "did":
            data = check_did(entity_id, data)
        lookup = exists or (lambda k, i: self.view.get(tenant, k, i) is not None)
        check_refs(kind, data, lookup, where)
        return entity_id, data

    def write(self, who: Principal, kind: str, entity_id: str,
              data: dict[str, Any] | None) -> Envelope:
        env = envelope("config_changed", who.tenant,
                       {"kind": kind, "entity_id": entity_id, "data": data})
        self.bus.publish(self.topic, topics.config_key(who.tenant, kind, entity_id), env)
        self.view.apply(env)
        self.audit.record(who, f"{kind}.{'delete' if data is None else 'put'}",
                          f"{kind}/{entity_id}",
                          {} if data is None else {"fields": sorted(data)})
        return env

    # ---- claims: numbers and SIP domains are one tenant's across all tenants ----------

    def _taken(self, tenant: str, claim: str) -> bool:
        """Whether another tenant uses or holds `claim` ("did:<number>", "domain:<name>")."""
        kind, _, value = claim.partition(":")
        users = (self.view.did_users(value) if kind == "did"
                 else self.view.domain_users(value))
        holder = self.view.holder(claim)
        if holder is not None:
            return holder != tenant
        # Configuration written before claims existed: a value only others use is theirs;
        # one this tenant shares with another goes to whichever claims it first.
        return tenant not in users and bool(users)

    def claim(self, tenant: str, claim: str, field: str) -> None:
        """Make `tenant` the holder of `claim`, or raise Conflict (naming nobody).

        The race between two API processes (two tenants claiming the same value at once)
        is settled by the config topic's order: each writes its claim record, waits until
        its own follower has read it back, and the claim read first among the live ones
        wins (ConfigView.holder). Every process reads the same order, so exactly one of
        them proceeds; the other releases its claim and answers 409."""
        label = "number" if claim.startswith("did:") else "SIP domain"
        value = claim.partition(":")[2]
        refused = Conflict(f"{label} {value} is already in use",
                           [{"field": field, "rule": "unique across tenants"}])
        if self._taken(tenant, claim):
            raise refused
        if self.view.holder(claim) == tenant:
            return
        if tenant in self.view.claimants(claim):
            raise refused  # our earlier claim is queued behind another tenant's
        env = self._claim_record(tenant, claim, {"claimed": True})
        if not self.view.seen(env.event_id, CLAIM_WAIT_S):
            self._claim_record(tenant, claim, None)
            raise Unavailable("the configuration topic did not answer in time; retry")
        if self.view.holder(claim) != tenant:
            self._claim_record(tenant, claim, None)
            raise refused

    def release(self, tenant: str, claim: str) -> None:
        if tenant in self.view.claimants(claim):
            self._claim_record(tenant, claim, None)

    def _claim_record(self, tenant: str, claim: str, data: dict[str, Any] | None) -> Envelope:
        env = envelope("config_changed", tenant,
                       {"kind": CLAIM, "entity_id": claim, "data": data})
        # Not applied locally: claims count in the order the follower reads them.
        self.bus.publish(self.topic, topics.config_key(tenant, CLAIM, claim), env)
        return env

    def put(self, who: Principal, kind: str, entity_id: str, raw: Mapping[str, Any],
            exists: Lookup | None = None, extension_checked: bool = False) -> dict[str, Any]:
        """Validate and write one entity. `exists` (default: the view) is how references
        are checked: `config apply` passes one that also knows the rest of its file (and
        has checked its agents' extensions as a set: `extension_checked`)."""
        entity_id, data = self.prepare(who.tenant, kind, entity_id, raw, exists)
        if kind == "did":
            self.claim(who.tenant, f"did:{entity_id}", "id")
        secret = None
        if kind == "extension":
            data, secret = self._extension(who.tenant, entity_id, data)
        if kind == "user":
            data = self._user_tokens_after(who.tenant, entity_id, data)
        if kind == "agent" and not extension_checked:
            self._agent_extension_free(who.tenant, entity_id, data["extension"])
        env = self.write(who, kind, entity_id, data)
        entry = self.view.get(who.tenant, kind, entity_id)
        item = self.out(kind, entity_id, entry) if entry else {
            **data, "id": entity_id, "changed_at_us": env.occurred_at}
        if kind == "extension":
            item["domain"] = self.view.domain(who.tenant)
            if secret:
                item["sip_password"] = secret
        return item

    def delete(self, who: Principal, kind: str, entity_id: str) -> None:
        spec = KINDS[kind]
        try:
            entity_id = spec.id_rule(entity_id)
        except ValidationError as exc:
            raise ValidationError({"id": exc.messages}) from None
        if self.view.get(who.tenant, kind, entity_id) is None:
            raise NotFound(f"no {kind} {entity_id!r}")
        self.write(who, kind, entity_id, None)
        if kind == "did":
            self.release(who.tenant, f"did:{entity_id}")

    def _extension(self, tenant: str, ext: str,
                   data: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
        rotate = data.pop("rotate_password", False)
        current = self.view.get(tenant, "extension", ext)
        domain = self.view.domain(tenant)
        password = None
        if current is None or rotate or current.data.get("domain") != domain:
            password = new_sip_password()
            data["a1_hash"] = a1_hash(ext, domain, password)
        else:
            data["a1_hash"] = current.data["a1_hash"]
        data["domain"] = domain
        return data, password

    def _user_tokens_after(self, tenant: str, user: str,
                           data: dict[str, Any]) -> dict[str, Any]:
        """Tokens issued before a user was (re)created, re-enabled or given another role are
        refused (`tokens_after_ms`, kept in the record so a replay knows it too)."""
        current = self.view.get(tenant, "user", user)
        old = current.data if current is not None else None
        if (old is None or old.get("role") != data.get("role")
                or (old.get("disabled") and not data.get("disabled"))):
            data["tokens_after_ms"] = time.time_ns() // 1_000_000
        elif old.get("tokens_after_ms"):
            data["tokens_after_ms"] = old["tokens_after_ms"]
        return data

    def _agent_extension_free(self, tenant: str, agent_id: str, extension: str) -> None:
        for other_id, entry in self.view.items(tenant, "agent"):
            if other_id != agent_id and entry.data.get("extension") == extension:
                raise Conflict(f"extension {extension} belongs to agent {other_id!r}",
                               [{"field": "extension", "rule": "unique per tenant"}])

    # ---- tenant ---------------------------------------------------------------------

    def get_tenant(self, tenant: str) -> dict[str, Any]:
        entry = self.view.get(tenant, "tenant", tenant)
        if entry is None:
            return {"id": tenant, "changed_at_us": 0, "domain": tenant,
                    "vip_recording_roles": ["admin"]}
        return self.out("tenant", tenant, entry)

    def put_tenant(self, who: Principal, raw: Mapping[str, Any]) -> dict[str, Any]:
        _, data = self.prepare(who.tenant, "tenant", who.tenant, raw)
        data.setdefault("domain", who.tenant.lower())
        secrets_shown = self._webhook_secrets(who.tenant, data)
        before = self.view.domain(who.tenant)
        self.claim(who.tenant, f"domain:{data['domain']}", "domain")
        self.write(who, "tenant", who.tenant, data)
        if before != data["domain"]:
            self.release(who.tenant, f"domain:{before}")
        out = self.get_tenant(who.tenant)
        if secrets_shown:
            out["webhook_secrets"] = secrets_shown
        return out

    def _webhook_secrets(self, tenant: str, data: dict[str, Any]) -> dict[str, str]:
        """Give each subscription an id and its secret: kept from the subscription of the
        same id, new (and returned, once) for a new or rotated one."""
        from ..webhooks.services import hook_id, new_secret

        current = self.view.get(tenant, "tenant", tenant)
        known = {hook_id(h): h.get("secret") for h in
                 ((current.data.get("webhooks") or ()) if current else ())}
        shown: dict[str, str] = {}
        hooks = []
        for hook in data.get("webhooks") or ():
            hook = dict(hook)
            hid = hook_id(hook)
            if hid in (h["id"] for h in hooks):
                raise ValidationError({"webhooks": [f"two subscriptions with id {hid!r}"]})
            secret = None if hook.pop("rotate_secret", False) else known.get(hid)
            if not secret:
                secret = shown[hid] = new_secret()
            hooks.append({**hook, "id": hid, "secret": secret})
        if "webhooks" in data:
            data["webhooks"] = hooks
        return shown

    # ---- tokens ---------------------------------------------------------------------

    def mint(self, who: Principal, user: str, role: str, ttl_s: int | None) -> dict[str, Any]:
        entry = self.view.get(who.tenant, "user", user)
        if entry is None:
            raise NotFound(f"no user {user!r}: create it first (PUT /api/v1/users/{user})")
        if entry.data.get("disabled"):
            raise Conflict(f"user {user!r} is disabled")
        if role != entry.data.get("role"):
            raise ValidationError({"role": [f"user {user!r} has role "
                                            f"{entry.data.get('role')!r}"]})
        try:
            token, claims = self.tokens.mint(who.tenant, role, user, ttl_s, bound=True)
        except ValueError as exc:
            raise ValidationError({"ttl_s": [str(exc)]}) from None
        self.audit.record(who, "token.create", f"user/{user}",
                          {"token_id": claims.token_id, "role": role})
        return {"token": token, "token_id": claims.token_id, "tenant": claims.tenant,
                "user": user, "role": role, "expires_at": claims.expires_at}

    def revoke(self, who: Principal, token_id: str) -> None:
        ENTITY_ID(token_id)
        env = envelope("config_changed", who.tenant,
                       {"kind": "token", "entity_id": token_id, "data": {"revoked": True}})
        self.bus.publish(self.topic, topics.config_key(who.tenant, "token", token_id), env)
        self.view.apply(env)
        self.audit.record(who, "token.revoke", f"token/{token_id}")

    def allowed(self, who: Principal) -> bool:
        """False if the token was revoked, or its user deleted, disabled or given another
        role, or (re)created or re-enabled after the token was issued; a token minted
        through the API also needs its user record to exist."""
        if self.view.get(who.tenant, "token", who.token_id) is not None:
            return False
        user = self.view.get(who.tenant, "user", who.user)
        if user is None:
            return not who.bound and not self.view.deleted(who.tenant, "user", who.user)
        if user.data.get("disabled") or user.data.get("role") != who.role:
            return False
        return who.issued_ms >= int(user.data.get("tokens_after_ms") or 0)
