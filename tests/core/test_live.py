"""Live task lists in the core: the change log, the hub, events and the change feed per subscriber, shared live lists.

Against the in-memory engine, so costs are stated in engine calls: a change costs one read per distinct caller
(not per subscriber), a live list one refresh per change (not per subscriber), a change elsewhere nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest

from gateway.core import errors
from gateway.core.cache import ReadCache
from gateway.core.changes import ChangeKind, ChangeLog, EngineChange, StreamConnected
from gateway.core.cursor import CursorCodec
from gateway.core.domain import Caller, TaskFilter, TaskQuery
from gateway.core.hub import ChangeHub, Gap, HubLimits
from gateway.core.live import LiveService, TaskEvent
from gateway.core.live_lists import ListChanges, ListSnapshot, LiveLists
from gateway.core.service import ServiceLimits, TaskService
from tests.core.fakes import FakeEngine, make_task

T = TypeVar("T")

ALICE = Caller(user_id="alice", token="alice-token")
BOB = Caller(user_id="bob", token="bob-token")
ANY_STATE = TaskFilter(states=())


class Live:
    """A service, hub, live service and live lists over one fake engine, as the app wires them."""

    def __init__(self, engine: FakeEngine, *, min_interval: float = 0.0, **limits: int) -> None:
        self.engine = engine
        self.cache = ReadCache(ttl_seconds=60, max_entries=1000)
        self.service = TaskService(engine, self.cache, CursorCodec(b"k" * 32), ServiceLimits())
        self.hub = ChangeHub(invalidate=self.cache.invalidate, limits=HubLimits(**limits))
        self.live = LiveService(self.service, self.hub)
        self.lists = LiveLists(self.service, self.hub, min_interval=min_interval)

    def change(self, kind: ChangeKind, task_id: str, **fields: Any) -> None:
        """The engine changed a task (the fake's state is updated by the caller) and says so."""
        task = self.engine.tasks[task_id]
        self.hub.publish(
            EngineChange(
                kind,
                task_id,
                process_instance_id=task.process_instance_id,
                process_model_id=task.process_model_id,
                flow_node_id=task.flow_node_id,
                lane=task.lane,
                **fields,
            )
        )

    def finish(self, task_id: str) -> None:
        self.engine.tasks[task_id] = replace(self.engine.tasks[task_id], state="finished")
        self.change(ChangeKind.FINISHED, task_id)


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def take(stream: AsyncIterator[T], count: int) -> list[T]:
    return [await asyncio.wait_for(anext(stream), 5) for _ in range(count)]


async def nothing_more(stream: AsyncIterator[Any]) -> bool:
    try:
        await asyncio.wait_for(anext(stream), 0.05)
    except TimeoutError:
        return True
    return False


# -- the change log: resumable event ids ---------------------------------------------------------------------


def test_event_ids_resume_within_the_buffer_and_say_when_they_cannot() -> None:
    log = ChangeLog(capacity=3, epoch="0000abcd")
    start = log.head
    ids = [log.append(EngineChange(ChangeKind.WAITING, f"t{n}")).event_id for n in range(5)]
    assert ids == [f"0000abcd-{n}" for n in range(1, 6)]
    assert [change.task_id for change in log.after(ids[1])] == ["t2", "t3", "t4"]
    assert log.after(ids[-1]) == []
    with pytest.raises(errors.ChangesExpired):  # t1 is gone from a buffer of three
        log.after(start)
    with pytest.raises(errors.ChangesExpired, match="another gateway process"):
        log.after("ffffffff-2")
    with pytest.raises(errors.BadRequest):
        log.after("0000abcd-99")
    with pytest.raises(errors.BadRequest):
        log.after("yesterday")


# -- the hub -------------------------------------------------------------------------------------------------


async def test_a_change_invalidates_the_read_cache_before_anyone_hears_of_it() -> None:
    live = Live(FakeEngine([make_task(1)]))
    await live.service.list_tasks(ALICE, TaskQuery())
    await live.service.list_tasks(ALICE, TaskQuery())
    assert live.engine.calls == 1  # cached
    live.finish("task-00001")
    page = await live.service.list_tasks(ALICE, TaskQuery())
    assert live.engine.calls == 2
    assert page.total_count == 0


async def test_a_slow_subscriber_is_ended_and_never_holds_up_the_others() -> None:
    live = Live(FakeEngine([make_task(n) for n in range(10)]), queue_size=3)
    slow = live.hub.subscribe(ALICE)
    fast = live.hub.subscribe(BOB)
    for n in range(5):
        live.change(ChangeKind.RESERVED, f"task-{n:05d}")
        assert len(await fast.next_batch()) == 1
    with pytest.raises(errors.SlowConsumer):
        await slow.next_batch()
    assert live.hub.subscription_count == 1


async def test_subscriptions_are_limited_per_caller_and_in_all() -> None:
    live = Live(FakeEngine(), per_caller=2, total=3)
    first = live.hub.subscribe(ALICE)
    live.hub.subscribe(ALICE)
    with pytest.raises(errors.TooManySubscriptions, match="alice"):
        live.hub.subscribe(ALICE)
    live.hub.subscribe(BOB)
    with pytest.raises(errors.TooManySubscriptions, match="maximum of 3"):
        live.hub.subscribe(Caller(user_id="carol"))
    first.close()
    live.hub.subscribe(ALICE)  # a closed subscription frees its slot


async def test_a_subscription_ends_when_its_token_expires() -> None:
    live = Live(FakeEngine())
    soon = Caller(user_id="alice", token="t", expires_at=datetime.now(UTC) + timedelta(milliseconds=50))
    subscription = live.hub.subscribe(soon)
    with pytest.raises(errors.TokenExpired):
        await subscription.next_batch()


async def test_shutting_down_ends_every_subscription_and_refuses_new_ones() -> None:
    live = Live(FakeEngine([make_task(1)]))
    events = live.live.task_events(ALICE, ANY_STATE)
    waiting = asyncio.ensure_future(anext(events))
    await settle()
    live.hub.close()
    with pytest.raises(errors.ShuttingDown):
        await waiting
    with pytest.raises(errors.ShuttingDown):
        live.hub.subscribe(ALICE)


async def test_a_reconnect_of_the_engine_stream_is_told_as_a_gap() -> None:
    live = Live(FakeEngine([make_task(1)]))
    events = live.live.task_events(ALICE, ANY_STATE)
    first = asyncio.ensure_future(anext(events))
    await settle()

    async def engine_stream() -> AsyncIterator[EngineChange | StreamConnected]:
        yield StreamConnected("socketio")  # the first connect: nothing missed
        yield EngineChange(ChangeKind.RESERVED, "task-00001")
        yield StreamConnected("socketio")  # dropped and back: something may be missed

    await live.hub.run(engine_stream())
    event = await first
    assert isinstance(event, TaskEvent)
    assert event.kind is ChangeKind.RESERVED
    gap = await asyncio.wait_for(anext(events), 5)
    assert isinstance(gap, Gap)
    assert gap.after == event.event_id
    assert live.hub.gaps == 1
    await events.aclose()


# -- events, as each subscriber may see them -----------------------------------------------------------------


async def test_each_subscriber_sees_only_the_tasks_its_own_token_may_see() -> None:
    engine = FakeEngine(
        [make_task(1, lane="Approver"), make_task(2, lane="Clerk"), make_task(3)],
        lanes={"alice": frozenset({"Approver"}), "bob": frozenset({"Clerk"})},
    )
    live = Live(engine)
    alice, bob = live.live.task_events(ALICE, ANY_STATE), live.live.task_events(BOB, ANY_STATE)
    pending = [asyncio.ensure_future(anext(alice)), asyncio.ensure_future(anext(bob))]
    await settle()
    for task_id in ("task-00001", "task-00002", "task-00003"):
        live.change(ChangeKind.RESERVED, task_id)
    seen_by_alice = [await pending[0], *await take(alice, 1)]
    seen_by_bob = [await pending[1], *await take(bob, 1)]
    assert [event.task.id for event in seen_by_alice if isinstance(event, TaskEvent)] == ["task-00001", "task-00003"]
    assert [event.task.id for event in seen_by_bob if isinstance(event, TaskEvent)] == ["task-00002", "task-00003"]
    assert await nothing_more(alice)
    assert await nothing_more(bob)
    await alice.aclose()
    await bob.aclose()


async def test_a_thousand_subscriptions_of_one_caller_cost_one_read_per_change() -> None:
    live = Live(FakeEngine([make_task(1)]), per_caller=1000)
    streams = [live.live.task_events(ALICE, ANY_STATE) for _ in range(1000)]
    pending = [asyncio.ensure_future(anext(stream)) for stream in streams]
    await settle()
    live.change(ChangeKind.RESERVED, "task-00001")
    events = await asyncio.gather(*pending)
    assert {event.task.id for event in events if isinstance(event, TaskEvent)} == {"task-00001"}
    assert live.engine.calls == 1
    for stream in streams:
        await stream.aclose()
    assert live.hub.subscription_count == 0


async def test_a_change_the_event_places_outside_the_filter_costs_no_engine_read() -> None:
    live = Live(FakeEngine([make_task(1), make_task(2, process_model_id="Leave")]))
    approvals = live.live.task_events(ALICE, TaskFilter(states=(), process_model_ids=("ApprovalProcess",)))
    waiting = asyncio.ensure_future(anext(approvals))
    await settle()
    live.change(ChangeKind.RESERVED, "task-00002")
    await settle()
    assert live.engine.calls == 0
    live.change(ChangeKind.RESERVED, "task-00001")
    event = await waiting
    assert isinstance(event, TaskEvent)
    assert event.task.id == "task-00001"
    assert live.engine.calls == 1
    await approvals.aclose()


async def test_events_filter_on_the_task_as_it_is_now_in_any_state_and_resume_after_an_id() -> None:
    live = Live(FakeEngine([make_task(1), make_task(2, process_model_id="Leave")]))
    mark = live.live.head
    live.change(ChangeKind.RESERVED, "task-00002")
    live.finish("task-00001")
    only_approvals = TaskFilter(states=(), process_model_ids=("ApprovalProcess",))
    resumed = live.live.task_events(ALICE, only_approvals, after=mark)
    [event] = await take(resumed, 1)
    assert isinstance(event, TaskEvent)
    assert (event.kind, event.task.id, event.task.state) == (ChangeKind.FINISHED, "task-00001", "finished")
    await resumed.aclose()
    with pytest.raises(errors.ChangesExpired):
        await anext(live.live.task_events(ALICE, ANY_STATE, after="00000000-1"))


async def test_a_process_that_ends_reports_the_tasks_it_terminated() -> None:
    engine = FakeEngine([make_task(1), make_task(2)])
    live = Live(engine)
    events = live.live.task_events(ALICE, ANY_STATE)
    waiting = asyncio.ensure_future(anext(events))
    await settle()
    engine.tasks["task-00001"] = replace(engine.tasks["task-00001"], state="terminated")
    live.hub.publish(EngineChange(ChangeKind.TERMINATED, None, process_instance_id="pi-00001"))
    event = await waiting
    assert isinstance(event, TaskEvent)
    assert (event.kind, event.task.id) == (ChangeKind.TERMINATED, "task-00001")
    await events.aclose()


async def test_many_ended_processes_are_read_in_chunks_that_fit_a_url() -> None:
    engine = FakeEngine([make_task(n, state="terminated") for n in range(120)])
    live = Live(engine)
    start = live.live.head
    for n in range(120):
        live.hub.publish(EngineChange(ChangeKind.TERMINATED, None, process_instance_id=f"pi-{n:05d}"))
    page = await live.live.changes(ALICE, TaskFilter(), start, 200)
    assert len(page.changes) == 120
    assert all(entry.removed for entry in page.changes)
    assert engine.calls == 3  # 50 instances per engine query


# -- the change feed -----------------------------------------------------------------------------------------


async def test_the_change_feed_gives_each_task_once_as_it_is_now_or_a_removal_marker() -> None:
    engine = FakeEngine(
        [make_task(n) for n in range(1, 5)] + [make_task(9, lane="Clerk")], lanes={"alice": frozenset()}
    )
    live = Live(engine)
    start = (await live.live.changes(ALICE, TaskFilter(), None, 100)).cursor
    live.change(ChangeKind.RESERVED, "task-00001")
    live.finish("task-00001")
    live.change(ChangeKind.RESERVED, "task-00009")  # a lane alice may not see: not even its id reaches her
    live.change(ChangeKind.RESERVED, "task-00002")
    live.change(ChangeKind.RESERVED, "task-00003")
    page = await live.live.changes(ALICE, TaskFilter(), start, 3)
    assert [(entry.task_id, entry.removed) for entry in page.changes] == [("task-00001", True)]
    assert page.has_more
    rest = await live.live.changes(ALICE, TaskFilter(), page.cursor, 3)
    assert [(entry.task_id, entry.kind, entry.removed) for entry in rest.changes] == [
        ("task-00002", ChangeKind.RESERVED, False),
        ("task-00003", ChangeKind.RESERVED, False),
    ]
    assert not rest.has_more
    assert (await live.live.changes(ALICE, TaskFilter(), rest.cursor, 3)).changes == ()


async def test_a_task_that_never_was_in_the_list_gets_no_removal_marker() -> None:
    live = Live(FakeEngine([make_task(1), make_task(2, process_model_id="Leave")]))
    start = live.live.head
    live.finish("task-00001")
    live.finish("task-00002")
    approvals = TaskFilter(process_model_ids=("ApprovalProcess",))
    page = await live.live.changes(ALICE, approvals, start, 10)
    assert [(entry.task_id, entry.removed) for entry in page.changes] == [("task-00001", True)]


# -- live lists ----------------------------------------------------------------------------------------------


async def test_a_live_list_sends_its_page_then_what_changed_with_positions() -> None:
    live = Live(FakeEngine([make_task(n) for n in range(1, 6)]))
    stream = live.lists.watch(ALICE, TaskQuery(first=3))
    [snapshot] = await take(stream, 1)
    assert isinstance(snapshot, ListSnapshot)
    assert [task.id for task in snapshot.tasks] == ["task-00001", "task-00002", "task-00003"]
    assert snapshot.total_count == 5
    live.finish("task-00002")
    [changes] = await take(stream, 1)
    assert isinstance(changes, ListChanges)
    assert changes.removed == ("task-00002",)
    assert [(item.index, item.task.id) for item in changes.added] == [(2, "task-00004")]
    assert changes.order == ("task-00001", "task-00003", "task-00004")
    assert changes.total_count == 4
    engine_calls = live.engine.calls
    live.change(ChangeKind.RESERVED, "task-00005")  # off the page, still in the list: the count stays, no message
    assert await nothing_more(stream)
    assert live.engine.calls == engine_calls + 1
    await stream.aclose()
    assert live.lists.distinct_lists == 0


async def test_a_thousand_subscribers_of_one_list_cost_one_refresh_per_change() -> None:
    live = Live(FakeEngine([make_task(n) for n in range(1, 6)]), per_caller=1000)
    streams = [live.lists.watch(ALICE, TaskQuery(first=3)) for _ in range(1000)]
    for stream in streams:
        await take(stream, 1)
    assert live.engine.calls == 1
    assert live.lists.distinct_lists == 1
    live.finish("task-00001")
    updates = await asyncio.gather(*(take(stream, 1) for stream in streams))
    assert all(isinstance(update, ListChanges) for [update] in updates)
    assert live.engine.calls == 2
    for stream in streams:
        await stream.aclose()


async def test_a_burst_of_finishes_is_one_message_and_a_change_elsewhere_costs_nothing() -> None:
    tasks = [make_task(n) for n in range(1, 101)] + [make_task(200, process_model_id="Leave")]
    live = Live(FakeEngine(tasks), min_interval=0.05)
    stream = live.lists.watch(ALICE, TaskQuery(filter=TaskFilter(process_model_ids=("ApprovalProcess",)), first=10))
    await take(stream, 1)
    calls = live.engine.calls
    live.change(ChangeKind.RESERVED, "task-00200")  # another process model: this list cannot change
    await asyncio.sleep(0.1)
    assert live.engine.calls == calls
    for n in range(1, 101):
        live.finish(f"task-{n:05d}")
    [update] = await take(stream, 1)
    assert isinstance(update, ListChanges)
    assert update.total_count == 0
    assert len(update.removed) == 10
    assert await nothing_more(stream)
    assert live.engine.calls == calls + 1
    await stream.aclose()


async def test_after_a_gap_a_live_list_says_so_and_sends_the_page_again() -> None:
    live = Live(FakeEngine([make_task(1)]))
    stream = live.lists.watch(ALICE, TaskQuery())
    await take(stream, 1)
    live.hub.gap("the engine stream was interrupted")
    gap, snapshot = await take(stream, 2)
    assert isinstance(gap, Gap)
    assert isinstance(snapshot, ListSnapshot)
    assert snapshot.reason == "RESYNC"
    assert [task.id for task in snapshot.tasks] == ["task-00001"]
    await stream.aclose()
