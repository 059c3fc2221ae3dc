"""The :class:`~gateway.core.ports.Engine` port over our ProcessCube client.

The one place where engine dicts become :class:`~gateway.core.domain.UserTask` objects and where
``ProcessCubeException`` becomes the gateway's error tree. Every call is made with the caller's own token
(``UserTaskClient.with_token``), so the engine applies its own rules (lanes as claims) to each caller.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, Protocol

from ..core import errors
from ..core.domain import Caller, EnumValue, FormField, SortDirection, SortField, UserTask
from ..core.ports import ENGINE_FILTER_FIELDS, ENGINE_SORT_FIELDS, EngineFilter, EnginePage
from ..engine import (
    ANONYMOUS_TOKEN,
    AuthenticationError,
    ConflictError,
    EngineError,
    EngineServerError,
    EngineTimeoutError,
    EngineUnavailableError,
    ForbiddenError,
    NotFoundError,
    OutcomeUnknownError,
    ProcessCubeException,
    ProtocolError,
    UnauthorizedError,
    UserTaskClient,
)


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _form_field(raw: Mapping[str, Any]) -> FormField:
    enum_values = tuple(
        EnumValue(id=str(item.get("id", "")), name=str(item.get("name", item.get("id", ""))))
        for item in raw.get("enumValues") or ()
        if isinstance(item, Mapping)
    )
    default = raw.get("defaultValue")
    return FormField(
        id=str(raw.get("id", "")),
        label=str(raw.get("label") or raw.get("id", "")),
        type=str(raw.get("type") or "string"),
        default_value=None if default is None else str(default),
        enum_values=enum_values,
    )


def task_from_client(task: Mapping[str, Any]) -> UserTask:
    """A task dict of ``UserTaskClient`` -> the domain's UserTask."""
    return UserTask(
        id=task["userTaskInstanceId"],
        flow_node_id=task["flowNodeId"],
        name=task.get("flowNodeName") or task["flowNodeId"],
        lane=task.get("flowNodeLane"),
        state=task["state"],
        process_model_id=task["processModelId"],
        process_instance_id=task["processInstanceId"],
        correlation_id=task.get("correlationId") or "",
        token=task.get("token"),
        reserved_for=task.get("reservedFor"),
        form_fields=tuple(_form_field(raw) for raw in task.get("formFields") or ()),
        started_at=_timestamp(task.get("startedAt")),
        finished_at=_timestamp(task.get("finishedAt")),
        finished_by=task.get("finishedByUserId"),
        # a waiting task's endToken is {} on a real engine: only a finished task's end token is its result
        result=task.get("endToken") if task["state"] == "finished" else None,
        process_model_name=task.get("processModelName"),
    )


@asynccontextmanager
async def engine_errors(task_id: str | None = None) -> AsyncIterator[None]:
    """ProcessCubeException -> the gateway's errors. Task-specific outcomes only where a task id is known."""
    try:
        yield
    except NotFoundError as exc:
        if task_id is None:
            raise errors.EngineFailure(f"The engine answered 404 unexpectedly: {exc.message}") from exc
        raise errors.TaskNotFound(task_id) from exc
    except ConflictError as exc:
        if task_id is None:
            raise errors.EngineFailure(f"The engine answered 409 unexpectedly: {exc.message}") from exc
        owner = (exc.additional_information or {}).get("actualOwnerId")
        raise errors.TaskReservedByOtherUser(task_id, owner if isinstance(owner, str) else None) from exc
    except UnauthorizedError as exc:
        raise errors.Unauthenticated(f"The engine refused the token: {exc.message}") from exc
    except ForbiddenError as exc:
        raise errors.Forbidden(f"The engine forbids this: {exc.message}") from exc
    except AuthenticationError as exc:
        raise errors.EngineUnavailable(f"The gateway could not authenticate at the engine: {exc}") from exc
    except OutcomeUnknownError as exc:
        # a write that left and got no answer: never "not done" (that is ENGINE_UNAVAILABLE, for writes provably
        # never sent), and said as it happened: a reset after 10 ms is no "did not answer in time"
        what = (
            "The engine did not answer in time after the request was sent"
            if exc.timed_out
            else "The connection to the engine was lost after the request was sent, before any answer"
        )
        raise errors.OutcomeUnknown(f"{what}: it may or may not have happened. Read the task to find out.") from exc
    except EngineTimeoutError as exc:
        raise errors.EngineTimeout("The engine did not answer in time.") from exc
    except EngineUnavailableError as exc:
        # a write gets here only when it was never sent (the client makes every other lost write OutcomeUnknownError)
        raise errors.EngineUnavailable(f"The engine is unavailable, nothing was changed: {exc}") from exc
    except EngineServerError as exc:
        raise errors.EngineFailure(f"The engine failed ({exc.status}): {exc.message}") from exc
    except EngineError as exc:
        if exc.status == 400:
            raise errors.BadRequest(f"The engine refused the request: {exc.message}") from exc
        raise errors.EngineFailure(f"The engine answered {exc.status}: {exc.message}") from exc
    except ProtocolError as exc:
        raise errors.EngineFailure(f"The engine's answer broke the contract: {exc}") from exc
    except ProcessCubeException as exc:
        raise errors.EngineFailure(f"The engine call failed: {exc}") from exc


