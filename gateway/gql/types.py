"""GraphQL output types. Field names are the contract (see schema/schema.graphql)."""

from __future__ import annotations

import enum
from collections.abc import Callable
from datetime import datetime
from typing import Annotated

import strawberry
from strawberry.scalars import JSON

from ..core import domain


@strawberry.enum(description="Life-cycle state of a user task (the engine's flow node instance state).")
class UserTaskState(enum.Enum):
    RUNNING = "running"
    SUSPENDED = "suspended"
    FINISHED = "finished"
    TERMINATED = "terminated"
    ERROR = "error"
    CANCELED = "canceled"


@strawberry.type(description="One choice of an enum form field.")
class EnumValue:
    id: str
    name: str


@strawberry.type(description="A field of the task's form, as modelled in 5Minds Studio (camunda:formField).")
class FormField:
    id: str
    label: str
    type: str = strawberry.field(description="string, long, number, boolean, date, enum, … as in the model")
    default_value: str | None
    enum_values: list[EnumValue]


@strawberry.type(description="A human step of a process instance, waiting for (or done by) a person.")
class UserTask:
    id: strawberry.ID = strawberry.field(description="The userTaskInstanceId (the engine's flowNodeInstanceId).")
    flow_node_id: str
    name: str
    lane: str | None
    state: UserTaskState
    process_model_id: str
    process_model_name: str | None
    process_instance_id: strawberry.ID
    correlation_id: str
    token: JSON = strawberry.field(description="The payload the task works on (the engine's start token).")
    reserved_for: str | None = strawberry.field(description="The user the task is reserved for, if any.")
    form_fields: list[FormField]
    started_at: datetime | None
    finished_at: datetime | None
    finished_by: str | None
    result: JSON | None = strawberry.field(description="The result the task was finished with.")

    @classmethod
    def from_domain(cls, task: domain.UserTask) -> UserTask:
        return cls(
            id=strawberry.ID(task.id),
            flow_node_id=task.flow_node_id,
            name=task.name,
            lane=task.lane,
            state=UserTaskState(domain.shown_state(task.state)),
            process_model_id=task.process_model_id,
            process_model_name=task.process_model_name,
            process_instance_id=strawberry.ID(task.process_instance_id),
            correlation_id=task.correlation_id,
            token=task.token,
            reserved_for=task.reserved_for,
            form_fields=[
                FormField(
                    id=field.id,
                    label=field.label,
                    type=field.type,
                    default_value=field.default_value,
                    enum_values=[EnumValue(id=value.id, name=value.name) for value in field.enum_values],
                )
                for field in task.form_fields
            ],
            started_at=task.started_at,
            finished_at=task.finished_at,
            finished_by=task.finished_by,
            result=task.result,
        )


@strawberry.type
class UserTaskEdge:
    node: UserTask
    make_cursor: strawberry.Private[Callable[[], str]]

    @strawberry.field
    def cursor(self) -> str:
        return self.make_cursor()


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type(description="One page of user tasks; totalCount counts every task that matches the filter.")
class UserTaskConnection:
    edges: list[UserTaskEdge]
    nodes: list[UserTask]
    page_info: PageInfo
    total_count: int

    @classmethod
    def from_domain(cls, page: domain.TaskListPage) -> UserTaskConnection:
        edges = [
            UserTaskEdge(node=UserTask.from_domain(edge.node), make_cursor=edge.make_cursor) for edge in page.edges
        ]
        return cls(
            edges=edges,
            nodes=[edge.node for edge in edges],
            page_info=PageInfo(has_next_page=page.has_next_page, end_cursor=page.end_cursor),
            total_count=page.total_count,
        )


# -- results of the task actions -----------------------------------------------------------------------------


@strawberry.type(description="No such task, or the caller may not see it (code TASK_NOT_FOUND).")
class UserTaskNotFound:
    id: strawberry.ID
    message: str


@strawberry.type(description="The task exists but no longer waits: finished or terminated (TASK_NOT_ACTIVE).")
class UserTaskNotActive:
    id: strawberry.ID
    state: UserTaskState
    message: str


@strawberry.type(description="The task is reserved for someone else (TASK_RESERVED_BY_OTHER_USER).")
class UserTaskReservedByOtherUser:
    id: strawberry.ID
    reserved_for: str | None
    message: str


@strawberry.type(description="Why one value of a result does not fit the task's form.")
class FieldProblem:
    field: str
    message: str


@strawberry.type(description="The result does not fit the task's form fields (INVALID_TASK_RESULT).")
class InvalidTaskResult:
    id: strawberry.ID
    message: str
    problems: list[FieldProblem]


@strawberry.type(
    description="Only in batch results: this item failed for a reason outside the task (engine unavailable,"
    " timeout, outcome unknown…); `code` is the error code, the other items are unaffected."
)
class ActionFailed:
    id: strawberry.ID
    code: str
    message: str


@strawberry.type(description="The task after it was finished, and the caller's tasks the finish made appear.")
class FinishedUserTask:
    task: UserTask
    next_tasks: list[UserTask]


ReserveUserTaskResult = Annotated[
    UserTask | UserTaskNotFound | UserTaskNotActive | UserTaskReservedByOtherUser | ActionFailed,
    strawberry.union("ReserveUserTaskResult"),
]
CancelUserTaskReservationResult = Annotated[
    UserTask | UserTaskNotFound | UserTaskNotActive | UserTaskReservedByOtherUser | ActionFailed,
    strawberry.union("CancelUserTaskReservationResult"),
]
FinishUserTaskResult = Annotated[
    FinishedUserTask
    | UserTaskNotFound
    | UserTaskNotActive
    | UserTaskReservedByOtherUser
    | InvalidTaskResult
    | ActionFailed,
    strawberry.union("FinishUserTaskResult"),
]
