"""TokenVerifier against a fake authority, reached through the real engine client (httpx.MockTransport)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from gateway.adapters.identity import ANONYMOUS_USER, DUMMY_TOKEN, TokenVerifier, rights_of
from gateway.core import errors
from gateway.engine import ProcessCubeException, RetryPolicy, UserTaskClient

ENGINE = "http://engine.test"
AUTHORITY = "http://authority.test"
DISCOVERY = AUTHORITY + "/.well-known/openid-configuration"
JWKS = AUTHORITY + "/keys"


def _private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


KEYS = {kid: _private_key() for kid in ("k1", "k2", "k3")}


@dataclass
class FakeAuthority:
    """The engine's ``GET /authority``, the discovery document and the JWKS; ``fail`` replaces any answer."""

    published: list[str] = field(default_factory=lambda: ["k1"])
    fail: Callable[[httpx.Request], httpx.Response] | None = None
    requests: list[str] = field(default_factory=list)

    def jwks_fetches(self) -> int:
        return self.requests.count(JWKS)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        self.requests.append(url)
        assert "authorization" not in request.headers  # the authority is read without a token
        if self.fail is not None:
            return self.fail(request)
        if url == ENGINE + "/atlas_engine/api/v1/authority":
            return httpx.Response(200, json=AUTHORITY)
        if url == DISCOVERY:
            return httpx.Response(200, json={"issuer": AUTHORITY, "jwks_uri": JWKS})
        if url == JWKS:
            keys = []
            for kid in self.published:
                jwk: dict[str, Any] = RSAAlgorithm.to_jwk(KEYS[kid].public_key(), as_dict=True)
                keys.append({**jwk, "kid": kid, "use": "sig", "alg": "RS256"})
            return httpx.Response(200, json={"keys": keys})
        return httpx.Response(404, json={"message": "no such thing"})


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def authority() -> FakeAuthority:
    return FakeAuthority()


@pytest.fixture
async def client(authority: FakeAuthority) -> AsyncIterator[UserTaskClient]:
    async with UserTaskClient(
        ENGINE, transport=httpx.MockTransport(authority), retry=RetryPolicy(max_retries=0)
    ) as engine_client:
        yield engine_client


@pytest.fixture
def clock() -> Clock:
    return Clock()


def verifier(client: UserTaskClient, clock: Clock, **options: Any) -> TokenVerifier:
    options.setdefault("allow_anonymous", False)
    return TokenVerifier(client, clock=clock, **options)


def token(kid: str = "k1", *, algorithm: str = "RS256", key: Any = None, **overrides: Any) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {"iss": AUTHORITY, "sub": "alice", "iat": now, "exp": now + 600, "name": "Alice"}
    claims.update(overrides)
    claims = {name: value for name, value in claims.items() if value is not None}
    return jwt.encode(claims, KEYS[kid] if key is None else key, algorithm=algorithm, headers={"kid": kid})


async def refused(v: TokenVerifier, authorization: str | None, match: str = "") -> errors.Unauthenticated:
    with pytest.raises(errors.Unauthenticated, match=match) as caught:
        await v.caller(authorization)
    return caught.value


# -- valid and invalid tokens ------------------------------------------------------------------------------


async def test_a_valid_rs256_token_is_its_subject(
    client: UserTaskClient, clock: Clock, authority: FakeAuthority
) -> None:
    raw = token()
    caller = await verifier(client, clock).caller(f"Bearer {raw}")
    assert caller.user_id == "alice"
    assert caller.token == raw
    assert caller.user_id != ANONYMOUS_USER
    # the authority comes from the engine, then discovery, then the keys
    assert authority.requests == [ENGINE + "/atlas_engine/api/v1/authority", DISCOVERY, JWKS]


async def test_keys_are_cached(client: UserTaskClient, clock: Clock, authority: FakeAuthority) -> None:
    v = verifier(client, clock)
    for _ in range(3):
        await v.caller(f"Bearer {token()}")
    assert len(authority.requests) == 3


async def test_a_configured_authority_is_not_asked_of_the_engine(
    client: UserTaskClient, clock: Clock, authority: FakeAuthority
) -> None:
    caller = await verifier(client, clock, authority_url=AUTHORITY + "/").caller(f"Bearer {token()}")
    assert caller.user_id == "alice"
    assert authority.requests == [DISCOVERY, JWKS]


async def test_an_expired_token_is_refused(client: UserTaskClient, clock: Clock) -> None:
    past = int(time.time()) - 3600
    await refused(verifier(client, clock), f"Bearer {token(iat=past - 600, exp=past)}", "expired")


async def test_a_token_of_another_issuer_is_refused(client: UserTaskClient, clock: Clock) -> None:
    await refused(verifier(client, clock), f"Bearer {token(iss='http://evil.test')}", "not issued by")


async def test_the_audience_is_checked_when_configured(client: UserTaskClient, clock: Clock) -> None:
    v = verifier(client, clock, audience="task-gateway")
    await refused(v, f"Bearer {token(aud='another-api')}", "not meant for 'task-gateway'")
    await refused(v, f"Bearer {token()}", "invalid")  # no aud at all
    assert (await v.caller(f"Bearer {token(aud='task-gateway')}")).user_id == "alice"


