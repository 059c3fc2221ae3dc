from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from gateway.engine import (
    ANONYMOUS_TOKEN,
    BadRequestError,
    ConfigurationError,
    ConflictError,
    EngineTimeoutError,
    EngineUnavailableError,
    NotFoundError,
    OutcomeUnknownError,
    ProcessCubeException,
    ProtocolError,
    RetryPolicy,
    ServiceUnavailableError,
    UnauthorizedError,
    UserTaskClient,
)

from ._helpers import API, ENGINE, NoSleep, Recorder, engine_error, flow_node_instance, mock_client, task_list


async def test_get_user_tasks_asks_for_suspended_user_tasks_with_the_dummy_token() -> None:
    recorder = Recorder(lambda r: task_list(flow_node_instance("a"), flow_node_instance("b")))
    async with mock_client(recorder) as client:
        tasks = await client.get_user_tasks()
    assert [t["userTaskInstanceId"] for t in tasks] == ["a", "b"]
    request = recorder.requests[0]
    assert request.method == "GET"
    assert request.url.path == "/atlas_engine/api/v1/flow_node_instances"
    assert request.url.params["flowNodeType"] == "bpmn:UserTask"
    assert request.url.params["state"] == "suspended"
    assert request.headers["Authorization"] == f"Bearer {ANONYMOUS_TOKEN}"


async def test_every_filter_reaches_the_engine_under_its_wire_name() -> None:
    recorder = Recorder(lambda r: task_list())
    async with mock_client(recorder) as client:
        await client.get_user_tasks(
            state=["suspended", "finished"],
            process_model_id="ApprovalProcess",
            process_instance_id=["pi-1", "pi-2"],
            flow_node_id="Activity_Approve",
            flow_node_instance_id=["a", "b"],
            flow_node_name="Approve order",
            flow_node_lane="Managers",
            correlation_id="corr-1",
            process_definition_id="def",
            process_model_name="Approval",
            parent_process_instance_id="pp",
            previous_flow_node_instance_id="prev",
            owner_id="someone",
            created_at="2024-01-01",
            updated_at="2024-01-02",
            limit=10,
            offset=20,
            sort_by="createdAt",
            sort_dir="DESC",
        )
    params = recorder.requests[0].url.params
    assert params["state"] == "suspended,finished"
    assert params["processModelId"] == "ApprovalProcess"
    assert params["processInstanceId"] == "pi-1,pi-2"
    assert params["flowNodeId"] == "Activity_Approve"
    assert params["flowNodeInstanceId"] == "a,b"
    assert params["flowNodeName"] == "Approve order"
    assert params["flowNodeLane"] == "Managers"
    assert params["correlationId"] == "corr-1"
    assert params["processDefinitionId"] == "def"
    assert params["processModelName"] == "Approval"
    assert params["parentProcessInstanceId"] == "pp"
    assert params["previousFlowNodeInstanceId"] == "prev"
    assert params["ownerId"] == "someone"
    assert params["createdAt"] == "2024-01-01"
    assert params["updatedAt"] == "2024-01-02"
    assert params["limit"] == "10"
    assert params["offset"] == "20"
    assert json.loads(params["sortSettings"]) == {"sortBy": "createdAt", "sortDir": "DESC"}
    assert params["includeCount"] == "true"


async def test_state_none_asks_for_tasks_in_any_state() -> None:
    recorder = Recorder(lambda r: task_list())
    async with mock_client(recorder) as client:
        await client.get_user_tasks(state=None)
    assert "state" not in recorder.requests[0].url.params


async def test_unknown_filter_is_a_type_error() -> None:
    async with mock_client(lambda r: task_list()) as client:
        with pytest.raises(TypeError, match="process_model"):
            await client.get_user_tasks(process_model="x")  # type: ignore[call-arg]


async def test_an_empty_id_list_matches_nothing_without_asking_the_engine() -> None:
    recorder = Recorder(lambda r: task_list(flow_node_instance()))
    async with mock_client(recorder) as client:
        assert await client.get_user_tasks(flow_node_instance_id=[]) == []
        assert await client.get_user_tasks_by_ids([]) == []
    assert recorder.requests == []


async def test_query_user_tasks_gives_the_total_count() -> None:
    async with mock_client(lambda r: task_list(flow_node_instance("a"), total=42)) as client:
        page = await client.query_user_tasks(limit=1)
        assert page.total_count == 42
        assert [t["userTaskInstanceId"] for t in page.items] == ["a"]
        assert await client.count_user_tasks(process_model_id="ApprovalProcess") == 42


