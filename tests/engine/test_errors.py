from __future__ import annotations

import inspect

import aiohttp
import httpx
import pytest

from gateway.engine import (
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ConflictError,
    EngineError,
    EngineServerError,
    EngineTimeoutError,
    EngineUnavailableError,
    ForbiddenError,
    GoneError,
    InternalServerError,
    LockedError,
    NotFoundError,
    OutcomeUnknownError,
    ProcessCubeException,
    ProtocolError,
    ServiceUnavailableError,
    UnauthorizedError,
    UnprocessableEntityError,
    map_engine_errors,
)
from gateway.engine.errors import error_for_response

from ._helpers import API, engine_error


def _httpx_exception_types() -> list[type[Exception]]:
    return [value for value in vars(httpx).values() if inspect.isclass(value) and issubclass(value, Exception)]


def _aiohttp_exception_types() -> list[type[Exception]]:
    return [
        value for value in vars(aiohttp).values() if inspect.isclass(value) and issubclass(value, aiohttp.ClientError)
    ]


def _instance(cls: type[Exception]) -> Exception:
    request = httpx.Request("GET", API + "/info")
    if issubclass(cls, httpx.HTTPStatusError):
        return cls("x", request=request, response=httpx.Response(500, request=request))
    if issubclass(cls, httpx.RequestError):
        return cls("x", request=request)
    if issubclass(cls, httpx.StreamError | httpx.CookieConflict | httpx.InvalidURL):
        try:
            return cls("x")  # type: ignore[call-arg]
        except TypeError:
            return cls()
    if cls is httpx.HTTPError or issubclass(cls, httpx.HTTPError):
        return cls("x")
    raise AssertionError(cls)


def _aiohttp_instance(cls: type[Exception]) -> Exception:
    if issubclass(cls, aiohttp.ClientConnectorError):
        key = aiohttp.client_reqrep.ConnectionKey("h", 1, False, True, None, None, None)
        os_error = OSError(111, "refused")
        return cls(key, os_error)
    if issubclass(cls, aiohttp.ClientResponseError):
        url = aiohttp.client_reqrep.URL("http://h/")
        return cls(aiohttp.RequestInfo(url, "GET", {}, url), (), status=400)  # type: ignore[arg-type]
    if issubclass(cls, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError):
        return cls("ftp://x")
    try:
        return cls("x")
    except TypeError:
        instance = cls.__new__(cls)  # constructors with many required arguments: attributes do not matter
        Exception.__init__(instance, "x")
        return instance


@pytest.mark.parametrize("exc_type", _httpx_exception_types(), ids=lambda t: t.__name__)
@pytest.mark.parametrize("write", [False, True], ids=["read", "write"])
def test_every_httpx_exception_type_maps_to_a_processcube_exception(exc_type: type[Exception], write: bool) -> None:
    original = _instance(exc_type)
    with pytest.raises(ProcessCubeException) as caught, map_engine_errors(write=write):
        raise original
    assert caught.value.__cause__ is original


@pytest.mark.parametrize("exc_type", _aiohttp_exception_types(), ids=lambda t: t.__name__)
def test_every_aiohttp_exception_type_maps_to_a_processcube_exception(exc_type: type[Exception]) -> None:
    original = _aiohttp_instance(exc_type)
    with pytest.raises(ProcessCubeException) as caught, map_engine_errors():
        raise original
    assert caught.value.__cause__ is original


@pytest.mark.parametrize("status", range(300, 600))
def test_every_error_status_maps_to_a_processcube_exception(status: int) -> None:
    response = httpx.Response(status, request=httpx.Request("GET", API + "/info"))
    assert isinstance(error_for_response(response), ProcessCubeException)


@pytest.mark.parametrize(
    ("status", "class_name", "expected"),
    [
        (400, "BadRequestError", BadRequestError),
        (401, "UnauthorizedError", UnauthorizedError),
        (403, "ForbiddenError", ForbiddenError),
        (404, "NotFoundError", NotFoundError),
        (409, "ConflictError", ConflictError),
        (410, "GoneError", GoneError),
        (422, "UnprocessableEntityError", UnprocessableEntityError),
        (423, "LockedError", LockedError),
        (500, "InternalServerError", InternalServerError),
        (503, "ServiceUnavaliableError", ServiceUnavailableError),
    ],
)
def test_engine_error_statuses_map_to_their_class_and_keep_what_the_engine_said(
    status: int, class_name: str, expected: type[EngineError]
) -> None:
    response = engine_error(status, class_name, "it went wrong", additionalInformation={"taskId": "t1"})
    response.request = httpx.Request("PUT", API + "/user_tasks/t1/finish")
    error = error_for_response(response)
    assert type(error) is expected
    assert isinstance(error, EngineError)
    assert error.status == status
    assert error.code == status
    assert error.error_class_name == class_name
    assert error.message == "it went wrong"
    assert error.additional_information == {"taskId": "t1"}
    assert "it went wrong" in str(error)


