from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qs

import httpx
import jwt
import pytest

from gateway.engine import (
    AuthenticationError,
    ClientCredentialsProvider,
    EngineUnavailableError,
    ProcessCubeException,
    UnauthorizedError,
)

from ._helpers import Recorder, flow_node_instance, mock_client, task_list

AUTHORITY = "http://authority.test"


class FakeAuthority:
    """Engine + authority behind one MockTransport: issues numbered tokens, engine accepts the valid ones."""

    def __init__(self, *, secret: str = "secret-key", expires_in: int | None = 3600) -> None:
        self.secret = secret
        self.expires_in = expires_in
        self.issued: list[str] = []
        self.valid: set[str] = set()
        self.token_forms: list[dict[str, list[str]]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/atlas_engine/api/v1/authority":
            return httpx.Response(200, json=AUTHORITY)
        if str(request.url) == f"{AUTHORITY}/.well-known/openid-configuration":
            return httpx.Response(
                200, json={"issuer": AUTHORITY, "token_endpoint": f"{AUTHORITY}/token", "jwks_uri": "x"}
            )
        if str(request.url) == f"{AUTHORITY}/token":
            form = parse_qs(request.content.decode())
            self.token_forms.append(form)
            if form.get("client_secret") != [self.secret]:
                return httpx.Response(401, json={"error": "invalid_client", "error_description": "wrong secret"})
            token = f"token-{len(self.issued) + 1}"
            self.issued.append(token)
            self.valid.add(token)
            body: dict[str, Any] = {"access_token": token, "token_type": "Bearer"}
            if self.expires_in is not None:
                body["expires_in"] = self.expires_in
            return httpx.Response(200, json=body)
        auth = request.headers.get("Authorization", "")
        if auth.removeprefix("Bearer ") not in self.valid:
            return httpx.Response(401, json={"code": 401, "message": "invalid token"})
        return task_list(flow_node_instance("a"))


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def credentials_client(handler: Any, **options: Any) -> Any:
    return mock_client(handler, client_id="user-task-worker", client_secret="secret-key", **options)


async def test_client_credentials_flow_asks_the_engine_for_the_authority_then_discovers() -> None:
    authority = FakeAuthority()
    recorder = Recorder(authority)
    async with credentials_client(recorder) as client:
        tasks = await client.get_user_tasks()
    assert tasks[0]["userTaskInstanceId"] == "a"
    assert [str(r.url).split("?")[0] for r in recorder.requests] == [
        "http://engine.test/atlas_engine/api/v1/authority",
        f"{AUTHORITY}/.well-known/openid-configuration",
        f"{AUTHORITY}/token",
        "http://engine.test/atlas_engine/api/v1/flow_node_instances",
    ]
    assert authority.token_forms[0] == {
        "grant_type": ["client_credentials"],
        "client_id": ["user-task-worker"],
        "client_secret": ["secret-key"],
        "scope": ["engine_read engine_write"],
    }
    assert recorder.requests[-1].headers["Authorization"] == "Bearer token-1"


async def test_given_authority_url_skips_the_engines_authority_endpoint() -> None:
    recorder = Recorder(FakeAuthority())
    async with credentials_client(recorder, authority_url=AUTHORITY + "/") as client:
        await client.get_user_tasks()
    assert not any(r.url.path.endswith("/authority") for r in recorder.requests)


async def test_token_is_cached_across_calls() -> None:
    authority = FakeAuthority()
    async with credentials_client(authority) as client:
        for _ in range(5):
            await client.get_user_tasks()
        assert client.request_count == 5
    assert authority.issued == ["token-1"]


async def test_token_is_refreshed_before_it_expires() -> None:
    clock = Clock()
    authority = FakeAuthority(expires_in=3600)
    async with credentials_client(authority, clock=clock) as client:
        await client.get_user_tasks()
        clock.now += 3600 - 301  # still more than five minutes left
        await client.get_user_tasks()
        assert authority.issued == ["token-1"]
        clock.now += 2  # within the last five minutes
        await client.get_user_tasks()
    assert authority.issued == ["token-1", "token-2"]


async def test_short_lived_token_is_refreshed_at_half_its_lifetime() -> None:
    clock = Clock()
    authority = FakeAuthority(expires_in=60)
    async with credentials_client(authority, clock=clock) as client:
        await client.get_user_tasks()
        clock.now += 29
        await client.get_user_tasks()
        clock.now += 2
        await client.get_user_tasks()
    assert authority.issued == ["token-1", "token-2"]


async def test_expiry_is_read_from_the_jwt_when_expires_in_is_missing() -> None:
    clock = Clock()
    exp = int(clock.now) + 3600
    jwt_token = jwt.encode({"sub": "worker", "exp": exp}, "k" * 32, algorithm="HS256")

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"access_token": jwt_token, "token_type": "Bearer"})

    provider = ClientCredentialsProvider(
        httpx.AsyncClient(transport=httpx.MockTransport(handler)),
        engine_api_url="http://engine.test/atlas_engine/api/v1",
        client_id="c",
        client_secret="s",
        authority_url=AUTHORITY,
        clock=clock,
    )
    provider._token_endpoint = f"{AUTHORITY}/token"
    assert await provider.get_token() == jwt_token
    clock.now = exp - 299
    await provider.get_token()
    assert provider.token_requests == 2


