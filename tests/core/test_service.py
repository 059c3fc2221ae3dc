"""TaskService against an in-memory engine: planning, paging, cursors, cache and batches, counted in engine calls."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

import pytest

from gateway.core import errors
from gateway.core.cache import ReadCache
from gateway.core.cursor import CursorCodec
from gateway.core.domain import (
    Caller,
    EnumValue,
    FormField,
    SortDirection,
    SortField,
    TaskFilter,
    TaskQuery,
    TaskSort,
    TokenOp,
    TokenPredicate,
)
from gateway.core.service import ServiceLimits, TaskService
from tests.core.fakes import BASE_TIME, FakeEngine, make_task

ALICE = Caller(user_id="alice", token="alice-token")
BOB = Caller(user_id="bob", token="bob-token")


def service_for(engine: FakeEngine, *, ttl: float = 60.0, **limits: int) -> TaskService:
    return TaskService(
        engine, ReadCache(ttl_seconds=ttl, max_entries=1000), CursorCodec(b"k" * 32), ServiceLimits(**limits)
    )


def ids(page: object) -> list[str]:
    return [task.id for task in page.nodes]  # type: ignore[attr-defined]


async def all_pages(service: TaskService, query: TaskQuery) -> list[str]:
    seen: list[str] = []
    after = None
    for _ in range(1000):
        page = await service.list_tasks(ALICE, replace(query, after=after))
        seen.extend(ids(page))
        if not page.has_next_page:
            return seen
        after = page.end_cursor
    raise AssertionError("paging never ended")


async def test_a_page_of_fifty_costs_one_engine_call() -> None:
    engine = FakeEngine([make_task(n) for n in range(200)])
    service = service_for(engine)
    page = await service.list_tasks(ALICE, TaskQuery(first=50))
    assert len(page.nodes) == 50
    assert page.total_count == 200
    assert page.has_next_page
    assert engine.calls == 1


async def test_paging_through_everything_visits_each_task_once_in_order() -> None:
    engine = FakeEngine([make_task(n) for n in range(57)])
    seen = await all_pages(service_for(engine), TaskQuery(first=10))
    assert seen == [f"task-{n:05d}" for n in range(57)]


async def test_descending_order_pages_backwards() -> None:
    engine = FakeEngine([make_task(n) for n in range(25)])
    query = TaskQuery(first=10, sort=(TaskSort(SortField.STARTED_AT, SortDirection.DESC),))
    assert await all_pages(service_for(engine), query) == [f"task-{n:05d}" for n in reversed(range(25))]


@pytest.mark.parametrize("residual", [False, True])
async def test_a_task_disappearing_before_the_cursor_neither_skips_nor_repeats(residual: bool) -> None:
    engine = FakeEngine([make_task(n) for n in range(30)])
    service = service_for(engine, ttl=0)
    task_filter = TaskFilter(search="approve") if residual else TaskFilter()
    first = await service.list_tasks(ALICE, TaskQuery(filter=task_filter, first=10))
    for gone in ("task-00002", "task-00005", "task-00009"):
        engine.tasks[gone] = replace(engine.tasks[gone], state="finished")
    second = await service.list_tasks(ALICE, TaskQuery(filter=task_filter, first=10, after=first.end_cursor))
    assert ids(second) == [f"task-{n:05d}" for n in range(10, 20)]
    assert second.total_count == 27


async def test_tasks_added_before_the_cursor_do_not_repeat_the_page() -> None:
    engine = FakeEngine([make_task(n) for n in range(30)])
    service = service_for(engine, ttl=0)
    first = await service.list_tasks(ALICE, TaskQuery(first=10))
    for n in range(100, 160):  # older tasks that appear late, sorting before the cursor
        engine.tasks[f"early-{n}"] = make_task(n, id=f"early-{n}", started_at=BASE_TIME - timedelta(days=1))
    second = await service.list_tasks(ALICE, TaskQuery(first=10, after=first.end_cursor))
    assert ids(second) == [f"task-{n:05d}" for n in range(10, 20)]


async def test_first_zero_answers_only_the_count() -> None:
    engine = FakeEngine([make_task(n) for n in range(7)])
    page = await service_for(engine).list_tasks(ALICE, TaskQuery(first=0))
    assert page.nodes == ()
    assert page.total_count == 7
    assert page.has_next_page


async def test_an_empty_result_has_no_cursor() -> None:
    page = await service_for(FakeEngine()).list_tasks(ALICE, TaskQuery(first=10))
    assert page.nodes == ()
    assert page.total_count == 0
    assert page.end_cursor is None
    assert not page.has_next_page


async def test_the_last_page_says_there_is_no_next_page() -> None:
    engine = FakeEngine([make_task(n) for n in range(15)])
    service = service_for(engine)
    first = await service.list_tasks(ALICE, TaskQuery(first=10))
    last = await service.list_tasks(ALICE, TaskQuery(first=10, after=first.end_cursor))
    assert len(last.nodes) == 5
    assert not last.has_next_page


@pytest.mark.parametrize("first", [-1, 101])
async def test_page_sizes_outside_the_limit_are_bad_requests(first: int) -> None:
    with pytest.raises(errors.BadRequest, match="between 0 and 100"):
        await service_for(FakeEngine()).list_tasks(ALICE, TaskQuery(first=first))


async def test_a_tampered_cursor_is_refused() -> None:
    engine = FakeEngine([make_task(n) for n in range(15)])
    service = service_for(engine)
    cursor = (await service.list_tasks(ALICE, TaskQuery(first=5))).end_cursor
    assert cursor is not None
    tampered = cursor[:-3] + ("AAA" if not cursor.endswith("AAA") else "BBB")
    with pytest.raises(errors.BadRequest, match="cursor"):
        await service.list_tasks(ALICE, TaskQuery(first=5, after=tampered))
    with pytest.raises(errors.BadRequest, match="another filter"):
        await service.list_tasks(ALICE, TaskQuery(first=5, after=cursor, filter=TaskFilter(search="x")))


async def test_token_predicates_filter_on_the_gateway() -> None:
    engine = FakeEngine([make_task(n) for n in range(20)])
    service = service_for(engine)
    query = TaskQuery(
        first=50,
        filter=TaskFilter(
            token=(
                TokenPredicate("amount", TokenOp.GTE, 1000),
                TokenPredicate("customerType", TokenOp.EQ, "vip"),
            )
        ),
    )
    page = await service.list_tasks(ALICE, query)
    assert ids(page) == [f"task-{n:05d}" for n in range(11, 20, 2)]
    assert page.total_count == 5


@pytest.mark.parametrize(
    ("predicate", "expected"),
    [
        (TokenPredicate("amount", TokenOp.LT, 300), [0, 1, 2]),
        (TokenPredicate("amount", TokenOp.IN, [100, 500]), [1, 5]),
        (TokenPredicate("customerType", TokenOp.CONTAINS, "VI"), [1, 3, 5]),
        (TokenPredicate("customerType", TokenOp.NE, "vip"), [0, 2, 4]),
        (TokenPredicate("missing", TokenOp.EXISTS, False), [0, 1, 2, 3, 4, 5]),
        (TokenPredicate("amount", TokenOp.EXISTS, None), [0, 1, 2, 3, 4, 5]),
        (TokenPredicate("amount", TokenOp.GT, "text"), []),
    ],
)
async def test_each_token_operator(predicate: TokenPredicate, expected: list[int]) -> None:
    engine = FakeEngine([make_task(n) for n in range(6)])
    page = await service_for(engine).list_tasks(ALICE, TaskQuery(first=50, filter=TaskFilter(token=(predicate,))))
    assert ids(page) == [f"task-{n:05d}" for n in expected]


async def test_reservation_date_and_text_filters() -> None:
    tasks = [make_task(n) for n in range(6)]
    tasks[1] = replace(tasks[1], reserved_for="alice")
    tasks[2] = replace(tasks[2], reserved_for="bob", name="Check invoice")
    service = service_for(FakeEngine(tasks))

    async def matching(task_filter: TaskFilter) -> list[str]:
        return ids(await service.list_tasks(ALICE, TaskQuery(first=50, filter=task_filter)))

    assert await matching(TaskFilter(reserved_for="alice")) == ["task-00001"]
    assert await matching(TaskFilter(reserved=True)) == ["task-00001", "task-00002"]
    assert len(await matching(TaskFilter(reserved=False))) == 4
    assert await matching(TaskFilter(search="INVOICE")) == ["task-00002"]
    after = BASE_TIME + timedelta(seconds=3)
    assert await matching(TaskFilter(started_after=after)) == ["task-00004", "task-00005"]
    assert await matching(TaskFilter(started_before=after)) == ["task-00000", "task-00001", "task-00002"]


async def test_sorting_on_several_keys_including_the_token() -> None:
    tasks = [make_task(n, token={"amount": n % 3, "n": n}) for n in range(6)]
    service = service_for(FakeEngine(tasks))
    query = TaskQuery(
        first=50,
        sort=(
            TaskSort(SortField.TOKEN, SortDirection.DESC, token_path="amount"),
            TaskSort(SortField.STARTED_AT, SortDirection.ASC),
        ),
    )
    page = await service.list_tasks(ALICE, query)
    assert [task.token["n"] for task in page.nodes] == [2, 5, 1, 4, 0, 3]


async def test_a_residual_filter_over_too_many_candidates_is_refused() -> None:
    engine = FakeEngine([make_task(n) for n in range(30)])
    service = service_for(engine, residual_scan_limit=20, scan_page_size=10)
    with pytest.raises(errors.QueryTooComplex, match="30 tasks"):
        await service.list_tasks(ALICE, TaskQuery(filter=TaskFilter(search="x")))


async def test_a_residual_filter_costs_one_call_per_scan_page() -> None:
    engine = FakeEngine([make_task(n) for n in range(1000)])
    service = service_for(engine)
    query = TaskQuery(first=50, filter=TaskFilter(token=(TokenPredicate("amount", TokenOp.EQ, 50000),)))
    page = await service.list_tasks(ALICE, query)
    assert ids(page) == ["task-00500"]
    assert engine.calls == 2  # 1000 candidates / 500 per scan page


async def test_twenty_identical_concurrent_queries_cost_one_engine_call() -> None:
    engine = FakeEngine([make_task(n) for n in range(100)])
    engine.delay = 0.01
    service = service_for(engine)
    pages = await asyncio.gather(*(service.list_tasks(ALICE, TaskQuery(first=50)) for _ in range(20)))
    assert {tuple(ids(page)) for page in pages} == {tuple(ids(pages[0]))}
    assert engine.calls == 1


async def test_cached_reads_are_per_caller() -> None:
    engine = FakeEngine([make_task(n) for n in range(5)])
    service = service_for(engine)
    await service.list_tasks(ALICE, TaskQuery(first=5))
    await service.list_tasks(ALICE, TaskQuery(first=5))
    await service.list_tasks(BOB, TaskQuery(first=5))
    assert engine.calls == 2


async def test_a_caller_reads_its_own_writes() -> None:
    engine = FakeEngine([make_task(n) for n in range(5)])
    service = service_for(engine)
    before = await service.list_tasks(ALICE, TaskQuery(first=10))
    assert before.nodes[0].reserved_for is None
    await service.reserve(ALICE, "task-00000")
    after = await service.list_tasks(ALICE, TaskQuery(first=10))
    assert after.nodes[0].reserved_for == "alice"


async def test_lookups_by_id_come_back_in_the_order_asked_with_gaps() -> None:
    engine = FakeEngine([make_task(n) for n in range(5)])
    found = await service_for(engine).get_tasks(ALICE, ["task-00003", "nope", "task-00001"])
    assert [task.id if task else None for task in found] == ["task-00003", None, "task-00001"]
    assert engine.calls == 1


async def test_finish_returns_the_finished_task_and_the_next_tasks() -> None:
    engine = FakeEngine([make_task(1)])
    outcome = await service_for(engine).finish(ALICE, "task-00001", {"approved": True})
    assert outcome.task.state == "finished"
    assert outcome.task.finished_by == "alice"
    assert [task.id for task in outcome.next_tasks] == ["task-00001-next"]


async def test_finish_checks_the_result_against_the_form_before_the_engine_sees_it() -> None:
    fields = (
        FormField(id="approved", label="Approved", type="boolean"),
        FormField(id="priority", label="Priority", type="enum", enum_values=(EnumValue("low", "Low"),)),
        FormField(id="count", label="Count", type="long"),
    )
    engine = FakeEngine([make_task(1, form_fields=fields)])
    with pytest.raises(errors.InvalidTaskResult) as raised:
        await service_for(engine).finish(ALICE, "task-00001", {"approved": "yes", "priority": "urgent", "count": 1.5})
    assert [problem.field for problem in raised.value.problems] == ["approved", "priority", "count"]
    assert engine.finished == []


async def test_finish_of_a_non_object_result_is_invalid() -> None:
    engine = FakeEngine([make_task(1)])
    with pytest.raises(errors.InvalidTaskResult, match="must be an object"):
        await service_for(engine).finish(ALICE, "task-00001", [1, 2])


async def test_finishing_a_task_reserved_for_someone_else_is_refused() -> None:
    engine = FakeEngine([make_task(1, reserved_for="bob")])
    with pytest.raises(errors.TaskReservedByOtherUser) as raised:
        await service_for(engine).finish(ALICE, "task-00001", {"approved": True})
    assert raised.value.reserved_for == "bob"


async def test_finishing_twice_with_the_same_result_replays_and_otherwise_is_not_active() -> None:
    engine = FakeEngine([make_task(1)])
    service = service_for(engine)
    await service.finish(ALICE, "task-00001", {"approved": True})
    replay = await service.finish(ALICE, "task-00001", {"approved": True})
    assert replay.task.state == "finished"  # a replay: the engine is not asked to finish it again
    assert engine.finished == [("task-00001", {"approved": True})]
    with pytest.raises(errors.TaskNotActive, match="finished"):
        await service.finish(ALICE, "task-00001", {"approved": False})
    with pytest.raises(errors.TaskNotActive):
        await service.finish(BOB, "task-00001", {"approved": True})


async def test_reserving_an_unknown_or_finished_task_says_which() -> None:
    engine = FakeEngine([make_task(1, state="finished")])
    service = service_for(engine)
    with pytest.raises(errors.TaskNotFound):
        await service.reserve(ALICE, "nope")
    with pytest.raises(errors.TaskNotActive):
        await service.reserve(ALICE, "task-00001")


async def test_a_batch_answers_each_item_in_order_and_one_failure_hides_nothing() -> None:
    engine = FakeEngine([make_task(n) for n in range(3)] + [make_task(9, reserved_for="bob")])
    outcomes = await service_for(engine).finish_many(
        ALICE,
        [
            ("task-00000", {"approved": True}),
            ("nope", {}),
            ("task-00009", {}),
            ("task-00002", {"approved": False}),
        ],
    )
    assert [type(outcome).__name__ for outcome in outcomes] == [
        "FinishOutcome",
        "TaskNotFound",
        "TaskReservedByOtherUser",
        "FinishOutcome",
    ]


async def test_a_batch_over_the_limit_is_refused() -> None:
    with pytest.raises(errors.BadRequest, match="at most 2"):
        await service_for(FakeEngine(), max_batch_size=2).reserve_many(ALICE, ["a", "b", "c"])


async def test_batch_items_run_concurrently_under_the_bound() -> None:
    engine = FakeEngine([make_task(n) for n in range(20)])
    engine.delay = 0.01
    running = 0
    peak = 0
    original = engine.reserve

    async def counting_reserve(caller: Caller, task_id: str, owner_id: str) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        try:
            await original(caller, task_id, owner_id)
        finally:
            running -= 1

    engine.reserve = counting_reserve  # type: ignore[method-assign]
    await service_for(engine, batch_concurrency=4).reserve_many(ALICE, [f"task-{n:05d}" for n in range(20)])
    assert peak == 4


async def test_a_date_without_a_time_zone_is_read_as_utc() -> None:
    engine = FakeEngine([make_task(n) for n in range(6)])
    naive = (BASE_TIME + timedelta(seconds=3)).replace(tzinfo=None)
    page = await service_for(engine).list_tasks(ALICE, TaskQuery(first=50, filter=TaskFilter(started_after=naive)))
    assert ids(page) == ["task-00004", "task-00005"]


async def test_a_batch_finish_costs_one_call_per_item_and_three_reads() -> None:
    engine = FakeEngine([make_task(n) for n in range(20)])
    outcomes = await service_for(engine).finish_many(ALICE, [(f"task-{n:05d}", {"approved": True}) for n in range(20)])
    assert all(outcome.task.state == "finished" for outcome in outcomes)  # type: ignore[union-attr]
    assert [[task.id for task in outcome.next_tasks] for outcome in outcomes] == [  # type: ignore[union-attr]
        [f"task-{n:05d}-next"] for n in range(20)
    ]
    assert engine.calls == 20 + 3


# -- input limits (gateway.core.limits), applied before any engine call -----------------------------------------------


@pytest.mark.parametrize(
    ("query", "field"),
    [
        (TaskQuery(filter=TaskFilter(token=(TokenPredicate("amount", TokenOp.GT, 1),) * 20_000)), "token"),
        (TaskQuery(sort=(TaskSort(SortField.TOKEN, token_path="amount"),) * 300), "sort"),
        (TaskQuery(filter=TaskFilter(ids=("x" * 70_000,))), "id"),
        (TaskQuery(filter=TaskFilter(process_model_ids=("M" * 300,))), "processModelId"),
        (TaskQuery(filter=TaskFilter(token=(TokenPredicate("a", TokenOp.EQ, float("inf")),))), "token"),
    ],
)
async def test_a_query_over_a_limit_is_refused_before_the_engine_is_asked(query: TaskQuery, field: str) -> None:
    engine = FakeEngine([make_task(n) for n in range(3)])
    with pytest.raises(errors.BadRequest) as raised:
        await service_for(engine).list_tasks(ALICE, query)
    assert [problem.field for problem in raised.value.problems] == [field]  # type: ignore[attr-defined]
    assert engine.calls == 0


async def test_task_actions_refuse_odd_ids_and_oversized_results_before_the_engine_is_asked() -> None:
    engine = FakeEngine([make_task(1)])
    service = service_for(engine)
    deep: object = 1
    for _ in range(40):
        deep = [deep]
    attempts = [
        service.get_tasks(ALICE, ["a b"]),
        service.reserve(ALICE, "x" * 201),
        service.reserve(ALICE, "task-00001", owner_id=""),
        service.cancel_reservation(ALICE, "../etc"),
        service.finish(ALICE, "task-00001", {"deep": deep}),
        service.finish_many(ALICE, [("task-00001", {}), ("a b", {})]),
        service.reserve_many(ALICE, ["task-00001", "a b"]),
    ]
    for attempt in attempts:
        with pytest.raises(errors.BadRequest):
            await attempt
    assert engine.calls == 0


async def test_in_keeps_its_typed_equality_with_a_set_lookup() -> None:
    tasks = [make_task(n, token={"v": value}) for n, value in enumerate([1, 1.0, True, "1", None, [1], {"a": 1}])]
    service = service_for(FakeEngine(tasks))
    predicate = TokenPredicate("v", TokenOp.IN, [1, [1], {"a": 1}, *range(2, 500)])
    page = await service.list_tasks(ALICE, TaskQuery(first=50, filter=TaskFilter(token=(predicate,))))
    assert [task.token["v"] for task in page.nodes] == [1, 1.0, [1], {"a": 1}]
