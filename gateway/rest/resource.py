"""One REST resource: a path with its operations, and everything HTTP that is the same for all of them.

Starlette does the routing: a :class:`Resource` is a ``Route`` with its methods (plus ``HEAD`` with ``GET``, and
``OPTIONS``), and :data:`EXCEPTION_HANDLERS`, registered once on the app, turn what is raised into problems.
Per request, in this order (the first failure answers, as a problem document):

1. the method: starlette answers a method the resource lacks with ``HTTPException(405)``, which
   :func:`http_exception_handler` renders as a 405 problem with ``Allow``; OPTIONS answers 204 with ``Allow``;
   HEAD is GET without a body;
2. ``Accept`` must admit JSON (``application/json`` or ``application/problem+json``, or a wildcard): else 406;
3. a body must be ``Content-Type: application/json``: else 415 (a body over the size limit raises
   :class:`~gateway.middleware.BodyTooLarge` while it is read: 413);
4. the caller (``Authorization``) is verified before anything else happens: 401;
5. the operation parses its parameters and body (400), and, when the request has an ``Idempotency-Key``, runs
   through the app's idempotency records (:func:`store_of`: in this process, or in Redis shared by every instance;
   a replay answers with ``Idempotent-Replayed: true``); a :class:`Stream` operation answers its own response
   (server-sent events);
6. a :class:`~gateway.core.errors.GatewayError` becomes its problem (:func:`gateway_error_handler`); anything
   unexpected is logged and masked (:func:`unexpected_error_handler`: 500).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from ..core import errors
from ..core.domain import Caller
from ..core.idempotency import Codec, IdempotencyKey, IdempotencyRecords, IdempotencyStore, fingerprint, is_final
from ..core.service import TaskService
from ..record import OK, record_of
from . import bodies
from .params import idempotency_key_of
from .problems import (
    PROBLEM_JSON,
    MethodNotAllowed,
    NotAcceptable,
    UnsupportedMediaType,
    encode_json,
    masked_error_response,
    problem_body,
    problem_headers,
    problem_response,
)

JSON = "application/json"
API_MEDIA_TYPES = (JSON, PROBLEM_JSON)
REPLAYED_HEADER = "Idempotent-Replayed"


class Body(Enum):
    NONE = "none"
    OPTIONAL = "optional"
    REQUIRED = "required"


@dataclass(frozen=True)
class Answer:
    """A rendered answer, small enough to keep for idempotent replays."""

    status: int
    content: bytes
    media_type: str = JSON
    headers: tuple[tuple[str, str], ...] = ()
    final: bool = True  # kept for Idempotency-Key replays (not 5xx or 401: a retry may rightly run again)

    def response(self, *, replayed: bool = False) -> Response:
        headers = dict(self.headers)
        if replayed:
            headers[REPLAYED_HEADER] = "true"
        return Response(self.content, status_code=self.status, headers=headers, media_type=self.media_type)

    def encode(self) -> bytes:
        """Bytes for idempotency records outside the process: a JSON header line, then the content as it is."""
        header = [self.status, self.media_type, [list(pair) for pair in self.headers], self.final]
        return json.dumps(header, ensure_ascii=True, separators=(",", ":")).encode() + b"\n" + self.content

    @classmethod
    def decode(cls, raw: bytes) -> Answer:
        head, _, content = raw.partition(b"\n")
        status, media_type, headers, final = json.loads(head)
        return cls(int(status), content, str(media_type), tuple((str(n), str(v)) for n, v in headers), bool(final))


#: How an :class:`Answer` travels to idempotency records in Redis.
ANSWER_CODEC: Codec[Answer] = Codec(Answer.encode, Answer.decode)


def json_answer(payload: Any, *, status: int = 200, final: bool = True) -> Answer:
    return Answer(status, encode_json(payload), final=final)


def problem_answer(error: errors.GatewayError, request_id: str) -> Answer:
    body = problem_body(error, request_id)
    return Answer(
        body["status"],
        encode_json(body),
        PROBLEM_JSON,
        tuple(problem_headers(error).items()),
        final=is_final(body["status"]),
    )


@dataclass
class Call:
    """What an operation gets: the request, the verified caller and the decoded body."""

    request: Request
    request_id: str
    verified: Caller | None = None
    body: Any = bodies.MISSING
    path_params: Mapping[str, str] = field(default_factory=dict)

    @property
    def caller(self) -> Caller:
        if self.verified is None:  # pragma: no cover - only operations of authenticated resources ask
            raise RuntimeError("this resource does not authenticate its callers")
        return self.verified

    @property
    def service(self) -> TaskService:
        service: TaskService = self.request.app.state.service
        return service


Handler = Callable[[Call], Awaitable[Answer]]
StreamHandler = Callable[[Call], Awaitable[Response]]


@dataclass(frozen=True)
class Operation:
    handler: Handler
    body: Body = Body.NONE
    idempotent: bool = False  # takes an Idempotency-Key header


@dataclass(frozen=True)
class Stream:
    """An operation that answers a response of its own (a stream), after the same checks as any other: method,
    ``Accept``, identity. It takes no body and no Idempotency-Key; what it raises before its response starts is a
    problem like any route's."""

    handler: StreamHandler
    body: Body = Body.NONE


