"""UserTaskClient.get_authority_url and get_json: the authority's documents through the client's error mapping."""

from __future__ import annotations

import httpx
import pytest

from gateway.engine import (
    ConfigurationError,
    EngineServerError,
    EngineTimeoutError,
    EngineUnavailableError,
    NotFoundError,
    ProtocolError,
    RetryPolicy,
)

from ._helpers import API, Recorder, mock_client

AUTHORITY = "http://authority.test"


def _answer(response: httpx.Response) -> Recorder:
    return Recorder(lambda request: response)


def _raise(exc: Exception) -> Recorder:
    def fail(request: httpx.Request) -> httpx.Response:
        raise exc

    return Recorder(fail)


async def test_the_authority_url_is_asked_of_the_engine_without_a_token() -> None:
    recorder = _answer(httpx.Response(200, json=AUTHORITY + "/"))
    async with mock_client(recorder) as client:
        assert await client.get_authority_url() == AUTHORITY
        assert client.request_count == 0  # not an engine call of the caller's
    assert [str(r.url) for r in recorder.requests] == [API + "/authority"]
    assert "authorization" not in recorder.requests[0].headers


async def test_a_configured_authority_is_not_asked_of_the_engine() -> None:
    recorder = _answer(httpx.Response(500))
    async with mock_client(
        recorder, client_id="worker", client_secret="secret", authority_url=AUTHORITY + "/"
    ) as client:
        assert await client.get_authority_url() == AUTHORITY
    assert recorder.requests == []


async def test_get_json_reads_any_url_without_a_token() -> None:
    recorder = _answer(httpx.Response(200, json={"keys": []}))
    async with mock_client(recorder) as client:
        assert await client.get_json(AUTHORITY + "/keys") == {"keys": []}
    assert str(recorder.requests[0].url) == AUTHORITY + "/keys"
    assert "authorization" not in recorder.requests[0].headers


@pytest.mark.parametrize(
    ("recorder", "expected"),
    [
        (_raise(httpx.ConnectError("refused")), EngineUnavailableError),
        (_raise(httpx.ReadTimeout("slow")), EngineTimeoutError),
        (_raise(httpx.RemoteProtocolError("dropped")), EngineUnavailableError),
        (_answer(httpx.Response(200, text="<html>")), ProtocolError),
        (_answer(httpx.Response(302, headers={"Location": "http://x.test"})), ProtocolError),
        (_answer(httpx.Response(404, text="no")), NotFoundError),
        (_answer(httpx.Response(500, text="oops")), EngineServerError),
    ],
)
async def test_failures_are_process_cube_exceptions(recorder: Recorder, expected: type[Exception]) -> None:
    async with mock_client(recorder, retry=RetryPolicy(max_retries=0)) as client:
        with pytest.raises(expected):
            await client.get_json(AUTHORITY + "/keys")
        with pytest.raises(expected):
            await client.get_authority_url()


async def test_the_authority_answer_must_be_a_url() -> None:
    async with mock_client(_answer(httpx.Response(200, json={"url": AUTHORITY}))) as client:
        with pytest.raises(ProtocolError):
            await client.get_authority_url()


async def test_a_url_httpx_cannot_send_is_a_configuration_error() -> None:
    async with mock_client(_answer(httpx.Response(200, json={}))) as client:
        with pytest.raises(ConfigurationError):
            await client.get_json("http://[::1/keys")  # a URL httpx cannot even build


async def test_reads_are_retried_like_every_engine_read() -> None:
    answers = iter([httpx.ConnectError("refused"), httpx.Response(503), httpx.Response(200, json=AUTHORITY)])

    def flaky(request: httpx.Request) -> httpx.Response:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    recorder = Recorder(flaky)
    async with mock_client(recorder) as client:
        assert await client.get_authority_url() == AUTHORITY
    assert len(recorder.requests) == 3


async def test_a_closed_client_refuses() -> None:
    client = mock_client(_answer(httpx.Response(200, json={})))
    await client.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await client.get_json(AUTHORITY)
