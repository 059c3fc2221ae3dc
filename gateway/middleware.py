"""ASGI middleware: a request id on every request and answer, the request record (access log and metrics), and a
limit on request bodies and WebSocket messages.

Each request (and WebSocket connection) gets a :class:`~gateway.record.RequestRecord` in ``scope["state"]["record"]``
(and as the current record of its task, see :mod:`gateway.record`); the faces fill it in, and when the answer has
been sent (the connection closed) the middleware writes its access log line (:func:`gateway.logs.log_access`) and
counts it (``gateway_requests_total``, ``gateway_request_duration_seconds``, ``gateway_idempotent_replays_total``;
WebSocket connections are logged only: their GraphQL operations are counted one by one).

``max_body_bytes`` (``GATEWAY_MAX_BODY_BYTES``) bounds an HTTP body and each WebSocket message alike. An HTTP body
over the limit raises :class:`BodyTooLarge` where the application reads it, and :func:`body_too_large`, registered
as the app's exception handler for it, answers 413 in the face's error format; a ``Content-Length`` over the limit
gets that answer before routing. An oversized WebSocket message closes the connection with 1009 (message too big) and a
reason, before the application reads it (a GraphQL document over ``graphql-transport-ws`` must not get past the
limit that a POST meets).
"""

from __future__ import annotations

import asyncio
import uuid

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .logs import log_access
from .metrics import GatewayMetrics
from .record import GRAPHQL, INTERNAL, REST, RequestRecord, enter, face_of, leave
from .rest.problems import PayloadTooLarge, problem_response
from .rest.resource import REPLAYED_HEADER, Resource, request_id_of

REQUEST_ID_HEADER = b"x-request-id"
_REPLAYED = REPLAYED_HEADER.lower().encode()
WS_MESSAGE_TOO_BIG = 1009


class BodyTooLarge(Exception):
    """Raised by the request's ``receive`` once the body that arrived is over the limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"The request body is larger than the limit of {limit} bytes.")
        self.detail = str(self)


async def body_too_large(request: Request, exc: Exception) -> Response:
    """The 413 answer in the face's own error format: GraphQL errors or problem+json (exception handler)."""
    if not isinstance(exc, BodyTooLarge):  # pragma: no cover - registered for BodyTooLarge only
        raise exc
    request_id = request_id_of(request)
    close = {"Connection": "close"}  # the rest of the body is not read
    if request.url.path.startswith("/graphql"):
        body = {"errors": [{"message": exc.detail, "extensions": {"code": "BAD_REQUEST", "requestId": request_id}}]}
        return JSONResponse(body, status_code=413, headers=close)
    return problem_response(PayloadTooLarge(exc.detail), request_id, headers=close)


class GatewayMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        given = headers.get(REQUEST_ID_HEADER, b"").decode("latin-1")
        request_id = given if 0 < len(given) <= 64 and given.isprintable() else uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        path = str(scope.get("path") or "/")
        websocket = scope["type"] == "websocket"
        record = RequestRecord(
            face=face_of(path),
            method="WS" if websocket else str(scope.get("method") or "GET"),
            path=path,
            request_id=request_id,
            websocket=websocket,
        )
        state["record"] = record
        token = enter(record)
        failed = False
        try:
            if websocket:
                await self._websocket(scope, receive, send, record)
            else:
                await self._http(scope, receive, send, record)
        except asyncio.CancelledError:
            record.note(code=record.code or "CANCELLED")
            raise
        except Exception:
            failed = True  # answered 500 by starlette's outermost middleware, outside this one
            if record.status is None:
                record.status = 500
            record.note(code=INTERNAL)
            raise
        finally:
            _finish(scope, record)
            if not failed:  # the unexpected error's handler logs after this: it keeps the request id
                leave(token)

    async def _http(self, scope: Scope, receive: Receive, send: Send, record: RequestRecord) -> None:
        request_id = record.request_id
        headers = dict(scope.get("headers") or [])

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                record.status = int(message["status"])
                message = dict(message)
                sent = message.get("headers", [])
                record.replayed = any(name.lower() == _REPLAYED for name, _ in sent)
                message["headers"] = [*sent, (REQUEST_ID_HEADER, request_id.encode())]
            await send(message)

        limit = self.max_body_bytes
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            # Refused before routing, whether or not a route would read the body: the handler's own answer.
            response = await body_too_large(Request(scope), BodyTooLarge(limit))
            await response(scope, receive, send_with_id)
            return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, limited_receive, send_with_id)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send, record: RequestRecord) -> None:
        """Pass the connection on, closing it (1009) instead of delivering a message over the limit.

        The application is told the client went away (``websocket.disconnect``), so it stops reading; whatever it
        sends after that is dropped, since the connection is already closing.
        """
        limit = self.max_body_bytes
        closed = False

        async def limited_receive() -> Message:
            nonlocal closed
            message = await receive()
            if message["type"] == "websocket.receive" and _message_exceeds(message, limit):
                closed = True
                reason = f"The message is larger than the limit of {limit} bytes."
                await send({"type": "websocket.close", "code": WS_MESSAGE_TOO_BIG, "reason": reason})
                record.close_code = WS_MESSAGE_TOO_BIG
                return {"type": "websocket.disconnect", "code": WS_MESSAGE_TOO_BIG}
            if message["type"] == "websocket.disconnect" and record.close_code is None:
                record.close_code = int(message.get("code") or 1005)
            return message

        async def guarded_send(message: Message) -> None:
            if closed:
                return
            if message["type"] == "websocket.accept":
                record.status = 101
            elif message["type"] == "websocket.close":
                if record.status is None:
                    record.status = 403  # refused before the upgrade
                if record.close_code is None:
                    record.close_code = int(message.get("code") or 1000)
            await send(message)

        await self.app(scope, limited_receive, guarded_send)


def _operation(scope: Scope, record: RequestRecord) -> str:
    """The operation of a request no face named: a bounded name from the route that answered it."""
    if record.websocket:
        return "websocket"
    route = scope.get("route")
    if record.face == REST:
        return route.name if isinstance(route, Resource) else "unmatched"
    if record.face == GRAPHQL:
        return "graphiql" if record.method in ("GET", "HEAD") and (record.status or 500) < 400 else "invalid"
    name = getattr(route, "name", None)
    return name if isinstance(name, str) and name else "unmatched"


def _finish(scope: Scope, record: RequestRecord) -> None:
    """The request is answered (or the connection closed): its access log line and its metrics."""
    if record.operation is None:
        record.operation = _operation(scope, record)
    app = scope.get("app")
    metrics: GatewayMetrics | None = getattr(getattr(app, "state", None), "metrics", None)
    if metrics is not None and not record.websocket:
        metrics.request(record.face, record.operation, record.final_code(), record.seconds())
        if record.replayed:
            metrics.replay(record.face)
    log_access(record)


def _message_exceeds(message: Message, limit: int) -> bool:
    """Whether a WebSocket message is larger than ``limit`` bytes (text counted in UTF-8, encoded only if needed)."""
    text = message.get("text")
    if text is not None:
        length = len(text)
        if length > limit or 4 * length <= limit:  # a character is 1 to 4 bytes
            return length > limit
        return len(text.encode("utf-8", "surrogatepass")) > limit
    return len(message.get("bytes") or b"") > limit
