"""The embedded OAuth authority over real HTTP, its token verification, and the clients file."""

from __future__ import annotations

import base64
import json
import stat
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import jwt
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from embedded_engine.authority import (
    DEFAULT_CLIENTS,
    AuthError,
    Authority,
    ClientRecord,
    load_clients,
)
from tests.embedded_engine._server import serve_with_url


def _client(client_id: str) -> ClientRecord:
    return next(client for client in DEFAULT_CLIENTS if client.client_id == client_id)


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    return tmp_path / "keys" / "signing-key.pem"


@pytest.fixture
def authority(key_file: Path) -> Authority:
    return Authority("http://127.0.0.1:1/authority", DEFAULT_CLIENTS, key_file)


class Served:
    def __init__(self, base_url: str, authority: Authority, http: httpx.AsyncClient) -> None:
        self.base_url = base_url
        self.issuer = f"{base_url}/authority"
        self.authority = authority
        self.http = http

    async def token_request(self, data: dict[str, str], **kwargs: object) -> httpx.Response:
        return await self.http.post(f"{self.issuer}/token", data=data, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
async def served(key_file: Path) -> AsyncIterator[Served]:
    authorities: list[Authority] = []

    def build(base_url: str) -> Starlette:
        authorities.append(Authority(f"{base_url}/authority", DEFAULT_CLIENTS, key_file))
        return Starlette(routes=[Mount("/authority", routes=authorities[0].routes())])

    async with serve_with_url(build) as base_url, httpx.AsyncClient(trust_env=False) as http:
        yield Served(base_url, authorities[0], http)


# -- discovery, token endpoint, JWKS over HTTP ---------------------------------------------------------------


async def test_discovery_document_names_issuer_token_endpoint_and_jwks(served: Served) -> None:
    response = await served.http.get(f"{served.issuer}/.well-known/openid-configuration")

    assert response.status_code == 200
    document = response.json()
    assert document["issuer"] == served.issuer
    assert document["token_endpoint"] == f"{served.issuer}/token"
    assert document["jwks_uri"] == f"{served.issuer}/.well-known/jwks.json"
    assert document["grant_types_supported"] == ["client_credentials"]
    assert "client_secret_post" in document["token_endpoint_auth_methods_supported"]
    assert "client_secret_basic" in document["token_endpoint_auth_methods_supported"]
    assert {"engine_read", "engine_write", "engine_admin"} <= set(document["scopes_supported"])
    assert document["id_token_signing_alg_values_supported"] == ["RS256"]


async def test_client_secret_post_gets_a_bearer_token_with_the_clients_scope_and_claims(
    served: Served,
) -> None:
    response = await served.token_request(
        {"grant_type": "client_credentials", "client_id": "alice", "client_secret": "alice-secret"}
    )

    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["scope"] == "engine_read engine_write"
    claims = served.authority.verify(body["access_token"])
    assert claims["iss"] == served.issuer
    assert claims["sub"] == "alice"
    assert claims["aud"] == "engine"
    assert claims["scope"] == "engine_read engine_write"
    assert claims["Approver"] == "true"
    assert claims["exp"] - claims["iat"] == 3600
    assert claims["jti"]


async def test_client_secret_basic_is_accepted(served: Served) -> None:
    basic = base64.b64encode(b"user-task-worker:secret-key").decode()

    response = await served.token_request(
        {"grant_type": "client_credentials", "scope": "engine_read"},
        headers={"Authorization": f"Basic {basic}"},
    )

    assert response.status_code == 200
    assert served.authority.verify(response.json()["access_token"])["sub"] == "user-task-worker"


async def test_wrong_client_secret_is_invalid_client_401(served: Served) -> None:
    response = await served.token_request(
        {"grant_type": "client_credentials", "client_id": "alice", "client_secret": "wrong"}
    )

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert "access_token" not in response.json()


async def test_unknown_client_gets_the_same_answer_as_a_wrong_secret(served: Served) -> None:
    unknown = await served.token_request(
        {"grant_type": "client_credentials", "client_id": "mallory", "client_secret": "x"}
    )
    wrong = await served.token_request({"grant_type": "client_credentials", "client_id": "alice", "client_secret": "x"})

    assert unknown.status_code == wrong.status_code == 401
    assert unknown.json() == wrong.json()


async def test_wrong_basic_credentials_answer_with_a_basic_challenge(served: Served) -> None:
    basic = base64.b64encode(b"alice:wrong").decode()

    response = await served.token_request(
        {"grant_type": "client_credentials"}, headers={"Authorization": f"Basic {basic}"}
    )

    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Basic")


async def test_unsupported_grant_type_is_400(served: Served) -> None:
    response = await served.token_request(
        {"grant_type": "password", "client_id": "alice", "client_secret": "alice-secret"}
    )

    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


async def test_missing_grant_type_is_invalid_request(served: Served) -> None:
    response = await served.token_request({"client_id": "alice", "client_secret": "alice-secret"})

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_json_body_is_invalid_request(served: Served) -> None:
    response = await served.http.post(
        f"{served.issuer}/token",
        json={"grant_type": "client_credentials", "client_id": "alice", "client_secret": "alice-secret"},
    )

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_repeated_parameter_is_invalid_request(served: Served) -> None:
    response = await served.http.post(
        f"{served.issuer}/token",
        content="grant_type=client_credentials&client_id=alice&client_secret=alice-secret&scope=a&scope=b",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_requested_scope_is_granted_when_a_subset_of_the_clients_scope(served: Served) -> None:
    response = await served.token_request(
        {
            "grant_type": "client_credentials",
            "client_id": "alice",
            "client_secret": "alice-secret",
            "scope": "engine_read",
        }
    )

    assert response.status_code == 200
    assert response.json()["scope"] == "engine_read"
    assert served.authority.verify(response.json()["access_token"])["scope"] == "engine_read"


async def test_requested_scope_beyond_the_clients_scope_is_invalid_scope(served: Served) -> None:
    response = await served.token_request(
        {
            "grant_type": "client_credentials",
            "client_id": "carol",
            "client_secret": "carol-secret",
            "scope": "engine_read engine_write",
        }
    )

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"
    assert "engine_write" in response.json()["error_description"]


async def test_jwks_verifies_a_token_with_pyjwt(served: Served) -> None:
    token_response = await served.token_request(
        {"grant_type": "client_credentials", "client_id": "bob", "client_secret": "bob-secret"}
    )
    token = token_response.json()["access_token"]
    jwks = (await served.http.get(f"{served.issuer}/.well-known/jwks.json")).json()
    alias = (await served.http.get(f"{served.issuer}/jwks")).json()

    key_set = jwt.PyJWKSet.from_dict(jwks)
    kid = jwt.get_unverified_header(token)["kid"]
    claims = jwt.decode(token, key_set[kid].key, algorithms=["RS256"], audience="engine", issuer=served.issuer)

    assert alias == jwks
    assert claims["sub"] == "bob"
    assert claims["Clerk"] == "true"


# -- verification --------------------------------------------------------------------------------------------


def test_expired_token_is_refused(key_file: Path) -> None:
    two_hours_ago = time.time() - 7200
    past = Authority("http://issuer.test", DEFAULT_CLIENTS, key_file, clock=lambda: two_hours_ago)
    now = Authority("http://issuer.test", DEFAULT_CLIENTS, key_file)
    token = past.issue_token(_client("alice"))

    with pytest.raises(AuthError, match="expired"):
        now.verify(token)


def test_tampered_token_is_refused(authority: Authority) -> None:
    header, payload, signature = authority.issue_token(_client("bob")).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["Approver"] = "true"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()

    with pytest.raises(AuthError, match="signature"):
        authority.verify(f"{header}.{forged}.{signature}")


def test_token_signed_by_another_key_is_refused(authority: Authority, tmp_path: Path) -> None:
    impostor = Authority(authority.issuer, DEFAULT_CLIENTS, tmp_path / "other-key.pem")

    with pytest.raises(AuthError, match="unknown key"):
        authority.verify(impostor.issue_token(_client("gateway")))


def test_token_from_another_issuer_is_refused(authority: Authority, key_file: Path) -> None:
    elsewhere = Authority("http://elsewhere.test/authority", DEFAULT_CLIENTS, key_file)

    with pytest.raises(AuthError, match="issuer"):
        authority.verify(elsewhere.issue_token(_client("alice")))


def test_garbage_is_not_a_token(authority: Authority) -> None:
    with pytest.raises(AuthError, match="malformed"):
        authority.verify("not-a-jwt")


def test_issue_token_refuses_a_scope_the_client_lacks(authority: Authority) -> None:
    with pytest.raises(ValueError, match="engine_admin"):
        authority.issue_token(_client("alice"), "engine_read engine_admin")


def test_signing_key_persists_across_authorities_on_the_same_key_file(key_file: Path) -> None:
    first = Authority("http://issuer.test", DEFAULT_CLIENTS, key_file)
    token = first.issue_token(_client("alice"))

    second = Authority("http://issuer.test", DEFAULT_CLIENTS, key_file)

    assert second.verify(token)["sub"] == "alice"
    assert second.jwks() == first.jwks()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_a_key_file_that_is_not_a_key_is_a_clear_error(tmp_path: Path) -> None:
    broken = tmp_path / "key.pem"
    broken.write_text("hello")

    with pytest.raises(ValueError, match=r"key\.pem"):
        Authority("http://issuer.test", DEFAULT_CLIENTS, broken)


# -- clients file --------------------------------------------------------------------------------------------


def test_no_clients_file_means_the_development_clients() -> None:
    assert load_clients(None) == DEFAULT_CLIENTS
    assert {"gateway", "user-task-worker", "alice", "bob"} <= {c.client_id for c in DEFAULT_CLIENTS}


def test_clients_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "clients.json"
    path.write_text(
        json.dumps(
            [
                {"client_id": "a", "client_secret": "s", "sub": "user-a", "scope": "engine_read"},
                {"client_id": "b", "client_secret": "t", "scope": "engine_read", "claims": {"Lane": "true"}},
            ]
        )
    )

    first, second = load_clients(path)

    assert first == ClientRecord("a", "s", "user-a", "engine_read", {})
    assert second.sub == "b"
    assert second.claims == {"Lane": "true"}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{", "not valid JSON"),
        ('{"client_id": "a"}', "expected a JSON list"),
        ("[1]", "entry 0: expected a JSON object"),
        (
            '[{"client_id": "a", "scope": "engine_read"}]',
            "entry 0 \\(client_id 'a'\\): the field 'client_secret'",
        ),
        ('[{"client_id": "a", "client_secret": "s", "scope": 3}]', "'scope' must be a non-empty string"),
        ('[{"client_id": "a", "client_secret": "s", "scope": "x", "claim": {}}]', "unknown field"),
        ('[{"client_id": "a", "client_secret": "s", "scope": "x", "claims": {"sub": "root"}}]', "registered"),
        (
            '[{"client_id": "a", "client_secret": "s", "scope": "x"},'
            ' {"client_id": "a", "client_secret": "t", "scope": "x"}]',
            "entry 1: client_id 'a' appears more than once",
        ),
    ],
)
def test_bad_clients_file_names_the_file_and_the_entry(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "clients.json"
    path.write_text(content)

    with pytest.raises(ValueError, match=message) as raised:
        load_clients(path)
    assert str(path) in str(raised.value)


def test_missing_clients_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read"):
        load_clients(tmp_path / "nope.json")
