"""Every rule the two faces share, driven through both with the same input: the same outcome in GraphQL and REST.

Each rule is decided once in the core (:mod:`gateway.core.domain`); these tests hold a real gateway process to it
over loopback, so a face that decided a rule on its own again would show here. The input limits have their own
module, :mod:`tests.core.test_limits`, whose gateway and helpers these tests reuse.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.core.domain import DEFAULT_PAGE_SIZE, DEFAULT_STATES, TASK_STATES, UNKNOWN_STATE_SHOWN_AS
from tests.core.test_limits import TIMEOUT, gateway, servers
from tests.servers import EngineServer, GatewayServer, gateway_in_front_of

__all__ = ["gateway", "servers"]  # the fixtures of tests.core.test_limits: one engine and one gateway per module

LIST = """query($f: UserTaskFilter, $s: [UserTaskSort!], $n: Int) {
  userTasks(filter: $f, sort: $s, first: $n) { totalCount nodes { id state startedAt } }
}"""
TASK = "query($id: ID!) { userTask(id: $id) { id state } }"
RESERVE = """mutation($id: ID!) {
  reserveUserTask(id: $id) { __typename ... on UserTaskNotActive { state } ... on UserTask { state } }
}"""


def rest_list(gateway: GatewayServer, params: list[tuple[str, str]]) -> tuple[int, list[dict[str, Any]]]:
    response = httpx.get(gateway.url + "/api/v1/user-tasks", params=params, timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    body = response.json()
    return body["totalCount"], [{"id": item["id"], "state": item["state"]} for item in body["items"]]


def graphql_data(gateway: GatewayServer, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(gateway.graphql_url, json={"query": query, "variables": variables}, timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    data: dict[str, Any] = body["data"]
    return data


def graphql_list(gateway: GatewayServer, variables: dict[str, Any]) -> tuple[int, list[dict[str, Any]]]:
    page = graphql_data(gateway, LIST, variables)["userTasks"]
    return page["totalCount"], [{"id": node["id"], "state": node["state"].lower()} for node in page["nodes"]]


def start_approvals(engine: EngineServer, count: int) -> tuple[str, list[str]]:
    """``count`` waiting ApprovalProcess tasks under a correlation id of their own: (that id, the task ids)."""
    correlation = f"rules-{uuid.uuid4()}"
    task_ids = []
    for number in range(count):
        started = engine.start_instance("ApprovalProcess", {"amount": number}, correlationId=correlation)
        [task] = engine.user_tasks(processInstanceId=started["processInstanceId"])
        task_ids.append(str(task["flowNodeInstanceId"]))
    return correlation, task_ids


@pytest.fixture(scope="module")
def backlog(servers: tuple[EngineServer, GatewayServer]) -> tuple[str, list[str]]:
    """One more waiting task than a default page holds, under one correlation id."""
    return start_approvals(servers[0], DEFAULT_PAGE_SIZE + 1)


def test_without_a_state_filter_both_faces_list_waiting_tasks_only(
    servers: tuple[EngineServer, GatewayServer],
) -> None:
    engine, gateway = servers
    correlation, [done, waiting] = start_approvals(engine, 2)
    finished = httpx.post(
        f"{gateway.url}/api/v1/user-tasks/{done}/finish", json={"result": {"approved": True}}, timeout=TIMEOUT
    )
    assert finished.status_code == 200, finished.text

    rest_total, rest_items = rest_list(gateway, [("correlationId", correlation)])
    graphql_total, graphql_items = graphql_list(gateway, {"f": {"correlationId": [correlation]}})

    assert rest_items == graphql_items
    assert rest_total == graphql_total == len(rest_items)
    assert waiting in {item["id"] for item in rest_items}
    assert done not in {item["id"] for item in rest_items}
    assert {item["state"] for item in rest_items} == set(DEFAULT_STATES)
    # an empty state list is no state filter either
    assert graphql_list(gateway, {"f": {"correlationId": [correlation], "state": []}}) == (graphql_total, graphql_items)


def test_without_a_page_size_both_faces_answer_a_default_page(
    gateway: GatewayServer, backlog: tuple[str, list[str]]
) -> None:
    correlation, task_ids = backlog
    rest_total, rest_items = rest_list(gateway, [("correlationId", correlation)])
    graphql_total, graphql_items = graphql_list(gateway, {"f": {"correlationId": [correlation]}})
    assert rest_items == graphql_items
    assert len(rest_items) == DEFAULT_PAGE_SIZE
    assert rest_total == graphql_total == len(task_ids)


def test_without_a_sort_both_faces_order_by_start_oldest_first(
    gateway: GatewayServer, backlog: tuple[str, list[str]]
) -> None:
    correlation, task_ids = backlog
    every = str(len(task_ids))
    _, rest_items = rest_list(gateway, [("correlationId", correlation), ("limit", every)])
    _, graphql_items = graphql_list(gateway, {"f": {"correlationId": [correlation]}, "n": len(task_ids)})
    assert [item["id"] for item in rest_items] == [item["id"] for item in graphql_items]
    assert [item["id"] for item in rest_items] == task_ids  # started one after the other
    _, explicit = rest_list(gateway, [("correlationId", correlation), ("limit", every), ("sort", "startedAt")])
    assert explicit == rest_items


# -- an engine that reports a state the gateway does not know -------------------------------------------------

ODD_STATE = "paused"
ODD_TASK = {
    "flowNodeInstanceId": "odd-task-1",
    "flowNodeId": "approveOrder",
    "flowNodeName": "Approve order",
    "flowNodeType": "bpmn:UserTask",
    "processInstanceId": "odd-instance-1",
    "processModelId": "ApprovalProcess",
    "correlationId": "odd",
    "state": ODD_STATE,
    "startedAt": "2026-01-01T00:00:00Z",
    "startToken": {"amount": 1},
}


class OddEngine(BaseHTTPRequestHandler):
    """Every task query answers ODD_TASK; every write is a 404 (the engine's answer for a task that no longer
    waits), so that the gateway reads the task again and refuses with its state."""

    def _answer(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path.startswith("/atlas_engine/api/v1/flow_node_instances"):
            self._answer(200, {"flowNodeInstances": [ODD_TASK], "totalCount": 1})
        else:
            self._answer(404, {"message": "not here", "code": 404})

    def do_PUT(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self._answer(404, {"message": "not waiting", "code": 404})

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def odd_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    root: Path = tmp_path_factory.mktemp("odd")
    server = ThreadingHTTPServer(("127.0.0.1", 0), OddEngine)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    gateway = gateway_in_front_of(f"http://127.0.0.1:{server.server_address[1]}", root).start()
    try:
        yield gateway
    finally:
        gateway.stop()
        server.shutdown()
        server.server_close()


def test_an_unknown_engine_state_is_shown_the_same_in_both_faces(odd_gateway: GatewayServer) -> None:
    assert ODD_STATE not in TASK_STATES
    shown = UNKNOWN_STATE_SHOWN_AS
    task_id = ODD_TASK["flowNodeInstanceId"]

    assert rest_list(odd_gateway, [])[1] == graphql_list(odd_gateway, {})[1] == [{"id": task_id, "state": shown}]

    one = httpx.get(f"{odd_gateway.url}/api/v1/user-tasks/{task_id}", timeout=TIMEOUT)
    assert one.status_code == 200, one.text
    assert one.json()["state"] == shown
    assert graphql_data(odd_gateway, TASK, {"id": task_id})["userTask"]["state"].lower() == shown

    refused = httpx.put(f"{odd_gateway.url}/api/v1/user-tasks/{task_id}/reservation", timeout=TIMEOUT)
    assert refused.status_code == 409, refused.text
    assert refused.json()["state"] == shown
    answer = graphql_data(odd_gateway, RESERVE, {"id": task_id})["reserveUserTask"]
    assert answer == {"__typename": "UserTaskNotActive", "state": shown.upper()}


def test_engine_calls_are_counted_at_metrics_not_healthz(
    gateway: GatewayServer, backlog: tuple[str, list[str]]
) -> None:
    before = gateway.engine_calls()
    rest_list(gateway, [("correlationId", backlog[0]), ("limit", "2")])  # a page not read (nor cached) before
    assert gateway.engine_calls() == before + 1  # a page the engine cuts: one engine call
    metrics = httpx.get(gateway.url + "/metrics", timeout=TIMEOUT)  # no token needed
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    assert 'gateway_engine_requests_total{method="GET"}' in metrics.text
    assert "engineCalls" not in httpx.get(gateway.url + "/healthz", timeout=TIMEOUT).json()