def request_id_of(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id") or "-")


def _media_type(value: str) -> str:
    return value.split(";", 1)[0].strip().lower()


def accepts(accept: str | None, offered: Sequence[str]) -> bool:
    """Whether an ``Accept`` header admits one of ``offered`` (no header, or an empty one, admits anything)."""
    if accept is None or not accept.strip():
        return True
    kinds = {item.split("/", 1)[0] for item in offered}
    for part in accept.split(","):
        media, *parameters = part.split(";")
        quality = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value.strip())
                except ValueError:
                    quality = 0.0
        media = media.strip().lower()
        if quality > 0 and (media == "*/*" or media in offered or (media.endswith("/*") and media[:-2] in kinds)):
            return True
    return False


def store_of(request: Request) -> IdempotencyRecords:
    """The app's idempotency records, ``app.state.idempotency``: made by the lifespan (in Redis with
    ``GATEWAY_REDIS_URL``, else in this process); an app without one gets an in-process store on first use."""
    state = request.app.state
    store: IdempotencyRecords | None = getattr(state, "idempotency", None)
    if store is None:
        store = IdempotencyStore()
        state.idempotency = store
    return store


def _noted(request: Request, answer: Answer) -> Answer:
    """``answer``, its code noted on the request record (a problem's ``code``, else OK; replays too)."""
    record = record_of(request)
    if record is not None:
        code = OK
        if answer.media_type == PROBLEM_JSON:
            try:
                code = str(json.loads(answer.content).get("code") or "INTERNAL")
            except (ValueError, AttributeError):
                code = "INTERNAL"
        record.note(code=code)
    return answer


async def _run(operation: Operation, call: Call) -> Answer:
    try:
        return _noted(call.request, await operation.handler(call))
    except errors.GatewayError as exc:
        return _noted(call.request, problem_answer(exc, call.request_id))


async def _negotiated_body(request: Request, operation: Operation | Stream, media_types: Sequence[str]) -> bytes:
    """The raw body, once ``Accept`` admits an answer (406) and the body is JSON (415)."""
    if not accepts(request.headers.get("accept"), media_types):
        raise NotAcceptable(f"This resource answers only {' or '.join(media_types)}; the Accept header admits neither.")
    if operation.body is Body.NONE:
        return b""
    raw = await request.body()
    content_type = request.headers.get("content-type")
    if raw.strip() and (content_type is None or _media_type(content_type) != JSON):
        given = f"'{content_type}'" if content_type else "no Content-Type"
        raise UnsupportedMediaType(f"The body must be sent as Content-Type: application/json, not {given}.")
    return raw


async def _answer(request: Request, operation: Operation, call: Call) -> Response:
    """The operation's answer; with an ``Idempotency-Key``, the first answer for that key."""
    key = idempotency_key_of(request.headers) if operation.idempotent else None
    if key is None:
        return (await _run(operation, call)).response()
    outcome = await store_of(request).run(
        IdempotencyKey(call.caller.user_id, request.method.upper(), request.url.path, key, call.caller.rights),
        fingerprint({} if call.body is bodies.MISSING else call.body),
        lambda: _run(operation, call),
        keep=lambda answer: answer.final,
        weigh=lambda answer: len(answer.content),
        codec=ANSWER_CODEC,
    )
    return _noted(request, outcome.value).response(replayed=outcome.replayed)