async def test_the_audience_is_ignored_when_not_configured(client: UserTaskClient, clock: Clock) -> None:
    assert (await verifier(client, clock).caller(f"Bearer {token(aud='anything')}")).user_id == "alice"


async def test_a_token_signed_with_another_key_is_refused(client: UserTaskClient, clock: Clock) -> None:
    forged = token("k1", key=KEYS["k2"])  # claims k1, signed with k2
    await refused(verifier(client, clock), f"Bearer {forged}", "invalid")


@pytest.mark.parametrize("raw", ["not-a-jwt", "a.b.c", "eyJhbGciOiJSUzI1NiJ9"])
async def test_what_is_not_a_jwt_is_refused(
    client: UserTaskClient, clock: Clock, authority: FakeAuthority, raw: str
) -> None:
    await refused(verifier(client, clock), f"Bearer {raw}", "not a JWT")
    assert authority.requests == []


async def test_alg_none_is_refused(client: UserTaskClient, clock: Clock, authority: FakeAuthority) -> None:
    unsigned = jwt.encode({"sub": "mallory", "iss": AUTHORITY}, None, algorithm="none", headers={"kid": "k1"})
    await refused(verifier(client, clock), f"Bearer {unsigned}", "RS256")
    assert authority.requests == []


async def test_hs256_is_refused(client: UserTaskClient, clock: Clock, authority: FakeAuthority) -> None:
    # the classic confusion: an HMAC "signature" made with a secret the attacker chose
    claims = {"sub": "mallory", "iss": AUTHORITY, "exp": int(time.time()) + 600, "iat": int(time.time())}
    forged = jwt.encode(claims, "an-attacker-chosen-secret-of-32-bytes!", algorithm="HS256", headers={"kid": "k1"})
    await refused(verifier(client, clock), f"Bearer {forged}", "RS256")
    assert authority.requests == []


async def test_a_token_without_subject_is_refused(client: UserTaskClient, clock: Clock) -> None:
    v = verifier(client, clock)
    await refused(v, f"Bearer {token(sub=None)}", "sub")
    await refused(v, f"Bearer {token(sub='')}", "no subject")


@pytest.mark.parametrize("header", ["Basic YWxpY2U6c2VjcmV0", "Bearer", "Bearer   ", "token-without-scheme"])
async def test_a_malformed_authorization_header_is_refused(client: UserTaskClient, clock: Clock, header: str) -> None:
    await refused(verifier(client, clock, allow_anonymous=True), header, "Bearer <token>")


# -- anonymous callers -------------------------------------------------------------------------------------


@pytest.mark.parametrize("header", [None, "", "   ", f"Bearer {DUMMY_TOKEN}"])
async def test_anonymous_and_the_dummy_token_where_allowed(
    client: UserTaskClient, clock: Clock, authority: FakeAuthority, header: str | None
) -> None:
    caller = await verifier(client, clock, allow_anonymous=True).caller(header)
    assert caller.user_id == ANONYMOUS_USER
    assert caller.token is None
    assert authority.requests == []


@pytest.mark.parametrize("header", [None, "", f"Bearer {DUMMY_TOKEN}"])
async def test_anonymous_and_the_dummy_token_where_refused(
    client: UserTaskClient, clock: Clock, header: str | None
) -> None:
    v = verifier(client, clock, allow_anonymous=False)
    assert not v.allow_anonymous
    await refused(v, header, "needs a bearer token")


# -- key rotation ------------------------------------------------------------------------------------------


async def test_an_unknown_kid_fetches_the_keys_again_at_most_once_per_interval(
    client: UserTaskClient, clock: Clock, authority: FakeAuthority
) -> None:
    v = verifier(client, clock)
    await v.caller(f"Bearer {token('k1')}")
    assert authority.jwks_fetches() == 1

    clock.now += 20  # the authority rotates in k2; a token signed with it arrives
    authority.published = ["k1", "k2"]
    assert (await v.caller(f"Bearer {token('k2')}")).user_id == "alice"
    assert authority.jwks_fetches() == 2  # one refetch
    assert authority.requests.count(DISCOVERY) == 1  # discovery is not repeated

    clock.now += 5  # within the interval: another unknown kid does not refetch
    await refused(v, f"Bearer {token('k3')}", "key the authority does not publish")
    await refused(v, f"Bearer {token('k3')}", "key the authority does not publish")
    assert authority.jwks_fetches() == 2

    clock.now += 10  # the interval is over: one more fetch, and k3 is published by now
    authority.published = ["k2", "k3"]
    assert (await v.caller(f"Bearer {token('k3')}")).user_id == "alice"
    assert authority.jwks_fetches() == 3
    # k1 was rotated out: tokens signed with it no longer pass (within the interval, without a fetch)
    await refused(v, f"Bearer {token('k1')}", "key the authority does not publish")
    assert authority.jwks_fetches() == 3


