"""Where the bearer token of each engine request comes from.

- `StaticTokenProvider`: a fixed token; `ANONYMOUS_TOKEN` (the engine's dummy token) when no credentials
  are given, which works only where the engine allows anonymous root access.
- `CallableTokenProvider`: a zero-argument function returning the token (sync or async), asked before
  every request. The gateway forwards each caller's own token this way.
- `ClientCredentialsProvider`: OAuth 2.0 client credentials as the official TypeScript client does it:
  authority URL (given, or GET /authority on the engine), discovery, token request; the token is cached,
  refreshed before it expires, fetched once however many requests wait for it, and refreshed once when
  the engine answers 401.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol, runtime_checkable

import httpx
import jwt

from .errors import (
    AuthenticationError,
    EngineUnavailableError,
    ProtocolError,
    error_for_response,
    map_engine_errors,
)
from .wire import authority_from_wire, json_body

__all__ = [
    "ANONYMOUS_TOKEN",
    "CallableTokenProvider",
    "ClientCredentialsProvider",
    "StaticTokenProvider",
    "TokenProvider",
]

#: base64("dummy_token"): the engine's anonymous token, accepted only with anonymous root access.
ANONYMOUS_TOKEN: Final = "ZHVtbXlfdG9rZW4="

#: The official client refreshes five minutes before `exp`; short-lived tokens at half their lifetime.
REFRESH_MARGIN: Final = 300.0


@runtime_checkable
class TokenProvider(Protocol):
    """Supplies bearer tokens (without the "Bearer " prefix)."""

    async def get_token(self) -> str:
        """The token to send now."""
        ...

    async def refresh(self, rejected: str) -> str | None:
        """Called once when the engine answered 401 to `rejected`.

        Returns a different token to retry with, or None when there is nothing better to offer (the 401
        then reaches the caller as UnauthorizedError).
        """
        ...


class StaticTokenProvider:
    """Always the same token; a 401 is final."""

    def __init__(self, token: str) -> None:
        self._token = token

    async def get_token(self) -> str:
        return self._token

    async def refresh(self, rejected: str) -> str | None:
        return None


TokenSource = Callable[[], str | Awaitable[str]]


class CallableTokenProvider:
    """Asks a function for the token before each request (sync or async, no arguments)."""

    def __init__(self, source: TokenSource) -> None:
        self._source = source

    async def get_token(self) -> str:
        value = self._source()
        if inspect.isawaitable(value):
            value = await value
        if not isinstance(value, str):
            raise TypeError(f"the token callable must return a str, got {type(value).__name__}")
        return value

    async def refresh(self, rejected: str) -> str | None:
        token = await self.get_token()
        return token if token != rejected else None


@dataclass(frozen=True, slots=True)
class _Token:
    value: str
    refresh_at: float  # clock time after which a new one is fetched (inf: never expires)


class ClientCredentialsProvider:
    """OAuth 2.0 client credentials with caching, early refresh and single-flight fetching."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        engine_api_url: str,
        client_id: str,
        client_secret: str,
        authority_url: str | None = None,
        scope: str = "engine_read engine_write",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._http = http
        self._engine_api_url = engine_api_url
        self._client_id = client_id
        self._client_secret = client_secret
        self._authority_url = authority_url.rstrip("/") if authority_url else None
        self._scope = scope
        self._clock = clock
        self._token: _Token | None = None
        self._token_endpoint: str | None = None
        self._inflight: asyncio.Task[_Token] | None = None
        #: How many token requests were sent (tests check single-flight with it).
        self.token_requests = 0

    @property
    def authority_url(self) -> str | None:
        return self._authority_url

    async def get_token(self) -> str:
        token = self._token
        if token is not None and self._clock() < token.refresh_at:
            return token.value
        return (await self._fetch_shared()).value

    async def refresh(self, rejected: str) -> str | None:
        token = self._token
        if token is not None and token.value != rejected and self._clock() < token.refresh_at:
            return token.value  # someone else already refreshed
        if token is not None and token.value == rejected:
            self._token = None
        return (await self._fetch_shared()).value

    async def _fetch_shared(self) -> _Token:
        task = self._inflight
        if task is None:
            task = asyncio.get_running_loop().create_task(self._fetch())
            self._inflight = task
            task.add_done_callback(self._fetched)
        # shield: one waiter giving up (cancelled) must not cancel the fetch the others wait for.
        return await asyncio.shield(task)

    def _fetched(self, task: asyncio.Task[_Token]) -> None:
        if self._inflight is task:
            self._inflight = None
        if not task.cancelled() and task.exception() is None:
            self._token = task.result()

    async def _fetch(self) -> _Token:
        authority = await self._authority()
        endpoint = await self._discover(authority)
        self.token_requests += 1
        with map_engine_errors(what=f"token request to the authority {authority}"):
            response = await self._http.post(
                endpoint,
                data={
                    "grant_type": "client_credentials",
                    "client_id": self._client_id,
                    "client_secret": self._client_secret,
                    "scope": self._scope,
                },
                headers={"Accept": "application/json"},
            )
        if response.status_code >= 500:
            # An outage, not a refusal: "unavailable", so reads retry it and callers see ENGINE_UNAVAILABLE.
            raise EngineUnavailableError(
                f"the authority {authority} failed to answer a token request (HTTP {response.status_code})",
                request_sent=True,
            )
        if not response.is_success:
            raise self._refused(authority, response)
        body = json_body(response.content, f"the token request to {authority}")
        if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
            raise ProtocolError(f"the authority {authority} answered a token request without access_token")
        value: str = body["access_token"]
        return _Token(value, self._refresh_at(value, body.get("expires_in")))

    def _refused(self, authority: str, response: httpx.Response) -> AuthenticationError:
        error: str | None = None
        description: str | None = None
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            error = body.get("error") if isinstance(body.get("error"), str) else None
            description = body.get("error_description") if isinstance(body.get("error_description"), str) else None
        detail = ": ".join(x for x in (error, description) if x) or f"HTTP {response.status_code}"
        return AuthenticationError(
            f"the authority {authority} refused the client credentials of {self._client_id!r} ({detail})",
            authority_url=authority,
            client_id=self._client_id,
            status=response.status_code,
            error=error,
            error_description=description,
        )

    def _refresh_at(self, value: str, expires_in: object) -> float:
        now = self._clock()
        lifetime: float | None = None
        if isinstance(expires_in, int | float) and not isinstance(expires_in, bool) and expires_in > 0:
            lifetime = float(expires_in)
        else:
            try:
                claims = jwt.decode(value, options={"verify_signature": False})
            except jwt.PyJWTError:
                claims = {}
            exp = claims.get("exp")
            if isinstance(exp, int | float):
                lifetime = max(0.0, float(exp) - now)
        if lifetime is None:
            return float("inf")  # no expiry known: keep it until the engine answers 401
        return now + lifetime - min(REFRESH_MARGIN, lifetime / 2)

    async def _authority(self) -> str:
        if self._authority_url is None:
            url = f"{self._engine_api_url}/authority"
            with map_engine_errors(what=f"GET {url}"):
                response = await self._http.get(url)
            if not response.is_success:
                raise error_for_response(response)
            self._authority_url = authority_from_wire(json_body(response.content, f"GET {url}"))
        return self._authority_url

    async def _discover(self, authority: str) -> str:
        if self._token_endpoint is None:
            url = f"{authority}/.well-known/openid-configuration"
            with map_engine_errors(what=f"discovery at the authority {authority}"):
                response = await self._http.get(url)
            if not response.is_success:
                raise AuthenticationError(
                    f"the authority {authority} has no usable discovery document (HTTP {response.status_code})",
                    authority_url=authority,
                    client_id=self._client_id,
                    status=response.status_code,
                )
            body = json_body(response.content, f"discovery at {authority}")
            endpoint = body.get("token_endpoint") if isinstance(body, dict) else None
            if not isinstance(endpoint, str):
                raise ProtocolError(f"the discovery document of {authority} has no token_endpoint")
            self._token_endpoint = endpoint
        return self._token_endpoint