async def test_iter_user_tasks_walks_every_page() -> None:
    ids = [f"t{i}" for i in range(7)]

    def handler(request: httpx.Request) -> httpx.Response:
        offset = int(request.url.params.get("offset", "0"))
        limit = int(request.url.params["limit"])
        return task_list(*(flow_node_instance(i) for i in ids[offset : offset + limit]), total=len(ids))

    recorder = Recorder(handler)
    async with mock_client(recorder) as client:
        seen = [task["userTaskInstanceId"] async for task in client.iter_user_tasks(page_size=3)]
    assert seen == ids
    assert [r.url.params.get("offset", "0") for r in recorder.requests] == ["0", "3", "6"]


async def test_get_user_tasks_by_ids_is_one_call_in_any_state() -> None:
    recorder = Recorder(lambda r: task_list(flow_node_instance("a"), flow_node_instance("c")))
    async with mock_client(recorder) as client:
        tasks = await client.get_user_tasks_by_ids(["a", "b", "c", "a"])
    assert [t["userTaskInstanceId"] for t in tasks] == ["a", "c"]
    assert len(recorder.requests) == 1
    params = recorder.requests[0].url.params
    assert params["flowNodeInstanceId"] == "a,b,c"
    assert "state" not in params


async def test_get_user_tasks_by_ids_splits_long_lists() -> None:
    recorder = Recorder(lambda r: task_list())
    async with mock_client(recorder) as client:
        await client.get_user_tasks_by_ids([f"{i:036d}" for i in range(450)])
    assert len(recorder.requests) > 1
    assert all(len(str(r.url)) < 8000 for r in recorder.requests)


async def test_get_user_task_returns_the_task() -> None:
    async with mock_client(lambda r: task_list(flow_node_instance("a"))) as client:
        task = await client.get_user_task("a")
    assert task["userTaskInstanceId"] == "a"


async def test_get_user_task_of_an_unknown_id_raises_not_found() -> None:
    async with mock_client(lambda r: task_list()) as client:
        with pytest.raises(NotFoundError) as caught:
            await client.get_user_task("nope")
    assert caught.value.status == 404


async def test_reserve_cancel_and_finish_send_the_contracts_requests() -> None:
    recorder = Recorder(lambda r: httpx.Response(204))
    async with mock_client(recorder) as client:
        assert await client.reserve_user_task("t/1", "user@example.com") is None
        assert await client.cancel_reservation_user_task("t/1") is None
        assert await client.finish_user_task("t/1", {"approved": True, "comment": "ok"}) is None
    assert recorder.paths == [
        "PUT /atlas_engine/api/v1/user_tasks/t%2F1/reserve",
        "DELETE /atlas_engine/api/v1/user_tasks/t%2F1/cancel-reservation",
        "PUT /atlas_engine/api/v1/user_tasks/t%2F1/finish",
    ]
    assert recorder.body(0) == {"actualOwnerId": "user@example.com"}
    assert recorder.requests[1].content == b""
    assert recorder.body(2) == {"approved": True, "comment": "ok"}


async def test_actions_accept_any_2xx_body() -> None:
    async with mock_client(lambda r: httpx.Response(200, content=b"whatever")) as client:
        await client.finish_user_task("t1", {})


async def test_deploy_and_start_send_the_contracts_requests() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/process_definitions"):
            return httpx.Response(201)
        return httpx.Response(200, json={"processInstanceId": "pi-9", "correlationId": "c-9"})

    recorder = Recorder(handler)
    async with mock_client(recorder) as client:
        await client.deploy_process("<bpmn:definitions/>")
        started = await client.start_process_instance(
            "ApprovalProcess", initial_token={"amount": 5}, correlation_id="c-9", start_event_id="Start"
        )
    assert started["processInstanceId"] == "pi-9"
    assert recorder.body(0) == {"xml": "<bpmn:definitions/>", "overwriteExisting": True}
    assert recorder.paths[1] == "POST /atlas_engine/api/v1/process_models/ApprovalProcess/start"
    assert recorder.body(1) == {
        "processModelId": "ApprovalProcess",
        "returnOn": 1,
        "initialToken": {"amount": 5},
        "correlationId": "c-9",
        "startEventId": "Start",
    }