# -- the authority fails: the core's engine errors, never an httpx exception -------------------------------


def _raise(exc: Exception) -> Callable[[httpx.Request], httpx.Response]:
    def fail(request: httpx.Request) -> httpx.Response:
        raise exc

    return fail


async def _failure(client: UserTaskClient, clock: Clock, expected: type[errors.GatewayError]) -> errors.GatewayError:
    with pytest.raises(expected) as caught:
        await verifier(client, clock).caller(f"Bearer {token()}")
    return caught.value


async def test_authority_down_is_engine_unavailable(
    client: UserTaskClient, clock: Clock, authority: FakeAuthority
) -> None:
    authority.fail = _raise(httpx.ConnectError("connection refused"))
    error = await _failure(client, clock, errors.EngineUnavailable)
    assert error.code == "ENGINE_UNAVAILABLE"
    assert isinstance(error.__cause__, ProcessCubeException)


async def test_authority_slow_is_engine_timeout(client: UserTaskClient, clock: Clock, authority: FakeAuthority) -> None:
    authority.fail = _raise(httpx.ReadTimeout("timed out"))
    error = await _failure(client, clock, errors.EngineTimeout)
    assert isinstance(error.__cause__, ProcessCubeException)


async def test_authority_really_slow_is_engine_timeout(authority: FakeAuthority, clock: Clock) -> None:
    """A real timeout: the client's own timeout fires over a socket that accepts and never answers."""

    done = asyncio.Event()
    writers: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        await done.wait()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with UserTaskClient(
            f"http://127.0.0.1:{port}", timeout=0.2, retry=RetryPolicy(max_retries=0)
        ) as slow_client:
            await _failure(slow_client, clock, errors.EngineTimeout)
    finally:
        done.set()
        for writer in writers:
            writer.close()
            await writer.wait_closed()
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (httpx.Response(200, text="<html>not json</html>"), errors.EngineFailure),
        (httpx.Response(200, json="not a url"), errors.EngineFailure),
        (httpx.Response(500, text="oops"), errors.EngineFailure),
        (httpx.Response(404, text="no"), errors.EngineFailure),
        (httpx.Response(302, headers={"Location": "http://elsewhere.test"}), errors.EngineFailure),
        (httpx.Response(503, text="busy"), errors.EngineUnavailable),
    ],
)
async def test_authority_lookup_failures(
    client: UserTaskClient,
    clock: Clock,
    authority: FakeAuthority,
    answer: httpx.Response,
    expected: type[errors.GatewayError],
) -> None:
    authority.fail = lambda request: answer
    await _failure(client, clock, expected)


@pytest.mark.parametrize(
    ("discovery", "jwks"),
    [
        (httpx.Response(200, json=["not", "an", "object"]), None),
        (httpx.Response(200, json={"issuer": AUTHORITY}), None),  # no jwks_uri
        (httpx.Response(200, json={"issuer": 1, "jwks_uri": JWKS}), None),
        (httpx.Response(200, text="garbage"), None),
        (None, httpx.Response(200, text="garbage")),
        (None, httpx.Response(200, json=[1, 2])),
        (None, httpx.Response(200, json={"keys": 7})),
        (None, httpx.Response(200, json={"keys": [{"kty": "RSA", "kid": "k1", "n": "!!", "e": "AQAB"}]})),
        (None, httpx.Response(500, text="oops")),
    ],
)
async def test_authority_garbage_is_engine_failure(
    client: UserTaskClient,
    clock: Clock,
    authority: FakeAuthority,
    discovery: httpx.Response | None,
    jwks: httpx.Response | None,
) -> None:
    def garbage(request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        if url == DISCOVERY and discovery is not None:
            return discovery
        if url == JWKS and jwks is not None:
            return jwks
        authority.fail = None
        try:
            return authority(request)
        finally:
            authority.fail = garbage

    authority.fail = garbage
    await _failure(client, clock, errors.EngineFailure)


async def test_the_verifier_recovers_when_the_authority_comes_back(
    client: UserTaskClient, clock: Clock, authority: FakeAuthority
) -> None:
    v = verifier(client, clock)
    authority.fail = _raise(httpx.ConnectError("connection refused"))
    with pytest.raises(errors.EngineUnavailable):
        await v.caller(f"Bearer {token()}")
    authority.fail = None
    assert (await v.caller(f"Bearer {token()}")).user_id == "alice"  # no waiting for the refresh interval


def test_rights_are_what_a_token_grants_whatever_its_times() -> None:
    claims = {"sub": "alice", "aud": "engine", "scope": "engine_read engine_write", "Approver": "true"}
    refreshed = {**claims, "iat": 2, "exp": 3, "jti": "another"}
    assert rights_of({**claims, "iat": 1, "exp": 2, "jti": "one"}) == rights_of(refreshed)
    assert rights_of(claims) != rights_of({key: value for key, value in claims.items() if key != "Approver"})
    assert rights_of(claims) != rights_of({**claims, "aud": "another-engine"})
