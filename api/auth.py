"""API tokens: HMAC-signed claims {tenant, role, user}, checked on every request.

Token format: `itsdangerous.URLSafeSerializer(secret, salt="tongdai.api.token.v1")` over
`{"t": tenant, "r": role, "u": user, "j": token id, "x": expiry (epoch s)}`: base64url
JSON plus an HMAC-SHA1 signature. It is sent as `Authorization: Bearer <token>` (SSE
streams may use `?access_token=` because EventSource cannot set headers).

The tenant comes from the token and never from the URL, so a token of tenant A has no way
to name tenant B. A token is refused when its signature or expiry is wrong, when its id
was revoked (`DELETE /api/v1/tokens/<id>`, a `token` config record), or when its user
was disabled.
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


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: their tenant, role, user name and token id."""

    tenant: str
    role: str
    user: str
    token_id: str
    expires_at: int


class Tokens:
    """Mints and verifies tokens with one secret (settings.api_token_secret)."""

    def __init__(self, secret: str, default_ttl_s: int,
                 clock: Callable[[], float] = time.time) -> None:
        self._serializer = URLSafeSerializer(secret, salt=SALT)
        self.default_ttl_s = default_ttl_s
        self._clock = clock

    def mint(self, tenant: str, role: str, user: str,
             ttl_s: int | None = None) -> tuple[str, Principal]:
        """A new token and its claims."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        if not tenant or not user:
            raise ValueError("tenant and user are required")
        expires = int(self._clock()) + int(ttl_s or self.default_ttl_s)
        token_id = secrets.token_hex(8)
        token = self._serializer.dumps({"t": tenant, "r": role, "u": user, "j": token_id,
                                        "x": expires})
        return token, Principal(tenant, role, user, token_id, expires)

    def verify(self, token: str) -> Principal:
        """The claims of a valid token; Unauthorized otherwise (never says which check failed
        beyond signature/expiry, and never echoes the token)."""
        try:
            claims = self._serializer.loads(token)
        except BadSignature:
            raise Unauthorized("invalid token") from None
        try:
            principal = Principal(str(claims["t"]), str(claims["r"]), str(claims["u"]),
                                  str(claims["j"]), int(claims["x"]))
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
