"""Errors as RFC 9457 problem details (``application/problem+json``): one table of stable type URIs.

Every :class:`~gateway.core.errors.GatewayError` code of the error table (README, "Errors") has exactly one
problem type; the REST face adds a few HTTP-level problems of its own (wrong method, media type or route), all
with the code ``BAD_REQUEST`` like the 413 that :mod:`gateway.middleware` answers. A problem document always has
``type``, ``title``, ``status``, ``detail``, ``instance`` (``urn:request:<request id>``, the id in ``X-Request-ID``
and in the logs) and ``code``, plus the extra members of its code:

===============================  =====================================================
code                             extra members
===============================  =====================================================
TASK_NOT_FOUND                   ``taskId``
TASK_NOT_ACTIVE                  ``taskId``, ``state``
TASK_RESERVED_BY_OTHER_USER      ``taskId``, ``reservedFor``
INVALID_TASK_RESULT              ``taskId``, ``problems`` [{field, message}] (per form field)
BAD_REQUEST                      ``problems`` [{field, message}] when the input had named parts that were wrong
ENGINE_UNAVAILABLE               ``retryAfterSeconds`` (and the ``Retry-After`` header)
IDEMPOTENCY_UNAVAILABLE          ``retryAfterSeconds`` (and the ``Retry-After`` header)
===============================  =====================================================

The live routes add CHANGES_EXPIRED (410: refetch the list), TOO_MANY_SUBSCRIPTIONS (429) and the reasons a live
subscription ends (TOKEN_EXPIRED, SLOW_CONSUMER, SHUTTING_DOWN): a stream sends those as its last event, and
SHUTTING_DOWN is also the 503 of a subscription asked for while the gateway stops.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from starlette.responses import Response

from ..core import errors
from ..core.domain import FieldProblem, shown_state
from ..core.idempotency import IdempotencyKeyReused
from ..core.limits import InvalidInput

log = logging.getLogger("gateway")

PROBLEM_BASE = "https://processcube-task-gateway.dev/problems/"
PROBLEM_JSON = "application/problem+json"


# -- the REST face's own HTTP-level problems (code BAD_REQUEST, like the middleware's 413) ---------------------


class RequestInvalid(InvalidInput):
    """Malformed input with named parts: query parameters, headers or JSON Pointers into the body.

    The REST face's own syntax errors; the service's :class:`~gateway.core.limits.InvalidInput` (the limits both faces
    share) travels the same way, with ``problems``.
    """

    def __init__(self, problems: Sequence[FieldProblem]) -> None:
        super().__init__(problems)


class RouteNotFound(errors.BadRequest):
    status = 404


class MethodNotAllowed(errors.BadRequest):
    status = 405

    def __init__(self, method: str, allow: str) -> None:
        super().__init__(f"{method} is not allowed here; allowed: {allow}.")
        self.allow = allow


class NotAcceptable(errors.BadRequest):
    status = 406


class PayloadTooLarge(errors.BadRequest):
    """Answered by :func:`gateway.middleware.body_too_large` (both faces); listed for the table."""

    status = 413


class UnsupportedMediaType(errors.BadRequest):
    status = 415


@dataclass(frozen=True)
class ProblemType:
    slug: str
    title: str

    @property
    def uri(self) -> str:
        return PROBLEM_BASE + self.slug


class InternalError(errors.GatewayError):
    """An unexpected exception, masked: no message, no stack trace; the log has both under the request id."""

    code: ClassVar[str] = "INTERNAL_SERVER_ERROR"
    status: ClassVar[int] = 500


#: The one table: exception class -> problem type. Looked up along the class's MRO (most specific first).
PROBLEM_TYPES: dict[type[errors.GatewayError], ProblemType] = {
    errors.TaskNotFound: ProblemType("task-not-found", "User task not found"),
    errors.TaskNotActive: ProblemType("task-not-active", "User task is not active"),
    errors.TaskReservedByOtherUser: ProblemType("task-reserved-by-other-user", "User task is reserved by another user"),
    errors.InvalidTaskResult: ProblemType("invalid-task-result", "Invalid task result"),
    errors.BadRequest: ProblemType("bad-request", "Bad request"),
    errors.Unauthenticated: ProblemType("unauthenticated", "Unauthenticated"),
    errors.Forbidden: ProblemType("forbidden", "Forbidden"),
    errors.QueryTooComplex: ProblemType("query-too-complex", "Query too complex"),
    errors.EngineUnavailable: ProblemType("engine-unavailable", "Engine unavailable"),
    errors.EngineTimeout: ProblemType("engine-timeout", "Engine timeout"),
    errors.OutcomeUnknown: ProblemType("outcome-unknown", "Outcome unknown"),
    errors.EngineFailure: ProblemType("engine-error", "Engine error"),
    IdempotencyKeyReused: ProblemType("idempotency-key-reused", "Idempotency key reused"),
    errors.IdempotencyUnavailable: ProblemType("idempotency-unavailable", "Idempotency records unavailable"),
    errors.ChangesExpired: ProblemType("changes-expired", "Changes expired"),
    errors.TooManySubscriptions: ProblemType("too-many-subscriptions", "Too many subscriptions"),
    errors.TokenExpired: ProblemType("token-expired", "Token expired"),
    errors.SlowConsumer: ProblemType("slow-consumer", "Slow consumer"),
    errors.ShuttingDown: ProblemType("shutting-down", "Shutting down"),
    RouteNotFound: ProblemType("not-found", "Not found"),
    MethodNotAllowed: ProblemType("method-not-allowed", "Method not allowed"),
    NotAcceptable: ProblemType("not-acceptable", "Not acceptable"),
    PayloadTooLarge: ProblemType("payload-too-large", "Payload too large"),
    UnsupportedMediaType: ProblemType("unsupported-media-type", "Unsupported media type"),
    InternalError: ProblemType("internal-error", "Internal server error"),
}


def problem_type(error: errors.GatewayError) -> ProblemType:
    for klass in type(error).__mro__:
        found = PROBLEM_TYPES.get(klass)
        if found is not None:
            return found
    return PROBLEM_TYPES[InternalError]


def instance_of(request_id: str) -> str:
    """The ``instance`` member: the request id as a URN (the same form the middleware's 413 uses)."""
    return f"urn:request:{request_id}"


def _field_problems(problems: Sequence[FieldProblem]) -> list[dict[str, str]]:
    return [{"field": problem.field, "message": problem.message} for problem in problems]


def problem_body(error: errors.GatewayError, request_id: str) -> dict[str, Any]:
    kind = problem_type(error)
    masked = kind is PROBLEM_TYPES[InternalError]
    body: dict[str, Any] = {
        "type": kind.uri,
        "title": kind.title,
        "status": 500 if masked else error.status,
        "detail": error.message,
        "instance": instance_of(request_id),
        "code": InternalError.code if masked else error.code,
    }
    if isinstance(error, errors.TaskNotFound | errors.TaskNotActive | errors.TaskReservedByOtherUser):
        body["taskId"] = error.task_id
    if isinstance(error, errors.TaskNotActive):
        body["state"] = shown_state(error.state)  # as the task shows it
    if isinstance(error, errors.TaskReservedByOtherUser):
        body["reservedFor"] = error.reserved_for
    if isinstance(error, errors.InvalidTaskResult):
        body["taskId"] = error.task_id
        body["problems"] = _field_problems(error.problems)
    if isinstance(error, InvalidInput):
        body["problems"] = _field_problems(error.problems)
    if isinstance(error, errors.EngineUnavailable | errors.IdempotencyUnavailable):
        body["retryAfterSeconds"] = error.retry_after_seconds
    return body


def problem_headers(error: errors.GatewayError) -> dict[str, str]:
    if isinstance(error, errors.EngineUnavailable | errors.IdempotencyUnavailable):
        return {"Retry-After": str(error.retry_after_seconds)}
    if isinstance(error, errors.Unauthenticated):
        return {"WWW-Authenticate": 'Bearer realm="processcube-task-gateway"'}
    if isinstance(error, MethodNotAllowed):
        return {"Allow": error.allow}
    return {}


def encode_json(payload: Any) -> bytes:
    """Compact UTF-8 JSON; text that cannot be UTF-8 (a lone surrogate from elsewhere) falls back to escapes."""
    try:
        return json.dumps(payload, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
    except UnicodeEncodeError:
        return json.dumps(payload, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode()


def problem_response(
    error: errors.GatewayError, request_id: str, *, headers: Mapping[str, str] | None = None
) -> Response:
    body = problem_body(error, request_id)
    return Response(
        encode_json(body),
        status_code=body["status"],
        headers={**problem_headers(error), **(headers or {})},
        media_type=PROBLEM_JSON,
    )


def masked_error_response(exc: BaseException, request_id: str, where: str) -> Response:
    """An unexpected exception: logged with its stack trace and the request id, answered without internals."""
    log.error("unexpected error in request %s at %s", request_id, where, exc_info=exc)
    return problem_response(
        InternalError(f"Unexpected error; the gateway's log has the details under request id {request_id}."),
        request_id,
    )


__all__ = [
    "PROBLEM_BASE",
    "PROBLEM_JSON",
    "PROBLEM_TYPES",
    "InternalError",
    "MethodNotAllowed",
    "NotAcceptable",
    "PayloadTooLarge",
    "ProblemType",
    "RequestInvalid",
    "RouteNotFound",
    "UnsupportedMediaType",
    "encode_json",
    "instance_of",
    "masked_error_response",
    "problem_body",
    "problem_response",
]
