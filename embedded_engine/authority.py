"""An OAuth 2.0 / OpenID Connect authority inside the embedded engine, and the verification of its tokens.

A real ProcessCube installation has its own authority (ProcessCube Authority, an OIDC server on port 11560)
that issues JWTs to clients with the *client credentials* grant; the engine verifies them and reads scopes and
lane claims. The embedded engine brings a small stand-in so that the gateway's OAuth code runs against real
HTTP, real discovery and real RS256 signatures, exactly as it would in production:

- ``GET  {issuer}/.well-known/openid-configuration``: discovery (``issuer``, ``token_endpoint``,
  ``jwks_uri``…).
- ``POST {issuer}/token``: ``grant_type=client_credentials`` (form-encoded), client authentication with
  ``client_secret_post`` (``client_id``/``client_secret`` in the body) or ``client_secret_basic`` (HTTP
  Basic). Answers and errors follow RFC 6749 §5.1/§5.2. The requested ``scope`` must be a subset of the
  client's scope; none requested means all of them.
- ``GET  {issuer}/.well-known/jwks.json`` (also ``{issuer}/jwks``): the public key as a JWK Set.

Tokens are RS256 JWTs (header ``typ: at+jwt`` and ``kid``, RFC 9068) with ``iss``, ``sub``, ``aud``
(``"engine"``), ``iat``, ``nbf``, ``exp``, ``jti``, ``client_id``, ``scope`` (space-separated) and the
client's claims as top-level claims. The 2048-bit RSA key is created on first start and kept in ``key_file``
(mode 0600), so tokens and the JWKS survive a restart. :meth:`Authority.verify` checks a token; what its scopes
and claims allow a caller to do is :mod:`embedded_engine.identity`'s business.

Development clients (:data:`DEFAULT_CLIENTS`, used when no clients file is configured; never use them in
production, the secrets are public):

================  ==============  =====================================  =================================
client_id         client_secret   scope                                  lane claims (value ``"true"``)
================  ==============  =====================================  =================================
gateway           gateway-secret  engine_read engine_write engine_admin  – (admin: sees every lane)
user-task-worker  secret-key      engine_read engine_write               Approver, Clerk, Geschäftsführung,
                                                                         Controlling
alice             alice-secret    engine_read engine_write               Approver, Geschäftsführung
bob               bob-secret      engine_read engine_write               Clerk, Controlling
carol             carol-secret    engine_read                            – (no lanes, read only)
================  ==============  =====================================  =================================

Each client's ``sub`` (the user id in its tokens) equals its ``client_id``.
``user-task-worker``/``secret-key`` is the client of the authentication example (``examples/seed/09_auth.py``).
The lane names ``Geschäftsführung`` and ``Controlling`` are the lanes of the 5Minds sample model
``2_Rechnungserstellung_soll.bpmn`` (an invoicing process in 5minds/ProcessCube.AppTemplate); ``Approver`` and
``Clerk`` are short names for your own models. All lane claims have the value ``"true"``.

A clients file (:func:`load_clients`) is a JSON list of
``{"client_id", "client_secret", "sub"?, "scope", "claims"?}`` (``sub`` defaults to ``client_id``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import time
import urllib.parse
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

__all__ = [
    "DEFAULT_AUDIENCE",
    "DEFAULT_CLIENTS",
    "RESERVED_CLAIMS",
    "AuthError",
    "Authority",
    "ClientRecord",
    "load_clients",
]

logger = logging.getLogger(__name__)

DEFAULT_AUDIENCE = "engine"

#: Registered claims the authority sets itself: a client's claims may not use these names, and they never
#: grant a lane.
RESERVED_CLAIMS = frozenset({"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "scope", "client_id", "azp"})

_ALGORITHM = "RS256"
_KEY_SIZE = 2048
_LEEWAY_SECONDS = 30
_MAX_TOKEN_REQUEST_BYTES = 16 * 1024
# RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")


class AuthError(Exception):
    """Credentials are missing or invalid; the message says what is wrong (never the secret itself)."""


@dataclass(frozen=True)
class ClientRecord:
    """An OAuth client the authority knows: credentials, the subject it acts as, scope and extra claims."""

    client_id: str
    client_secret: str = field(repr=False)
    sub: str
    scope: str
    claims: Mapping[str, Any] = field(default_factory=dict)

    @property
    def scopes(self) -> tuple[str, ...]:
        """The client's scope as a tuple, in the order written, without duplicates."""
        return tuple(dict.fromkeys(self.scope.split()))


