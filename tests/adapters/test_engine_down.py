"""A real gateway in front of an engine that is not there: every face answers ENGINE_UNAVAILABLE, never a 500.

With a bearer token the gateway first looks up the authority (to verify the token) on the engine, so that lookup
fails first: it goes through the engine client and its error mapping like every engine call. Without a token
(anonymous) the task query itself fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.servers import GatewayServer, free_port, gateway_in_front_of

QUERY = "{ userTasks(first: 5) { totalCount nodes { id } } }"


def _bearer_token() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    claims = {"sub": "alice", "iss": "http://authority.test", "iat": 1_700_000_000, "exp": 4_000_000_000}
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1"})


TOKEN = _bearer_token()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    nothing_listens = f"http://127.0.0.1:{free_port()}"
    workdir: Path = tmp_path_factory.mktemp("engine-down")
    server = gateway_in_front_of(nothing_listens, workdir).start()
    try:
        yield server
    finally:
        server.stop()


def _headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


@pytest.mark.parametrize("token", [TOKEN, None], ids=["bearer", "anonymous"])
def test_rest_answers_503_engine_unavailable(gateway: GatewayServer, token: str | None) -> None:
    response = httpx.get(gateway.url + "/api/v1/user-tasks", headers=_headers(token), timeout=60)
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["retry-after"]) > 0
    body: dict[str, Any] = response.json()
    assert body["code"] == "ENGINE_UNAVAILABLE"
    assert body["status"] == 503
    assert body["retryAfterSeconds"] == int(response.headers["retry-after"])
    assert "httpx" not in response.text
    assert "ConnectError" not in body.get("title", "")


@pytest.mark.parametrize("token", [TOKEN, None], ids=["bearer", "anonymous"])
def test_graphql_answers_engine_unavailable(gateway: GatewayServer, token: str | None) -> None:
    body = gateway.graphql(QUERY, token=token)
    assert body.get("data") in (None, {"userTasks": None}), body
    assert body["errors"], body
    assert body["errors"][0]["extensions"]["code"] == "ENGINE_UNAVAILABLE", body


def test_the_gateway_stays_up(gateway: GatewayServer) -> None:
    response = httpx.get(gateway.url + "/healthz", timeout=10)
    assert response.status_code == 200
    assert gateway.process is not None
    assert gateway.process.poll() is None
