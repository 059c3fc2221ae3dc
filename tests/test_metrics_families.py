"""``GET /metrics`` of a real gateway process after a few requests: every family, its labels and its counts.

One engine and one gateway for the module; each test looks at what its own requests changed (differences of the
counters before and after), so the tests do not depend on each other's order.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.adapters.client_engine import response_observer
from gateway.engine import ProcessCubeException, RetryPolicy, UserTaskClient
from gateway.metrics import metric_in
from tests.apps import broken_app
from tests.asgi_server import serve_asgi
from tests.conftest import deploy_examples
from tests.servers import EngineServer, GatewayServer, gateway_in_front_of, poll

FAMILIES = {
    "gateway_requests": "counter",
    "gateway_request_duration_seconds": "histogram",
    "gateway_idempotent_replays": "counter",
    "gateway_engine_requests": "counter",
    "gateway_engine_request_duration_seconds": "histogram",
    "gateway_engine_errors": "counter",
    "gateway_cache_hits": "counter",
    "gateway_cache_misses": "counter",
    "gateway_cache_entries": "gauge",
    "gateway_cache_bytes": "gauge",
    "gateway_engine_events": "counter",
    "gateway_engine_stream_connects": "counter",
    "gateway_engine_stream_gaps": "counter",
    "gateway_engine_stream_up": "gauge",
    "gateway_engine_stream_last_event_age_seconds": "gauge",
    "gateway_live_subscriptions": "gauge",
    "gateway_live_lists": "gauge",
}


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineServer]:
    with EngineServer(data_dir=tmp_path_factory.mktemp("metrics-engine") / "data") as engine:
        yield deploy_examples(engine)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, engine: EngineServer) -> Iterator[GatewayServer]:
    gateway = gateway_in_front_of(engine.url, tmp_path_factory.mktemp("metrics-gateway")).start()
    yield gateway
    gateway.stop()


def scrape(gateway: GatewayServer) -> str:
    response = httpx.get(gateway.url + "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


def requests_of(exposition: str, face: str, operation: str, code: str) -> float:
    return metric_in(exposition, "gateway_requests_total", face=face, operation=operation, code=code)


def label_sets(exposition: str, name: str) -> set[tuple[tuple[str, str], ...]]:
    return {
        tuple(sorted(sample.labels.items()))
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name == name
    }


def start_task(engine: EngineServer) -> tuple[str, str]:
    """A waiting ApprovalProcess task under a fresh correlation id: (correlation id, task id)."""
    correlation = f"metrics-{uuid.uuid4()}"
    started = engine.start_instance(
        "ApprovalProcess", {"amount": 5, "customerType": "vip", "customerId": "C"}, correlationId=correlation
    )
    [task] = engine.user_tasks(processInstanceId=started["processInstanceId"])
    return correlation, str(task["flowNodeInstanceId"])


def graphql(gateway: GatewayServer, query: str) -> dict[str, Any]:
    response = httpx.post(gateway.graphql_url, json={"query": query}, timeout=30)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_every_family_is_exported_with_its_type(gateway: GatewayServer) -> None:
    types = {family.name: family.type for family in text_string_to_metric_families(scrape(gateway))}
    for name, kind in FAMILIES.items():
        assert types.get(name) == kind, (name, types.get(name))


def test_requests_are_counted_by_face_operation_and_code(engine: EngineServer, gateway: GatewayServer) -> None:
    correlation, task_id = start_task(engine)
    before = scrape(gateway)
    tasks = '{ userTasks(filter: {correlationId: ["' + correlation + '"]}) { totalCount } }'
    assert graphql(gateway, tasks)["data"]["userTasks"]["totalCount"] == 1
    assert httpx.get(gateway.url + "/api/v1/user-tasks", params={"correlationId": correlation}).status_code == 200
    assert httpx.get(f"{gateway.url}/api/v1/user-tasks/{uuid.uuid4()}").status_code == 404
    assert graphql(gateway, "{ noSuchField }")["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    missing = graphql(gateway, f'mutation {{ finishUserTask(id: "{uuid.uuid4()}", result: {{}}) {{ __typename }} }}')
    assert missing["data"]["finishUserTask"]["__typename"] == "UserTaskNotFound"
    both = graphql(gateway, f'{{ userTask(id: "{task_id}") {{ id }} userTasks(first: 1) {{ totalCount }} }}')
    assert both["data"]["userTask"]["id"] == task_id
    finish = f"{gateway.url}/api/v1/user-tasks/{task_id}/finish"
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = httpx.post(finish, json={"result": {"approved": True}}, headers=key, timeout=30)
    again = httpx.post(finish, json={"result": {"approved": True}}, headers=key, timeout=30)
    assert (first.status_code, again.status_code, again.headers.get("idempotent-replayed")) == (200, 200, "true")
    health = httpx.get(gateway.url + "/healthz").status_code
    after = scrape(gateway)

    def added(face: str, operation: str, code: str) -> float:
        return requests_of(after, face, operation, code) - requests_of(before, face, operation, code)

    assert added("graphql", "query.userTasks", "OK") == 1
    assert added("rest", "list_user_tasks", "OK") == 1
    assert added("rest", "get_user_task", "TASK_NOT_FOUND") == 1
    assert added("graphql", "invalid", "BAD_REQUEST") == 1
    assert added("graphql", "mutation.finishUserTask", "TASK_NOT_FOUND") == 1
    assert added("graphql", "query.multiple", "OK") == 1
    assert added("rest", "finish_user_task", "OK") == 2  # the replay too
    assert added("other", "healthz", "OK") == (1 if health == 200 else 0)
    replays = "gateway_idempotent_replays_total"
    assert metric_in(after, replays, face="rest") - metric_in(before, replays, face="rest") == 1
    durations = "gateway_request_duration_seconds_count"
    for face, operation in [("rest", "list_user_tasks"), ("graphql", "query.userTasks"), ("rest", "finish_user_task")]:
        assert metric_in(after, durations, face=face, operation=operation) > metric_in(
            before, durations, face=face, operation=operation
        )
    # the engine calls of these requests, timed
    engine_calls = metric_in(after, "gateway_engine_requests_total") - metric_in(
        before, "gateway_engine_requests_total"
    )
    timed = metric_in(after, "gateway_engine_request_duration_seconds_count") - metric_in(
        before, "gateway_engine_request_duration_seconds_count"
    )
    assert engine_calls > 0
    assert timed == engine_calls
    for kind in ("timeout", "connect", "http_4xx", "http_5xx", "invalid_response", "other"):
        assert ("kind", kind) in {
            label for labels in label_sets(after, "gateway_engine_errors_total") for label in labels
        }


def test_label_values_stay_bounded_whatever_the_ids(gateway: GatewayServer) -> None:
    scrape(gateway)  # a scrape is counted once answered: this one gives `before` the metrics label set
    httpx.get(f"{gateway.url}/api/v1/user-tasks/{uuid.uuid4()}")
    graphql(gateway, f'query Named{uuid.uuid4().hex} {{ userTask(id: "{uuid.uuid4()}") {{ id }} }}')
    httpx.get(f"{gateway.url}/no/such/{uuid.uuid4()}")
    httpx.get(f"{gateway.url}/api/v1/nothing/{uuid.uuid4()}")
    before = scrape(gateway)
    for _ in range(3):
        httpx.get(f"{gateway.url}/api/v1/user-tasks/{uuid.uuid4()}")
        graphql(gateway, f'query Named{uuid.uuid4().hex} {{ userTask(id: "{uuid.uuid4()}") {{ id }} }}')
        graphql(gateway, f'{{ alias{uuid.uuid4().hex}: userTask(id: "{uuid.uuid4()}") {{ id }} }}')
        httpx.get(f"{gateway.url}/no/such/{uuid.uuid4()}")
        httpx.get(f"{gateway.url}/api/v1/nothing/{uuid.uuid4()}")
    after = scrape(gateway)
    for name in ("gateway_requests_total", "gateway_request_duration_seconds_count"):
        assert label_sets(after, name) == label_sets(before, name)
    values = {value for labels in label_sets(after, "gateway_requests_total") for _, value in labels}
    assert not any(value.count("-") >= 4 or value.startswith("Named") for value in values), values
    assert requests_of(after, "graphql", "query.userTask", "OK") >= 6  # named by the schema's field, not the alias
    assert requests_of(after, "rest", "unmatched", "BAD_REQUEST") >= 4
    assert requests_of(after, "other", "unmatched", "BAD_REQUEST") >= 4


def test_the_read_cache_counts_hits_and_misses(engine: EngineServer, gateway: GatewayServer) -> None:
    correlation, _ = start_task(engine)
    gateway.engine_events_settled()
    before = scrape(gateway)
    query = '{ userTasks(filter: {correlationId: ["' + correlation + '"]}) { totalCount } }'
    graphql(gateway, query)
    graphql(gateway, query)  # the same query again within the TTL: from the cache
    after = scrape(gateway)
    assert metric_in(after, "gateway_cache_misses_total") > metric_in(before, "gateway_cache_misses_total")
    assert metric_in(after, "gateway_cache_hits_total") > metric_in(before, "gateway_cache_hits_total")
    assert metric_in(after, "gateway_cache_entries") >= 1
    assert metric_in(after, "gateway_cache_bytes") > 0


def test_the_engine_stream_is_up_and_tells_the_age_of_its_last_event(
    engine: EngineServer, gateway: GatewayServer
) -> None:
    poll(lambda: gateway.metric("gateway_engine_stream_up") == 1)
    heard = gateway.metric("gateway_engine_events_total")
    start_task(engine)
    poll(lambda: gateway.metric("gateway_engine_events_total") > heard)
    exposition = scrape(gateway)
    [age] = [
        sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name == "gateway_engine_stream_last_event_age_seconds"
    ]
    assert 0 <= age < 30


def test_a_subscription_over_websocket_is_counted_when_it_starts(engine: EngineServer, gateway: GatewayServer) -> None:
    correlation, _ = start_task(engine)
    before = scrape(gateway)
    subscription = 'subscription { userTaskList(filter: {correlationId: ["' + correlation + '"]}) { __typename } }'

    async def scenario() -> dict[str, Any]:
        url = gateway.graphql_url.replace("http://", "ws://")
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(url, protocols=["graphql-transport-ws"]) as socket,
        ):
            await socket.send_json({"type": "connection_init", "payload": {}})
            assert json.loads((await socket.receive(timeout=20)).data)["type"] == "connection_ack"
            await socket.send_json({"id": "1", "type": "subscribe", "payload": {"query": subscription}})
            first: dict[str, Any] = json.loads((await socket.receive(timeout=20)).data)
            await socket.send_json({"id": "1", "type": "complete"})
            return first

    first = asyncio.run(scenario())
    assert first["payload"]["data"]["userTaskList"]["__typename"] == "UserTaskListSnapshot"
    after = scrape(gateway)
    assert (
        requests_of(after, "graphql", "subscription.userTaskList", "OK")
        - requests_of(before, "graphql", "subscription.userTaskList", "OK")
        == 1
    )


# -- failures: unexpected ones, and the engine's ------------------------------------------------------------------


def test_unexpected_failures_are_counted_and_logged_as_internal(caplog: pytest.LogCaptureFixture) -> None:
    app = broken_app("a bug")
    with serve_asgi(app) as origin, caplog.at_level(logging.INFO):
        assert httpx.get(origin + "/api/v1/user-tasks", headers={"X-Request-ID": "req-rest"}).status_code == 500
        answered = httpx.post(
            origin + "/graphql", json={"query": "{ userTasks { totalCount } }"}, headers={"X-Request-ID": "req-gql"}
        )
        assert answered.json()["errors"][0]["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
        exposition = httpx.get(origin + "/metrics").text
    assert requests_of(exposition, "rest", "list_user_tasks", "INTERNAL") == 1
    assert requests_of(exposition, "graphql", "query.userTasks", "INTERNAL") == 1
    access = {record.requestId: record for record in caplog.records if record.name == "gateway.access"}  # type: ignore[attr-defined]
    assert (access["req-rest"].status, access["req-rest"].code) == (500, "INTERNAL")  # type: ignore[attr-defined]
    assert (access["req-gql"].status, access["req-gql"].code) == (200, "INTERNAL")  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("answer", "kind"),
    [
        (httpx.Response(200, json={"flowNodeInstances": [], "totalCount": 0}), None),
        (httpx.Response(404, json={"message": "no"}), "http_4xx"),
        (httpx.Response(503, json={"message": "busy"}), "http_5xx"),
        (httpx.Response(302, headers={"Location": "/elsewhere"}), "invalid_response"),
        (httpx.ConnectError("refused"), "connect"),
        (httpx.ReadTimeout("slow"), "timeout"),
    ],
)
def test_the_engine_clients_response_hook_sees_every_outcome(answer: httpx.Response | Exception, kind: str) -> None:
    seen: list[tuple[str, float, str | None]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def call() -> None:
        async with UserTaskClient(
            "http://engine.invalid",
            transport=httpx.MockTransport(handler),
            retry=RetryPolicy(max_retries=0),
            on_response=response_observer(lambda *observed: seen.append(observed)),
        ) as client:
            with contextlib.suppress(ProcessCubeException):
                await client.get_user_tasks()

    asyncio.run(call())
    [(method, seconds, observed)] = seen
    assert (method, observed) == ("GET", kind)
    assert seconds >= 0


def test_an_engine_that_is_down_shows_in_the_metrics(engine_server_factory: Any, tmp_path: Path) -> None:
    engine = engine_server_factory()
    gateway = gateway_in_front_of(engine.url, tmp_path / "gateway").start()
    try:
        poll(lambda: gateway.metric("gateway_engine_stream_up") == 1)
        engine.stop()
        before = scrape(gateway)
        assert httpx.get(gateway.url + "/api/v1/user-tasks", timeout=60).status_code == 503
        after = scrape(gateway)
        assert requests_of(after, "rest", "list_user_tasks", "ENGINE_UNAVAILABLE") == 1
        errors = "gateway_engine_errors_total"
        assert metric_in(after, errors, kind="connect") > metric_in(before, errors, kind="connect")
        poll(lambda: gateway.metric("gateway_engine_stream_up") == 0)
    finally:
        gateway.stop()
