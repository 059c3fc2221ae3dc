"""The use cases of the gateway: list, look up, reserve, cancel, finish (one and many).

Knows nothing of HTTP, GraphQL or httpx: it takes a :class:`~gateway.core.ports.Engine` and raises
:mod:`gateway.core.errors`. GraphQL and REST are thin faces over this one service, so every rule lives here once.

How a page of tasks is made (``list_tasks``):

- The query is checked against :mod:`gateway.core.limits` first (both faces get the same refusals, before any work
  that grows with the input).
- The filter is split (:func:`~gateway.core.filtering.engine_part`): states, process model, instance, flow node,
  lane, correlation id and ids go to the engine; reservation, dates, text search and token predicates stay here.
- **Pushed down** (nothing residual, one sort key the engine can order by exactly as the gateway does:
  ``STARTED_AT``): the engine returns the page itself (``offset``/``limit`` around the cursor's position hint,
  ``includeCount`` for an exact ``totalCount``). One engine call for a page, whatever the backlog.
- **Residual** (anything else): the gateway reads every candidate the engine part matches, in pages of
  ``scan_page_size``, applies the rest, sorts on every key and cuts the page. The cost is bounded: at most
  ``residual_scan_limit`` candidates (``ceil(candidates / scan_page_size)`` engine calls, cached and shared by
  concurrent identical queries); a query with more candidates is refused with ``QUERY_TOO_COMPLEX`` and the advice
  to narrow its engine-side filter. A face that serves several listings in one request (GraphQL aliases) opens a
  :class:`~gateway.core.budget.ScanBudget` around them: the scans of the whole request stay within the limit.
- Either way the cursor is a keyset position (see :mod:`gateway.core.cursor`): a task that disappears before it
  neither shifts nor repeats the next page.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from . import errors, limits
from .budget import current_scan_budget
from .cache import ReadCache
from .cursor import CursorCodec, CursorPosition, query_fingerprint
from .domain import (
    DEFAULT_PAGE_SIZE,
    WAITING,
    Caller,
    Edge,
    FinishOutcome,
    SortDirection,
    SortField,
    TaskFilter,
    TaskListPage,
    TaskQuery,
    TaskSort,
    UserTask,
)
from .filtering import engine_part, is_residual, residual_predicate
from .ports import ENGINE_SORT_FIELDS, Engine, EngineFilter, EnginePage
from .results import result_problems
from .tokens import MISSING, sort_key, token_value

T = TypeVar("T")

#: The states a waiting task is left in when its process is terminated or fails.
ENDED_WITH_PROCESS = ("terminated", "error")

#: Process instance ids in one engine query: 50 UUIDs keep its URL near 2 KB, far below common 8 KiB limits.
INSTANCES_PER_QUERY = 50


@dataclass(frozen=True)
class ServiceLimits:
    default_page_size: int = DEFAULT_PAGE_SIZE
    max_page_size: int = 100
    max_batch_size: int = 100
    batch_concurrency: int = 16
    residual_scan_limit: int = 10_000
    scan_page_size: int = 500
    cursor_slack: int = 20


def _finished_by(task: UserTask | None, caller: Caller, result: Any) -> bool:
    """Whether ``caller`` finished ``task`` with ``result``: a finish sent again is then a replay, not a refusal."""
    if task is None or task.state != "finished":
        return False
    return task.finished_by == caller.user_id and task.result == result


def _sort_value(task: UserTask, sort: TaskSort) -> Any:
    if sort.field is SortField.STARTED_AT:
        return task.started_at.isoformat() if task.started_at else None
    if sort.field is SortField.NAME:
        return task.name
    if sort.field is SortField.PROCESS_MODEL_ID:
        return task.process_model_id
    if sort.field is SortField.LANE:
        return task.lane
    if sort.field is SortField.RESERVED_FOR:
        return task.reserved_for
    return token_value(task.token, sort.token_path or "")


def _key_of(task: UserTask, sorts: Sequence[TaskSort]) -> tuple[Any, ...]:
    values = []
    for sort in sorts:
        value = _sort_value(task, sort)
        values.append(None if value is MISSING else value)
    values.append(task.id)
    return tuple(values)


def _compare_keys(left: Sequence[Any], right: Sequence[Any], directions: Sequence[SortDirection]) -> int:
    for index, (a, b) in enumerate(zip(left, right, strict=True)):
        ka, kb = sort_key(a), sort_key(b)
        if ka == kb:
            continue
        order = -1 if ka < kb else 1
        if index < len(directions) and directions[index] is SortDirection.DESC:
            order = -order
        return order
    return 0


class TaskService:
    def __init__(self, engine: Engine, cache: ReadCache, cursors: CursorCodec, limits: ServiceLimits) -> None:
        self._engine = engine
        self._cache = cache
        self._cursors = cursors
        self.limits = limits
        self._draining = False

    # -- reading ---------------------------------------------------------------------------------------------

    async def list_tasks(self, caller: Caller, query: TaskQuery) -> TaskListPage:
        query = limits.validate_query(query, max_page_size=self.limits.max_page_size)
        first = self.limits.default_page_size if query.first is None else query.first
        sorts = query.sort_keys
        # ties are broken by the task id, in the direction of the last key (as an engine breaks its ties)
        directions = [sort.direction for sort in sorts] + [sorts[-1].direction]
        query_print = query_fingerprint(query.filter, sorts)
        position = self._cursors.decode(query.after, query_print) if query.after else None
        engine_filter = engine_part(query.filter)
        pushable = not is_residual(query.filter) and len(sorts) == 1 and sorts[0].field in ENGINE_SORT_FIELDS
        if pushable:
            return await self._pushed_down_page(caller, engine_filter, sorts, directions, first, position, query_print)
        return await self._residual_page(caller, query.filter, sorts, directions, first, position, query_print)

    def _edges(
        self, tasks: Sequence[UserTask], sorts: Sequence[TaskSort], start_position: int, query_print: str
    ) -> tuple[Edge, ...]:
        def cursor_of(task: UserTask, position: int) -> Callable[[], str]:
            return lambda: self._cursors.encode(query_print, _key_of(task, sorts), position)

        # cursors are signed only when asked for: most pages need just the last one
        return tuple(Edge(task, cursor_of(task, start_position + index + 1)) for index, task in enumerate(tasks))

    async def _engine_page(
        self,
        caller: Caller,
        engine_filter: EngineFilter,
        sort: TaskSort,
        offset: int,
        limit: int,
    ) -> EnginePage:
        key = (caller.cache_key, "page", engine_filter, sort.field, sort.direction, offset, limit)
        return await self._cache.get_or_load(
            key,
            lambda: self._engine.query_tasks(
                caller, engine_filter, offset=offset, limit=limit, order_by=sort.field, direction=sort.direction
            ),
        )

    async def _pushed_down_page(
        self,
        caller: Caller,
        engine_filter: EngineFilter,
        sorts: Sequence[TaskSort],
        directions: Sequence[SortDirection],
        first: int,
        position: CursorPosition | None,
        query_print: str,
    ) -> TaskListPage:
        descending = sorts[0].direction is SortDirection.DESC

        def compare(task: UserTask) -> tuple[Any, ...]:
            # one key, never null (STARTED_AT), ties by id in the same direction: a plain tuple sort suffices
            return tuple(sort_key(value) for value in _key_of(task, sorts))

        slack = self.limits.cursor_slack
        if position is None:
            page = await self._engine_page(caller, engine_filter, sorts[0], 0, max(first, 1) + 1)
            items = sorted(page.tasks, key=compare, reverse=descending)[:first]
            return TaskListPage(
                self._edges(items, sorts, 0, query_print), page.total_count, page.total_count > len(items)
            )
        anchor = position.key
        offset = max(0, position.position - slack)
        limit = first + 2 * slack + 1
        back_step = limit
        for _ in range(32):
            page = await self._engine_page(caller, engine_filter, sorts[0], offset, limit)
            items = sorted(page.tasks, key=compare, reverse=descending)
            keys = [_key_of(task, sorts) for task in items]
            if offset > 0 and (not items or _compare_keys(keys[0], anchor, directions) > 0):
                offset, back_step = (
                    max(0, offset - back_step),
                    back_step * 2,
                )  # tasks vanished before the cursor
                continue
            start = next((i for i, key in enumerate(keys) if _compare_keys(key, anchor, directions) > 0), len(items))
            if len(items) - start > first or len(page.tasks) < limit or start == 0:
                break
            offset += start  # tasks were added before the cursor: the page lies further on
        else:
            raise errors.EngineFailure("The engine's order of tasks kept changing while a page was read.")
        chosen = items[start : start + first]
        absolute = offset + start
        has_next = absolute + len(chosen) < page.total_count
        return TaskListPage(self._edges(chosen, sorts, absolute, query_print), page.total_count, has_next)

    def _scan_page(self, caller: Caller, engine_filter: EngineFilter, offset: int, limit: int) -> Awaitable[EnginePage]:
        """Engine pages in an order that does not change while they are read (by start), for scans and instances."""
        return self._engine.query_tasks(
            caller,
            engine_filter,
            offset=offset,
            limit=limit,
            order_by=SortField.STARTED_AT,
            direction=SortDirection.ASC,
        )

    async def _candidates(self, caller: Caller, engine_filter: EngineFilter) -> list[UserTask]:
        budget = current_scan_budget()

        async def scan() -> list[UserTask]:
            size = self.limits.scan_page_size
            if budget is not None:
                budget.charge(1)  # a request whose budget is spent makes no further engine call
            first = await self._scan_page(caller, engine_filter, 0, size)
            if first.total_count > self.limits.residual_scan_limit:
                raise errors.QueryTooComplex(
                    f"This filter leaves {first.total_count} tasks for the gateway to check one by one, over the"
                    f" limit of {self.limits.residual_scan_limit}. Narrow it with a filter the engine applies"
                    " (processModelId, processInstanceId, flowNodeId, lane, correlationId, state)."
                )
            if budget is not None:
                budget.charge(max(0, first.total_count - 1))  # the request's scans in all stay within the limit
            rest = await asyncio.gather(
                *(
                    self._scan_page(caller, engine_filter, offset, size)
                    for offset in range(size, first.total_count, size)
                )
            )
            unique: dict[str, UserTask] = {}
            for page in (first, *rest):
                for task in page.tasks:
                    unique.setdefault(task.id, task)
            return list(unique.values())

        return await self._cache.get_or_load((caller.cache_key, "scan", engine_filter), scan)

    async def _residual_page(
        self,
        caller: Caller,
        task_filter: TaskFilter,
        sorts: Sequence[TaskSort],
        directions: Sequence[SortDirection],
        first: int,
        position: CursorPosition | None,
        query_print: str,
    ) -> TaskListPage:
        candidates = await self._candidates(caller, engine_part(task_filter))
        passes = residual_predicate(task_filter)

        def order(left: tuple[tuple[Any, ...], UserTask], right: tuple[tuple[Any, ...], UserTask]) -> int:
            return _compare_keys(left[0], right[0], directions)

        keyed = sorted(
            ((_key_of(task, sorts), task) for task in candidates if passes(task)), key=functools.cmp_to_key(order)
        )
        start = 0
        if position is not None:
            start = next(
                (i for i, (key, _) in enumerate(keyed) if _compare_keys(key, position.key, directions) > 0),
                len(keyed),
            )
        chosen = [task for _, task in keyed[start : start + first]]
        return TaskListPage(
            self._edges(chosen, sorts, start, query_print), len(keyed), start + len(chosen) < len(keyed)
        )

    async def get_tasks(self, caller: Caller, ids: Sequence[str]) -> list[UserTask | None]:
        """The tasks with these ids (any state), in the order asked, None where absent: one engine call."""
        for task_id in ids:
            limits.check_task_id(task_id)
        unique = tuple(dict.fromkeys(ids))
        if not unique:
            return []
        found = await self._cache.get_or_load(
            (caller.cache_key, "ids", unique), lambda: self._engine.tasks_by_ids(caller, unique)
        )
        by_id = {task.id: task for task in found}
        return [by_id.get(task_id) for task_id in ids]

    async def tasks_ended_with(self, caller: Caller, process_instance_ids: Sequence[str]) -> list[UserTask]:
        """The tasks of these process instances that ended with their process (terminated or failed), as ``caller``
        may see them: one engine call per :data:`INSTANCES_PER_QUERY` instances (the ids go into the URL)."""
        unique = tuple(dict.fromkeys(process_instance_ids))
        chunks = [unique[start : start + INSTANCES_PER_QUERY] for start in range(0, len(unique), INSTANCES_PER_QUERY)]

        async def ended_in(chunk: tuple[str, ...]) -> EnginePage:
            engine_filter = EngineFilter(states=ENDED_WITH_PROCESS, process_instance_ids=chunk)
            return await self._cache.get_or_load(
                (caller.cache_key, "ended", chunk),
                lambda: self._engine.query_tasks(
                    caller, engine_filter, offset=0, limit=0, order_by=SortField.STARTED_AT, direction=SortDirection.ASC
                ),
            )

        pages = await asyncio.gather(*(ended_in(chunk) for chunk in chunks))
        return [task for page in pages for task in page.tasks]

    async def get_task(self, caller: Caller, task_id: str) -> UserTask | None:
        return (await self.get_tasks(caller, [task_id]))[0]

    async def _fresh_task(self, caller: Caller, task_id: str) -> UserTask | None:
        found = await self._engine.tasks_by_ids(caller, [task_id])
        return next((task for task in found if task.id == task_id), None)

    async def _explain_refusal(self, caller: Caller, task_id: str, refusal: errors.GatewayError) -> errors.GatewayError:
        """The engine says 404 for unknown and for no-longer-waiting tasks alike; tell them apart."""
        if not isinstance(refusal, errors.TaskNotFound):
            return refusal
        try:
            task = await self._fresh_task(caller, task_id)
        except errors.GatewayError:  # the engine's refusal stands: a failed read must not turn it into another error
            return refusal
        if task is not None and task.state != WAITING:
            return errors.TaskNotActive(task_id, task.state)
        return refusal

    # -- writing ---------------------------------------------------------------------------------------------

    async def _write(self, caller: Caller, task_id: str, action: Callable[[], Awaitable[None]]) -> None:
        try:
            await action()
        except (errors.TaskNotFound, errors.TaskReservedByOtherUser) as exc:
            raise await self._explain_refusal(caller, task_id, exc) from exc
        except errors.OutcomeUnknown:
            self._cache.invalidate()
            raise
        self._cache.invalidate()

    async def reserve(
        self, caller: Caller, task_id: str, owner_id: str | None = None, *, before: UserTask | None = None
    ) -> UserTask:
        limits.check_task_id(task_id)
        problems = limits.Problems()
        limits.owner_problem(owner_id, problems)
        problems.raise_if_any()
        owner = owner_id or caller.user_id
        return await self._write_then_read(
            caller,
            task_id,
            lambda: self._engine.reserve(caller, task_id, owner),
            lambda task: replace(task, reserved_for=owner),
            before,
        )

    async def cancel_reservation(self, caller: Caller, task_id: str, *, before: UserTask | None = None) -> UserTask:
        limits.check_task_id(task_id)
        return await self._write_then_read(
            caller,
            task_id,
            lambda: self._engine.cancel_reservation(caller, task_id),
            lambda task: replace(task, reserved_for=None),
            before,
        )

    async def _write_then_read(
        self,
        caller: Caller,
        task_id: str,
        action: Callable[[], Awaitable[None]],
        change: Callable[[UserTask], UserTask],
        before: UserTask | None,
    ) -> UserTask:
        """The one rule of a write that answers the task as it is after it (reserve, cancel; finish keeps it too).

        The write's outcome is the answer: done, refused (the engine's reason), not done (ENGINE_UNAVAILABLE: never
        sent) or unknown (OUTCOME_UNKNOWN). A read that *follows* a successful write never turns it into an error:
        when it fails, the answer is the task as it was read before the write (``before``, from the read cache when
        it is there) with the change the write made. That earlier read is the price of an answer that is always
        true; when it fails, nothing was sent and the engine's error is the answer.
        """
        if before is None:
            before = await self.get_task(caller, task_id)
        await self._write(caller, task_id, action)
        try:
            after = await self._fresh_task(caller, task_id)
        except errors.GatewayError:
            after = None  # the write happened; only the read after it failed
        if after is not None:
            return after
        if before is None:  # neither read shows the task (the engine accepted a write on it all the same)
            raise errors.TaskNotFound(task_id)
        return change(before)

    async def finish(self, caller: Caller, task_id: str, result: Any) -> FinishOutcome:
        limits.check_task_id(task_id)
        problems = limits.Problems()
        limits.result_problem(result, problems)
        problems.raise_if_any()
        outcome = (await self._finish_checked(caller, [(task_id, result)]))[0]
        if isinstance(outcome, errors.GatewayError):
            raise outcome
        return outcome

    async def _finish_one(self, caller: Caller, task_id: str, result: Any) -> None:
        """Send one finish. Refused because the task was finished meanwhile by this caller with this very result (a
        concurrent duplicate won the race, here or on another instance), it is no refusal: every duplicate answers
        as the finish that happened. Costs one more engine read, on that path only."""
        try:
            await self._write(caller, task_id, lambda: self._engine.finish(caller, task_id, result))
        except errors.TaskNotActive:
            if not _finished_by(await self._fresh_task(caller, task_id), caller, result):
                raise

    def _finishable(self, caller: Caller, task_id: str, task: UserTask | None, result: Any) -> bool:
        """True: finish it. False: already finished by this caller with this result (a replay). Else raise why not."""
        if task is None:
            raise errors.TaskNotFound(task_id)
        if task.state != WAITING:
            if _finished_by(task, caller, result):
                return False  # the same caller finished it with the same result: a retry whose answer got lost
            raise errors.TaskNotActive(task_id, task.state)
        if task.reserved_for is not None and task.reserved_for != caller.user_id:
            raise errors.TaskReservedByOtherUser(task_id, task.reserved_for)
        problems = result_problems(task.form_fields, result)
        if problems:
            raise errors.InvalidTaskResult(task_id, problems)
        return True

    async def _tasks_in_instances(
        self, caller: Caller, instance_ids: set[str], states: tuple[str, ...]
    ) -> dict[str, list[UserTask]]:
        """The tasks of these process instances, grouped by instance: one engine call per 50 instances."""
        ordered = sorted(instance_ids)
        chunks = [tuple(ordered[i : i + 50]) for i in range(0, len(ordered), 50)]
        pages = await asyncio.gather(
            *(
                self._scan_page(caller, EngineFilter(states=states, process_instance_ids=chunk), 0, 0)
                for chunk in chunks
            )
        )
        grouped: dict[str, list[UserTask]] = {instance_id: [] for instance_id in instance_ids}
        for page in pages:
            for task in page.tasks:
                grouped.setdefault(task.process_instance_id, []).append(task)
        return grouped

    async def finish_many(
        self, caller: Caller, items: Sequence[tuple[str, Any]]
    ) -> list[FinishOutcome | errors.GatewayError]:
        """Finish each item; one result per item, in order. Engine calls: the finishes plus three reads in all.

        The tasks are read once (by id), the waiting tasks of their instances once before and the instances' tasks
        once after, so ``nextTasks`` (tasks that appeared in the instance, visible to and not reserved for others
        than the caller) costs no call per item. Ids and results are checked (:mod:`gateway.core.limits`) before any of
        that: one item over a limit refuses the whole batch, as a REST body with that item would be.
        """
        problems = limits.Problems()
        if limits.batch_problem(len(items), self.limits.max_batch_size, "/items", problems):
            for index, (task_id, result) in enumerate(items):
                if not limits.is_task_id(task_id):
                    problems.add(
                        f"/items/{index}/id",
                        f"/items/{index}/id is not a valid task id: ids are {limits.TASK_ID_RULE}.",
                    )
                limits.result_problem(result, problems, f"/items/{index}/result")
        problems.raise_if_any()
        return await self._finish_checked(caller, items)

    async def _finish_checked(
        self, caller: Caller, items: Sequence[tuple[str, Any]]
    ) -> list[FinishOutcome | errors.GatewayError]:
        found = {task.id: task for task in await self._engine.tasks_by_ids(caller, [task_id for task_id, _ in items])}
        outcome: list[bool | errors.GatewayError] = []  # True: to finish, False: a replay, or why not
        for task_id, result in items:
            try:
                outcome.append(self._finishable(caller, task_id, found.get(task_id), result))
            except errors.GatewayError as exc:
                outcome.append(exc)
        accepted = [index for index, plan in enumerate(outcome) if not isinstance(plan, errors.GatewayError)]
        instances = {found[items[index][0]].process_instance_id for index in accepted}
        before = await self._tasks_in_instances(caller, instances, (WAITING,)) if instances else {}

        to_send = [index for index in accepted if outcome[index] is True]
        sent = await self._bounded(to_send, lambda index: self._finish_one(caller, *items[index]))
        for index, error in zip(to_send, sent, strict=True):
            if isinstance(error, errors.GatewayError):
                outcome[index] = error
        accepted = [index for index in accepted if not isinstance(outcome[index], errors.GatewayError)]
        done = {found[items[index][0]].process_instance_id for index in accepted}
        try:
            after = await self._tasks_in_instances(caller, done, (WAITING, "finished")) if done else {}
        except errors.GatewayError:
            after = {}  # the finishes happened; only the follow-up read failed

        results: list[FinishOutcome | errors.GatewayError] = []
        for (task_id, result), plan in zip(items, outcome, strict=True):
            if isinstance(plan, errors.GatewayError):
                results.append(plan)
                continue
            task = found[task_id]
            waiting_before = before.get(task.process_instance_id, [])
            instance_after = after.get(task.process_instance_id, [])
            finished = next((item for item in instance_after if item.id == task_id), None) or replace(
                task, state="finished", finished_by=caller.user_id, result=result
            )
            if plan:
                known = {item.id for item in waiting_before}
                appeared = [item for item in instance_after if item.state == WAITING and item.id not in known]
            else:  # a replay: what waits in the instance now
                appeared = waiting_before
            next_tasks = tuple(item for item in appeared if item.reserved_for in (None, caller.user_id))
            results.append(FinishOutcome(finished, next_tasks))
        return results

    # -- batches ---------------------------------------------------------------------------------------------

    def _check_ids_batch(self, task_ids: Sequence[str], owner_id: str | None = None) -> None:
        """The batch size, every id and the owner, all reported at once, before any item is sent."""
        problems = limits.Problems()
        if limits.batch_problem(len(task_ids), self.limits.max_batch_size, "/ids", problems):
            limits.task_id_problems(task_ids, "/ids", problems)
        limits.owner_problem(owner_id, problems)
        problems.raise_if_any()

    def drain(self) -> None:
        """The gateway is shutting down: batch items not sent yet are not sent (each answers ``SHUTTING_DOWN``)."""
        self._draining = True

    async def _bounded(self, items: Sequence[T], action: Callable[[T], Awaitable[Any]]) -> list[Any]:
        """Run ``action`` on every item, at most ``batch_concurrency`` at once; a GatewayError is that item's result.

        Once the gateway drains (:meth:`drain`), an item that has not been sent yet is answered ``SHUTTING_DOWN``
        instead: never sent, so a retry on another instance is safe; the items already sent are answered as usual.
        """
        gate = asyncio.Semaphore(self.limits.batch_concurrency)

        async def run(item: T) -> Any:
            async with gate:
                if self._draining:
                    return errors.ShuttingDown(
                        "The gateway is shutting down: this item was not sent to the engine. Send it again."
                    )
                try:
                    return await action(item)
                except errors.GatewayError as exc:
                    return exc

        return list(await asyncio.gather(*(run(item) for item in items)))

    async def reserve_many(
        self, caller: Caller, task_ids: Sequence[str], owner_id: str | None = None
    ) -> list[UserTask | errors.GatewayError]:
        self._check_ids_batch(task_ids, owner_id)
        before = await self._tasks_before_batch(caller, task_ids)
        return await self._bounded(
            task_ids, lambda task_id: self.reserve(caller, task_id, owner_id, before=before.get(task_id))
        )

    async def cancel_reservations(
        self, caller: Caller, task_ids: Sequence[str]
    ) -> list[UserTask | errors.GatewayError]:
        self._check_ids_batch(task_ids)
        before = await self._tasks_before_batch(caller, task_ids)
        return await self._bounded(
            task_ids, lambda task_id: self.cancel_reservation(caller, task_id, before=before.get(task_id))
        )

    async def _tasks_before_batch(self, caller: Caller, task_ids: Sequence[str]) -> dict[str, UserTask]:
        """The batch's tasks as they are before its writes, in one read (see :meth:`_write_then_read`). When it
        fails, each item reads its own (and fails alone: one result per item, as ever)."""
        try:
            return {task.id: task for task in await self.get_tasks(caller, task_ids) if task is not None}
        except errors.GatewayError:
            return {}
