"""Every failure of the engine client, as one exception tree.

`except ProcessCubeException` catches every failure of the client and nothing else. Programming
errors (a wrong argument type, calling a closed client) stay ordinary Python exceptions.

```
ProcessCubeException
├── ConfigurationError            bad engine URL, credentials half given, a request whose URL is too
│                                 long to send (httpx.InvalidURL), …
├── AuthenticationError           the authority refused the client credentials (names the authority)
├── ProtocolError                 the reply is not what the contract says (garbage JSON, wrong shape,
│                                 an unexpected redirect)
├── EngineUnavailableError        the engine could not be reached, or dropped the connection
│   │                             (`.request_sent` tells whether the request left this process)
│   └── ServiceUnavailableError   (also an EngineServerError) the engine answered 503
├── EngineTimeoutError            the engine did not answer in time
│   └── OutcomeUnknownError       a write was sent, then timed out or lost its connection:
│                                 it may or may not have happened
└── EngineError                   the engine answered with an error status (.status, .code,
    │                             .error_class_name, .message, .additional_information)
    ├── BadRequestError           400
    ├── UnauthorizedError         401
    ├── ForbiddenError            403
    ├── NotFoundError             404 (also: a task looked up by id does not exist)
    ├── ConflictError             409
    ├── GoneError                 410
    ├── UnprocessableEntityError  422
    ├── LockedError               423
    └── EngineServerError         any 5xx
        ├── InternalServerError   500
        └── ServiceUnavailableError 503
```
Any other 4xx is a plain `EngineError`; any 3xx (the client follows no redirects) is a `ProtocolError`.

`map_engine_errors()` is the one place that knows httpx (and aiohttp, whose exceptions the httpx-aiohttp
transport lets through or maps loosely): it translates them with `raise … from exc`.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Final, Literal

import aiohttp
import httpx

__all__ = [
    "AuthenticationError",
    "BadRequestError",
    "ConfigurationError",
    "ConflictError",
    "EngineError",
    "EngineServerError",
    "EngineTimeoutError",
    "EngineUnavailableError",
    "ForbiddenError",
    "GoneError",
    "InternalServerError",
    "LockedError",
    "NotFoundError",
    "OutcomeUnknownError",
    "ProcessCubeException",
    "ProtocolError",
    "ServiceUnavailableError",
    "UnauthorizedError",
    "UnprocessableEntityError",
    "answer_began",
    "error_for_response",
    "map_engine_errors",
]


class ProcessCubeException(Exception):
    """Root of every failure the engine client raises (the name the seed's users catch)."""


class ConfigurationError(ProcessCubeException):
    """The client was configured, or called, in a way that cannot work (raised before any request is sent).

    Also a request that httpx refuses to build (``httpx.InvalidURL``: a URL over 64 KiB, from a filter with too
    many or too long values): nothing was sent, and retrying the same call cannot help.
    """


class AuthenticationError(ProcessCubeException):
    """The authority refused to issue a token: wrong client id or secret, unknown scope, …

    Retrying cannot help, so the client never loops on it. It names the authority because the most
    common cause is pointing a client at the wrong one.
    """

    def __init__(
        self,
        message: str,
        *,
        authority_url: str,
        client_id: str | None = None,
        status: int | None = None,
        error: str | None = None,
        error_description: str | None = None,
    ) -> None:
        super().__init__(message)
        self.authority_url = authority_url
        self.client_id = client_id
        self.status = status
        self.error = error
        self.error_description = error_description


class ProtocolError(ProcessCubeException):
    """The engine (or authority) answered, but not in the shape the contract describes."""


class EngineUnavailableError(ProcessCubeException):
    """The engine could not be reached, or the connection broke before an answer came.

    `request_sent` is False when the request provably never left this process (connection refused,
    connect timeout, DNS failure): only then may a write be retried safely.
    """

    def __init__(self, message: str, *, request_sent: bool = False) -> None:
        super().__init__(message)
        self.request_sent = request_sent


class EngineTimeoutError(ProcessCubeException):
    """The engine did not answer in time. For reads it is safe to try again later."""


class OutcomeUnknownError(EngineTimeoutError):
    """A write reached the wire but no answer came back (timeout or dropped connection).

    The engine may or may not have applied it: re-read the task before repeating the action. `timed_out` tells
    the two apart: True when no answer came in time, False when the connection was reset or closed first.
    """

    def __init__(self, message: str, *, timed_out: bool = True) -> None:
        super().__init__(message)
        self.timed_out = timed_out


class EngineError(ProcessCubeException):
    """The engine answered with an error status, in its serialized error shape.

    Carries what the engine said: `code` and `status` (equal for a conforming engine),
    `error_class_name` ("NotFoundError", …), `message` and `additional_information`.
    """

    status_code: int | None = None
    default_class_name: str | None = None

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: int | None = None,
        error_class_name: str | None = None,
        additional_information: Any = None,
        method: str | None = None,
        url: str | None = None,
    ) -> None:
        self.status = status
        self.code = code if code is not None else status
        self.error_class_name = error_class_name
        self.message = message
        self.additional_information = additional_information
        self.method = method
        self.url = url
        name = error_class_name or f"HTTP {status}"
        where = f" ({method} {url})" if method and url else ""
        super().__init__(f"{status} {name}: {message}{where}")


