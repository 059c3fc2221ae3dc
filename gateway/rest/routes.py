"""The REST operations under ``/api/v1``: parse -> service -> render, nothing else.

Every rule (filters, limits, identity, errors, the finish replay) is the service's, the same one GraphQL uses;
HTTP concerns (methods, media types, idempotency keys, problems) are :mod:`gateway.rest.resource`'s.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from starlette.routing import BaseRoute, Mount, Route, Router
from starlette.types import Receive, Scope, Send

from ..core import errors
from ..core.domain import FinishOutcome, UserTask
from ..core.idempotency import is_final
from . import bodies, params, render
from .live import EVENT_STREAM, user_task_changes, user_task_events
from .problems import PROBLEM_JSON, RouteNotFound, problem_body
from .resource import Answer, Body, Call, Handler, Operation, Resource, Stream, json_answer

PREFIX = "/api/v1"


def _task_id(call: Call) -> str:
    params.no_query(call.request.query_params)
    return params.task_id_of(call.path_params["id"])


async def list_user_tasks(call: Call) -> Answer:
    limits = call.service.limits
    query = params.parse_list_query(call.request.query_params, max_limit=limits.max_page_size)
    return json_answer(render.page(await call.service.list_tasks(call.caller, query)))


async def get_user_task(call: Call) -> Answer:
    task_id = _task_id(call)
    task = await call.service.get_task(call.caller, task_id)
    if task is None:
        raise errors.TaskNotFound(task_id)
    return json_answer(render.task(task))


async def reserve_user_task(call: Call) -> Answer:
    task_id = _task_id(call)
    owner_id = bodies.reservation(call.body)
    return json_answer(render.task(await call.service.reserve(call.caller, task_id, owner_id)))


async def cancel_user_task_reservation(call: Call) -> Answer:
    task_id = _task_id(call)
    return json_answer(render.task(await call.service.cancel_reservation(call.caller, task_id)))


async def finish_user_task(call: Call) -> Answer:
    task_id = _task_id(call)
    result = bodies.finish(call.body)
    return json_answer(render.finished(await call.service.finish(call.caller, task_id, result)))


def _item(call: Call, task_id: str, outcome: UserTask | FinishOutcome | errors.GatewayError) -> dict[str, Any]:
    if isinstance(outcome, errors.GatewayError):
        problem = problem_body(outcome, call.request_id)
        return {"id": task_id, "status": problem["status"], "problem": problem}
    if isinstance(outcome, FinishOutcome):
        return {"id": task_id, "status": 200, **render.finished(outcome)}
    return {"id": task_id, "status": 200, "task": render.task(outcome)}


def _batch_answer(call: Call, task_ids: Sequence[str], outcomes: Sequence[Any]) -> Answer:
    results = [_item(call, task_id, outcome) for task_id, outcome in zip(task_ids, outcomes, strict=True)]
    # A batch with an item that failed for a passing reason (5xx, 401) is not kept for Idempotency-Key replays: a
    # retry runs it again (re-reserving, cancelling and the service's finish replay make that safe for the items
    # that worked).
    return json_answer({"results": results}, final=all(is_final(result["status"]) for result in results))


async def reserve_user_tasks(call: Call) -> Answer:
    params.no_query(call.request.query_params)
    batch = bodies.ids_batch(call.body, with_owner=True)
    outcomes = await call.service.reserve_many(call.caller, batch.ids, batch.owner_id)
    return _batch_answer(call, batch.ids, outcomes)


async def cancel_user_task_reservations(call: Call) -> Answer:
    params.no_query(call.request.query_params)
    batch = bodies.ids_batch(call.body, with_owner=False)
    outcomes = await call.service.cancel_reservations(call.caller, batch.ids)
    return _batch_answer(call, batch.ids, outcomes)


async def finish_user_tasks(call: Call) -> Answer:
    params.no_query(call.request.query_params)
    items = bodies.finish_batch(call.body)
    outcomes = await call.service.finish_many(call.caller, items)
    return _batch_answer(call, [task_id for task_id, _ in items], outcomes)


class NoSuchRoute:
    """Any method on a path under /api/v1 that names no resource: a 404 problem, not starlette's plain text.

    The API router's ``default`` (what starlette runs when no route matches), so starlette's routing decides.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise RouteNotFound(
            f"There is no resource at '{scope['path']}'. The routes are listed in /openapi.json"
            " (task ids never contain '/')."
        )


def _write(handler: Handler) -> Operation:
    return Operation(handler, Body.REQUIRED, idempotent=True)


def api_routes() -> list[BaseRoute]:
    """/api/v1 as a Mount. The batch routes and the change feed come first: a concrete path wins over ``{id}`` (as
    in OpenAPI).

    The API's router redirects no slashes (``/user-tasks/`` names no resource: 404, as any unknown path under the
    prefix); the bare prefix names no resource either.
    """
    resources = [
        Resource("/user-tasks/batch/reserve", {"POST": _write(reserve_user_tasks)}, name="reserve_user_tasks"),
        Resource(
            "/user-tasks/batch/cancel-reservation",
            {"POST": _write(cancel_user_task_reservations)},
            name="cancel_user_task_reservations",
        ),
        Resource("/user-tasks/batch/finish", {"POST": _write(finish_user_tasks)}, name="finish_user_tasks"),
        Resource("/user-tasks/changes", {"GET": Operation(user_task_changes)}, name="user_task_changes"),
        Resource("/user-tasks", {"GET": Operation(list_user_tasks)}, name="list_user_tasks"),
        Resource(
            "/user-task-events",
            {"GET": Stream(user_task_events)},
            name="user_task_events",
            media_types=(EVENT_STREAM, PROBLEM_JSON),
        ),
        Resource("/user-tasks/{id}", {"GET": Operation(get_user_task)}, name="get_user_task"),
        Resource(
            "/user-tasks/{id}/reservation",
            {
                "PUT": Operation(reserve_user_task, Body.OPTIONAL, idempotent=True),
                "DELETE": Operation(cancel_user_task_reservation, idempotent=True),
            },
            name="user_task_reservation",
        ),
        Resource("/user-tasks/{id}/finish", {"POST": _write(finish_user_task)}, name="finish_user_task"),
    ]
    not_found = NoSuchRoute()
    api = Mount(PREFIX, app=Router(resources, redirect_slashes=False, default=not_found), name="api")
    # The Mount's pattern ('.*') stops at a newline, but a task id may hold a (percent-encoded) one: such an id is a
    # bad id (400) like any other, so the prefix takes whatever follows it.
    api.path_regex = re.compile(api.path_regex.pattern, re.DOTALL)
    return [api, Route(PREFIX, not_found, name="api_root")]
