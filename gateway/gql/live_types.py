"""GraphQL output types of the live subscriptions (``userTaskEvents``, ``userTaskList``) and their mapping from
the core's messages (:mod:`gateway.core.live`, :mod:`gateway.core.live_lists`, :class:`gateway.core.hub.Gap`)."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated

import strawberry

from ..core.changes import ChangeKind
from ..core.hub import Gap
from ..core.live import TaskEvent
from ..core.live_lists import ListChanges, ListSnapshot, PositionedTask
from .types import UserTask

UserTaskChangeKind = strawberry.enum(
    ChangeKind,
    name="UserTaskChangeKind",
    description="What happened to a task: it waits, was reserved, its reservation was cancelled, it was finished,"
    " or it ended with its process (TERMINATED).",
)


@strawberry.enum(description="Why a live list sends its whole page: the first message, or after missed changes.")
class ListSnapshotReason(enum.Enum):
    INITIAL = "INITIAL"
    RESYNC = "RESYNC"


@strawberry.type(description="One change of a task; `task` is the task as it is now, as you may see it.")
class UserTaskEvent:
    event_id: str = strawberry.field(description="Resume after this event with `userTaskEvents(after:)`.")
    kind: ChangeKind
    at: datetime = strawberry.field(description="When the gateway heard of the change.")
    task: UserTask

    @classmethod
    def from_domain(cls, event: TaskEvent) -> UserTaskEvent:
        return cls(event_id=event.event_id, kind=event.kind, at=event.at, task=UserTask.from_domain(event.task))


@strawberry.type(
    description="Changes after `after` may have been missed (the engine's event stream was interrupted, or changed"
    " tasks could not be read): read the list again."
)
class EventsMissed:
    after: str
    message: str = strawberry.field(description="What happened, in words.")

    @classmethod
    def from_domain(cls, gap: Gap) -> EventsMissed:
        return cls(after=gap.after, message=gap.message)


@strawberry.type(description="The whole page of a live list: first (INITIAL), and again after missed changes (RESYNC).")
class UserTaskListSnapshot:
    event_id: str = strawberry.field(description="The last change this page reflects.")
    reason: ListSnapshotReason
    total_count: int
    tasks: list[UserTask]

    @classmethod
    def from_domain(cls, snapshot: ListSnapshot) -> UserTaskListSnapshot:
        return cls(
            event_id=snapshot.event_id,
            reason=ListSnapshotReason(snapshot.reason),
            total_count=snapshot.total_count,
            tasks=[UserTask.from_domain(task) for task in snapshot.tasks],
        )


@strawberry.type(description="A task and its position (0-based) in the page after the changes.")
class PositionedUserTask:
    index: int
    task: UserTask

    @classmethod
    def from_domain(cls, positioned: PositionedTask) -> PositionedUserTask:
        return cls(index=positioned.index, task=UserTask.from_domain(positioned.task))


@strawberry.type(
    description="What changed in a live list's page since the previous message (changes are coalesced): tasks"
    " added and updated with their new positions, ids removed, the page's new order of ids and the new totalCount."
)
class UserTaskListChanges:
    event_id: str
    added: list[PositionedUserTask]
    updated: list[PositionedUserTask]
    removed: list[strawberry.ID]
    order: list[strawberry.ID]
    total_count: int

    @classmethod
    def from_domain(cls, changes: ListChanges) -> UserTaskListChanges:
        return cls(
            event_id=changes.event_id,
            added=[PositionedUserTask.from_domain(item) for item in changes.added],
            updated=[PositionedUserTask.from_domain(item) for item in changes.updated],
            removed=[strawberry.ID(task_id) for task_id in changes.removed],
            order=[strawberry.ID(task_id) for task_id in changes.order],
            total_count=changes.total_count,
        )


UserTaskEventMessage = Annotated[UserTaskEvent | EventsMissed, strawberry.union("UserTaskEventMessage")]
UserTaskListMessage = Annotated[
    UserTaskListSnapshot | UserTaskListChanges | EventsMissed, strawberry.union("UserTaskListMessage")
]


def event_message(item: TaskEvent | Gap) -> UserTaskEvent | EventsMissed:
    return EventsMissed.from_domain(item) if isinstance(item, Gap) else UserTaskEvent.from_domain(item)


def list_message(item: ListSnapshot | ListChanges | Gap) -> UserTaskListSnapshot | UserTaskListChanges | EventsMissed:
    if isinstance(item, Gap):
        return EventsMissed.from_domain(item)
    if isinstance(item, ListSnapshot):
        return UserTaskListSnapshot.from_domain(item)
    return UserTaskListChanges.from_domain(item)
