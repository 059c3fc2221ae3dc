"""Async client for the user tasks of a ProcessCube engine (the seed's `UserTaskClient`, done properly).

    async with UserTaskClient("http://localhost:8000") as client:
        for task in await client.get_user_tasks():
            await client.finish_user_task(task["userTaskInstanceId"], {"approved": True})

Every failure is a `ProcessCubeException`; the tree is drawn in `gateway.engine.errors`.
"""

from __future__ import annotations

from .auth import (
    ANONYMOUS_TOKEN,
    CallableTokenProvider,
    ClientCredentialsProvider,
    StaticTokenProvider,
    TokenProvider,
)
from .circuit import CircuitBreaker, CircuitOpenError, CircuitState
from .client import DEFAULT_TIMEOUT, UserTaskClient, UserTaskFilters
from .errors import (
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
from .events import UserTaskEventStream
from .loop import get_or_create_loop
from .retry import RetryPolicy
from .wire import ACTIVITY_EVENTS, PROCESS_EVENTS, USER_TASK_EVENTS, TaskPage, UserTaskEvent

__all__ = [
    "ACTIVITY_EVENTS",
    "ANONYMOUS_TOKEN",
    "DEFAULT_TIMEOUT",
    "PROCESS_EVENTS",
    "USER_TASK_EVENTS",
    "AuthenticationError",
    "BadRequestError",
    "CallableTokenProvider",
    "CircuitBreaker",
    "CircuitOpenError",
    "CircuitState",
    "ClientCredentialsProvider",
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
    "RetryPolicy",
    "ServiceUnavailableError",
    "StaticTokenProvider",
    "TaskPage",
    "TokenProvider",
    "UnauthorizedError",
    "UnprocessableEntityError",
    "UserTaskClient",
    "UserTaskEvent",
    "UserTaskEventStream",
    "UserTaskFilters",
    "get_or_create_loop",
    "map_engine_errors",
]
