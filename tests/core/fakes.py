"""An in-memory Engine port for service tests: the engine's filtering, ordering and paging, with a call count."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.core import errors
from gateway.core.domain import Caller, FormField, SortDirection, SortField, UserTask
from gateway.core.ports import ENGINE_SORT_FIELDS, EngineFilter, EnginePage

BASE_TIME = datetime(2026, 1, 1, tzinfo=UTC)


def make_task(number: int, **overrides: Any) -> UserTask:
    task = UserTask(
        id=f"task-{number:05d}",
        flow_node_id="Approve",
        name=f"Approve order {number}",
        lane=None,
        state="suspended",
        process_model_id="ApprovalProcess",
        process_instance_id=f"pi-{number:05d}",
        correlation_id=f"corr-{number % 3}",
        token={"amount": number * 100, "customerType": "vip" if number % 2 else "regular"},
        reserved_for=None,
        form_fields=(FormField(id="approved", label="Approved", type="boolean"),),
        started_at=BASE_TIME + timedelta(seconds=number),
    )
    return replace(task, **overrides)


class FakeEngine:
    """``lanes``: user id -> the lanes that caller may see (a task without a lane is seen by all); unset: all."""

    def __init__(self, tasks: Sequence[UserTask] = (), *, lanes: Mapping[str, frozenset[str]] | None = None) -> None:
        self.tasks: dict[str, UserTask] = {task.id: task for task in tasks}
        self.lanes = lanes
        self.calls = 0
        self.delay = 0.0
        self.finished: list[tuple[str, Any]] = []

    async def _tick(self) -> None:
        self.calls += 1
        await asyncio.sleep(self.delay)

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
        await self._tick()
        found = [task for task in self.tasks.values() if engine_filter.admits(task) and self.sees(caller, task)]
        assert order_by in ENGINE_SORT_FIELDS
        found.sort(key=lambda task: (task.started_at, task.id), reverse=direction is SortDirection.DESC)
        page = found[offset : offset + limit] if limit else found[offset:]
        return EnginePage(tuple(page), len(found))

    async def tasks_by_ids(self, caller: Caller, ids: Sequence[str]) -> list[UserTask]:
        await self._tick()
        return [
            self.tasks[task_id] for task_id in ids if task_id in self.tasks and self.sees(caller, self.tasks[task_id])
        ]

    def sees(self, caller: Caller, task: UserTask) -> bool:
        if self.lanes is None or task.lane is None:
            return True
        return task.lane in self.lanes.get(caller.user_id, frozenset())

    def _waiting(self, task_id: str) -> UserTask:
        task = self.tasks.get(task_id)
        if task is None or task.state != "suspended":
            raise errors.TaskNotFound(task_id)
        return task

    async def reserve(self, caller: Caller, task_id: str, owner_id: str) -> None:
        await self._tick()
        task = self._waiting(task_id)
        if task.reserved_for not in (None, owner_id):
            raise errors.TaskReservedByOtherUser(task_id, task.reserved_for)
        self.tasks[task_id] = replace(task, reserved_for=owner_id)

    async def cancel_reservation(self, caller: Caller, task_id: str) -> None:
        await self._tick()
        self.tasks[task_id] = replace(self._waiting(task_id), reserved_for=None)

    async def finish(self, caller: Caller, task_id: str, result: Mapping[str, Any]) -> None:
        await self._tick()
        task = self._waiting(task_id)
        if task.reserved_for not in (None, caller.user_id):
            raise errors.TaskReservedByOtherUser(task_id, task.reserved_for)
        self.tasks[task_id] = replace(task, state="finished", finished_by=caller.user_id, result=dict(result))
        self.finished.append((task_id, dict(result)))
        follow_up = replace(
            task,
            id=task_id + "-next",
            flow_node_id="Notify",
            name="Notify customer",
            started_at=(task.started_at or BASE_TIME) + timedelta(hours=1),
            token=dict(result),
        )
        self.tasks[follow_up.id] = follow_up
