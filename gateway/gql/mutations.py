"""Mutations: each answers with a result union; batch forms answer one result per item, in order."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.scalars import JSON

from ..core import errors
from ..core.domain import FinishOutcome, shown_state
from ..core.domain import UserTask as DomainTask
from .context import Info
from .inputs import FinishUserTaskInput
from .types import (
    ActionFailed,
    CancelUserTaskReservationResult,
    FieldProblem,
    FinishedUserTask,
    FinishUserTaskResult,
    InvalidTaskResult,
    ReserveUserTaskResult,
    UserTask,
    UserTaskNotActive,
    UserTaskNotFound,
    UserTaskReservedByOtherUser,
    UserTaskState,
)


def refusal(task_id: str, error: errors.GatewayError) -> Any:
    """An expected refusal as its union member (ActionFailed only reaches batch results)."""
    identifier = strawberry.ID(task_id)
    if isinstance(error, errors.TaskNotFound):
        return UserTaskNotFound(id=identifier, message=error.message)
    if isinstance(error, errors.TaskNotActive):
        return UserTaskNotActive(id=identifier, state=UserTaskState(shown_state(error.state)), message=error.message)
    if isinstance(error, errors.TaskReservedByOtherUser):
        return UserTaskReservedByOtherUser(id=identifier, reserved_for=error.reserved_for, message=error.message)
    if isinstance(error, errors.InvalidTaskResult):
        return InvalidTaskResult(
            id=identifier,
            message=error.message,
            problems=[FieldProblem(field=problem.field, message=problem.message) for problem in error.problems],
        )
    return ActionFailed(id=identifier, code=error.code, message=error.message)


def finished(outcome: FinishOutcome) -> FinishedUserTask:
    return FinishedUserTask(
        task=UserTask.from_domain(outcome.task),
        next_tasks=[UserTask.from_domain(task) for task in outcome.next_tasks],
    )


def task_or_refusal(task_id: str, outcome: DomainTask | errors.GatewayError) -> Any:
    return refusal(task_id, outcome) if isinstance(outcome, errors.GatewayError) else UserTask.from_domain(outcome)


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Reserve a task for a user (default: yourself).")
    async def reserve_user_task(
        self, info: Info, id: strawberry.ID, owner_id: str | None = None
    ) -> ReserveUserTaskResult:
        try:
            task = await info.context.service.reserve(info.context.caller, str(id), owner_id)
        except errors.TASK_OUTCOME_ERRORS as exc:
            info.context.outcome_code = exc.code
            return refusal(str(id), exc)
        return UserTask.from_domain(task)

    @strawberry.mutation(description="Cancel the reservation of a task.")
    async def cancel_user_task_reservation(self, info: Info, id: strawberry.ID) -> CancelUserTaskReservationResult:
        try:
            task = await info.context.service.cancel_reservation(info.context.caller, str(id))
        except errors.TASK_OUTCOME_ERRORS as exc:
            info.context.outcome_code = exc.code
            return refusal(str(id), exc)
        return UserTask.from_domain(task)

    @strawberry.mutation(
        description="Finish a task with a result ({formFieldId: value}); it is checked against the task's form first."
    )
    async def finish_user_task(self, info: Info, id: strawberry.ID, result: JSON) -> FinishUserTaskResult:
        try:
            outcome = await info.context.service.finish(info.context.caller, str(id), result)
        except errors.TASK_OUTCOME_ERRORS as exc:
            info.context.outcome_code = exc.code
            return refusal(str(id), exc)
        return finished(outcome)

    @strawberry.mutation(description="Reserve several tasks; one result per id, in order.")
    async def reserve_user_tasks(
        self, info: Info, ids: list[strawberry.ID], owner_id: str | None = None
    ) -> list[ReserveUserTaskResult]:
        task_ids = [str(task_id) for task_id in ids]
        outcomes = await info.context.service.reserve_many(info.context.caller, task_ids, owner_id)
        return [task_or_refusal(task_id, outcome) for task_id, outcome in zip(task_ids, outcomes, strict=True)]

    @strawberry.mutation(description="Cancel several reservations; one result per id, in order.")
    async def cancel_user_task_reservations(
        self, info: Info, ids: list[strawberry.ID]
    ) -> list[CancelUserTaskReservationResult]:
        task_ids = [str(task_id) for task_id in ids]
        outcomes = await info.context.service.cancel_reservations(info.context.caller, task_ids)
        return [task_or_refusal(task_id, outcome) for task_id, outcome in zip(task_ids, outcomes, strict=True)]

    @strawberry.mutation(description="Finish several tasks; one result per item, in order.")
    async def finish_user_tasks(self, info: Info, items: list[FinishUserTaskInput]) -> list[FinishUserTaskResult]:
        pairs: list[tuple[str, Any]] = [(str(item.id), item.result) for item in items]
        outcomes = await info.context.service.finish_many(info.context.caller, pairs)
        return [
            refusal(task_id, outcome) if isinstance(outcome, errors.GatewayError) else finished(outcome)
            for (task_id, _), outcome in zip(pairs, outcomes, strict=True)
        ]
