"""SIP credentials of a browser softphone, for one session of the agent page.

The extension's own SIP password is never stored (only its `a1-hash`), so the page cannot
be given it, and a password in the HTML would outlive the session. Instead an authenticated
`POST /api/v1/softphone` makes a new random password for the caller's extension and writes
its digest hash as a `softphone` config record (key `<tenant>/softphone/<extension>`,
`{a1_hash, token_id, user, expires_at}`): every API process folds it like any other
configuration. mod_xml_curl's directory answers that hash, instead of the desk phone's,
only to a REGISTER or INVITE that came over WebSocket (`sip_via_protocol` ws/wss), while the
session lives: until it expires (with its token, at most `API_SOFTPHONE_TTL_S`), the token
is revoked, the user loses its rights, the page ends it (`DELETE /api/v1/softphone`) or a
newer session of the same extension replaces it. A desk phone's password is of no use over
WebSocket and the browser's of no use over UDP/TCP/TLS.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from routing.contract import topics

from ..audit.services import AuditLog
from ..auth import Principal
from ..bus import Bus, envelope
from ..config.services import ConfigService, a1_hash, new_sip_password
from ..config.view import ConfigView
from ..errors import Conflict, NotFound

KIND = "softphone"
WEBSOCKET = frozenset({"ws", "wss"})


class SoftphoneService:
    def __init__(self, view: ConfigView, config: ConfigService, bus: Bus, topic: str,
                 audit: AuditLog, own_agent: Callable[[Principal], str | None],
                 wss_url: str, ttl_s: int, clock: Callable[[], float] = time.time) -> None:
        self.view = view
        self.config = config
        self.bus = bus
        self.topic = topic
        self.audit = audit
        self.own_agent = own_agent
        self.wss_url = wss_url
        self.ttl_s = ttl_s
        self.clock = clock

    def extension_of(self, who: Principal) -> str:
        """The caller's own phone: its agent's extension, else its user record's."""
        agent_id = self.own_agent(who)
        agent = self.view.get(who.tenant, "agent", agent_id) if agent_id else None
        user = self.view.get(who.tenant, "user", who.user)
        ext = (agent.data.get("extension") if agent else None) or \
            (user.data.get("extension") if user else None)
        if not ext:
            raise Conflict("this user has no extension (its agent's, or its user record's "
                           "`extension`)", [{"field": "extension", "rule": "required"}])
        if self.view.get(who.tenant, "extension", ext) is None:
            raise Conflict(f"extension {ext} has no SIP account (PUT /api/v1/extensions/{ext})",
                           [{"field": "extension", "rule": "unknown extension"}])
        return ext

    def start(self, who: Principal) -> dict[str, Any]:
        if not self.wss_url:
            raise NotFound("the softphone is not configured (TONGDAI_API_SOFTPHONE_WSS_URL)")
        ext = self.extension_of(who)
        domain = self.view.domain(who.tenant)
        password = new_sip_password()
        expires = int(min(who.expires_at, self.clock() + self.ttl_s))
        # The token's claims, so the switch's lookups apply the token's own checks.
        self._write(who.tenant, ext, {"a1_hash": a1_hash(ext, domain, password),
                                      "token_id": who.token_id, "user": who.user,
                                      "role": who.role, "issued_ms": who.issued_ms,
                                      "bound": who.bound, "expires_at": expires})
        self.audit.record(who, "softphone.start", f"extension/{ext}", {"expires_at": expires})
        return {"extension": ext, "username": ext, "password": password, "domain": domain,
                "wss_url": self.wss_url, "expires_at": expires}

    def stop(self, who: Principal) -> None:
        ext = self.extension_of(who)
        current = self.view.get(who.tenant, KIND, ext)
        if current is None or current.data.get("user") != who.user:
            raise NotFound(f"no softphone session of {who.user!r} on extension {ext}")
        self._write(who.tenant, ext, None)
        self.audit.record(who, "softphone.stop", f"extension/{ext}")

    def _write(self, tenant: str, ext: str, data: dict[str, Any] | None) -> None:
        env = envelope("config_changed", tenant, {"kind": KIND, "entity_id": ext, "data": data})
        self.bus.publish(self.topic, topics.config_key(tenant, KIND, ext), env)
        self.view.apply(env)


def live_a1_hash(view: ConfigView, tenant: str, ext: str, now: float,
                 allowed: Callable[[Principal], bool]) -> str | None:
    """The a1-hash of the extension's live softphone session, or None: none, expired, or
    its token no longer `allowed` (ConfigService.allowed: revoked, user deleted, disabled,
    given another role, re-created)."""
    entry = view.get(tenant, KIND, ext)
    if entry is None:
        return None
    d = entry.data
    expires = int(d.get("expires_at") or 0)
    if expires <= now:
        return None
    token = Principal(tenant, str(d.get("role")), str(d.get("user")), str(d.get("token_id")),
                      expires, int(d.get("issued_ms") or 0), bool(d.get("bound")))
    return str(d["a1_hash"]) if allowed(token) else None