async def test_start_answer_without_process_instance_id_is_a_protocol_error() -> None:
    async with mock_client(lambda r: httpx.Response(200, json={"ok": True})) as client:
        with pytest.raises(ProtocolError):
            await client.start_process_instance("ApprovalProcess")


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, content=b"<html>not json</html>"),
        httpx.Response(200, content=b""),
        httpx.Response(200, json=["a list"]),
        httpx.Response(200, json={"flowNodeInstances": [{"flowNodeInstanceId": 1}], "totalCount": 1}),
    ],
    ids=["html", "empty", "list", "bad-item"],
)
async def test_garbage_reply_to_a_query_is_a_protocol_error(response: httpx.Response) -> None:
    async with mock_client(lambda r: response) as client:
        with pytest.raises(ProtocolError):
            await client.get_user_tasks()


@pytest.mark.parametrize(
    ("status", "class_name", "expected"),
    [
        (400, "BadRequestError", BadRequestError),
        (404, "NotFoundError", NotFoundError),
        (409, "ConflictError", ConflictError),
    ],
)
async def test_engine_errors_on_actions_keep_the_engines_details(
    status: int, class_name: str, expected: type[Exception]
) -> None:
    handler = lambda r: engine_error(status, class_name, "nope", additionalInformation={"a": 1})  # noqa: E731
    async with mock_client(handler) as client:
        with pytest.raises(expected) as caught:
            await client.finish_user_task("t1", {"approved": True})
    error = caught.value
    assert isinstance(error, ProcessCubeException)
    assert error.message == "nope"  # type: ignore[attr-defined]
    assert error.additional_information == {"a": 1}  # type: ignore[attr-defined]


async def test_read_timeout_of_a_query_is_an_engine_timeout_and_not_retried() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    recorder = Recorder(handler)
    async with mock_client(recorder) as client:
        with pytest.raises(EngineTimeoutError) as caught:
            await client.get_user_tasks()
    assert not isinstance(caught.value, OutcomeUnknownError)
    assert isinstance(caught.value.__cause__, httpx.ReadTimeout)
    assert len(recorder.requests) == 1


async def test_timed_out_finish_is_outcome_unknown_and_not_retried() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    recorder = Recorder(handler)
    async with mock_client(recorder) as client:
        with pytest.raises(OutcomeUnknownError):
            await client.finish_user_task("t1", {"approved": True})
    assert len(recorder.requests) == 1


async def test_reads_are_retried_on_connection_errors_and_503_with_growing_backoff() -> None:
    answers: list[Any] = [
        httpx.ConnectError("refused"),
        engine_error(503, "ServiceUnavaliableError"),
        httpx.ReadError("reset"),
        task_list(flow_node_instance("a")),
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer  # type: ignore[no-any-return]

    sleep = NoSleep()
    recorder = Recorder(handler)
    retry = RetryPolicy(max_retries=3, base_delay=0.1, max_delay=10, sleep=sleep, random=lambda: 1.0)
    async with mock_client(recorder, retry=retry) as client:
        tasks = await client.get_user_tasks()
    assert [t["userTaskInstanceId"] for t in tasks] == ["a"]
    assert len(recorder.requests) == 4
    assert sleep.delays == pytest.approx([0.1, 0.2, 0.4])


async def test_backoff_is_jittered_and_capped() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=3.0, random=lambda: 0.5)
    assert policy.delay(0) == pytest.approx(0.5)
    assert policy.delay(5) == pytest.approx(1.5)


async def test_read_retries_are_bounded() -> None:
    recorder = Recorder(lambda r: engine_error(503, "ServiceUnavaliableError"))
    async with mock_client(recorder, retry=RetryPolicy(max_retries=2, sleep=NoSleep())) as client:
        with pytest.raises(ServiceUnavailableError):
            await client.get_user_tasks()
    assert len(recorder.requests) == 3


async def test_writes_are_not_retried_after_the_engine_saw_them() -> None:
    for failure in (engine_error(503, "ServiceUnavaliableError"), httpx.ReadError("reset")):

        def handler(request: httpx.Request, failure: Any = failure) -> httpx.Response:
            if isinstance(failure, Exception):
                raise failure
            return failure  # type: ignore[no-any-return]

        recorder = Recorder(handler)
        async with mock_client(recorder) as client:
            with pytest.raises(ProcessCubeException):
                await client.finish_user_task("t1", {"approved": True})
        assert len(recorder.requests) == 1