class BadRequestError(EngineError):
    status_code = 400
    default_class_name = "BadRequestError"


class UnauthorizedError(EngineError):
    status_code = 401
    default_class_name = "UnauthorizedError"


class ForbiddenError(EngineError):
    status_code = 403
    default_class_name = "ForbiddenError"


class NotFoundError(EngineError):
    status_code = 404
    default_class_name = "NotFoundError"


class ConflictError(EngineError):
    status_code = 409
    default_class_name = "ConflictError"


class GoneError(EngineError):
    status_code = 410
    default_class_name = "GoneError"


class UnprocessableEntityError(EngineError):
    status_code = 422
    default_class_name = "UnprocessableEntityError"


class LockedError(EngineError):
    status_code = 423
    default_class_name = "LockedError"


class EngineServerError(EngineError):
    """The engine failed (5xx): nothing the caller did wrong."""


class InternalServerError(EngineServerError):
    status_code = 500
    default_class_name = "InternalServerError"


class ServiceUnavailableError(EngineServerError, EngineUnavailableError):
    """503: the engine says it cannot serve now. It is both an engine answer and "unavailable"."""

    status_code = 503
    default_class_name = "ServiceUnavaliableError"  # sic: the engine's spelling

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: int | None = None,
        error_class_name: str | None = None,
        additional_information: Any = None,
        method: str | None = None,
        url: str | None = None,
    ) -> None:
        EngineServerError.__init__(
            self,
            message,
            status=status,
            code=code,
            error_class_name=error_class_name,
            additional_information=additional_information,
            method=method,
            url=url,
        )
        self.request_sent = True


_STATUS_CLASSES: Final[dict[int, type[EngineError]]] = {
    cls.status_code: cls
    for cls in (
        BadRequestError,
        UnauthorizedError,
        ForbiddenError,
        NotFoundError,
        ConflictError,
        GoneError,
        UnprocessableEntityError,
        LockedError,
        InternalServerError,
        ServiceUnavailableError,
    )
    if cls.status_code is not None
}


def error_class_for_status(status: int) -> type[ProcessCubeException]:
    """The exception type for a non-2xx status (3xx is a protocol error: redirects are not followed)."""
    if status in _STATUS_CLASSES:
        return _STATUS_CLASSES[status]
    if 500 <= status <= 599:
        return EngineServerError
    if 400 <= status <= 499:
        return EngineError
    return ProtocolError


