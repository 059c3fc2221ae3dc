"""Test doubles for the engine client: an httpx.MockTransport handler that records requests."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx

from gateway.engine import RetryPolicy, UserTaskClient

ENGINE = "http://engine.test"
API = ENGINE + "/atlas_engine/api/v1"

Handler = Callable[[httpx.Request], httpx.Response]


def flow_node_instance(id_: str = "fni-1", **overrides: Any) -> dict[str, Any]:
    """A user task as a real engine sends it (optional fields without a value left out)."""
    item: dict[str, Any] = {
        "flowNodeInstanceId": id_,
        "flowNodeId": "Activity_Approve",
        "flowNodeName": "Approve order",
        "flowNodeLane": "Managers",
        "flowNodeType": "bpmn:UserTask",
        "state": "suspended",
        "processDefinitionId": "ApprovalProcess_Definition",
        "processModelId": "ApprovalProcess",
        "processModelName": "Approval",
        "processInstanceId": "pi-1",
        "correlationId": "corr-1",
        "ownerId": "dummy_token",
        "startToken": {"amount": 1500, "customerType": "vip"},
        "startedAt": "2024-01-15T10:30:00.000Z",
        "previousFlowNodeInstanceId": "fni-0",
        "userTaskConfig": {
            "formFields": [
                {"id": "approved", "type": "boolean", "label": "Approved"},
                {"id": "comment", "type": "string", "label": "Comment"},
            ]
        },
    }
    item.update(overrides)
    return item


def task_list(*items: dict[str, Any], total: int | None = None) -> httpx.Response:
    body = {"flowNodeInstances": list(items), "totalCount": len(items) if total is None else total}
    return httpx.Response(200, json=body)


def engine_error(status: int, class_name: str, message: str = "boom", **extra: Any) -> httpx.Response:
    body = {
        "errorClassName": class_name,
        "code": status,
        "message": message,
        "callStack": "Error: boom\n    at x",
        "errorType": "Error",
        "fatal": False,
        "isEngineError": True,
        "name": class_name,
        **extra,
    }
    return httpx.Response(status, json=body)


class Recorder:
    """Wraps a handler, keeps every request it saw."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.handler(request)

    @property
    def paths(self) -> list[str]:
        return [f"{r.method} {r.url.raw_path.decode()}" for r in self.requests]

    def body(self, index: int = -1) -> Any:
        return json.loads(self.requests[index].content)


class NoSleep:
    """Injected instead of asyncio.sleep: records the delays, waits for nothing."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def mock_client(handler: Handler, **options: Any) -> UserTaskClient:
    options.setdefault("retry", RetryPolicy(sleep=NoSleep()))
    return UserTaskClient(ENGINE, transport=httpx.MockTransport(handler), **options)
