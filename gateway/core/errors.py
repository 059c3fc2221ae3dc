"""The gateway's one exception tree; each error has a stable code shared by GraphQL and REST.

```
GatewayError                      code                          REST  GraphQL
├── TaskNotFound                  TASK_NOT_FOUND                 404   UserTaskNotFound
├── TaskNotActive                 TASK_NOT_ACTIVE                409   UserTaskNotActive
├── TaskReservedByOtherUser       TASK_RESERVED_BY_OTHER_USER    409   UserTaskReservedByOtherUser
├── InvalidTaskResult             INVALID_TASK_RESULT            422   InvalidTaskResult
├── BadRequest                    BAD_REQUEST                    400   error, extensions.code
├── Unauthenticated               UNAUTHENTICATED                401   error, extensions.code
├── Forbidden                     FORBIDDEN                      403   error, extensions.code
├── QueryTooComplex               QUERY_TOO_COMPLEX              400   error, extensions.code
├── EngineUnavailable             ENGINE_UNAVAILABLE             503   error, extensions.code
├── EngineTimeout                 ENGINE_TIMEOUT                 504   error, extensions.code
│   └── OutcomeUnknown            OUTCOME_UNKNOWN                504   error, extensions.code
├── EngineFailure                 ENGINE_ERROR                   502   error, extensions.code
├── IdempotencyKeyReused          IDEMPOTENCY_KEY_REUSED         422   (REST only: Idempotency-Key)
├── IdempotencyUnavailable        IDEMPOTENCY_UNAVAILABLE        503   (REST only: Idempotency-Key, Redis down)
├── ChangesExpired                CHANGES_EXPIRED                410   error, extensions.code
├── TooManySubscriptions          TOO_MANY_SUBSCRIPTIONS         429   error, extensions.code
└── SubscriptionEnded             SUBSCRIPTION_CLOSED            410   (the last message of a live stream)
    ├── TokenExpired              TOKEN_EXPIRED                  401   error, extensions.code
    ├── SlowConsumer              SLOW_CONSUMER                  503   error, extensions.code
    └── ShuttingDown              SHUTTING_DOWN                  503   error, extensions.code
```
The first four are expected outcomes of a task action: GraphQL returns them as members of the result union.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from .domain import FieldProblem


class GatewayError(Exception):
    code: ClassVar[str] = "INTERNAL"
    status: ClassVar[int] = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TaskNotFound(GatewayError):
    code = "TASK_NOT_FOUND"
    status = 404

    def __init__(self, task_id: str) -> None:
        super().__init__(f"User task '{task_id}' does not exist, or you may not see it.")
        self.task_id = task_id


class TaskNotActive(GatewayError):
    code = "TASK_NOT_ACTIVE"
    status = 409

    def __init__(self, task_id: str, state: str) -> None:
        super().__init__(f"User task '{task_id}' is no longer waiting (state '{state}').")
        self.task_id = task_id
        self.state = state


class TaskReservedByOtherUser(GatewayError):
    code = "TASK_RESERVED_BY_OTHER_USER"
    status = 409

    def __init__(self, task_id: str, reserved_for: str | None) -> None:
        who = f"'{reserved_for}'" if reserved_for else "another user"
        super().__init__(f"User task '{task_id}' is reserved for {who}.")
        self.task_id = task_id
        self.reserved_for = reserved_for


class InvalidTaskResult(GatewayError):
    code = "INVALID_TASK_RESULT"
    status = 422

    def __init__(self, task_id: str, problems: Sequence[FieldProblem]) -> None:
        listing = "; ".join(f"{problem.field}: {problem.message}" for problem in problems)
        super().__init__(f"The result does not fit the form of user task '{task_id}': {listing}")
        self.task_id = task_id
        self.problems = tuple(problems)


class BadRequest(GatewayError):
    code = "BAD_REQUEST"
    status = 400


class Unauthenticated(GatewayError):
    code = "UNAUTHENTICATED"
    status = 401


class Forbidden(GatewayError):
    code = "FORBIDDEN"
    status = 403


class QueryTooComplex(GatewayError):
    code = "QUERY_TOO_COMPLEX"
    status = 400


class EngineUnavailable(GatewayError):
    code = "ENGINE_UNAVAILABLE"
    status = 503
    retry_after_seconds: ClassVar[int] = 5


class EngineTimeout(GatewayError):
    code = "ENGINE_TIMEOUT"
    status = 504


class OutcomeUnknown(EngineTimeout):
    code = "OUTCOME_UNKNOWN"
    status = 504


class EngineFailure(GatewayError):
    code = "ENGINE_ERROR"
    status = 502


class IdempotencyKeyReused(GatewayError):
    code = "IDEMPOTENCY_KEY_REUSED"
    status = 422

    def __init__(self, key: str) -> None:
        super().__init__(
            f"The Idempotency-Key '{key}' was already used for a request to this route with another body."
            " Use a new key for a new request; repeat the first body to get the first answer again."
        )
        self.key = key


class IdempotencyUnavailable(GatewayError):
    """A write with an Idempotency-Key could not consult the records the instances share (Redis down, or slow), or
    the first request with its key was still running after a bounded wait. Nothing was sent to the engine: the
    same request, retried after ``retry_after_seconds``, is safe."""

    code = "IDEMPOTENCY_UNAVAILABLE"
    status = 503
    retry_after_seconds: ClassVar[int] = 5


class ChangesExpired(GatewayError):
    """An event id the replay buffer no longer covers, or one from another gateway process: refetch the list."""

    code = "CHANGES_EXPIRED"
    status = 410


class TooManySubscriptions(GatewayError):
    code = "TOO_MANY_SUBSCRIPTIONS"
    status = 429


class SubscriptionEnded(GatewayError):
    """Why a live subscription ended; faces send it as the subscription's last message. Itself: the subscriber
    closed it (nobody is left to tell)."""

    code = "SUBSCRIPTION_CLOSED"
    status = 410


class TokenExpired(SubscriptionEnded):
    code = "TOKEN_EXPIRED"
    status = 401


class SlowConsumer(SubscriptionEnded):
    code = "SLOW_CONSUMER"
    status = 503


class ShuttingDown(SubscriptionEnded):
    code = "SHUTTING_DOWN"
    status = 503


TASK_OUTCOME_ERRORS = (TaskNotFound, TaskNotActive, TaskReservedByOtherUser, InvalidTaskResult)
