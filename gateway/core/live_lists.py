"""Live lists: the page a subscriber shows, kept up to date, shared by everyone who shows the same page.

A live list is a listing (filter, sort, first) of one caller. Subscribers whose token and listing are the same
share one :class:`SharedList`: it reads the page once per refresh and sends each subscriber the same difference,
so 1,000 subscribers of one list cost the engine what one does (one ``list_tasks`` per refresh; see the service
for what one costs).

- **When it refreshes.** On a change that can touch the list: a task on the page, or a task the engine part of
  the filter admits by what the event says of it (process model, instance, flow node, lane, correlation); a change
  elsewhere costs nothing. After an engine stream gap, always.
- **Coalesced.** The first change after a quiet spell refreshes at once; changes during a refresh, or within
  ``min_interval`` of the last one, make one more refresh when the interval is over. A burst of 100 finishes
  becomes a handful of messages, each with the whole difference.
- **What is sent.** First a :class:`ListSnapshot` (the page and ``totalCount``); then a :class:`ListChanges` per
  refresh that changed something: tasks ``added`` and ``updated`` with their positions, ids ``removed``, the page's
  new ``order`` of ids and the new ``total_count``. After a gap the subscriber gets the :class:`Gap` and then a
  fresh snapshot (``reason`` ``RESYNC``). A refresh the engine fails is said as a ``Gap`` and retried.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Hashable
from dataclasses import dataclass, replace
from typing import Literal

from . import errors
from .changes import TaskChange, may_concern
from .cursor import query_fingerprint
from .domain import Caller, TaskListPage, TaskQuery, UserTask
from .filtering import engine_part
from .hub import ChangeHub, Gap, Subscription
from .ports import EngineFilter
from .service import TaskService

log = logging.getLogger("gateway.live_lists")


@dataclass(frozen=True)
class ListSnapshot:
    tasks: tuple[UserTask, ...]
    total_count: int
    #: The last change this page reflects.
    event_id: str
    reason: Literal["INITIAL", "RESYNC"] = "INITIAL"


@dataclass(frozen=True)
class PositionedTask:
    index: int
    task: UserTask


@dataclass(frozen=True)
class ListChanges:
    added: tuple[PositionedTask, ...]
    updated: tuple[PositionedTask, ...]
    removed: tuple[str, ...]
    #: The ids of the page, in order, after these changes.
    order: tuple[str, ...]
    total_count: int
    event_id: str


def difference(before: TaskListPage, after: TaskListPage, event_id: str) -> ListChanges | None:
    """What turns page ``before`` into page ``after``; None when nothing a subscriber sees changed."""
    old = {task.id: task for task in before.nodes}
    new_nodes = after.nodes
    new_ids = {task.id for task in new_nodes}
    added = tuple(PositionedTask(index, task) for index, task in enumerate(new_nodes) if task.id not in old)
    updated = tuple(
        PositionedTask(index, task) for index, task in enumerate(new_nodes) if task.id in old and old[task.id] != task
    )
    removed = tuple(task.id for task in before.nodes if task.id not in new_ids)
    order = tuple(task.id for task in new_nodes)
    if not added and not updated and not removed and order == tuple(old) and after.total_count == before.total_count:
        return None
    return ListChanges(added, updated, removed, order, after.total_count, event_id)


def might_touch(engine_filter: EngineFilter, page: TaskListPage | None, change: TaskChange) -> bool:
    """Whether ``change`` can alter a list with this engine filter that shows ``page`` (False only when sure)."""
    if page is None:
        return True
    if change.task_id is None:
        instances = engine_filter.process_instance_ids
        return not instances or change.process_instance_id in instances or change.process_instance_id is None
    if any(task.id == change.task_id for task in page.nodes):
        return True
    return may_concern(change, engine_filter)


class SharedList:
    """One caller's listing, refreshed on changes and fanned out to its subscribers."""

    def __init__(self, lists: LiveLists, key: Hashable, caller: Caller, query: TaskQuery) -> None:
        self._lists = lists
        self.key = key
        self.caller = caller
        self.query = query
        self._engine_filter = engine_part(query.filter)
        self.page: TaskListPage | None = None
        self.event_id = lists.hub.log.head
        self.subscribers: set[Subscription] = set()
        self._dirty = asyncio.Event()
        self._resync = False
        self._last_refresh = 0.0
        self._runner: asyncio.Task[None] | None = None

    def hear(self, item: TaskChange | Gap) -> None:
        if isinstance(item, Gap):
            for subscription in list(self.subscribers):
                subscription.deliver(item)
            self._resync = True
            self._dirty.set()
        elif might_touch(self._engine_filter, self.page, item):
            self._dirty.set()

    async def load(self) -> None:
        """Read the first page (raises what the service raises: the first subscriber sees the error)."""
        event_id = self._lists.hub.log.head
        self.page = await self._lists.service.list_tasks(self.caller, self.query)
        self.event_id = event_id
        self._last_refresh = time.monotonic()

    def start(self) -> None:
        if self._runner is None:
            self._runner = asyncio.get_running_loop().create_task(self._run(), name=f"live list {self.key!r}")

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)

    async def _run(self) -> None:
        backoff = self._lists.min_interval
        while True:
            await self._dirty.wait()
            wait = self._last_refresh + self._lists.min_interval - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self._dirty.clear()
            resync, self._resync = self._resync, False
            event_id = self._lists.hub.log.head
            try:
                page = await self._lists.service.list_tasks(self.caller, self.query)
            except errors.GatewayError as exc:
                notice = Gap(after=event_id, message=f"The list could not be refreshed ({exc.code}): {exc.message}")
                for subscription in list(self.subscribers):
                    subscription.deliver(notice)
                self._resync = True
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2 + 0.1, 5.0)
                self._dirty.set()
                continue
            backoff = self._lists.min_interval
            self._last_refresh = time.monotonic()
            before, self.page, self.event_id = self.page, page, event_id
            message: ListSnapshot | ListChanges | None
            if resync or before is None:
                message = ListSnapshot(page.nodes, page.total_count, event_id, "RESYNC")
            else:
                message = difference(before, page, event_id)
            if message is not None:
                for subscription in list(self.subscribers):
                    subscription.deliver(message)