_LANE = "true"
DEFAULT_CLIENTS: tuple[ClientRecord, ...] = (
    ClientRecord("gateway", "gateway-secret", "gateway", "engine_read engine_write engine_admin", {}),
    ClientRecord(
        "user-task-worker",
        "secret-key",
        "user-task-worker",
        "engine_read engine_write",
        {"Approver": _LANE, "Clerk": _LANE, "Geschäftsführung": _LANE, "Controlling": _LANE},
    ),
    ClientRecord(
        "alice",
        "alice-secret",
        "alice",
        "engine_read engine_write",
        {"Approver": _LANE, "Geschäftsführung": _LANE},
    ),
    ClientRecord("bob", "bob-secret", "bob", "engine_read engine_write", {"Clerk": _LANE, "Controlling": _LANE}),
    ClientRecord("carol", "carol-secret", "carol", "engine_read", {}),
)


# ------------------------------------------------------------------------------------------------------------
# Clients file


_CLIENT_FIELDS = ("client_id", "client_secret", "sub", "scope", "claims")


def load_clients(path: Path | None) -> tuple[ClientRecord, ...]:
    """Read the clients file, or return :data:`DEFAULT_CLIENTS` when ``path`` is None.

    Every problem (unreadable file, bad JSON, a bad entry, a duplicate ``client_id``) raises ``ValueError``
    with a message naming the file and the entry, so a misconfigured engine fails at start with a useful line.
    """
    if path is None:
        return DEFAULT_CLIENTS
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: cannot read the clients file: {exc}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{path}: the clients file is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from exc
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of clients, found a JSON {_json_type(data)}")
    clients: list[ClientRecord] = []
    seen: set[str] = set()
    for index, entry in enumerate(data):
        client = _parse_client(entry, f"{path}: entry {index}")
        if client.client_id in seen:
            raise ValueError(f"{path}: entry {index}: client_id {client.client_id!r} appears more than once")
        seen.add(client.client_id)
        clients.append(client)
    return tuple(clients)


def _parse_client(entry: object, where: str) -> ClientRecord:
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: expected a JSON object, found a JSON {_json_type(entry)}")
    client_id = entry.get("client_id")
    if isinstance(client_id, str) and client_id:
        where = f"{where} (client_id {client_id!r})"
    unknown = sorted(set(entry) - set(_CLIENT_FIELDS))
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(_CLIENT_FIELDS)}")
    for name in ("client_id", "client_secret", "scope"):
        if name not in entry:
            raise ValueError(f"{where}: the field {name!r} is missing")
    values: dict[str, str] = {}
    for name in ("client_id", "client_secret", "sub", "scope"):
        value = entry.get(name, entry["client_id"] if name == "sub" else None)
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{where}: {name!r} must be a non-empty string")
        values[name] = value
    for token in values["scope"].split():
        if not _SCOPE_TOKEN.fullmatch(token):
            raise ValueError(f"{where}: 'scope' contains the invalid scope token {token!r}")
    claims = entry.get("claims", {})
    if not isinstance(claims, dict):
        raise ValueError(f"{where}: 'claims' must be a JSON object, found a JSON {_json_type(claims)}")
    reserved = sorted(set(claims) & RESERVED_CLAIMS)
    if reserved:
        raise ValueError(f"{where}: 'claims' may not set the registered claim(s) {', '.join(reserved)}")
    return ClientRecord(values["client_id"], values["client_secret"], values["sub"], values["scope"], claims)


