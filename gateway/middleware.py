"""ASGI middleware: a request id on every request and answer, and a limit on request bodies and WebSocket messages.

``max_body_bytes`` (``GATEWAY_MAX_BODY_BYTES``) bounds an HTTP body and each WebSocket message alike. An HTTP body
over the limit raises :class:`BodyTooLarge` where the application reads it, and :func:`body_too_large`, registered
as the app's exception handler for it, answers 413 in the face's error format; a ``Content-Length`` over the limit
gets that answer before routing. An oversized WebSocket message closes the connection with 1009 (message too big) and a
reason, before the application reads it (a GraphQL document over ``graphql-transport-ws`` must not get past the
limit that a POST meets).
"""

from __future__ import annotations

import uuid

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .rest.problems import PayloadTooLarge, problem_response
from .rest.resource import request_id_of

REQUEST_ID_HEADER = b"x-request-id"
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
        scope.setdefault("state", {})["request_id"] = request_id
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
            return

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = dict(message)
                message["headers"] = [*message.get("headers", []), (REQUEST_ID_HEADER, request_id.encode())]
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

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
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
                return {"type": "websocket.disconnect", "code": WS_MESSAGE_TOO_BIG}
            return message

        async def guarded_send(message: Message) -> None:
            if not closed:
                await send(message)

        await self.app(scope, limited_receive, guarded_send)


def _message_exceeds(message: Message, limit: int) -> bool:
    """Whether a WebSocket message is larger than ``limit`` bytes (text counted in UTF-8, encoded only if needed)."""
    text = message.get("text")
    if text is not None:
        length = len(text)
        if length > limit or 4 * length <= limit:  # a character is 1 to 4 bytes
            return length > limit
        return len(text.encode("utf-8", "surrogatepass")) > limit
    return len(message.get("bytes") or b"") > limit