class Resource(Route):
    """A starlette ``Route`` for ``path`` with its operations; starlette refuses other methods (405, see
    :func:`http_exception_handler`)."""

    def __init__(
        self,
        path: str,
        operations: Mapping[str, Operation | Stream],
        *,
        name: str,
        media_types: Sequence[str] = API_MEDIA_TYPES,
        authenticate: bool = True,
    ) -> None:
        methods = [method.upper() for method in operations]
        #: The ``Allow`` header: the operations in their order, HEAD with GET, and OPTIONS.
        self.allow = ", ".join([*methods, *(["HEAD"] if "GET" in methods else []), "OPTIONS"])
        by_method = {method.upper(): operation for method, operation in operations.items()}
        super().__init__(
            path, self._endpoint(by_method, media_types, authenticate), methods=[*methods, "OPTIONS"], name=name
        )

    def _endpoint(
        self, operations: Mapping[str, Operation | Stream], media_types: Sequence[str], authenticate: bool
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            method = request.method.upper()
            if method == "OPTIONS":
                return Response(status_code=204, headers={"Allow": self.allow})
            operation = operations["GET" if method == "HEAD" else method]  # starlette routed only these methods
            record = record_of(request)
            if record is not None:
                record.note(operation.handler.__name__)  # the operation's name: a bounded metric label
            raw = await _negotiated_body(request, operation, media_types)
            request_id = request_id_of(request)
            if not authenticate:
                if isinstance(operation, Stream):  # pragma: no cover - every stream is the caller's own
                    raise TypeError("a stream needs an authenticated caller")
                return (await _run(operation, Call(request, request_id))).response()
            caller: Caller = await request.app.state.verifier.caller(request.headers.get("authorization"))
            if record is not None:
                record.note(caller=caller)
            call = Call(request, request_id, caller, path_params=request.path_params)
            if isinstance(operation, Stream):
                return await operation.handler(call)
            if operation.body is not Body.NONE:
                call.body = bodies.decode(raw, required=operation.body is Body.REQUIRED)
            return await _answer(request, operation, call)

        return endpoint


# -- exception handlers (registered once, on the app) ----------------------------------------------------------


async def gateway_error_handler(request: Request, exc: Exception) -> Response:
    """A :class:`~gateway.core.errors.GatewayError` raised by a route: its problem document."""
    if not isinstance(exc, errors.GatewayError):  # pragma: no cover - registered for GatewayError only
        raise exc
    record = record_of(request)
    if record is not None:
        record.note(code=exc.code)
    return problem_response(exc, request_id_of(request))


async def http_exception_handler(request: Request, exc: Exception) -> Response:
    """Starlette's ``HTTPException``: a wrong method on a :class:`Resource` is a 405 problem with ``Allow``.

    Everything else (the routes outside the REST face: /graphql, /healthz, /static, /docs) keeps starlette's
    plain answer. Unknown paths under /api/v1 never get here: the API's router answers them with a problem.
    """
    if not isinstance(exc, HTTPException):  # pragma: no cover - registered for HTTPException only
        raise exc
    route = request.scope.get("route")
    if exc.status_code == 405 and isinstance(route, Resource):
        return problem_response(MethodNotAllowed(request.method.upper(), route.allow), request_id_of(request))
    if exc.status_code in (204, 304):
        return Response(status_code=exc.status_code, headers=exc.headers)
    return PlainTextResponse(exc.detail, status_code=exc.status_code, headers=exc.headers)


async def client_disconnect_handler(request: Request, exc: Exception) -> Response:
    """A client that went away while sending its body: nothing to log, and the answer reaches no one."""
    return Response(status_code=400)


async def unexpected_error_handler(request: Request, exc: Exception) -> Response:
    """Anything unexpected: logged with the request id, answered with a masked 500 problem.

    Starlette calls this from its outermost middleware, outside :class:`~gateway.middleware.GatewayMiddleware`,
    so the answer carries ``X-Request-ID`` itself.
    """
    request_id = request_id_of(request)
    response = masked_error_response(exc, request_id, f"{request.method} {request.url.path}")
    response.headers["X-Request-ID"] = request_id
    return response


#: Ready to pass as ``Starlette(exception_handlers=...)``.
EXCEPTION_HANDLERS: Mapping[Any, Callable[[Request, Exception], Awaitable[Response]]] = {
    errors.GatewayError: gateway_error_handler,
    HTTPException: http_exception_handler,
    ClientDisconnect: client_disconnect_handler,
    Exception: unexpected_error_handler,
}


__all__ = [
    "EXCEPTION_HANDLERS",
    "Answer",
    "Body",
    "Call",
    "Operation",
    "Resource",
    "Stream",
    "accepts",
    "json_answer",
    "problem_answer",
    "request_id_of",
]
