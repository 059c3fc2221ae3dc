"""ASGI middleware: a request id on every request and answer, and a limit on request bodies and WebSocket messages.

``max_body_bytes`` (``GATEWAY_MAX_BODY_BYTES``) bounds an HTTP body (413 in the face's error format) and each
WebSocket message alike: an oversized message closes the connection with 1009 (message too big) and a reason,
before the application reads it (a GraphQL document over ``graphql-transport-ws`` must not get past the limit
that a POST meets).
"""

from __future__ import annotations

import contextlib
import json
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = b"x-request-id"
WS_MESSAGE_TOO_BIG = 1009


class BodyTooLarge(Exception):
    pass


def too_large_body(path: str, limit: int, request_id: str) -> tuple[int, bytes, bytes]:
    """The 413 answer in the face's own error format: GraphQL errors or problem+json."""
    detail = f"The request body is larger than the limit of {limit} bytes."
    if path.startswith("/graphql"):
        body = {"errors": [{"message": detail, "extensions": {"code": "BAD_REQUEST", "requestId": request_id}}]}
        return 413, json.dumps(body).encode(), b"application/json"
    problem = {
        "type": "https://processcube-task-gateway.dev/problems/payload-too-large",
        "title": "Payload too large",
        "status": 413,
        "detail": detail,
        "instance": f"urn:request:{request_id}",
        "code": "BAD_REQUEST",
    }
    return 413, json.dumps(problem).encode(), b"application/problem+json"


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

        limit = self.max_body_bytes
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._refuse(scope, send, request_id)
            return
        seen = 0
        too_large = False

        async def limited_receive() -> Message:
            nonlocal seen, too_large
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    too_large = True
                    raise BodyTooLarge
            return message

        async def send_with_id(message: Message) -> None:
            if too_large:
                return  # whatever the app answers to the aborted read is replaced by the 413 below
            if message["type"] == "http.response.start":
                message = dict(message)
                message["headers"] = [*message.get("headers", []), (REQUEST_ID_HEADER, request_id.encode())]
            await send(message)

        with contextlib.suppress(BodyTooLarge):
            await self.app(scope, limited_receive, send_with_id)
        if too_large:
            await self._refuse(scope, send, request_id)

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

    async def _refuse(self, scope: Scope, send: Send, request_id: str) -> None:
        status, body, content_type = too_large_body(scope.get("path", ""), self.max_body_bytes, request_id)
        headers: list[Any] = [
            (b"content-type", content_type),
            (b"content-length", str(len(body)).encode()),
            (REQUEST_ID_HEADER, request_id.encode()),
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _message_exceeds(message: Message, limit: int) -> bool:
    """Whether a WebSocket message is larger than ``limit`` bytes (text counted in UTF-8, encoded only if needed)."""
    text = message.get("text")
    if text is not None:
        length = len(text)
        if length > limit or 4 * length <= limit:  # a character is 1 to 4 bytes
            return length > limit
        return len(text.encode("utf-8", "surrogatepass")) > limit
    return len(message.get("bytes") or b"") > limit