def error_for_response(response: httpx.Response) -> ProcessCubeException:
    """Build the exception for an error response; accepts the full, the minimal and a garbage body."""
    status = response.status_code
    method = response.request.method if _has_request(response) else None
    url = str(response.request.url) if _has_request(response) else None
    cls = error_class_for_status(status)
    if not issubclass(cls, EngineError):
        return cls(f"unexpected HTTP {status} from {method} {url}")
    body: Any = None
    try:
        body = json.loads(response.content) if response.content else None
    except ValueError:
        body = None
    code: int | None = None
    class_name = cls.default_class_name
    message = response.reason_phrase or f"HTTP {status}"
    additional: Any = None
    if isinstance(body, Mapping):
        raw_code = body.get("code")
        if isinstance(raw_code, int) and not isinstance(raw_code, bool):
            code = raw_code
        raw_name = body.get("errorClassName") or body.get("name")
        if isinstance(raw_name, str):
            class_name = raw_name
        raw_message = body.get("message")
        if isinstance(raw_message, str):
            message = raw_message
        additional = body.get("additionalInformation")
    elif response.content:
        # Not the engine's error shape (a proxy's HTML page, …): keep a short excerpt for the log.
        message = response.content[:200].decode("utf-8", "replace")
    return cls(
        message,
        status=status,
        code=code,
        error_class_name=class_name,
        additional_information=additional,
        method=method,
        url=url,
    )


def _has_request(response: httpx.Response) -> bool:
    try:
        response.request  # noqa: B018
    except RuntimeError:
        return False
    return True


_Kind = Literal["not_sent", "timeout_not_sent", "timeout", "dropped", "config", "protocol"]

# aiohttp exceptions, most specific first. The httpx-aiohttp transport maps some of them to httpx types
# (loosely: a refused connection becomes httpx.ConnectTimeout) and lets others through, so the original
# aiohttp exception, when there is one, is what decides.
_AIOHTTP_KINDS: Final[tuple[tuple[type[BaseException], _Kind], ...]] = (
    (aiohttp.ClientConnectorError, "not_sent"),  # refused, DNS, TLS handshake, proxy connect
    (aiohttp.ConnectionTimeoutError, "not_sent"),  # connect (or pool) timeout
    (aiohttp.SocketTimeoutError, "timeout"),  # read timeout
    (aiohttp.ServerTimeoutError, "timeout"),
    (aiohttp.InvalidURL, "config"),
    (aiohttp.NonHttpUrlClientError, "config"),
    (aiohttp.TooManyRedirects, "protocol"),
    (aiohttp.ClientResponseError, "protocol"),  # an unparsable HTTP answer
    (aiohttp.ClientPayloadError, "dropped"),
    (aiohttp.ClientConnectionError, "dropped"),  # server disconnected, connection reset, …
    (aiohttp.ClientError, "dropped"),
)

_HTTPX_KINDS: Final[tuple[tuple[type[BaseException], _Kind], ...]] = (
    (httpx.ConnectTimeout, "not_sent"),
    (httpx.ConnectError, "not_sent"),
    (httpx.ProxyError, "not_sent"),
    (httpx.PoolTimeout, "timeout_not_sent"),
    (httpx.UnsupportedProtocol, "config"),
    (httpx.InvalidURL, "config"),
    (httpx.ReadTimeout, "timeout"),
    (httpx.WriteTimeout, "timeout"),
    (httpx.TimeoutException, "timeout"),
    (httpx.ReadError, "dropped"),
    (httpx.WriteError, "dropped"),
    (httpx.CloseError, "dropped"),
    (httpx.RemoteProtocolError, "dropped"),  # "server disconnected without sending a response"
    (httpx.NetworkError, "dropped"),
    (httpx.LocalProtocolError, "protocol"),
    (httpx.DecodingError, "protocol"),
    (httpx.TooManyRedirects, "protocol"),
    (httpx.TransportError, "dropped"),
    (httpx.RequestError, "dropped"),
    (httpx.HTTPError, "protocol"),
    (httpx.CookieConflict, "protocol"),
    (httpx.StreamError, "protocol"),
)