#: The port's engine-side filter fields -> ``UserTaskClient.query_user_tasks``' filter arguments.
CLIENT_FILTERS = {
    "states": "state",
    "process_model_ids": "process_model_id",
    "process_instance_ids": "process_instance_id",
    "flow_node_ids": "flow_node_id",
    "lanes": "flow_node_lane",
    "correlation_ids": "correlation_id",
    "ids": "flow_node_instance_id",
}
assert CLIENT_FILTERS.keys() == ENGINE_FILTER_FIELDS.keys(), "every engine-side filter field reaches the engine"

#: The port's engine sort fields -> the engine's sort setting.
CLIENT_SORTS = {SortField.STARTED_AT: "createdAt"}
assert CLIENT_SORTS.keys() == ENGINE_SORT_FIELDS, "every engine sort field has the engine's name"


class _Request(Protocol):
    method: str


def request_counter(record: Callable[[str], None]) -> Callable[[_Request], None]:
    """A ``UserTaskClient`` request hook (``on_request=``) that records every HTTP request the client sends to the
    engine (retries included) by its method: how the gateway counts its engine calls (``gateway.metrics``)."""

    def count(request: _Request) -> None:
        record(request.method)

    return count


class _Response(Protocol):
    status_code: int


def engine_error_kind(outcome: _Response | BaseException) -> str | None:
    """What went wrong with one engine HTTP request, as a bounded label; None when it succeeded (2xx).

    ``timeout`` (no answer in time, also a write whose outcome is unknown), ``connect`` (refused, dropped, DNS),
    ``http_4xx`` / ``http_5xx`` (an error status), ``invalid_response`` (a redirect or a reply that breaks the
    contract), ``other`` (anything else the client raised).
    """
    if isinstance(outcome, BaseException):
        if isinstance(outcome, EngineTimeoutError):
            return "timeout"
        if isinstance(outcome, EngineUnavailableError):
            return "connect"
        if isinstance(outcome, ProtocolError):
            return "invalid_response"
        return "other"
    status = outcome.status_code
    if status < 300:
        return None
    if status < 400:
        return "invalid_response"
    return "http_4xx" if status < 500 else "http_5xx"


def response_observer(record: Callable[[str, float, str | None], None]) -> Callable[[_Request, Any, float], None]:
    """A ``UserTaskClient`` response hook (``on_response=``) that records each engine request's method, duration
    and error kind (:func:`engine_error_kind`; None for a success): ``gateway.metrics``' engine histogram and errors."""

    def observe(request: _Request, outcome: Any, seconds: float) -> None:
        record(request.method, seconds, engine_error_kind(outcome))

    return observe


class ClientEngine:
    """Implements :class:`gateway.core.ports.Engine` with one shared :class:`UserTaskClient`.

    Its requests are counted by the client's own request hook (:func:`request_counter`), not here.
    """

    def __init__(self, client: UserTaskClient) -> None:
        self._client = client

    def _for(self, caller: Caller) -> UserTaskClient:
        """The client acting as ``caller``: with its own token; the anonymous caller with the engine's anonymous
        token only where the operator said so (``GATEWAY_UNSAFE_ANONYMOUS_ROOT``: that token is root)."""
        if caller.token is not None:
            return self._client.with_token(caller.token)
        if not caller.root:
            raise errors.Unauthenticated(
                "Sign in: requests without a bearer token see no tasks on this gateway (Authorization: Bearer <JWT>)."
            )
        return self._client.with_token(ANONYMOUS_TOKEN)

    async def query_tasks(
        self,
        caller: Caller,
        engine_filter: EngineFilter,
        *,
        offset: int,
        limit: int,
        order_by: SortField,
        direction: SortDirection,
    ) -> EnginePage:
        # no state asked: any state (the client's own default would be waiting tasks only)
        filters: dict[str, Any] = {"state": None}
        for name, argument in CLIENT_FILTERS.items():
            values = getattr(engine_filter, name)
            if values:
                filters[argument] = list(values)
        async with engine_errors():
            page = await self._for(caller).query_user_tasks(
                offset=offset,
                limit=limit,
                sort_by=CLIENT_SORTS[order_by],
                sort_dir="DESC" if direction is SortDirection.DESC else "ASC",
                **filters,
            )
        return EnginePage(tuple(task_from_client(task) for task in page.items), page.total_count)

    async def tasks_by_ids(self, caller: Caller, ids: Sequence[str]) -> list[UserTask]:
        async with engine_errors():
            found = await self._for(caller).get_user_tasks_by_ids(ids)
        return [task_from_client(task) for task in found]

    async def reserve(self, caller: Caller, task_id: str, owner_id: str) -> None:
        async with engine_errors(task_id):
            await self._for(caller).reserve_user_task(task_id, owner_id)

    async def cancel_reservation(self, caller: Caller, task_id: str) -> None:
        async with engine_errors(task_id):
            await self._for(caller).cancel_reservation_user_task(task_id)

    async def finish(self, caller: Caller, task_id: str, result: Mapping[str, Any]) -> None:
        async with engine_errors(task_id):
            await self._for(caller).finish_user_task(task_id, result)