def _json_type(value: object) -> str:
    match value:
        case None:
            return "null"
        case bool():
            return "boolean"
        case int() | float():
            return "number"
        case str():
            return "string"
        case list():
            return "array"
        case dict():
            return "object"
        case _:
            return type(value).__name__


# ------------------------------------------------------------------------------------------------------------
# Signing key


def _load_or_create_key(path: Path) -> rsa.RSAPrivateKey:
    if path.exists():
        return _load_key(path)
    key = rsa.generate_private_key(public_exponent=65537, key_size=_KEY_SIZE)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write a private temporary file, then link it into place: readers never see a half-written key, and when
    # two engines start at once on the same key file, the loser uses the winner's key.
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return _load_key(path)
        except OSError:  # a file system without hard links
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    logger.info("created a new signing key in %s", path)
    return key


def _load_key(path: Path) -> rsa.RSAPrivateKey:
    if path.stat().st_mode & 0o077:
        logger.warning("the signing key %s is readable by other users; chmod 600 it", path)
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path}: not an unencrypted PEM private key ({exc})") from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"{path}: the signing key must be an RSA key")
    if key.key_size < _KEY_SIZE:
        raise ValueError(f"{path}: the RSA signing key has {key.key_size} bits, at least {_KEY_SIZE} are needed")
    return key


