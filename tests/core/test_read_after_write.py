"""The service's one rule for a write followed by a read (issue 15): a failed read never fails a done write."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from gateway.core import errors
from gateway.core.domain import Caller, UserTask
from tests.core.fakes import FakeEngine, make_task
from tests.core.test_service import service_for

ANN = Caller("ann")


class ReadsFailAfterAWrite(FakeEngine):
    """Every read after the first write fails as an engine that went away would."""

    def __init__(self, tasks: Sequence[UserTask], failure: errors.GatewayError) -> None:
        super().__init__(tasks)
        self.failure = failure
        self.wrote = False

    async def tasks_by_ids(self, caller: Caller, ids: Sequence[str]) -> list[UserTask]:
        if self.wrote:
            raise self.failure
        return await super().tasks_by_ids(caller, ids)

    async def reserve(self, caller: Caller, task_id: str, owner_id: str) -> None:
        await super().reserve(caller, task_id, owner_id)
        self.wrote = True

    async def cancel_reservation(self, caller: Caller, task_id: str) -> None:
        await super().cancel_reservation(caller, task_id)
        self.wrote = True


FAILURES = [
    errors.EngineUnavailable("gone"),
    errors.EngineTimeout("slow"),
    errors.EngineFailure("cut short"),
]


@pytest.mark.parametrize("failure", FAILURES, ids=lambda failure: failure.code)
async def test_reserve_and_cancel_answer_the_task_with_their_change(failure: errors.GatewayError) -> None:
    engine = ReadsFailAfterAWrite([make_task(1)], failure)
    service = service_for(engine, ttl=0)
    reserved = await service.reserve(ANN, "task-00001", "bob")
    assert reserved.reserved_for == "bob"
    assert engine.tasks["task-00001"].reserved_for == "bob"
    engine.wrote = False
    cancelled = await service.cancel_reservation(ANN, "task-00001")
    assert cancelled.reserved_for is None
    assert cancelled.id == "task-00001"


async def test_a_batch_reads_its_tasks_once_before_and_answers_each_write() -> None:
    engine = ReadsFailAfterAWrite([make_task(1), make_task(2)], errors.EngineUnavailable("gone"))
    service = service_for(engine, ttl=0)
    results = await service.reserve_many(ANN, ["task-00001", "task-00002", "task-09999"], "bob")
    assert [getattr(result, "reserved_for", None) for result in results[:2]] == ["bob", "bob"]
    assert isinstance(results[2], errors.TaskNotFound)


async def test_when_the_read_before_fails_nothing_is_written() -> None:
    engine = ReadsFailAfterAWrite([make_task(1)], errors.EngineUnavailable("gone"))
    engine.wrote = True  # every read fails from the start
    service = service_for(engine, ttl=0)
    with pytest.raises(errors.EngineUnavailable):
        await service.reserve(ANN, "task-00001", "bob")
    assert engine.tasks["task-00001"].reserved_for is None


async def test_a_refusal_stays_the_refusal_when_the_read_explaining_it_fails() -> None:
    engine = ReadsFailAfterAWrite([make_task(1, state="finished")], errors.EngineUnavailable("gone"))
    service = service_for(engine, ttl=0)
    original = engine.reserve

    async def refuse_then_fail(caller: Caller, task_id: str, owner_id: str) -> None:
        engine.wrote = True  # the read that would tell "not active" fails
        await original(caller, task_id, owner_id)

    engine.reserve = refuse_then_fail  # type: ignore[method-assign]
    with pytest.raises(errors.TaskNotFound):
        await service.reserve(ANN, "task-00001", "bob")
