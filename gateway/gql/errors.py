"""Errors in GraphQL results: every error carries ``extensions.code``; the unexpected ones are masked.

- A :class:`~gateway.core.errors.GatewayError` keeps its message and gets its code (ENGINE_UNAVAILABLE, …).
- Parse, validation and variable errors get BAD_REQUEST, or QUERY_TOO_COMPLEX when a limit hit (depth, aliases, tokens,
  length, nesting, repetition, validation work: see :mod:`gateway.gql.limits`; the cost budget:
  :mod:`gateway.gql.cost`).
- Anything else is masked as "Unexpected error." with the request id, and logged with its stack trace.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from ..core.errors import EngineUnavailable, GatewayError

log = logging.getLogger("gateway")

#: Phrases of the limits' messages: graphql-core's parser ("contains more than N tokens/comments/code points",
#: "nested too deeply"), its validation budget ("Validation aborted"), and the rules of gateway.gql.limits.
LIMIT_MESSAGES = (
    "exceeds maximum operation depth",
    "aliases found",
    "contains more than",
    "tokens",
    "in one selection set",
    "nested too deeply",
    "Validation aborted",
    "per request (GATEWAY_MAX_QUERY_COST)",
    "allowed per request without a token",
)


def request_error_code(message: str) -> str:
    """The code of an error in the request itself: a limit hit, or any other parse or validation error."""
    return "QUERY_TOO_COMPLEX" if any(fragment in message for fragment in LIMIT_MESSAGES) else "BAD_REQUEST"


def classify(error: GraphQLError, request_id: str) -> GraphQLError:
    original = error.original_error
    extensions = dict(error.extensions or {})
    if isinstance(original, GatewayError):
        extensions.update(code=original.code, requestId=request_id)
        if isinstance(original, EngineUnavailable):
            extensions["retryAfterSeconds"] = original.retry_after_seconds
        return _copy(error, original.message, extensions)
    if original is None or (error.path is None and isinstance(original, GraphQLError | ValueError | TypeError)):
        # Before execution (no path): the document or its variables are wrong. Variable coercion errors carry the
        # scalar's own GraphQLError/ValueError/TypeError as original_error; they are the caller's, not ours.
        extensions.setdefault("code", request_error_code(error.message))
        return _copy(error, error.message, extensions)
    log.error(
        "unexpected error in request %s at %s",
        request_id,
        error.path,
        exc_info=(type(original), original, None),
    )
    return _copy(error, "Unexpected error.", {"code": "INTERNAL_SERVER_ERROR", "requestId": request_id})


def _copy(error: GraphQLError, message: str, extensions: dict[str, object]) -> GraphQLError:
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=None,
        extensions=extensions,
    )


class ErrorCodes(SchemaExtension):
    """Codes (and masks) the errors of every result: the one of an HTTP request at the end of the operation, each
    one a streaming transport (WebSocket) sends before it is sent: subscription messages, and queries over
    WebSocket, whose operation ends only after their result went out."""

    _streamed = False  # set per instance: strawberry makes one per operation

    def on_operation(self) -> Iterator[None]:
        yield
        if not self._streamed:
            self._classify(self.execution_context.result)

    def on_stream_result(self, result: object) -> Iterator[None]:
        self._streamed = True
        self._classify(result)
        yield

    def _classify(self, result: object) -> None:
        errors = getattr(result, "errors", None)
        if not errors:
            return
        request_id = getattr(self.execution_context.context, "request_id", "-")
        result.errors = [classify(error, request_id) for error in errors]  # type: ignore[attr-defined]