def test_other_4xx_is_a_plain_engine_error_and_other_5xx_a_server_error() -> None:
    request = httpx.Request("GET", API + "/info")
    assert type(error_for_response(httpx.Response(418, request=request))) is EngineError
    assert type(error_for_response(httpx.Response(502, request=request))) is EngineServerError
    assert type(error_for_response(httpx.Response(302, request=request))) is ProtocolError


def test_minimal_error_body_is_accepted() -> None:
    response = httpx.Response(409, json={"code": 409, "message": "reserved by someone else"})
    response.request = httpx.Request("PUT", API + "/user_tasks/t1/reserve")
    error = error_for_response(response)
    assert isinstance(error, ConflictError)
    assert error.message == "reserved by someone else"
    assert error.error_class_name == "ConflictError"
    assert error.additional_information is None


def test_garbage_error_body_keeps_the_status_and_an_excerpt() -> None:
    response = httpx.Response(502, content=b"<html>Bad Gateway</html>")
    response.request = httpx.Request("GET", API + "/info")
    error = error_for_response(response)
    assert isinstance(error, EngineServerError)
    assert "Bad Gateway" in error.message


def test_service_unavailable_is_also_an_unavailable_engine() -> None:
    assert issubclass(ServiceUnavailableError, EngineServerError)
    assert issubclass(ServiceUnavailableError, EngineUnavailableError)


def test_outcome_unknown_is_a_timeout() -> None:
    assert issubclass(OutcomeUnknownError, EngineTimeoutError)


def test_read_timeout_of_a_read_is_an_engine_timeout() -> None:
    with pytest.raises(EngineTimeoutError) as caught, map_engine_errors():
        raise httpx.ReadTimeout("slow")
    assert not isinstance(caught.value, OutcomeUnknownError)


def test_read_timeout_of_a_write_is_outcome_unknown() -> None:
    with pytest.raises(OutcomeUnknownError), map_engine_errors(write=True):
        raise httpx.ReadTimeout("slow")


def test_dropped_connection_of_a_write_is_outcome_unknown_and_of_a_read_unavailable() -> None:
    with pytest.raises(OutcomeUnknownError), map_engine_errors(write=True):
        raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
    with pytest.raises(EngineUnavailableError) as caught, map_engine_errors():
        raise httpx.ReadError("reset")
    assert caught.value.request_sent


def test_connect_failure_says_the_request_was_never_sent_even_for_a_write() -> None:
    with pytest.raises(EngineUnavailableError) as caught, map_engine_errors(write=True):
        raise httpx.ConnectError("refused")
    assert not caught.value.request_sent


def test_aiohttp_cause_decides_over_the_loose_httpx_mapping() -> None:
    # httpx-aiohttp turns a refused connection into httpx.ConnectTimeout and a server disconnect too;
    # the original aiohttp exception tells them apart.
    with pytest.raises(OutcomeUnknownError), map_engine_errors(write=True):
        raise httpx.ConnectTimeout("x") from aiohttp.ServerDisconnectedError()
    with pytest.raises(EngineUnavailableError) as caught, map_engine_errors(write=True):
        raise httpx.ConnectTimeout("x") from _aiohttp_instance(aiohttp.ClientConnectorError)
    assert not caught.value.request_sent


def test_leaked_asyncio_timeout_is_an_engine_timeout() -> None:
    with pytest.raises(EngineTimeoutError), map_engine_errors():
        raise TimeoutError


def test_unsupported_url_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError), map_engine_errors():
        raise httpx.UnsupportedProtocol("ftp")


def test_processcube_exceptions_pass_through_unchanged() -> None:
    original = AuthenticationError("no", authority_url="http://auth")
    with pytest.raises(AuthenticationError) as caught, map_engine_errors():
        raise original
    assert caught.value is original


def test_programming_errors_are_not_swallowed() -> None:
    with pytest.raises(KeyError), map_engine_errors():
        raise KeyError("bug")
