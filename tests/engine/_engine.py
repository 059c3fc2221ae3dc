"""Helpers for tests against the embedded engine: create work, wait for it, read results."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from gateway.engine import UserTaskClient

APPROVAL = "ApprovalProcess"


async def start_approvals(
    client: UserTaskClient, tokens: Sequence[Mapping[str, Any]], *, correlation_id: str | None = None
) -> list[str]:
    """Start one ApprovalProcess per token; return the ids of their waiting "Approve order" tasks."""
    started = await asyncio.gather(
        *(
            client.start_process_instance(APPROVAL, initial_token=dict(token), correlation_id=correlation_id)
            for token in tokens
        )
    )
    instance_ids = [s["processInstanceId"] for s in started]
    tasks = await wait_for_tasks(client, instance_ids)
    by_instance = {t["processInstanceId"]: t["userTaskInstanceId"] for t in tasks}
    return [by_instance[i] for i in instance_ids]


async def wait_for_tasks(client: UserTaskClient, instance_ids: Sequence[str]) -> list[dict[str, Any]]:
    """The engine may create a task just after `start` answers (returnOn=1): poll, bounded."""
    tasks: list[dict[str, Any]] = []
    for _ in range(200):
        tasks = await client.get_user_tasks(process_instance_id=list(instance_ids))
        if {t["processInstanceId"] for t in tasks} >= set(instance_ids):
            return tasks
        await asyncio.sleep(0.05)
    raise AssertionError(f"no waiting task for every instance of {instance_ids}: {tasks}")


def result_of(task: Mapping[str, Any]) -> Any:
    """What a finished task's result became: the contract says token.current is the result."""
    token = task.get("endToken")
    if isinstance(token, Mapping) and isinstance(token.get("current"), Mapping):
        return token["current"]
    return token


async def finished(client: UserTaskClient, task_id: str) -> dict[str, Any]:
    task = await client.get_user_task(task_id)
    assert task["state"] == "finished", task
    return task