def _jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 thumbprint of an RSA JWK: a stable ``kid`` derived from the key itself."""
    canonical = json.dumps({"e": jwk["e"], "kty": jwk["kty"], "n": jwk["n"]}, separators=(",", ":"), sort_keys=True)
    digest = hashlib.sha256(canonical.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


# ------------------------------------------------------------------------------------------------------------
# The authority


class _TokenError(Exception):
    def __init__(self, error: str, description: str, status: int = 400, *, basic_challenge: bool = False) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status
        self.basic_challenge = basic_challenge


_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class Authority:
    """The OAuth authority: issues client-credentials tokens and verifies them.

    ``issuer`` is the authority's public URL (e.g. ``http://127.0.0.1:56100/authority``); :meth:`routes` are
    meant to be mounted at that URL's path. Discovery and tokens name the issuer exactly as given (minus a
    trailing slash).
    """

    def __init__(
        self,
        issuer: str,
        clients: Sequence[ClientRecord],
        key_file: Path,
        *,
        token_ttl_seconds: int = 3600,
        audience: str = DEFAULT_AUDIENCE,
        leeway_seconds: int = _LEEWAY_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if token_ttl_seconds <= 0:
            raise ValueError("token_ttl_seconds must be positive")
        self.issuer = issuer.rstrip("/")
        self.audience = audience
        self.token_ttl_seconds = token_ttl_seconds
        self.leeway_seconds = leeway_seconds
        self._clock = clock  # when tokens are issued; tests pass a clock in the past to get expired tokens
        self._clients: dict[str, ClientRecord] = {}
        for client in clients:
            if client.client_id in self._clients:
                raise ValueError(f"client_id {client.client_id!r} appears more than once")
            self._clients[client.client_id] = client
        self._private_key = _load_or_create_key(key_file)
        self._public_key = self._private_key.public_key()
        jwk: dict[str, Any] = RSAAlgorithm.to_jwk(self._public_key, as_dict=True)
        self.kid = _jwk_thumbprint(jwk)
        self._jwk = {**jwk, "kid": self.kid, "use": "sig", "alg": _ALGORITHM}

    # -- URLs and documents ---------------------------------------------------------------------------------

    @property
    def token_endpoint(self) -> str:
        return f"{self.issuer}/token"

    @property
    def jwks_uri(self) -> str:
        return f"{self.issuer}/.well-known/jwks.json"

    def jwks(self) -> dict[str, Any]:
        """The public key set (``{"keys": [...]}``)."""
        return {"keys": [dict(self._jwk)]}

    def discovery_document(self) -> dict[str, Any]:
        scopes = sorted({scope for client in self._clients.values() for scope in client.scopes})
        return {
            "issuer": self.issuer,
            "token_endpoint": self.token_endpoint,
            "jwks_uri": self.jwks_uri,
            "grant_types_supported": ["client_credentials"],
            "response_types_supported": ["token"],
            "subject_types_supported": ["public"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "scopes_supported": scopes,
            "id_token_signing_alg_values_supported": [_ALGORITHM],
            "claims_supported": sorted(RESERVED_CLAIMS),
        }

    def routes(self) -> list[BaseRoute]:
        """Starlette routes relative to the issuer's path: mount with ``Mount("/authority", routes=...)``."""
        return [
            Route("/.well-known/openid-configuration", self._discovery_endpoint, methods=["GET"]),
            Route("/.well-known/jwks.json", self._jwks_endpoint, methods=["GET"]),
            Route("/jwks", self._jwks_endpoint, methods=["GET"]),
            Route("/token", self._token_endpoint, methods=["POST"]),
        ]

    async def _discovery_endpoint(self, request: Request) -> Response:
        return JSONResponse(self.discovery_document())

    async def _jwks_endpoint(self, request: Request) -> Response:
        return JSONResponse(self.jwks())

    # -- tokens ---------------------------------------------------------------------------------------------

    def client(self, client_id: str) -> ClientRecord | None:
        return self._clients.get(client_id)

    def issue_token(self, client: ClientRecord, scope: str | None = None) -> str:
        """A signed access token for ``client``; ``scope`` (space-separated) must be a subset of the client's.

        ``None`` or a blank scope grants all of the client's scopes. Raises ``ValueError`` for a scope the
        client does not have.
        """
        granted = self._grant_scope(client, scope)
        now = int(self._clock())
        payload: dict[str, Any] = {
            **client.claims,
            "iss": self.issuer,
            "sub": client.sub,
            "aud": self.audience,
            "iat": now,
            "nbf": now,
            "exp": now + self.token_ttl_seconds,
            "jti": uuid.uuid4().hex,
            "client_id": client.client_id,
            "scope": " ".join(granted),
        }
        return jwt.encode(payload, self._private_key, algorithm=_ALGORITHM, headers={"kid": self.kid, "typ": "at+jwt"})

    @staticmethod
    def _grant_scope(client: ClientRecord, scope: str | None) -> tuple[str, ...]:
        if scope is None or not scope.strip():
            return client.scopes
        requested = tuple(dict.fromkeys(scope.split()))
        invalid = [token for token in requested if not _SCOPE_TOKEN.fullmatch(token)]
        if invalid:
            raise ValueError(f"malformed scope {invalid[0]!r}")
        missing = [token for token in requested if token not in client.scopes]
        if missing:
            raise ValueError(f"scope not granted to this client: {' '.join(missing)}")
        return requested

    def verify(self, token: str) -> dict[str, Any]:
        """Check signature, issuer, audience and expiry (small leeway); the claims, or ``AuthError``."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise AuthError("malformed token: not a JWT") from exc
        if header.get("alg") != _ALGORITHM:
            raise AuthError(f"unsupported token algorithm {header.get('alg')!r}, expected {_ALGORITHM}")
        if "kid" in header and header["kid"] != self.kid:
            raise AuthError("token signed by an unknown key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._public_key,
                algorithms=[_ALGORITHM],
                issuer=self.issuer,
                audience=self.audience,
                leeway=self.leeway_seconds,
                options={"require": ["iss", "sub", "aud", "exp", "iat"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthError("token expired") from exc
        except jwt.InvalidSignatureError as exc:
            raise AuthError("bad token signature") from exc
        except jwt.InvalidIssuerError as exc:
            raise AuthError(f"wrong token issuer, expected {self.issuer!r}") from exc
        except jwt.InvalidAudienceError as exc:
            raise AuthError(f"wrong token audience, expected {self.audience!r}") from exc
        except jwt.ImmatureSignatureError as exc:
            raise AuthError("token not yet valid") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise AuthError(f"token lacks the {exc.claim!r} claim") from exc
        except jwt.InvalidTokenError as exc:
            raise AuthError(f"invalid token: {exc}") from exc
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise AuthError("token has no usable 'sub' claim")
        return claims

    # -- POST /token ----------------------------------------------------------------------------------------

    async def _token_endpoint(self, request: Request) -> Response:
        try:
            params = await self._read_form(request)
            client = self._authenticate(request, params)
            grant_type = params.get("grant_type")
            if not grant_type:
                raise _TokenError("invalid_request", "the 'grant_type' parameter is missing")
            if grant_type != "client_credentials":
                raise _TokenError("unsupported_grant_type", f"grant type {grant_type!r} is not supported")
            try:
                granted = self._grant_scope(client, params.get("scope"))
            except ValueError as exc:
                raise _TokenError("invalid_scope", str(exc)) from exc
            token = self.issue_token(client, " ".join(granted))
        except _TokenError as exc:
            headers = dict(_NO_STORE)
            if exc.basic_challenge:
                headers["WWW-Authenticate"] = 'Basic realm="authority", charset="UTF-8"'
            error = {"error": exc.error, "error_description": exc.description}
            return JSONResponse(error, status_code=exc.status, headers=headers)
        body: dict[str, Any] = {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": self.token_ttl_seconds,
            "scope": " ".join(granted),
        }
        return JSONResponse(body, headers=_NO_STORE)

    @staticmethod
    async def _read_form(request: Request) -> dict[str, str]:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            raise _TokenError("invalid_request", "the body must be application/x-www-form-urlencoded")
        body = bytearray()
        async for chunk in request.stream():
            body.extend(chunk)
            if len(body) > _MAX_TOKEN_REQUEST_BYTES:
                raise _TokenError("invalid_request", "the request body is too large")
        try:
            pairs = urllib.parse.parse_qsl(
                body.decode("utf-8"), keep_blank_values=True, strict_parsing=False, errors="strict"
            )
        except (UnicodeDecodeError, ValueError) as exc:
            raise _TokenError("invalid_request", "the body is not valid form data") from exc
        params: dict[str, str] = {}
        for name, value in pairs:
            if name in params:
                raise _TokenError("invalid_request", f"the parameter {name!r} is repeated")
            params[name] = value
        return params

    def _authenticate(self, request: Request, params: Mapping[str, str]) -> ClientRecord:
        basic = self._basic_credentials(request)
        if basic is not None:
            if "client_secret" in params:
                raise _TokenError("invalid_request", "use one client authentication method, not two")
            if "client_id" in params and params["client_id"] != basic[0]:
                raise _TokenError("invalid_request", "client_id in the body and in the Authorization header differ")
            client_id, client_secret = basic
        else:
            client_id = params.get("client_id", "")
            client_secret = params.get("client_secret", "")
            if not client_id or not client_secret:
                raise _TokenError(
                    "invalid_client", "client authentication missing: send client_id and client_secret", 401
                )
        client = self._clients.get(client_id)
        # Compare even for an unknown client, so the answer time does not tell which client ids exist.
        expected = client.client_secret if client is not None else secrets.token_urlsafe(16)
        if not hmac.compare_digest(expected.encode("utf-8"), client_secret.encode("utf-8")) or client is None:
            raise _TokenError("invalid_client", "client authentication failed", 401, basic_challenge=basic is not None)
        return client

    @staticmethod
    def _basic_credentials(request: Request) -> tuple[str, str] | None:
        header = request.headers.get("authorization")
        if header is None:
            return None
        scheme, _, encoded = header.strip().partition(" ")
        if scheme.lower() != "basic":
            raise _TokenError("invalid_client", "only HTTP Basic client authentication is supported", 401)
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise _TokenError("invalid_client", "malformed HTTP Basic credentials", 401, basic_challenge=True) from exc
        user, sep, password = decoded.partition(":")
        if not sep:
            raise _TokenError("invalid_client", "malformed HTTP Basic credentials", 401, basic_challenge=True)
        # RFC 6749 §2.3.1: both parts are form-urlencoded before they go into the Basic header.
        return urllib.parse.unquote_plus(user), urllib.parse.unquote_plus(password)
