"""Live task events and the change feed, each seen with the subscriber's own eyes.

The hub (:mod:`gateway.core.hub`) carries what the engine said happened, by task id. Before a subscriber hears of
a change, the changed tasks are read **with the subscriber's token** (``TaskService.get_tasks``, and
``tasks_ended_with`` for a process that ended with its tasks): a task the engine does not show that caller (another
lane) never reaches it, in any message. The gateway's service identity only carries the stream.

Costs, in engine calls: a batch of changes (everything that queued up while the subscriber was busy) costs one
call per distinct caller (two when a process ended in the batch); subscribers with the same token share it through
the read cache's single flight, so 1,000 subscriptions of one user cost what one does. A change the event itself
places outside the subscriber's filter (another process model, lane, flow node, ...) costs nothing.

A filter here is the list route's filter with one difference for events: ``states`` empty means *any* state
(a subscriber to lane ``Approvers`` wants to hear that a task was finished). The change feed keeps the list's
meaning: an entry is the task as it is in the list now, or a removal marker when it has left it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from . import errors, limits
from .changes import ChangeKind, TaskChange, may_concern
from .domain import Caller, TaskFilter, TaskQuery, UserTask
from .filtering import engine_part, residual_predicate
from .hub import ChangeHub, Gap
from .service import TaskService


@dataclass(frozen=True)
class TaskEvent:
    """One change as a subscriber sees it: ``task`` is its current state, read with the subscriber's token."""

    event_id: str
    kind: ChangeKind
    task: UserTask
    at: datetime


@dataclass(frozen=True)
class FeedEntry:
    """The latest change of one task: ``task`` as it is in the list now, or None: it has left the list."""

    event_id: str
    kind: ChangeKind
    task_id: str
    task: UserTask | None

    @property
    def removed(self) -> bool:
        return self.task is None


@dataclass(frozen=True)
class ChangeFeedPage:
    changes: tuple[FeedEntry, ...]
    #: Where to go on from: pass it as ``since`` next time.
    cursor: str
    has_more: bool


def task_matcher(task_filter: TaskFilter) -> Callable[[UserTask], bool]:
    """Whether a task is in the list ``task_filter`` describes (the engine's part and the gateway's part)."""
    engine_filter, residual = engine_part(task_filter), residual_predicate(task_filter)
    return lambda task: engine_filter.admits(task) and residual(task)


