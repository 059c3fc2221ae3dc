"""Who is calling: a bearer JWT verified against the authority's keys (JWKS) before any engine call.

The authority's issuer and keys are read from its OIDC discovery document (the authority URL comes from the
configuration, or from the engine's ``GET /atlas_engine/api/v1/authority``). Everything is fetched through the
engine client (:class:`AuthoritySource`, which ``UserTaskClient`` is), so its failures are ``ProcessCubeException``s,
mapped to the core's errors by the same function as every engine call (authority down: ``EngineUnavailable``).
Keys are cached; a token signed with an unknown ``kid`` makes the verifier fetch the keys again (at most once every
few seconds), which is how key rotation reaches the gateway. A request without a token is anonymous, which works
only where anonymous access is allowed; the gateway then uses the engine's anonymous dummy token.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

import jwt
from jwt.algorithms import RSAAlgorithm

from ..core import errors
from ..core.domain import Caller
from .client_engine import engine_errors

ANONYMOUS_USER = "dummy_token"  # the user id the engine gives the anonymous dummy token
#: Claims that differ between two tokens of the same rights (times, one-off ids): left out of ``Caller.rights``.
PER_TOKEN_CLAIMS = frozenset({"exp", "iat", "nbf", "jti", "auth_time", "nonce", "at_hash", "c_hash"})
DUMMY_TOKEN = "ZHVtbXlfdG9rZW4="
_REFRESH_INTERVAL = 10.0


class AuthoritySource(Protocol):
    """Where the verifier reads the authority from: ``gateway.engine.UserTaskClient`` (or a test fake).

    Both raise only ``ProcessCubeException``s.
    """

    async def get_authority_url(self) -> str: ...

    async def get_json(self, url: str) -> object: ...


#: Clock skew allowed between the authority and the gateway when checking ``exp``/``iat`` (by default).
DEFAULT_LEEWAY_SECONDS = 30.0


class TokenVerifier:
    """Verifies bearer JWTs (RS256) against the authority's keys; ``authority_url`` None: ask the engine."""

    def __init__(
        self,
        source: AuthoritySource,
        *,
        authority_url: str | None = None,
        allow_anonymous: bool,
        anonymous_root: bool = False,
        audience: str | None = None,
        leeway_seconds: float = DEFAULT_LEEWAY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self._leeway = leeway_seconds
        self._authority_url = authority_url
        self._allow_anonymous = allow_anonymous
        self._anonymous_root = anonymous_root
        self._audience = audience
        self._clock = clock
        self._issuer: str | None = None
        self._jwks_uri: str | None = None
        self._keys: dict[str, Any] = {}
        self._fetched_at = -_REFRESH_INTERVAL
        self._lock = asyncio.Lock()

    @property
    def allow_anonymous(self) -> bool:
        return self._allow_anonymous

    async def caller(self, authorization: str | None) -> Caller:
        """The caller of a request, from its ``Authorization`` header (or raise ``Unauthenticated``)."""
        if authorization is None or not authorization.strip():
            return self._anonymous()
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise errors.Unauthenticated("The Authorization header must be 'Bearer <token>'.")
        if token == DUMMY_TOKEN:
            return self._anonymous()
        claims = await self.verify(token)
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise errors.Unauthenticated("The token has no subject ('sub').")
        expires = claims.get("exp")
        # the moment this gateway stops accepting the token (its exp, plus the leeway every check allows)
        expires_at = datetime.fromtimestamp(expires + self._leeway, UTC) if isinstance(expires, int | float) else None
        return Caller(user_id=subject, token=token, expires_at=expires_at, rights=rights_of(claims))

    def _anonymous(self) -> Caller:
        if not self._allow_anonymous:
            raise errors.Unauthenticated("This gateway needs a bearer token (Authorization: Bearer <JWT>).")
        return Caller(user_id=ANONYMOUS_USER, token=None, rights="anonymous", root=self._anonymous_root)

    async def verify(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise errors.Unauthenticated(f"The bearer token is not a JWT: {exc}.") from exc
        if header.get("alg") != "RS256":
            raise errors.Unauthenticated("The bearer token must be signed with RS256.")
        key = await self._key(str(header.get("kid", "")))
        options: Any = {"require": ["exp", "iat", "sub"], "verify_aud": self._audience is not None}
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=["RS256"],
                issuer=self._issuer,
                audience=self._audience,
                options=options,
                leeway=self._leeway,
            )
        except jwt.ExpiredSignatureError as exc:
            raise errors.Unauthenticated("The bearer token has expired.") from exc
        except jwt.InvalidIssuerError as exc:
            raise errors.Unauthenticated(f"The bearer token was not issued by {self._issuer}.") from exc
        except jwt.InvalidAudienceError as exc:
            raise errors.Unauthenticated(f"The bearer token is not meant for '{self._audience}'.") from exc
        except jwt.InvalidTokenError as exc:
            raise errors.Unauthenticated(f"The bearer token is invalid: {exc}.") from exc
        return claims

    async def _key(self, kid: str) -> Any:
        if kid in self._keys:
            return self._keys[kid]
        async with self._lock:
            if kid not in self._keys and self._clock() - self._fetched_at >= _REFRESH_INTERVAL:
                await self._refresh()
        if kid not in self._keys:
            raise errors.Unauthenticated("The bearer token was signed with a key the authority does not publish.")
        return self._keys[kid]

    async def authority_reachable(self) -> None:
        """Fetch the authority's discovery document (readiness): raises a GatewayError when it does not answer."""
        async with engine_errors():
            authority = self._authority_url or await self._source.get_authority_url()
            url = f"{authority.rstrip('/')}/.well-known/openid-configuration"
            _object(await self._source.get_json(url), url)

    async def _refresh(self) -> None:
        async with engine_errors():
            if self._jwks_uri is None:
                authority = self._authority_url or await self._source.get_authority_url()
                url = f"{authority.rstrip('/')}/.well-known/openid-configuration"
                discovery = _object(await self._source.get_json(url), url)
                issuer, jwks_uri = discovery.get("issuer"), discovery.get("jwks_uri")
                if not isinstance(issuer, str) or not isinstance(jwks_uri, str):
                    raise errors.EngineFailure(f"The discovery document at {url} has no issuer or jwks_uri.")
                self._issuer, self._jwks_uri = issuer, jwks_uri
            jwks = _object(await self._source.get_json(self._jwks_uri), self._jwks_uri)
        keys: dict[str, Any] = {}
        try:
            for jwk in jwks.get("keys", []):
                if isinstance(jwk, dict) and jwk.get("kty") == "RSA":
                    keys[str(jwk.get("kid", ""))] = RSAAlgorithm.from_jwk(json.dumps(jwk))
        except (jwt.InvalidKeyError, KeyError, TypeError, ValueError) as exc:
            raise errors.EngineFailure(f"The authority's keys at {self._jwks_uri} are malformed: {exc}") from exc
        self._keys = keys
        self._fetched_at = self._clock()


def rights_of(claims: dict[str, Any]) -> str:
    """A digest of what a token grants: its claims but :data:`PER_TOKEN_CLAIMS`, canonically (a refreshed token with
    the same subject, audience, scopes and lane claims has the same rights; a token with one claim less has not)."""
    granted = {name: value for name, value in claims.items() if name not in PER_TOKEN_CLAIMS}
    canonical = json.dumps(granted, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def _object(body: object, url: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise errors.EngineFailure(f"The authority's answer at {url} is not a JSON object.")
    return body