class LiveLists:
    def __init__(self, service: TaskService, hub: ChangeHub, *, min_interval: float = 0.1) -> None:
        self.service = service
        self.hub = hub
        self.min_interval = min_interval
        self._lists: dict[Hashable, SharedList] = {}
        self._stop_listening = hub.listen(self._hear)

    def _hear(self, item: TaskChange | Gap) -> None:
        for shared in list(self._lists.values()):
            shared.hear(item)

    @property
    def distinct_lists(self) -> int:
        return len(self._lists)

    async def watch(self, caller: Caller, query: TaskQuery) -> AsyncGenerator[ListSnapshot | ListChanges | Gap, None]:
        """The live list: a snapshot, then its changes, until the subscription ends (raises why it ended)."""
        query = replace(query, after=None)  # a live list is a first page
        key = (caller.cache_key, query_fingerprint(query.filter, query.sort_keys), query.first)
        subscription = self.hub.subscribe(caller, raw=False)
        try:
            shared = self._lists.get(key)
            if shared is None:
                shared = SharedList(self, key, caller, query)
                await shared.load()  # an error here is the subscriber's answer
                shared = self._lists.setdefault(key, shared)  # one that another subscriber made meanwhile wins
            assert shared.page is not None
            shared.subscribers.add(subscription)
            shared.start()
            yield ListSnapshot(shared.page.nodes, shared.page.total_count, shared.event_id)
            while True:
                for item in await subscription.next_batch():
                    assert isinstance(item, ListSnapshot | ListChanges | Gap)
                    yield item
        finally:
            subscription.close()
            shared_now = self._lists.get(key)
            if shared_now is not None:
                shared_now.subscribers.discard(subscription)
                if not shared_now.subscribers:
                    del self._lists[key]
                    await shared_now.stop()

    async def close(self) -> None:
        self._stop_listening()
        for shared in list(self._lists.values()):
            await shared.stop()
        self._lists.clear()
