"""API tokens: HMAC-signed claims {tenant, role, user}, checked on every request.

Token format: `itsdangerous.URLSafeSerializer(secret, salt="tongdai.api.token.v1")` over
`{"t": tenant, "r": role, "u": user, "j": token id, "x": expiry (epoch s), "i": issued
(epoch ms), "b": 1 for a token bound to a user record}`: base64url JSON plus an
HMAC-SHA1 signature. Lifetimes are bounded: 1 s to MAX_TTL_S (30 days); 0, negative or
longer ones are refused, never replaced by the default. It is sent as `Authorization:
Bearer <token>`, never in a URL: an event stream takes a stream ticket instead (`?ticket=`,
30 s, for one stream path, from `POST /api/v1/stream-tickets`), because EventSource cannot
set headers and URLs end up in proxy and browser logs.

The tenant comes from the token and never from the URL, so a token of tenant A has no way
to name tenant B. A token is refused when its signature or expiry is wrong, when its id
was revoked (`DELETE /api/v1/tokens/<id>`, a `token` config record), or when its user
was deleted, disabled, re-enabled, re-created or given another role after the token was
issued. Tokens minted through the API (`POST /tokens`) are bound to their user record:
without one they are refused. Tokens the operator mints with `tongdai api token` (the
first admin's) may name a user with no record, unless that user was deleted.
"""
from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeSerializer

from .errors import Unauthorized

ADMIN, SUPERVISOR, AGENT = "admin", "supervisor", "agent"
ROLES = (ADMIN, SUPERVISOR, AGENT)
#: Who may call a route, by the least role it needs.
ADMINS = frozenset({ADMIN})
SUPERVISORS = frozenset({ADMIN, SUPERVISOR})
EVERYONE = frozenset(ROLES)
SALT = "tongdai.api.token.v1"
TICKET_SALT = "tongdai.api.stream-ticket.v1"
MAX_TTL_S = 30 * 86400
TICKET_TTL_S = 30


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: their tenant, role, user name and token id."""

    tenant: str
    role: str
    user: str
    token_id: str
    expires_at: int
    issued_ms: int = 0  # 0: a token from before issue times were recorded
    bound: bool = False  # minted through the API for a user record that must exist


class Tokens:
    """Mints and verifies tokens with one secret (settings.api_token_secret)."""

    def __init__(self, secret: str, default_ttl_s: int,
                 clock: Callable[[], float] = time.time) -> None:
        self._serializer = URLSafeSerializer(secret, salt=SALT)
        self._tickets = URLSafeSerializer(secret, salt=TICKET_SALT)
        self.default_ttl_s = default_ttl_s
        self._clock = clock

    def mint(self, tenant: str, role: str, user: str, ttl_s: int | None = None,
             bound: bool = False) -> tuple[str, Principal]:
        """A new token and its claims. `ttl_s` None is the default lifetime; anything
        outside 1..MAX_TTL_S is refused (ValueError naming ttl_s)."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        if not tenant or not user:
            raise ValueError("tenant and user are required")
        ttl = self.default_ttl_s if ttl_s is None else ttl_s
        if isinstance(ttl, bool) or not isinstance(ttl, int) or not 1 <= ttl <= MAX_TTL_S:
            raise ValueError(f"ttl_s must be a whole number of seconds from 1 to {MAX_TTL_S}")
        now = self._clock()
        expires = int(now) + ttl
        issued = int(now * 1000)
        token_id = secrets.token_hex(8)
        claims = {"t": tenant, "r": role, "u": user, "j": token_id, "x": expires,
                  "i": issued}
        if bound:
            claims["b"] = 1
        token = self._serializer.dumps(claims)
        return token, Principal(tenant, role, user, token_id, expires, issued, bound)

    def ticket(self, who: Principal, path: str, ttl_s: int = TICKET_TTL_S) -> tuple[str, int]:
        """A short-lived ticket for one event stream (`path`), standing for `who`'s token in
        the stream's URL (EventSource cannot send headers; a token in a URL ends up in
        proxy and browser logs). Signed with its own salt: a ticket is never a token."""
        expires = min(int(self._clock()) + ttl_s, who.expires_at)
        ticket = self._tickets.dumps({"t": who.tenant, "r": who.role, "u": who.user,
                                      "j": who.token_id, "x": expires, "i": who.issued_ms,
                                      "b": int(who.bound), "p": path})
        return ticket, expires

    def verify_ticket(self, ticket: str, path: str) -> Principal:
        """The principal of a valid, unexpired ticket for `path`; Unauthorized otherwise."""
        try:
            claims = self._tickets.loads(ticket)
            principal = Principal(str(claims["t"]), str(claims["r"]), str(claims["u"]),
                                  str(claims["j"]), int(claims["x"]), int(claims["i"]),
                                  bool(claims["b"]))
            wanted = str(claims["p"])
        except (BadSignature, KeyError, TypeError, ValueError):
            raise Unauthorized("invalid stream ticket") from None
        if wanted != path or principal.role not in ROLES:
            raise Unauthorized("invalid stream ticket")
        if principal.expires_at < self._clock():
            raise Unauthorized("stream ticket expired (POST /api/v1/stream-tickets)")
        return principal

    def verify(self, token: str) -> Principal:
        """The claims of a valid token; Unauthorized otherwise (never says which check failed
        beyond signature/expiry, and never echoes the token)."""
        try:
            claims = self._serializer.loads(token)
        except BadSignature:
            raise Unauthorized("invalid token") from None
        try:
            principal = Principal(str(claims["t"]), str(claims["r"]), str(claims["u"]),
                                  str(claims["j"]), int(claims["x"]), int(claims.get("i", 0)),
                                  bool(claims.get("b")))
        except (KeyError, TypeError, ValueError):
            raise Unauthorized("invalid token") from None
        if principal.role not in ROLES:
            raise Unauthorized("invalid token")
        if principal.expires_at < self._clock():
            raise Unauthorized("token expired")
        return principal


def bearer(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer …` header, or None."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()