class LiveService:
    def __init__(self, service: TaskService, hub: ChangeHub) -> None:
        self._service = service
        self._hub = hub

    @property
    def head(self) -> str:
        """The current event id: changes after it are what happens from now on."""
        return self._hub.log.head

    async def task_events(
        self, caller: Caller, task_filter: TaskFilter, after: str | None = None
    ) -> AsyncGenerator[TaskEvent | Gap, None]:
        """Every change of a task ``caller`` may see and ``task_filter`` admits, until the subscription ends.

        ``after``: an event id; what the replay buffer holds after it comes first (raises ``ChangesExpired`` when
        the buffer no longer reaches back that far). Ends by raising a ``SubscriptionEnded`` (token expired,
        too slow, shutting down). A :class:`Gap` says that changes may have been missed.
        """
        task_filter = self._checked(task_filter)
        subscription = self._hub.subscribe(caller)
        try:
            # Subscribed first, replayed second: nothing between the two is missed or told twice.
            backlog: list[object] = list(self._hub.log.after(after)) if after is not None else []
            matches, engine_filter = task_matcher(task_filter), engine_part(task_filter)
            while True:
                batch = backlog or await subscription.next_batch()
                backlog = []
                # changes elsewhere (another model, lane, ...: what the event says) cost no engine read
                batch = [item for item in batch if not isinstance(item, TaskChange) or may_concern(item, engine_filter)]
                if not batch:
                    continue
                for item in await self._seen_by(caller, batch):
                    if isinstance(item, Gap) or matches(item.task):
                        yield item
        finally:
            subscription.close()

    def _checked(self, task_filter: TaskFilter) -> TaskFilter:
        """The filter if it keeps the listing's rules (:mod:`gateway.core.limits`), its dates in UTC."""
        query = limits.validate_query(TaskQuery(filter=task_filter), max_page_size=self._service.limits.max_page_size)
        return query.filter

    async def _seen_by(self, caller: Caller, batch: Sequence[object]) -> list[TaskEvent | Gap]:
        """A batch of changes as ``caller`` sees them, in order (a change it may not see is left out)."""
        changes = [item for item in batch if isinstance(item, TaskChange)]
        try:
            tasks, ended = await self._read(caller, changes)
        except errors.SubscriptionEnded:
            raise
        except errors.GatewayError as exc:
            # Never silent: the subscriber learns that these changes could not be shown, and refetches.
            last = changes[-1].event_id if changes else self.head
            return [Gap(after=last, message=f"Changed tasks could not be read ({exc.code}): {exc.message}")]
        seen: list[TaskEvent | Gap] = []
        for item in batch:
            if isinstance(item, Gap):
                seen.append(item)
            elif isinstance(item, TaskChange):
                if item.task_id is not None:
                    task = tasks.get(item.task_id)
                    if task is not None:
                        seen.append(TaskEvent(item.event_id, item.kind, task, item.at))
                else:
                    for task in ended.get(item.process_instance_id or "", ()):
                        seen.append(TaskEvent(item.event_id, item.kind, task, item.at))
        return seen

    async def _read(
        self, caller: Caller, changes: Sequence[TaskChange]
    ) -> tuple[dict[str, UserTask], dict[str, list[UserTask]]]:
        """The changed tasks by id, and the tasks ended with each ended process, as ``caller`` sees them."""
        ids = list(dict.fromkeys(change.task_id for change in changes if change.task_id is not None))
        instances = [
            change.process_instance_id
            for change in changes
            if change.task_id is None and change.process_instance_id is not None
        ]
        if instances:
            found, ended = await asyncio.gather(
                self._service.get_tasks(caller, ids), self._service.tasks_ended_with(caller, instances)
            )
        else:  # the usual case: one read, no extra tasks
            found, ended = await self._service.get_tasks(caller, ids), []
        by_instance: dict[str, list[UserTask]] = {}
        for task in ended:
            by_instance.setdefault(task.process_instance_id, []).append(task)
        return {task.id: task for task in found if task is not None}, by_instance

    async def changes(self, caller: Caller, task_filter: TaskFilter, since: str | None, limit: int) -> ChangeFeedPage:
        """The change feed: what changed in the list ``task_filter`` describes after ``since``.

        Without ``since``: no changes, and the cursor to start from (take it *before* reading the list). At most
        ``limit`` changes are read per page (``has_more`` says whether more follow); each task appears once, with
        its latest change: the task as it is in the list now, or a removal marker when it may have been in the
        list and is no longer (its state or reservation moved it out; a task of another model never was in it).
        Raises ``ChangesExpired`` when the buffer no longer reaches back to ``since``.
        """
        task_filter = self._checked(task_filter)
        if since is None:
            return ChangeFeedPage((), self.head, False)
        pending = self._hub.log.after(since)
        window = pending[:limit]
        cursor = window[-1].event_id if window else since
        tasks, ended = await self._read(caller, window)
        matches = task_matcher(task_filter)
        # A task leaves a list by its state or its reservation; one that differs in anything else never was in it.
        could_have_been = task_matcher(replace(task_filter, states=(), reserved=None, reserved_for=None))
        latest: dict[str, FeedEntry] = {}
        for change in window:
            if change.task_id is not None:
                affected = [tasks[change.task_id]] if change.task_id in tasks else []
            else:
                affected = ended.get(change.process_instance_id or "", [])
            for task in affected:
                latest.pop(task.id, None)  # keep the order of the latest changes
                if matches(task):
                    latest[task.id] = FeedEntry(change.event_id, change.kind, task.id, task)
                elif could_have_been(task):
                    latest[task.id] = FeedEntry(change.event_id, change.kind, task.id, None)
        return ChangeFeedPage(tuple(latest.values()), cursor, len(pending) > len(window))