async def test_concurrent_calls_share_one_token_request() -> None:
    authority = FakeAuthority()
    async with credentials_client(authority) as client:
        await asyncio.gather(*(client.get_user_tasks() for _ in range(20)))
        provider = client.token_provider
        assert isinstance(provider, ClientCredentialsProvider)
        assert provider.token_requests == 1
    assert authority.issued == ["token-1"]


async def test_401_refreshes_once_and_retries_once() -> None:
    authority = FakeAuthority()
    recorder = Recorder(authority)
    async with credentials_client(recorder) as client:
        await client.get_user_tasks()
        authority.valid.clear()  # the engine forgets token-1 (rotated keys, revoked, …)
        tasks = await client.get_user_tasks()
    assert tasks[0]["userTaskInstanceId"] == "a"
    assert authority.issued == ["token-1", "token-2"]


async def test_concurrent_401s_share_one_refresh() -> None:
    authority = FakeAuthority()
    async with credentials_client(authority) as client:
        await client.get_user_tasks()
        authority.valid.clear()
        await asyncio.gather(*(client.get_user_tasks() for _ in range(20)))
    assert authority.issued == ["token-1", "token-2"]


async def test_a_token_the_engine_keeps_refusing_is_unauthorized_not_a_loop() -> None:
    authority = FakeAuthority()

    def handler(request: httpx.Request) -> httpx.Response:
        response = authority(request)
        if request.url.path.endswith("/flow_node_instances"):
            return httpx.Response(401, json={"code": 401, "message": "invalid token"})
        return response

    recorder = Recorder(handler)
    async with credentials_client(recorder) as client:
        with pytest.raises(UnauthorizedError):
            await client.get_user_tasks()
    engine_calls = [r for r in recorder.requests if r.url.path.endswith("/flow_node_instances")]
    assert len(engine_calls) == 2
    assert authority.issued == ["token-1", "token-2"]


async def test_wrong_secret_is_an_authentication_error_naming_the_authority() -> None:
    authority = FakeAuthority(secret="the-real-one")
    recorder = Recorder(authority)
    async with credentials_client(recorder) as client:
        with pytest.raises(AuthenticationError) as caught:
            await client.get_user_tasks()
    error = caught.value
    assert isinstance(error, ProcessCubeException)
    assert AUTHORITY in str(error)
    assert error.authority_url == AUTHORITY
    assert error.client_id == "user-task-worker"
    assert error.error == "invalid_client"
    assert len(authority.token_forms) == 1
    assert not any(r.url.path.endswith("/flow_node_instances") for r in recorder.requests)


async def test_concurrent_calls_with_a_wrong_secret_share_one_failed_token_request() -> None:
    authority = FakeAuthority(secret="the-real-one")
    async with credentials_client(authority) as client:
        results = await asyncio.gather(*(client.get_user_tasks() for _ in range(10)), return_exceptions=True)
    assert all(isinstance(r, AuthenticationError) for r in results)
    assert len(authority.token_forms) == 1


async def test_authority_without_discovery_is_an_authentication_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404)

    async with credentials_client(handler, authority_url=AUTHORITY) as client:
        with pytest.raises(AuthenticationError, match=AUTHORITY):
            await client.get_user_tasks()


async def test_authority_outage_is_unavailable_not_an_authentication_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("openid-configuration"):
            return httpx.Response(200, json={"token_endpoint": f"{AUTHORITY}/token"})
        return httpx.Response(503, text="down")

    recorder = Recorder(handler)
    async with credentials_client(recorder, authority_url=AUTHORITY) as client:
        with pytest.raises(EngineUnavailableError, match=AUTHORITY):
            await client.get_user_tasks()
    assert len([r for r in recorder.requests if r.url.path == "/token"]) == 4  # a read: retried