_BUILTIN_KINDS: Final[tuple[tuple[type[BaseException], _Kind], ...]] = (
    (builtins.TimeoutError, "timeout"),  # asyncio.TimeoutError is this class since Python 3.11
    (ConnectionRefusedError, "not_sent"),
    (OSError, "dropped"),
)


def _kind_of(exc: BaseException) -> _Kind | None:
    cause = exc.__cause__
    for candidate in (cause, exc) if isinstance(cause, aiohttp.ClientError) else (exc,):
        for table in (_AIOHTTP_KINDS, _HTTPX_KINDS, _BUILTIN_KINDS):
            for cls, kind in table:
                if isinstance(candidate, cls):
                    return kind
    return None


def _describe(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception:  # a foreign exception whose __str__ needs attributes it never got
        text = ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _translate(exc: BaseException, *, write: bool, what: str) -> ProcessCubeException | None:
    if isinstance(exc, httpx.HTTPStatusError):
        return error_for_response(exc.response)
    if isinstance(exc, httpx.InvalidURL | httpx.UnsupportedProtocol):
        return ConfigurationError(f"{what}: {exc}")
    kind = _kind_of(exc)
    detail = f"{what}: {_describe(exc)}"
    if kind is None:
        return None
    if kind == "not_sent":
        return EngineUnavailableError(f"engine unreachable, {detail}", request_sent=False)
    if kind == "timeout_not_sent":
        return EngineTimeoutError(f"no free connection in time, {detail}")
    if kind == "timeout":
        if write:
            return OutcomeUnknownError(f"write timed out after it was sent, outcome unknown, {detail}", timed_out=True)
        return EngineTimeoutError(f"engine did not answer in time, {detail}")
    if kind == "dropped":
        # Once a connection is made, the request's bytes may have left (the transport buffers and writes them in a
        # task of its own): a connection lost then is never proof that a write did not reach the engine.
        if write:
            return OutcomeUnknownError(
                f"connection lost after a write was sent, outcome unknown, {detail}", timed_out=False
            )
        return EngineUnavailableError(f"connection to the engine lost, {detail}", request_sent=True)
    if kind == "config":
        return ConfigurationError(detail)
    return ProtocolError(f"invalid reply, {detail}")


def answer_began(exc: BaseException) -> bool:
    """True when the failure came while reading an answer's body: the engine (or whatever is in its place)
    answered with a status line and headers, then the body broke off (cut short, connection lost in it)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, aiohttp.ClientPayloadError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


@contextmanager
def map_engine_errors(*, write: bool = False, what: str = "engine request") -> Iterator[None]:
    """Translate httpx, aiohttp and low-level errors raised inside the block into this tree.

    `write=True` marks a request that changes state: a timeout or dropped connection after it was sent
    becomes `OutcomeUnknownError`. `ProcessCubeException`s pass through unchanged; `httpx.HTTPStatusError`
    becomes the `EngineError` for its status. Anything else (a bug) is not swallowed.
    """
    try:
        yield
    except ProcessCubeException:
        raise
    except (httpx.HTTPError, httpx.InvalidURL, httpx.CookieConflict, httpx.StreamError) as exc:
        mapped = _translate(exc, write=write, what=what)
        if mapped is None:  # pragma: no cover - every httpx type has a row above
            raise
        raise mapped from exc
    except (aiohttp.ClientError, OSError, builtins.TimeoutError) as exc:
        mapped = _translate(exc, write=write, what=what)
        if mapped is None:  # pragma: no cover
            raise
        raise mapped from exc
    except json.JSONDecodeError as exc:
        raise ProtocolError(f"invalid JSON from {what}: {exc}") from exc
