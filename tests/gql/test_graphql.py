"""The GraphQL API over real HTTP: a gateway process in front of an embedded engine process."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.embedded_engine.test_http_api import token_for
from tests.servers import EngineServer, GatewayServer

TASK_FIELDS = """
  id flowNodeId name lane state processModelId processInstanceId correlationId token reservedFor
  formFields { id label type defaultValue enumValues { id name } }
  startedAt finishedAt finishedBy
"""

LIST = (
    """
query List($filter: UserTaskFilter, $sort: [UserTaskSort!], $first: Int, $after: String) {
  userTasks(filter: $filter, sort: $sort, first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { cursor node { id } }
    nodes { """
    + TASK_FIELDS
    + """ }
  }
}
"""
)

FINISH = """
mutation Finish($id: ID!, $result: JSON!) {
  finishUserTask(id: $id, result: $result) {
    __typename
    ... on FinishedUserTask { task { id state finishedBy } nextTasks { id name token } }
    ... on UserTaskNotFound { id message }
    ... on UserTaskNotActive { id state message }
    ... on UserTaskReservedByOtherUser { id reservedFor message }
    ... on InvalidTaskResult { id message problems { field message } }
  }
}
"""

RESERVE = """
mutation Reserve($id: ID!, $owner: String) {
  reserveUserTask(id: $id, ownerId: $owner) {
    __typename
    ... on UserTask { id reservedFor }
    ... on UserTaskReservedByOtherUser { reservedFor message }
    ... on UserTaskNotFound { message }
    ... on UserTaskNotActive { state }
  }
}
"""

CANCEL = """
mutation Cancel($id: ID!) {
  cancelUserTaskReservation(id: $id) { __typename ... on UserTask { id reservedFor } }
}
"""


def start_approvals(engine: EngineServer, amounts: list[int]) -> list[str]:
    """Start one ApprovalProcess per amount; answer the ids of their first tasks, in order."""
    task_ids = []
    for amount in amounts:
        started = engine.start_instance(
            "ApprovalProcess",
            {"amount": amount, "customerType": "vip" if amount % 2 else "regular", "customerId": "C"},
        )
        task_ids.append(engine.user_tasks(processInstanceId=started["processInstanceId"])[0]["flowNodeInstanceId"])
    return task_ids


def data(result: dict[str, Any]) -> dict[str, Any]:
    assert "errors" not in result, result
    payload: dict[str, Any] = result["data"]
    return payload


def error_code(result: dict[str, Any]) -> str:
    assert result.get("errors"), result
    return str(result["errors"][0]["extensions"]["code"])


# -- reading -------------------------------------------------------------------------------------------------


def test_user_tasks_lists_waiting_tasks_with_every_field(engine: EngineServer, gateway: GatewayServer) -> None:
    start_approvals(engine, [100, 2500])
    page = data(gateway.graphql(LIST, {"filter": {"processModelId": ["ApprovalProcess"]}}))["userTasks"]
    assert page["totalCount"] == 2
    first = page["nodes"][0]
    assert first["state"] == "SUSPENDED"
    assert first["processModelId"] == "ApprovalProcess"
    assert first["token"] == {"amount": 100, "customerType": "regular", "customerId": "C"}
    assert first["lane"] == "Approver"
    assert first["reservedFor"] is None
    assert first["startedAt"]
    assert {field["id"] for field in first["formFields"]} >= {"approved", "comment"}
    assert [edge["node"]["id"] for edge in page["edges"]] == [node["id"] for node in page["nodes"]]


def test_token_predicates_and_sorting(engine: EngineServer, gateway: GatewayServer) -> None:
    start_approvals(engine, [500, 1500, 25000, 750, 12000])
    variables = {
        "filter": {"token": [{"path": "amount", "op": "GTE", "value": 1000}]},
        "sort": [{"field": "TOKEN", "tokenPath": "amount", "direction": "DESC"}],
    }
    page = data(gateway.graphql(LIST, variables))["userTasks"]
    assert [node["token"]["amount"] for node in page["nodes"]] == [25000, 12000, 1500]
    assert page["totalCount"] == 3


def test_paging_with_cursors_reaches_every_task_once(engine: EngineServer, gateway: GatewayServer) -> None:
    expected = set(start_approvals(engine, list(range(1, 8))))
    seen: list[str] = []
    after = None
    while True:
        page = data(gateway.graphql(LIST, {"first": 3, "after": after}))["userTasks"]
        seen += [node["id"] for node in page["nodes"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert sorted(seen) == sorted(expected)
    assert len(seen) == len(expected)


@pytest.mark.parametrize(("first", "code"), [(101, "BAD_REQUEST"), (-1, "BAD_REQUEST")])
def test_page_size_limits(gateway: GatewayServer, first: int, code: str) -> None:
    assert error_code(gateway.graphql(LIST, {"first": first})) == code


def test_a_tampered_cursor_is_a_bad_request(gateway: GatewayServer) -> None:
    assert error_code(gateway.graphql(LIST, {"after": "bm90LWEtY3Vyc29y"})) == "BAD_REQUEST"


def test_user_task_by_id_and_null_when_absent(engine: EngineServer, gateway: GatewayServer) -> None:
    [task_id] = start_approvals(engine, [10])
    result = data(gateway.graphql("query($id: ID!) { userTask(id: $id) { id name } }", {"id": task_id}))
    assert result["userTask"]["id"] == task_id
    assert data(gateway.graphql('{ userTask(id: "nope") { id } }'))["userTask"] is None


def test_fifty_lookups_in_one_request_cost_one_engine_call(engine: EngineServer, gateway: GatewayServer) -> None:
    task_ids = start_approvals(engine, list(range(50)))
    query = "{ " + " ".join(f't{i}: userTask(id: "{task_id}") {{ id }}' for i, task_id in enumerate(task_ids)) + " }"
    before = gateway.engine_calls()
    result = data(gateway.graphql(query))
    assert [result[f"t{i}"]["id"] for i in range(50)] == task_ids
    assert gateway.engine_calls() - before == 1


def test_twenty_identical_concurrent_queries_cost_one_engine_call(engine: EngineServer, gateway: GatewayServer) -> None:
    start_approvals(engine, [1, 2, 3])
    gateway.engine_events_settled()
    before = gateway.engine_calls()
    with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(lambda _: gateway.graphql(LIST, {"first": 50}), range(20)))
    assert all(result["data"]["userTasks"]["totalCount"] == 3 for result in results)
    assert gateway.engine_calls() - before == 1


# -- writing -------------------------------------------------------------------------------------------------


def test_reserve_cancel_and_finish_a_task(engine: EngineServer, gateway: GatewayServer) -> None:
    [task_id] = start_approvals(engine, [42])
    reserved = data(gateway.graphql(RESERVE, {"id": task_id}))["reserveUserTask"]
    assert reserved == {"__typename": "UserTask", "id": task_id, "reservedFor": "dummy_token"}
    listed = data(gateway.graphql(LIST, {"filter": {"reserved": True}}))["userTasks"]
    assert [node["id"] for node in listed["nodes"]] == [task_id]
    cancelled = data(gateway.graphql(CANCEL, {"id": task_id}))["cancelUserTaskReservation"]
    assert cancelled["reservedFor"] is None

    finished = data(gateway.graphql(FINISH, {"id": task_id, "result": {"approved": True, "comment": "fine"}}))
    outcome = finished["finishUserTask"]
    assert outcome["__typename"] == "FinishedUserTask"
    assert outcome["task"]["state"] == "FINISHED"
    assert len(outcome["nextTasks"]) == 1
    assert outcome["nextTasks"][0]["token"] == {"approved": True, "comment": "fine"}


def test_finish_refusals_are_union_members(engine: EngineServer, gateway: GatewayServer) -> None:
    [task_id, other_id] = start_approvals(engine, [1, 2])

    unknown = data(gateway.graphql(FINISH, {"id": "nope", "result": {}}))["finishUserTask"]
    assert unknown["__typename"] == "UserTaskNotFound"

    invalid = data(gateway.graphql(FINISH, {"id": task_id, "result": {"approved": "yes"}}))["finishUserTask"]
    assert invalid["__typename"] == "InvalidTaskResult"
    assert invalid["problems"][0]["field"] == "approved"

    not_object = data(gateway.graphql(FINISH, {"id": task_id, "result": [1]}))["finishUserTask"]
    assert not_object["__typename"] == "InvalidTaskResult"

    data(gateway.graphql(FINISH, {"id": task_id, "result": {"approved": True}}))
    again = data(gateway.graphql(FINISH, {"id": task_id, "result": {"approved": False}}))["finishUserTask"]
    assert again["__typename"] == "UserTaskNotActive"
    assert again["state"] == "FINISHED"

    alice = token_for(engine, "alice", "alice-secret")
    data(gateway.graphql(RESERVE, {"id": other_id}, token=alice))
    taken = data(gateway.graphql(FINISH, {"id": other_id, "result": {"approved": True}}))["finishUserTask"]
    assert taken == {
        "__typename": "UserTaskReservedByOtherUser",
        "id": other_id,
        "reservedFor": "alice",
        "message": taken["message"],
    }


def test_batch_finish_answers_each_item_in_order(engine: EngineServer, gateway: GatewayServer) -> None:
    task_ids = start_approvals(engine, [1, 2, 3])
    items = [
        {"id": task_ids[0], "result": {"approved": True}},
        {"id": "nope", "result": {}},
        {"id": task_ids[1], "result": {"approved": 7}},
        {"id": task_ids[2], "result": {"approved": False}},
    ]
    query = """
    mutation($items: [FinishUserTaskInput!]!) {
      finishUserTasks(items: $items) { __typename ... on FinishedUserTask { task { id } } }
    }"""
    outcome = data(gateway.graphql(query, {"items": items}))["finishUserTasks"]
    assert [item["__typename"] for item in outcome] == [
        "FinishedUserTask",
        "UserTaskNotFound",
        "InvalidTaskResult",
        "FinishedUserTask",
    ]


def test_batch_reserve_and_cancel(engine: EngineServer, gateway: GatewayServer) -> None:
    task_ids = start_approvals(engine, [1, 2])
    reserve = """mutation($ids: [ID!]!) { reserveUserTasks(ids: $ids, ownerId: "carol") {
      __typename ... on UserTask { reservedFor } } }"""
    reserved = data(gateway.graphql(reserve, {"ids": [*task_ids, "nope"]}))["reserveUserTasks"]
    assert [item["__typename"] for item in reserved] == ["UserTask", "UserTask", "UserTaskNotFound"]
    assert reserved[0]["reservedFor"] == "carol"
    cancel = """mutation($ids: [ID!]!) { cancelUserTaskReservations(ids: $ids) { __typename } }"""
    cancelled = data(gateway.graphql(cancel, {"ids": task_ids}))["cancelUserTaskReservations"]
    assert [item["__typename"] for item in cancelled] == ["UserTask", "UserTask"]


def test_a_batch_over_the_limit_is_a_bad_request(gateway_factory: Callable[..., GatewayServer]) -> None:
    gateway = gateway_factory(GATEWAY_MAX_BATCH_SIZE=2)
    query = 'mutation { reserveUserTasks(ids: ["a", "b", "c"]) { __typename } }'
    assert error_code(gateway.graphql(query)) == "BAD_REQUEST"


# -- identity ------------------------------------------------------------------------------------------------


def test_a_bad_token_is_unauthenticated(gateway: GatewayServer) -> None:
    assert error_code(gateway.graphql("{ userTasks { totalCount } }", token="not.a.jwt")) == "UNAUTHENTICATED"


def test_without_anonymous_access_a_token_is_needed(
    engine: EngineServer, gateway_factory: Callable[..., GatewayServer]
) -> None:
    gateway = gateway_factory(GATEWAY_ALLOW_ANONYMOUS="false")
    assert error_code(gateway.graphql("{ userTasks { totalCount } }")) == "UNAUTHENTICATED"
    worker = token_for(engine, "user-task-worker", "secret-key")
    assert "errors" not in gateway.graphql("{ userTasks { totalCount } }", token=worker)


def test_lanes_hide_tasks_from_callers_without_the_claim(engine: EngineServer, gateway: GatewayServer) -> None:
    [task_id] = start_approvals(engine, [5])
    alice = token_for(engine, "alice", "alice-secret")
    bob = token_for(engine, "bob", "bob-secret")
    query = "query($id: ID!) { userTask(id: $id) { id } userTasks { totalCount } }"
    seen_by_alice = data(gateway.graphql(query, {"id": task_id}, token=alice))
    seen_by_bob = data(gateway.graphql(query, {"id": task_id}, token=bob))
    assert seen_by_alice["userTask"] == {"id": task_id}
    assert seen_by_alice["userTasks"]["totalCount"] == 1
    assert seen_by_bob["userTask"] is None
    assert seen_by_bob["userTasks"]["totalCount"] == 0
    refused = data(gateway.graphql(FINISH, {"id": task_id, "result": {"approved": True}}, token=bob))
    assert refused["finishUserTask"]["__typename"] == "UserTaskNotFound"


def test_the_callers_subject_is_the_default_owner(engine: EngineServer, gateway: GatewayServer) -> None:
    [task_id] = start_approvals(engine, [5])
    alice = token_for(engine, "alice", "alice-secret")
    reserved = data(gateway.graphql(RESERVE, {"id": task_id}, token=alice))["reserveUserTask"]
    assert reserved["reservedFor"] == "alice"


# -- hardening -----------------------------------------------------------------------------------------------


def test_too_deep_too_many_aliases_and_too_many_tokens_are_refused(
    gateway_factory: Callable[..., GatewayServer],
) -> None:
    gateway = gateway_factory(GATEWAY_MAX_QUERY_DEPTH=3, GATEWAY_MAX_ALIASES=2, GATEWAY_MAX_QUERY_TOKENS=60)
    deep = "{ userTasks { nodes { formFields { enumValues { id } } } } }"
    assert error_code(gateway.graphql(deep)) == "QUERY_TOO_COMPLEX"
    aliases = "{ a: userTasks { totalCount } b: userTasks { totalCount } c: userTasks { totalCount } }"
    assert error_code(gateway.graphql(aliases)) == "QUERY_TOO_COMPLEX"
    long = "{ userTasks { " + "totalCount " * 80 + "} }"
    assert error_code(gateway.graphql(long)) == "QUERY_TOO_COMPLEX"


def test_validation_errors_have_a_code(gateway: GatewayServer) -> None:
    assert error_code(gateway.graphql("{ userTasks { nope } }")) == "BAD_REQUEST"
    assert error_code(gateway.graphql('{ userTasks(first: "ten") { totalCount } }')) == "BAD_REQUEST"


def test_graphql_response_json_gets_400_for_invalid_documents(gateway: GatewayServer) -> None:
    response = httpx.post(
        gateway.graphql_url,
        json={"query": "{ nope }"},
        headers={"Accept": "application/graphql-response+json"},
    )
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/graphql-response+json")
    assert "data" not in response.json()


@pytest.mark.parametrize("body", [b"{not json", b"[1,2", b"\xff"])
def test_malformed_bodies_are_bad_requests_not_crashes(gateway: GatewayServer, body: bytes) -> None:
    response = httpx.post(gateway.graphql_url, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


def test_an_oversized_body_is_refused(gateway_factory: Callable[..., GatewayServer]) -> None:
    gateway = gateway_factory(GATEWAY_MAX_BODY_BYTES=2048)
    query = "{ userTasks { totalCount } }" + " " * 4000
    response = httpx.post(gateway.graphql_url, json={"query": query})
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


def test_a_mutation_over_get_is_method_not_allowed(gateway: GatewayServer) -> None:
    response = httpx.get(
        gateway.graphql_url,
        params={"query": 'mutation { cancelUserTaskReservation(id: "x") { __typename } }'},
    )
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


def test_engine_down_is_engine_unavailable(engine: EngineServer, gateway: GatewayServer) -> None:
    engine.stop()
    result = gateway.graphql("{ userTasks { totalCount } }")
    assert error_code(result) == "ENGINE_UNAVAILABLE"
    assert result["errors"][0]["extensions"]["requestId"]


def test_every_engine_side_filter(engine: EngineServer, gateway: GatewayServer) -> None:
    [first, second] = start_approvals(engine, [10, 20])
    onboarding = engine.start_instance("OnboardingProcess", {"employee": "Eve"}, correlationId="onboarding-eve")
    finished = data(gateway.graphql(FINISH, {"id": second, "result": {"approved": True}}))["finishUserTask"]
    next_task = finished["nextTasks"][0]["id"]
    query = "query($filter: UserTaskFilter) { userTasks(filter: $filter, first: 100) { totalCount nodes { id } } }"

    def found(task_filter: dict[str, Any]) -> set[str]:
        page = data(gateway.graphql(query, {"filter": task_filter}))["userTasks"]
        assert page["totalCount"] == len(page["nodes"])
        return {node["id"] for node in page["nodes"]}

    onboarding_tasks = {task["flowNodeInstanceId"] for task in engine.user_tasks(correlationId="onboarding-eve")}
    assert len(onboarding_tasks) >= 2
    assert found({}) == {first, next_task} | onboarding_tasks
    assert found({"state": ["FINISHED"]}) == {second}
    assert found({"state": ["SUSPENDED", "FINISHED"], "id": [second, first]}) == {first, second}
    assert found({"processModelId": ["OnboardingProcess"]}) == onboarding_tasks
    assert found({"processInstanceId": [onboarding["processInstanceId"]]}) == onboarding_tasks
    assert found({"correlationId": ["onboarding-eve"]}) == onboarding_tasks
    assert found({"lane": ["Approver"]}) == {first}
    next_flow_node = engine.user_tasks(flowNodeInstanceId=next_task)[0]["flowNodeId"]
    assert found({"flowNodeId": [next_flow_node]}) == {next_task}
    assert found({"search": "approve"}) == {first}
    assert found({"startedAfter": "2000-01-01T00:00:00Z", "processModelId": ["ApprovalProcess"]}) == {first, next_task}
    assert found({"startedBefore": "2000-01-01T00:00:00Z"}) == set()


def test_a_repeated_query_is_answered_from_the_cache_until_a_write(
    engine: EngineServer, gateway: GatewayServer
) -> None:
    [task_id] = start_approvals(engine, [7])
    gateway.engine_events_settled()
    query = "{ userTasks { nodes { id reservedFor } } }"
    assert data(gateway.graphql(query))["userTasks"]["nodes"] == [{"id": task_id, "reservedFor": None}]
    before = gateway.engine_calls()
    assert data(gateway.graphql(query))["userTasks"]["nodes"] == [{"id": task_id, "reservedFor": None}]
    assert gateway.engine_calls() == before
    data(gateway.graphql(RESERVE, {"id": task_id}))
    assert data(gateway.graphql(query))["userTasks"]["nodes"] == [{"id": task_id, "reservedFor": "dummy_token"}]
