"""HTTP routes for what a process waits for besides user tasks and workers: manual and untyped tasks, messages,
signals and timers (mounted under ``/atlas_engine/api/v1`` beside the routes of :mod:`embedded_engine.app`).

- ``PUT /manual_tasks/{id}/finish``: finishes a waiting manual task (204).
- ``PUT /untyped_tasks/{id}/finish`` (and its deprecated name ``/empty_activities/{id}/finish``): finishes a waiting
  untyped task.
- ``POST /messages/{name}/trigger``: delivers a message; ``?process_instance_id=`` (or ``processInstanceId``) aims it
  at one instance, ``?custom_correlation_id=`` is the correlation id of instances it starts.
- ``POST /signals/{name}/trigger``: the same for a signal.
- ``POST /timer/{flowNodeInstanceId}/trigger``: fires a waiting timer now (the official TypeScript client's
  ``triggerTimerEvent``).

A trigger's body is the payload. The engine's OpenAPI document shows ``{"payload": …}``, the official Python client
sends that, the official TypeScript client sends the payload itself: an object whose only key is ``payload`` is
taken as the wrapper, any other body as the payload. A caught event's payload becomes ``token.current`` after the
catching node; a message start event starts its instance with the payload as initial token.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from .bpmn import WaitKind
from .errors import EngineHttpError

if TYPE_CHECKING:
    from .app import EngineApp

__all__ = ["event_routes"]


def event_routes(engine: EngineApp) -> list[BaseRoute]:
    core = engine.core

    async def finish_manual_task(request: Request) -> Response:
        await core.finish_manual_task(request.path_params["task_id"], engine.identity(request))
        return Response(status_code=204)

    async def finish_untyped_task(request: Request) -> Response:
        await core.finish_untyped_task(request.path_params["task_id"], engine.identity(request))
        return Response(status_code=204)

    def trigger(kind: WaitKind) -> Any:
        async def endpoint(request: Request) -> Response:
            identity = engine.identity(request)
            name = request.path_params["event_name"]
            if not name.strip():
                raise EngineHttpError(400, f"The {kind} needs a name.")
            body = await engine.read_json(request, required=False)
            payload = body["payload"] if isinstance(body, dict) and set(body) == {"payload"} else body
            await core.trigger(
                kind,
                name,
                payload=payload,
                process_instance_id=_instance_param(request),
                correlation_id=request.query_params.get("custom_correlation_id") or None,
                identity=identity,
            )
            return Response(status_code=204)

        return endpoint

    async def trigger_timer(request: Request) -> Response:
        await core.trigger_timer(request.path_params["flow_node_instance_id"], engine.identity(request))
        return Response(status_code=204)

    return [
        Route("/manual_tasks/{task_id}/finish", finish_manual_task, methods=["PUT"]),
        Route("/untyped_tasks/{task_id}/finish", finish_untyped_task, methods=["PUT"]),
        Route("/empty_activities/{task_id}/finish", finish_untyped_task, methods=["PUT"]),
        Route("/messages/{event_name}/trigger", trigger("message"), methods=["POST"]),
        Route("/signals/{event_name}/trigger", trigger("signal"), methods=["POST"]),
        Route("/timer/{flow_node_instance_id}/trigger", trigger_timer, methods=["POST"]),
    ]


def _instance_param(request: Request) -> str | None:
    values = {
        value
        for name in ("process_instance_id", "processInstanceId")
        for value in request.query_params.getlist(name)
        if value
    }
    if len(values) > 1:
        raise EngineHttpError(400, "Name one process instance: 'process_instance_id' differs from 'processInstanceId'.")
    return values.pop() if values else None
