"""Safe defaults: anonymous is never root unless the operator says so, and a reservation never strands a task.

The embedded engine, as a real one configured for development, lets its anonymous "dummy token" see everything.
Through the gateway that is off by default: a caller without a token sees no tasks (401, "Sign in") on both
faces, though the schema stays readable. ``GATEWAY_UNSAFE_ANONYMOUS_ROOT=true`` (what ``make run`` sets for the
demo) turns it on, loudly named.

Reserving for someone else stays possible (the seed's worker pattern: a service client reserves for
``user@example.com``), owner ids are checked, and whoever may write and can see the task can cancel it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import EXAMPLES, EngineFactory
from tests.report import AttackReport
from tests.servers import EngineServer, GatewayServer, gateway_in_front_of

USER_TASKS = "{ userTasks(first: 50) { edges { node { id lane } } } }"


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineServer]:
    with EngineServer(data_dir=tmp_path_factory.mktemp("safe-defaults") / "engine") as engine:
        engine.deploy_file(EXAMPLES / "approval_process.bpmn")
        for amount in (10, 20, 30):
            engine.start_instance("ApprovalProcess", {"amount": amount, "customerType": "regular"})
        yield engine


@pytest.fixture(scope="module")
def gateway(engine: EngineServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    """The defaults: anonymous callers accepted (as with the embedded engine), but not as root."""
    workdir = tmp_path_factory.mktemp("safe-gateway")
    gateway = gateway_in_front_of(engine.url, workdir, GATEWAY_UNSAFE_ANONYMOUS_ROOT="false").start()
    yield gateway
    gateway.stop()


def as_user(engine: EngineServer, client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {engine.token(client_id, secret)}"}


def graphql(gateway: GatewayServer, query: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    response = httpx.post(gateway.graphql_url, json={"query": query}, headers=headers or {}, timeout=30)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_dropping_the_token_shows_nothing_not_everything(
    engine: EngineServer, gateway: GatewayServer, attack_report: AttackReport
) -> None:
    bob = as_user(engine, "bob", "bob-secret")  # Clerk and Controlling: no Approver task
    listed = httpx.get(gateway.url + "/api/v1/user-tasks", params={"lane": "Approver"}, headers=bob)
    assert (listed.status_code, listed.json()["items"]) == (200, [])

    anonymous = httpx.get(gateway.url + "/api/v1/user-tasks", params={"lane": "Approver"})
    attack_report.add("inputs tried")
    attack_report.add("cross-user leaks", anonymous.status_code == 200 and bool(anonymous.json()["items"]))
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"].startswith("application/problem+json")
    assert anonymous.json()["code"] == "UNAUTHENTICATED"
    assert "Sign in" in anonymous.json()["detail"]

    body = graphql(gateway, USER_TASKS)
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert not body.get("data")

    # what needs no engine stays open: the schema (GraphiQL's introspection)
    schema = graphql(gateway, "{ __schema { queryType { name } } }")
    assert (schema["data"], schema.get("errors")) == ({"__schema": {"queryType": {"name": "Query"}}}, None)


def test_anonymous_cannot_reserve_or_cancel_anything(engine: EngineServer, gateway: GatewayServer) -> None:
    [task, *_] = engine.user_tasks()
    path = f"/api/v1/user-tasks/{task['flowNodeInstanceId']}/reservation"
    assert httpx.put(gateway.url + path).status_code == 401
    assert httpx.delete(gateway.url + path).status_code == 401


def test_root_for_anonymous_callers_only_when_the_operator_says_so(engine: EngineServer, tmp_path: Path) -> None:
    gateway = gateway_in_front_of(engine.url, tmp_path / "root", GATEWAY_UNSAFE_ANONYMOUS_ROOT="true").start()
    try:
        nodes = graphql(gateway, USER_TASKS)["data"]["userTasks"]["edges"]
        assert {edge["node"]["lane"] for edge in nodes} >= {"Approver"}  # everything, every lane
        assert "GATEWAY_UNSAFE_ANONYMOUS_ROOT is on" in gateway.log()  # said loudly at start
    finally:
        gateway.stop()


@pytest.mark.parametrize("owner", ["", " bob", "bob\n", "x" * 257, "bob\u0000"])
def test_owner_ids_are_user_ids(engine: EngineServer, gateway: GatewayServer, owner: str) -> None:
    worker = as_user(engine, "user-task-worker", "secret-key")
    [task, *_] = engine.user_tasks()
    response = httpx.put(
        gateway.url + f"/api/v1/user-tasks/{task['flowNodeInstanceId']}/reservation",
        json={"ownerId": owner},
        headers=worker,
    )
    assert response.status_code == 400, response.text
    assert response.json()["problems"][0]["field"] == "/ownerId"


def test_a_reservation_for_someone_else_never_strands_the_task(
    engine_server_factory: EngineFactory, engine: EngineServer, gateway: GatewayServer
) -> None:
    worker = as_user(engine, "user-task-worker", "secret-key")
    alice = as_user(engine, "alice", "alice-secret")  # Approver: sees the task, may write
    started = engine.start_instance("ApprovalProcess", {"amount": 40, "customerType": "regular"})
    [task] = engine.user_tasks(processInstanceId=started["processInstanceId"])
    path = f"/api/v1/user-tasks/{task['flowNodeInstanceId']}/reservation"

    # the seed's worker pattern: a service client reserves for a user (even one who is nobody here)
    reserved = httpx.put(gateway.url + path, json={"ownerId": "user@example.com"}, headers=worker)
    assert (reserved.status_code, reserved.json()["reservedFor"]) == (200, "user@example.com")

    # alice may not finish it (it is someone else's), but she may free it
    finish = httpx.post(
        gateway.url + path.replace("/reservation", "/finish"), json={"result": {"approved": True}}, headers=alice
    )
    assert (finish.status_code, finish.json()["code"]) == (409, "TASK_RESERVED_BY_OTHER_USER")
    freed = httpx.delete(gateway.url + path, headers=alice)
    assert freed.status_code == 200, freed.text
    assert freed.json()["reservedFor"] is None
