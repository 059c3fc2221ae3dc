"""Who is calling the engine, and what that caller may see and do.

Every request (and every Socket.IO connection) carries a token; :class:`IdentityResolver` turns it into an
:class:`Identity`: a JWT from the engine's authority (:mod:`embedded_engine.authority`), raw or as
``Bearer <token>``, or the anonymous "dummy token". The engine's rules then ask the identity, never the token.

Scopes and lanes, as the real engine understands them:

- ``engine_read`` / ``engine_write``: read, and change (reserve, finish…) engine data.
- ``engine_admin`` (our choice of name): root access. An admin has every scope and sees every lane. The anonymous
  identity (the "dummy token" ``ZHVtbXlfdG9rZW4=``, base64 of ``dummy_token``, accepted only when anonymous
  access is allowed) is root too, as in ProcessCube's ``allowAnonymousRootAccess``.
- A lane is visible to an identity that carries a claim named exactly like the lane with a truthy value
  (``"true"``, ``true``, any non-empty string other than ``"false"``/``"0"``/``"no"``/``"off"``). A registered
  claim (``sub``, ``scope``…) never grants a lane. A flow node without a lane is visible to all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .authority import RESERVED_CLAIMS, AuthError, Authority

__all__ = [
    "ADMIN_SCOPE",
    "ANONYMOUS_IDENTITY",
    "DUMMY_TOKEN",
    "DUMMY_USER_ID",
    "ENGINE_SCOPES",
    "Identity",
    "IdentityResolver",
]

#: The anonymous "dummy token": base64 of ``dummy_token``. Accepted only where anonymous access is allowed.
DUMMY_TOKEN = "ZHVtbXlfdG9rZW4="
DUMMY_USER_ID = "dummy_token"

ADMIN_SCOPE = "engine_admin"
ENGINE_SCOPES = ("engine_read", "engine_write", ADMIN_SCOPE)

_FALSY_STRINGS = frozenset({"", "false", "0", "no", "off"})


def _truthy_claim(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in _FALSY_STRINGS
    return bool(value)


@dataclass(frozen=True)
class Identity:
    """Who is calling the engine: the token's subject, scopes and claims, or the anonymous root identity."""

    user_id: str
    token: str = field(repr=False)
    scopes: frozenset[str]
    claims: Mapping[str, Any]
    anonymous: bool = False

    @property
    def is_admin(self) -> bool:
        """Root: the ``engine_admin`` scope, or the anonymous dummy identity (as in ProcessCube)."""
        return self.anonymous or ADMIN_SCOPE in self.scopes

    def has_scope(self, scope: str) -> bool:
        """``scope`` was granted (an admin has every scope)."""
        return self.is_admin or scope in self.scopes

    def can_see_lane(self, lane: str | None) -> bool:
        """No lane: visible to all. Admins see every lane; others need a truthy claim named like the lane."""
        if not lane:
            return True
        if self.is_admin:
            return True
        if lane in RESERVED_CLAIMS:
            return False
        return _truthy_claim(self.claims.get(lane))

    def visible_lanes(self, lanes: Iterable[str]) -> frozenset[str] | None:
        """Which of ``lanes`` this identity may see; None for an admin, who sees every lane, known or not."""
        if self.is_admin:
            return None
        return frozenset(lane for lane in lanes if self.can_see_lane(lane))


ANONYMOUS_IDENTITY = Identity(
    user_id=DUMMY_USER_ID,
    token=DUMMY_TOKEN,
    scopes=frozenset(ENGINE_SCOPES),
    claims=MappingProxyType({}),
    anonymous=True,
)


class IdentityResolver:
    """Turns an ``Authorization`` header (or a raw token, as Socket.IO sends it) into an :class:`Identity`.

    The real engine always wants a token; anonymous clients send the dummy token, which is accepted only when
    ``allow_anonymous`` is on. Everything else must be a JWT from ``authority``.
    """

    def __init__(self, authority: Authority, *, allow_anonymous: bool) -> None:
        self.authority = authority
        self.allow_anonymous = allow_anonymous

    def resolve(self, authorization_header: str | None) -> Identity:
        if (authorization_header is None or not authorization_header.strip()) and self.allow_anonymous:
            # With anonymous root access a request without any token is the anonymous user, as if it had sent the
            # dummy token: `curl` works against a development engine. Without it, the header is required (401).
            return ANONYMOUS_IDENTITY
        token = _extract_token(authorization_header)
        if token == DUMMY_TOKEN:
            if not self.allow_anonymous:
                raise AuthError("anonymous access (the dummy token) is not allowed on this engine")
            return ANONYMOUS_IDENTITY
        claims = self.authority.verify(token)
        scope = claims.get("scope", "")
        if isinstance(scope, str):
            scopes = frozenset(scope.split())
        elif isinstance(scope, list):
            scopes = frozenset(str(item) for item in scope)
        else:
            raise AuthError("the token's 'scope' claim is neither a string nor a list")
        return Identity(
            user_id=claims["sub"],
            token=token,
            scopes=scopes,
            claims=MappingProxyType(claims),
            anonymous=False,
        )


def _extract_token(authorization_header: str | None) -> str:
    if authorization_header is None or not authorization_header.strip():
        raise AuthError("missing Authorization header")
    value = authorization_header.strip()
    scheme, sep, rest = value.partition(" ")
    if not sep:
        if scheme.lower() == "bearer":
            raise AuthError("empty Bearer token")
        return value  # a raw token, as Socket.IO clients send it
    if scheme.lower() != "bearer":
        raise AuthError("the Authorization header is not a Bearer token")
    token = rest.strip()
    if not token or " " in token:
        raise AuthError("malformed Bearer token")
    return token
