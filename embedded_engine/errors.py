"""The engine's serialized error shape, so embedded-engine errors look exactly like a real engine's.

A real ProcessCube engine answers every failure with the HTTP status equal to the body's ``code`` and a body
like::

    {"errorClassName": "NotFoundError", "code": 404, "message": "…", "callStack": "…", "errorType": "Error",
     "fatal": false, "isEngineError": true, "name": "NotFoundError", "additionalInformation": {…}}

Clients branch on ``code`` (and sometimes ``errorClassName``), so both must be right. ``callStack`` is always
the class name here: a stack trace would leak server internals. ``additionalInformation`` is left out when
there is none, as the Node.js engine leaves out undefined fields.

Use :class:`EngineHttpError` from route code and register :data:`EXCEPTION_HANDLERS` (or the single handlers)
on the Starlette app; use :func:`engine_error_response` where a response is built directly.
"""

from __future__ import annotations

import http
import logging
from collections.abc import Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

__all__ = [
    "ERROR_CLASS_NAMES",
    "EXCEPTION_HANDLERS",
    "EngineHttpError",
    "engine_error_body",
    "engine_error_response",
    "engine_http_error_handler",
    "starlette_http_exception_handler",
    "unexpected_error_handler",
]

log = logging.getLogger("embedded_engine")

#: Status -> ``errorClassName`` as the real engine names them (``ServiceUnavaliableError`` is its spelling).
#: 405, 413, 415 and 429 are not in the engine's documented set; the names are our choice.
ERROR_CLASS_NAMES: Mapping[int, str] = {
    400: "BadRequestError",
    401: "UnauthorizedError",
    403: "ForbiddenError",
    404: "NotFoundError",
    405: "MethodNotAllowedError",
    409: "ConflictError",
    410: "GoneError",
    413: "PayloadTooLargeError",
    415: "UnsupportedMediaTypeError",
    422: "UnprocessableEntityError",
    423: "LockedError",
    429: "TooManyRequestsError",
    500: "InternalServerError",
    503: "ServiceUnavaliableError",
}


def _class_name(status: int) -> str:
    if status in ERROR_CLASS_NAMES:
        return ERROR_CLASS_NAMES[status]
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        return "BadRequestError" if status < 500 else "InternalServerError"
    return "".join(word.capitalize() for word in phrase.replace("-", " ").split()) + "Error"


def engine_error_body(
    status: int, message: str, *, additional_information: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The engine's error JSON for an HTTP error status (400-599)."""
    if not 400 <= status <= 599:
        raise ValueError(f"an engine error needs a 4xx or 5xx status, not {status}")
    name = _class_name(status)
    body: dict[str, Any] = {
        "errorClassName": name,
        "code": status,
        "message": message,
        "callStack": name,
        "errorType": "Error",
        "fatal": False,
        "isEngineError": True,
        "name": name,
    }
    if additional_information is not None:
        body["additionalInformation"] = dict(additional_information)
    return body


def engine_error_response(
    status: int,
    message: str,
    *,
    additional_information: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """A JSON response in the engine's error shape whose status equals the body's ``code``."""
    body = engine_error_body(status, message, additional_information=additional_information)
    return JSONResponse(body, status_code=status, headers=headers)


class EngineHttpError(Exception):
    """Raise from route code to answer in the engine's error shape (see :func:`engine_http_error_handler`)."""

    def __init__(
        self,
        status: int,
        message: str,
        additional_information: Mapping[str, Any] | None = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if not 400 <= status <= 599:
            raise ValueError(f"an engine error needs a 4xx or 5xx status, not {status}")
        super().__init__(message)
        self.status = status
        self.message = message
        self.additional_information = additional_information
        self.headers = headers

    def to_response(self) -> JSONResponse:
        return engine_error_response(
            self.status,
            self.message,
            additional_information=self.additional_information,
            headers=self.headers,
        )


async def engine_http_error_handler(request: Request, exc: Exception) -> Response:
    """Starlette exception handler for :class:`EngineHttpError`."""
    if not isinstance(exc, EngineHttpError):  # pragma: no cover - registered for EngineHttpError only
        raise exc
    return exc.to_response()


async def starlette_http_exception_handler(request: Request, exc: Exception) -> Response:
    """Starlette's own ``HTTPException`` (unknown route 404, wrong method 405…) in the engine's shape."""
    if not isinstance(exc, HTTPException):  # pragma: no cover - registered for HTTPException only
        raise exc
    if exc.status_code == 404:
        message = f"No route {request.method} {request.url.path}."
    elif exc.status_code == 405:
        message = f"Method {request.method} is not allowed on {request.url.path}."
    else:
        message = str(exc.detail)
    response = engine_error_response(exc.status_code, message)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def unexpected_error_handler(request: Request, exc: Exception) -> Response:
    """Anything unexpected: logged here, answered with a bare 500 that shows no internals."""
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return engine_error_response(500, "An unexpected error occurred in the engine; it has been logged.")


#: Ready to pass as ``Starlette(exception_handlers=EXCEPTION_HANDLERS)``.
EXCEPTION_HANDLERS: Mapping[Any, Any] = {
    EngineHttpError: engine_http_error_handler,
    HTTPException: starlette_http_exception_handler,
    Exception: unexpected_error_handler,
}