async def test_writes_are_retried_when_the_connection_was_never_made() -> None:
    answers: list[Any] = [httpx.ConnectError("refused"), httpx.Response(204)]

    def handler(request: httpx.Request) -> httpx.Response:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer  # type: ignore[no-any-return]

    recorder = Recorder(handler)
    async with mock_client(recorder) as client:
        await client.finish_user_task("t1", {"approved": True})
    assert len(recorder.requests) == 2


async def test_engine_down_is_engine_unavailable_after_the_retries() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    async with mock_client(handler) as client:
        with pytest.raises(EngineUnavailableError) as caught:
            await client.get_user_tasks()
    assert not caught.value.request_sent


async def test_fixed_token_is_sent_as_bearer() -> None:
    recorder = Recorder(lambda r: task_list())
    async with mock_client(recorder, token="abc") as client:
        await client.get_user_tasks()
    assert recorder.requests[0].headers["Authorization"] == "Bearer abc"


async def test_token_callable_is_asked_before_every_request_sync_or_async() -> None:
    tokens = iter(["one", "two"])

    async def async_source() -> str:
        return "three"

    recorder = Recorder(lambda r: task_list())
    async with mock_client(recorder, token=lambda: next(tokens)) as client:
        await client.get_user_tasks()
        await client.get_user_tasks()
    async with mock_client(recorder, token=async_source) as client:
        await client.get_user_tasks()
    assert [r.headers["Authorization"] for r in recorder.requests] == [
        "Bearer one",
        "Bearer two",
        "Bearer three",
    ]


async def test_401_with_a_fixed_token_is_unauthorized_without_a_retry() -> None:
    recorder = Recorder(lambda r: engine_error(401, "UnauthorizedError", "bad token"))
    async with mock_client(recorder, token="expired") as client:
        with pytest.raises(UnauthorizedError):
            await client.get_user_tasks()
    assert len(recorder.requests) == 1


async def test_with_token_shares_the_pool_and_counts_its_own_requests() -> None:
    recorder = Recorder(lambda r: task_list())
    seen: list[str] = []
    async with mock_client(recorder) as client:
        view = client.with_token("caller-token", on_request=lambda r: seen.append(r.url.path))
        async with view:
            await view.get_user_tasks()
            await view.get_user_tasks_by_ids(["a"])
        await client.get_user_tasks()  # the view's close left the pool open
        assert view.request_count == 2
        assert client.request_count == 3
    assert [r.headers["Authorization"] for r in recorder.requests] == [
        "Bearer caller-token",
        "Bearer caller-token",
        f"Bearer {ANONYMOUS_TOKEN}",
    ]
    assert len(seen) == 2
    assert view.closed


async def test_on_request_hook_sees_every_engine_call_including_retries() -> None:
    answers: list[Any] = [httpx.ConnectError("refused"), task_list()]

    def handler(request: httpx.Request) -> httpx.Response:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer  # type: ignore[no-any-return]

    seen: list[httpx.Request] = []
    async with mock_client(handler, on_request=seen.append) as client:
        await client.get_user_tasks()
        assert client.request_count == 2
    assert len(seen) == 2


async def test_a_closed_client_refuses_to_work() -> None:
    client = mock_client(lambda r: task_list())
    await client.get_user_tasks()
    await client.close()
    with pytest.raises(RuntimeError, match="closed"):
        await client.get_user_tasks()


@pytest.mark.parametrize(
    "options",
    [
        {"client_id": "x"},
        {"client_secret": "x"},
        {"client_id": "x", "client_secret": "y", "token": "z"},
        {"authority_url": "http://auth"},
        {"token": 42},
    ],
)
def test_inconsistent_configuration_is_a_configuration_error(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        UserTaskClient(ENGINE, **options)


def test_engine_url_must_be_http() -> None:
    with pytest.raises(ConfigurationError):
        UserTaskClient("localhost:8000")


async def test_engine_url_may_end_with_a_slash() -> None:
    recorder = Recorder(lambda r: task_list())
    async with UserTaskClient(ENGINE + "/", transport=httpx.MockTransport(recorder)) as client:
        await client.get_user_tasks()
    assert str(recorder.requests[0].url).startswith(API + "/flow_node_instances?")
