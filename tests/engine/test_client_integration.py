"""UserTaskClient against the embedded engine on loopback: real HTTP, real Socket.IO."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import pytest

from gateway.engine import (
    AuthenticationError,
    BadRequestError,
    ConflictError,
    EngineUnavailableError,
    NotFoundError,
    RetryPolicy,
    UnauthorizedError,
    UserTaskClient,
    UserTaskEvent,
)
from tests.conftest import EXAMPLES
from tests.servers import EngineServer

from ._engine import APPROVAL, finished, result_of, start_approvals, wait_for_tasks

pytestmark = pytest.mark.integration


@pytest.fixture
async def client(approval_engine: EngineServer) -> AsyncIterator[UserTaskClient]:
    async with UserTaskClient(approval_engine.url) as client:
        yield client


async def test_a_started_process_shows_its_user_task_with_seed_keys_and_engine_fields(
    client: UserTaskClient,
) -> None:
    token = {"amount": 1500, "customerType": "vip", "customerId": "C-1"}
    started = await client.start_process_instance(APPROVAL, initial_token=token, correlation_id="corr-42")
    tasks = await wait_for_tasks(client, [started["processInstanceId"]])
    assert len(tasks) == 1
    task = tasks[0]
    assert task["processInstanceId"] == started["processInstanceId"]
    assert task["processModelId"] == APPROVAL
    assert task["token"] == token
    assert task["reservedFor"] is None
    assert task["userTaskInstanceId"] == task["flowNodeInstanceId"]
    assert task["flowNodeName"] == "Approve order"
    assert task["correlationId"] == "corr-42"
    assert task["state"] == "suspended"
    assert task["flowNodeType"] == "bpmn:UserTask"
    assert isinstance(task["startedAt"], str)
    assert {"approved", "comment"} <= {f["id"] for f in task["formFields"]}


async def test_filters_paging_and_count_are_done_by_the_engine(client: UserTaskClient) -> None:
    ids = await start_approvals(client, [{"amount": i} for i in range(5)], correlation_id="batch-1")
    await start_approvals(client, [{"amount": 99}], correlation_id="other")
    page = await client.query_user_tasks(correlation_id="batch-1", limit=2, offset=1, sort_by="flowNodeInstanceId")
    assert page.total_count == 5
    assert [t["userTaskInstanceId"] for t in page.items] == sorted(ids)[1:3]
    assert await client.count_user_tasks(correlation_id=["batch-1", "other"]) == 6
    walked = [t["userTaskInstanceId"] async for t in client.iter_user_tasks(correlation_id="batch-1", page_size=2)]
    assert sorted(walked) == sorted(ids)
    desc = await client.get_user_tasks(correlation_id="batch-1", sort_by="flowNodeInstanceId", sort_dir="DESC")
    assert [t["userTaskInstanceId"] for t in desc] == sorted(ids, reverse=True)
    one = await client.get_user_tasks(flow_node_instance_id=ids[0])
    assert [t["userTaskInstanceId"] for t in one] == [ids[0]]
    assert await client.get_user_tasks(process_model_id="NoSuchModel") == []


async def test_get_user_tasks_by_ids_is_one_engine_call(client: UserTaskClient) -> None:
    ids = await start_approvals(client, [{"amount": i} for i in range(4)])
    before = client.request_count
    tasks = await client.get_user_tasks_by_ids([*ids, "no-such-task"])
    assert client.request_count == before + 1
    assert sorted(t["userTaskInstanceId"] for t in tasks) == sorted(ids)


async def test_reserve_and_cancel_reservation_change_reserved_for(client: UserTaskClient) -> None:
    (task_id,) = await start_approvals(client, [{"amount": 1}])
    await client.reserve_user_task(task_id, "user@example.com")
    assert (await client.get_user_task(task_id))["reservedFor"] == "user@example.com"
    with pytest.raises(ConflictError) as caught:
        await client.reserve_user_task(task_id, "other@example.com")
    assert caught.value.status == 409
    assert caught.value.message
    await client.cancel_reservation_user_task(task_id)
    assert (await client.get_user_task(task_id))["reservedFor"] is None


async def test_finish_stores_the_result_and_a_second_finish_is_not_found(client: UserTaskClient) -> None:
    (task_id,) = await start_approvals(client, [{"amount": 1}])
    await client.finish_user_task(task_id, {"approved": True, "comment": "ok"})
    assert result_of(await finished(client, task_id)) == {"approved": True, "comment": "ok"}
    with pytest.raises(NotFoundError):
        await client.finish_user_task(task_id, {"approved": True})
    assert task_id not in {t["userTaskInstanceId"] for t in await client.get_user_tasks()}


async def test_finish_of_a_task_reserved_by_someone_else_is_a_conflict(client: UserTaskClient) -> None:
    (task_id,) = await start_approvals(client, [{"amount": 1}])
    await client.reserve_user_task(task_id, "someone-else@example.com")
    with pytest.raises(ConflictError):
        await client.finish_user_task(task_id, {"approved": True})


async def test_unknown_task_is_not_found_for_reads_and_actions(client: UserTaskClient) -> None:
    with pytest.raises(NotFoundError):
        await client.get_user_task("no-such-task")
    with pytest.raises(NotFoundError):
        await client.reserve_user_task("no-such-task", "user@example.com")
    with pytest.raises(NotFoundError):
        await client.cancel_reservation_user_task("no-such-task")


async def test_a_result_that_is_not_an_object_is_a_bad_request(client: UserTaskClient) -> None:
    (task_id,) = await start_approvals(client, [{"amount": 1}])
    with pytest.raises(BadRequestError):
        await client.finish_user_task(task_id, [1, 2])  # type: ignore[arg-type]
    await client.get_user_task(task_id)


async def test_the_parallel_pattern_finishes_every_task_exactly_once(client: UserTaskClient) -> None:
    ids = await start_approvals(client, [{"amount": i} for i in range(30)])
    tasks = await client.get_user_tasks_by_ids(ids)
    await asyncio.gather(*(client.finish_user_task(t["userTaskInstanceId"], {"approved": True}) for t in tasks))
    for task_id in ids:
        await finished(client, task_id)


async def test_without_anonymous_access_the_dummy_token_is_unauthorized(
    engine_server_factory: Callable[..., EngineServer],
) -> None:
    server = engine_server_factory(anonymous=False)
    async with UserTaskClient(server.url) as client:
        with pytest.raises(UnauthorizedError):
            await client.get_user_tasks()


async def test_client_credentials_with_the_authority_from_the_engine(
    engine_server_factory: Callable[..., EngineServer],
) -> None:
    server = engine_server_factory(anonymous=False)
    async with UserTaskClient(server.url, client_id="user-task-worker", client_secret="secret-key") as client:
        for path in sorted(EXAMPLES.glob("*.bpmn")):
            await client.deploy_process(path.read_text(encoding="utf-8"))
        ids = await start_approvals(client, [{"amount": 1}])
        await asyncio.gather(*(client.get_user_tasks() for _ in range(10)))
        await client.finish_user_task(ids[0], {"approved": True})
        assert client.token_provider.token_requests == 1  # type: ignore[attr-defined]


async def test_wrong_secret_is_an_authentication_error_naming_the_authority(
    engine_server_factory: Callable[..., EngineServer],
) -> None:
    server = engine_server_factory(anonymous=False)
    async with UserTaskClient(
        server.url, client_id="user-task-worker", client_secret="wrong", authority_url=server.authority_url
    ) as client:
        with pytest.raises(AuthenticationError) as caught:
            await client.get_user_tasks()
    assert server.authority_url in str(caught.value)


async def test_with_token_forwards_the_callers_token(approval_engine: EngineServer) -> None:
    async with UserTaskClient(approval_engine.url) as client:
        view = client.with_token("not-a-valid-token")
        await start_approvals(client, [{"amount": 1}])
        # The embedded engine allows anonymous access, so a foreign token is either accepted as another
        # user or refused: either way the view's request carried it, and the parent's pool is intact.
        with contextlib.suppress(UnauthorizedError):
            await view.get_user_tasks()
        assert view.request_count == 1
        assert len(await client.get_user_tasks()) == 1


async def test_a_stopped_engine_is_unavailable(engine_server: EngineServer) -> None:
    async with UserTaskClient(engine_server.url, retry=RetryPolicy(max_retries=1, base_delay=0.01)) as client:
        await client.get_info()
        engine_server.stop()
        with pytest.raises(EngineUnavailableError):
            await client.get_user_tasks()


@pytest.mark.parametrize("mode", ["socketio", "long_polling"])
async def test_user_task_events_report_waiting_and_finished_tasks(client: UserTaskClient, mode: str) -> None:
    names = ["user_task_waiting", "user_task_finished"]
    received: list[UserTaskEvent] = []

    async def pump(stream: AsyncIterator[UserTaskEvent]) -> None:
        async for event in stream:
            received.append(event)

    async with client.user_task_events(names, mode=mode) as stream:  # type: ignore[arg-type]
        pumping = asyncio.ensure_future(pump(stream))
        try:
            for _ in range(100):  # the stream connects in the background
                if stream.connects:
                    break
                await asyncio.sleep(0.05)
            # Long polling only sees what happens while a poll is in flight (as with the real engine): if the first
            # task's events fall between two polls, the next task's events are the ones to check.
            events: list[UserTaskEvent] = []
            for _attempt in range(5):
                (task_id,) = await start_approvals(client, [{"amount": 1}])
                await client.finish_user_task(task_id, {"approved": True})
                for _ in range(100):
                    events = [event for event in received if event.flow_node_instance_id == task_id]
                    if len(events) == 2:
                        break
                    await asyncio.sleep(0.05)
                if len(events) == 2:
                    break
        finally:
            pumping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pumping
    assert [e.name for e in events] == ["user_task_waiting", "user_task_finished"]
    assert events[1].user_task_result == {"approved": True}
