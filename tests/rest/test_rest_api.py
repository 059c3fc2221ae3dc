"""The REST API over real HTTP: a gateway process in front of an embedded engine process."""

from __future__ import annotations

import concurrent.futures
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from gateway.rest.problems import PROBLEM_BASE
from tests.embedded_engine.test_http_api import token_for
from tests.rest.conftest import Approvals
from tests.servers import EngineServer, GatewayServer

TASK_FIELDS = {
    "id",
    "flowNodeId",
    "name",
    "lane",
    "state",
    "processModelId",
    "processModelName",
    "processInstanceId",
    "correlationId",
    "token",
    "reservedFor",
    "formFields",
    "startedAt",
    "finishedAt",
    "finishedBy",
    "result",
}


def ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return response.json()


def problem(response: httpx.Response, status: int, kind: str, code: str | None = None) -> dict[str, Any]:
    """Assert an RFC 9457 problem of this status and type; answer its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["type"] == PROBLEM_BASE + kind
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]
    assert body["instance"] == f"urn:request:{response.headers['x-request-id']}"
    if code is not None:
        assert body["code"] == code
    return body


def nested(depth: int) -> Any:
    """A JSON value ``depth`` levels deep (a list in a list … in a list of 1)."""
    value: Any = 1
    for _ in range(depth - 1):
        value = [value]
    return value


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


def listed(api: httpx.Client, approvals: Approvals, **params: Any) -> dict[str, Any]:
    page: dict[str, Any] = ok(api.get("/user-tasks", params={**approvals.params, **params}))
    return page


# -- reading -------------------------------------------------------------------------------------------------


def test_list_answers_items_total_count_and_next_cursor_with_graphql_field_names(
    api: httpx.Client, approvals: Approvals
) -> None:
    approvals.start([100, 2500])
    page = listed(api, approvals, processModelId="ApprovalProcess")
    assert set(page) == {"items", "totalCount", "nextCursor"}
    assert page["totalCount"] == 2
    assert page["nextCursor"] is None
    first = page["items"][0]
    assert set(first) == TASK_FIELDS
    assert first["state"] == "suspended"
    assert first["lane"] == "Approver"
    assert first["token"] == {"amount": 100, "customerType": "regular", "customerId": "C-100"}
    assert first["startedAt"].endswith("Z")
    assert {field["id"] for field in first["formFields"]} >= {"approved", "comment", "priority"}
    priority = next(field for field in first["formFields"] if field["id"] == "priority")
    assert [value["id"] for value in priority["enumValues"]] == ["low", "normal", "high"]


def test_token_predicates_and_sorting_by_several_keys(api: httpx.Client, approvals: Approvals) -> None:
    approvals.start([500, 1501, 25000, 751, 12000])
    page = listed(api, approvals, token="amount:gte:1000", sort="-token.amount")
    assert [item["token"]["amount"] for item in page["items"]] == [25000, 12000, 1501]
    assert page["totalCount"] == 3
    by_type = listed(api, approvals, sort="-token.customerType,token.amount")
    assert [item["token"]["amount"] for item in by_type["items"]] == [751, 1501, 500, 12000, 25000]
    repeated = listed(api, approvals, sort=["-token.customerType", "token.amount"])
    assert repeated["items"] == by_type["items"]


@pytest.mark.parametrize(
    ("predicates", "amounts"),
    [
        (['customerType:eq:"vip"'], [751, 1501]),
        (["customerType:eq:vip"], [751, 1501]),
        (["amount:gte:1000", "customerType:eq:vip"], [1501]),
        (['customerId:in:["C-500","C-751"]'], [500, 751]),
        (["amount:lt:1000", "amount:ne:500"], [751]),
        (['customerId:contains:"50"'], [500, 1501]),
        (["customerId:contains:50"], []),  # 50 is a number, which no text contains
        (["comment:exists"], []),
        (["comment:exists:false"], [500, 751, 1501]),
    ],
)
def test_token_predicate_values_are_json_or_else_text(
    api: httpx.Client, approvals: Approvals, predicates: list[str], amounts: list[int]
) -> None:
    approvals.start([500, 751, 1501])
    page = listed(api, approvals, token=predicates, sort="token.amount")
    assert [item["token"]["amount"] for item in page["items"]] == amounts


def test_lists_are_repeated_parameters_meaning_any_of(api: httpx.Client, approvals: Approvals) -> None:
    first, second, _ = approvals.start([1, 2, 3])
    page = listed(api, approvals, id=[first, second, "not-there"])
    assert sorted(item["id"] for item in page["items"]) == sorted([first, second])
    both = listed(api, approvals, processModelId=["NoSuchModel", "ApprovalProcess"], lane=["Approver", "Clerk"])
    assert both["totalCount"] == 3


def test_without_state_only_waiting_tasks_are_listed(api: httpx.Client, approvals: Approvals) -> None:
    [task_id, _] = approvals.start([1, 2])
    ok(api.post(f"/user-tasks/{task_id}/finish", json={"result": {"approved": True}}))
    waiting = listed(api, approvals, flowNodeId="approveOrder")
    assert waiting["totalCount"] == 1
    every = listed(api, approvals, flowNodeId="approveOrder", state=["suspended", "finished"])
    assert every["totalCount"] == 2
    finished = listed(api, approvals, state="finished")
    assert [item["id"] for item in finished["items"]] == [task_id]
    assert finished["items"][0]["result"] == {"approved": True}


def test_reserved_search_and_started_filters(api: httpx.Client, approvals: Approvals) -> None:
    [task_id, other_id] = approvals.start([1, 2])
    ok(api.put(f"/user-tasks/{task_id}/reservation", json={"ownerId": "carol"}))
    assert [item["id"] for item in listed(api, approvals, reserved="true")["items"]] == [task_id]
    assert [item["id"] for item in listed(api, approvals, reserved="false")["items"]] == [other_id]
    assert [item["id"] for item in listed(api, approvals, reservedFor="carol")["items"]] == [task_id]
    assert listed(api, approvals, search="APPROVE")["totalCount"] == 2
    assert listed(api, approvals, search="nothing like it")["totalCount"] == 0
    assert listed(api, approvals, startedAfter="2000-01-01T00:00:00Z")["totalCount"] == 2
    assert listed(api, approvals, startedBefore="2000-01-01T00:00:00+02:00")["totalCount"] == 0


def test_paging_with_next_cursor_reaches_every_task_once(api: httpx.Client, approvals: Approvals) -> None:
    expected = set(approvals.start(list(range(1, 8))))
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        page = listed(api, approvals, limit=3, sort="-token.amount", **({"cursor": cursor} if cursor else {}))
        assert page["totalCount"] == 7
        seen += [item["id"] for item in page["items"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(expected)
    assert len(seen) == len(expected)


def test_limit_defaults_to_the_configured_page_size(
    approval_engine: EngineServer, gateway_factory: Callable[..., GatewayServer]
) -> None:
    gateway = gateway_factory(GATEWAY_DEFAULT_PAGE_SIZE=2)
    approvals = Approvals(approval_engine, f"rest-{uuid.uuid4()}")
    approvals.start([1, 2, 3])
    page = ok(httpx.get(gateway.url + "/api/v1/user-tasks", params=approvals.params))
    assert len(page["items"]) == 2
    assert page["totalCount"] == 3
    assert page["nextCursor"]
    empty = ok(httpx.get(gateway.url + "/api/v1/user-tasks", params={**approvals.params, "limit": 0}))
    assert empty == {"items": [], "totalCount": 3, "nextCursor": None}


def test_get_a_task_by_id_in_any_state(api: httpx.Client, approvals: Approvals) -> None:
    [task_id] = approvals.start([10])
    task = ok(api.get(f"/user-tasks/{task_id}"))
    assert set(task) == TASK_FIELDS
    assert task["id"] == task_id
    ok(api.post(f"/user-tasks/{task_id}/finish", json={"result": {"approved": False, "comment": "no"}}))
    done = ok(api.get(f"/user-tasks/{task_id}"))
    assert done["state"] == "finished"
    assert done["finishedBy"] == "dummy_token"
    assert done["finishedAt"].endswith("Z")
    assert done["result"] == {"approved": False, "comment": "no"}


def test_an_unknown_task_is_a_task_not_found_problem(api: httpx.Client) -> None:
    body = problem(api.get("/user-tasks/no-such-task"), 404, "task-not-found", "TASK_NOT_FOUND")
    assert body["taskId"] == "no-such-task"


def test_head_answers_like_get_without_a_body(api: httpx.Client) -> None:
    response = api.head("/user-tasks", params={"limit": 1})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.content == b""


# -- bad input -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "ten"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"limit": "1.5"}, "limit"),
        ({"limit": ["1", "2"]}, "limit"),
        ({"reserved": "yes"}, "reserved"),
        ({"startedAfter": "yesterday"}, "startedAfter"),
        ({"startedBefore": "2026-01-15T10:00:00"}, "startedBefore"),
        ({"startedBefore": "2026-02-30T10:00:00Z"}, "startedBefore"),
        ({"state": "SUSPENDED"}, "state"),
        ({"token": "amount>1000"}, "token"),
        ({"token": "amount:between:1"}, "token"),
        ({"token": "amount:gte"}, "token"),
        ({"sort": "amount"}, "sort"),
        ({"sort": "name,,lane"}, "sort"),
        ({"processModelId": ""}, "processModelId"),
        ({"id": "a b"}, "id"),
        ({"cursor": "not a cursor!"}, "cursor"),
        ({"first": "10"}, "first"),
    ],
)
def test_bad_query_parameters_are_named_in_the_problem(api: httpx.Client, params: dict[str, Any], field: str) -> None:
    body = problem(api.get("/user-tasks", params=params), 400, "bad-request", "BAD_REQUEST")
    assert [item["field"] for item in body["problems"]] == [field]
    assert field in body["detail"]


def test_every_bad_parameter_is_reported_at_once(api: httpx.Client) -> None:
    body = problem(api.get("/user-tasks", params={"lmit": "2", "limit": "x", "sort": "up"}), 400, "bad-request")
    assert sorted(item["field"] for item in body["problems"]) == ["limit", "lmit", "sort"]


def test_routes_without_parameters_refuse_any(api: httpx.Client) -> None:
    body = problem(api.get("/user-tasks/some-task", params={"expand": "all"}), 400, "bad-request")
    assert body["problems"][0]["field"] == "expand"


def test_a_tampered_cursor_is_a_bad_request(api: httpx.Client, approvals: Approvals) -> None:
    approvals.start([1, 2, 3])
    cursor = listed(api, approvals, limit=1)["nextCursor"]
    tampered = cursor[:-2] + ("AA" if not cursor.endswith("AA") else "BB")
    body = problem(
        api.get("/user-tasks", params={**approvals.params, "limit": 1, "cursor": tampered}), 400, "bad-request"
    )
    assert "cursor" in body["detail"]
    other_sort = api.get("/user-tasks", params={**approvals.params, "limit": 1, "cursor": cursor, "sort": "name"})
    assert "another filter or sort" in problem(other_sort, 400, "bad-request")["detail"]


@pytest.mark.parametrize("task_id", ["a b", "ä", "-leading-dash", "x" * 201, "semi;colon", "quote'"])
def test_ids_with_odd_characters_are_bad_requests(api: httpx.Client, task_id: str) -> None:
    for response in (
        api.get(f"/user-tasks/{task_id}"),
        api.put(f"/user-tasks/{task_id}/reservation"),
        api.post(f"/user-tasks/{task_id}/finish", json={"result": {}}),
    ):
        body = problem(response, 400, "bad-request", "BAD_REQUEST")
        assert body["problems"][0]["field"] == "id"


def test_an_id_with_a_slash_names_no_resource(api: httpx.Client) -> None:
    body = problem(api.get("/user-tasks/a%2Fb"), 404, "not-found", "BAD_REQUEST")
    assert "/api/v1/user-tasks/a/b" in body["detail"]


def test_unknown_routes_under_the_api_are_not_found_problems(api: httpx.Client) -> None:
    problem(api.get("/process-models"), 404, "not-found")
    problem(api.delete("/user-tasks/x/y/z"), 404, "not-found")
    problem(httpx.get(str(api.base_url)), 404, "not-found")


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"{not json", "not valid JSON"),
        (b'{"result": {"approved": true}', "not valid JSON"),
        (b"\xff\xfe", "not UTF-8"),
        (b'{"result": {"amount": NaN}}', "not valid JSON"),
        (b'{"result": {"amount": 1e999}}', "too large"),
        (b'{"result": ' + b"[" * 40 + b"]" * 40 + b"}", "/result is nested deeper than 32 levels"),
        (b'{"result": ' + b"[" * 70 + b"]" * 70 + b"}", "nested deeper than 64 levels"),
        (b'{"result": {"comment": "\\ud800"}}', "surrogate"),
        (b'{"result": {}, "comment": "x"}', "/comment is not allowed"),
        (b"{}", "/result is required"),
        (b"[]", "must be a JSON object"),
        (b"", "needs a JSON body"),
    ],
)
def test_bodies_that_are_not_what_the_route_takes_are_bad_requests(
    api: httpx.Client, content: bytes, fragment: str
) -> None:
    response = api.post("/user-tasks/some-task/finish", content=content, headers={"Content-Type": "application/json"})
    body = problem(response, 400, "bad-request", "BAD_REQUEST")
    assert fragment in body["detail"]


@pytest.mark.parametrize(
    ("path", "body", "pointers"),
    [
        ("/user-tasks/batch/reserve", {"ids": ["ok", "not ok", 7]}, ["/ids/1", "/ids/2"]),
        ("/user-tasks/batch/reserve", {"ids": "a,b", "ownerId": ""}, ["/ids", "/ownerId"]),
        ("/user-tasks/batch/cancel-reservation", {"ids": [], "ownerId": "x"}, ["/ownerId"]),
        (
            "/user-tasks/batch/finish",
            {"items": [{"id": "a"}, {"id": "b", "result": {"deep": nested(33)}}]},
            ["/items/0/result", "/items/1/result"],
        ),
        ("/user-tasks/batch/finish", {"items": [{"id": "a b", "result": 1}]}, ["/items/0/id"]),
        ("/user-tasks/batch/finish", {"items": [{"id": "a", "result": {}, "x/y": 1}]}, ["/items/0/x~1y"]),
        ("/user-tasks/x/reservation", {"ownerId": 42}, ["/ownerId"]),
    ],
)
def test_body_problems_are_named_by_json_pointer(
    api: httpx.Client, path: str, body: dict[str, Any], pointers: list[str]
) -> None:
    response = api.request("POST" if "/batch/" in path else "PUT", path, json=body)
    assert [item["field"] for item in problem(response, 400, "bad-request")["problems"]] == pointers


def test_an_oversized_body_is_a_413_problem(gateway_factory: Callable[..., GatewayServer]) -> None:
    gateway = gateway_factory(GATEWAY_MAX_BODY_BYTES=2048)
    response = httpx.post(gateway.url + "/api/v1/user-tasks/some-task/finish", json={"result": {"comment": "x" * 4000}})
    body = problem(response, 413, "payload-too-large", "BAD_REQUEST")
    assert "2048" in body["detail"]


# -- HTTP ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PATCH", "/user-tasks/x/finish", "POST, OPTIONS"),
        ("GET", "/user-tasks/x/finish", "POST, OPTIONS"),
        ("POST", "/user-tasks", "GET, HEAD, OPTIONS"),
        ("DELETE", "/user-tasks/x", "GET, HEAD, OPTIONS"),
        ("POST", "/user-tasks/x/reservation", "PUT, DELETE, OPTIONS"),
        ("TRACE", "/user-tasks/batch/reserve", "POST, OPTIONS"),
    ],
)
def test_an_unknown_method_is_405_with_allow(api: httpx.Client, method: str, path: str, allow: str) -> None:
    response = api.request(method, path)
    problem(response, 405, "method-not-allowed", "BAD_REQUEST")
    assert response.headers["allow"] == allow


def test_options_lists_the_methods(api: httpx.Client) -> None:
    response = api.options("/user-tasks/x/reservation")
    assert response.status_code == 204
    assert response.headers["allow"] == "PUT, DELETE, OPTIONS"


@pytest.mark.parametrize("accept", ["text/html", "application/xml, text/*;q=0.9", "application/json;q=0"])
def test_an_accept_header_without_json_is_406(api: httpx.Client, accept: str) -> None:
    problem(api.get("/user-tasks", headers={"Accept": accept}), 406, "not-acceptable", "BAD_REQUEST")


@pytest.mark.parametrize(
    "accept", ["application/json", "application/problem+json", "*/*", "application/*", "text/html, */*;q=0.1"]
)
def test_accept_headers_that_admit_json_are_served(api: httpx.Client, accept: str) -> None:
    assert api.get("/user-tasks", params={"limit": 0}, headers={"Accept": accept}).status_code == 200


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_a_body_that_is_not_json_media_is_415(api: httpx.Client, content_type: str | None) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = api.post("/user-tasks/x/finish", content=b'{"result": {}}', headers=headers)
    problem(response, 415, "unsupported-media-type", "BAD_REQUEST")


def test_json_with_a_charset_parameter_is_json(api: httpx.Client) -> None:
    response = api.post(
        "/user-tasks/batch/reserve", content=b'{"ids": []}', headers={"Content-Type": "application/json; charset=utf-8"}
    )
    assert ok(response) == {"results": []}


def test_the_request_id_is_the_problem_instance(api: httpx.Client) -> None:
    response = api.get("/user-tasks/nope", headers={"X-Request-ID": "trace-4711"})
    assert response.headers["x-request-id"] == "trace-4711"
    assert problem(response, 404, "task-not-found")["instance"] == "urn:request:trace-4711"


# -- writing -------------------------------------------------------------------------------------------------


def test_reserve_cancel_and_finish_a_task(api: httpx.Client, approvals: Approvals) -> None:
    [task_id] = approvals.start([42])
    reserved = ok(api.put(f"/user-tasks/{task_id}/reservation"))
    assert set(reserved) == TASK_FIELDS
    assert reserved["reservedFor"] == "dummy_token"
    assert ok(api.put(f"/user-tasks/{task_id}/reservation"))["reservedFor"] == "dummy_token"  # again: fine
    cancelled = ok(api.delete(f"/user-tasks/{task_id}/reservation"))
    assert cancelled["reservedFor"] is None
    for_alice = ok(api.put(f"/user-tasks/{task_id}/reservation", json={"ownerId": "alice"}))
    assert for_alice["reservedFor"] == "alice"
    ok(api.delete(f"/user-tasks/{task_id}/reservation"))
    assert ok(api.put(f"/user-tasks/{task_id}/reservation", json={}))["reservedFor"] == "dummy_token"

    outcome = ok(api.post(f"/user-tasks/{task_id}/finish", json={"result": {"approved": True, "comment": "fine"}}))
    assert set(outcome) == {"task", "nextTasks"}
    assert outcome["task"]["state"] == "finished"
    assert outcome["task"]["finishedBy"] == "dummy_token"
    [next_task] = outcome["nextTasks"]
    assert next_task["flowNodeId"] == "notifyCustomer"
    assert next_task["token"] == {"approved": True, "comment": "fine"}


def test_finish_refusals_are_problems(engine: EngineServer, api: httpx.Client, approvals: Approvals) -> None:
    [task_id, other_id] = approvals.start([1, 2])

    problem(api.post("/user-tasks/nope/finish", json={"result": {}}), 404, "task-not-found", "TASK_NOT_FOUND")

    invalid = problem(
        api.post(f"/user-tasks/{task_id}/finish", json={"result": {"approved": "yes", "priority": "urgent"}}),
        422,
        "invalid-task-result",
        "INVALID_TASK_RESULT",
    )
    assert invalid["taskId"] == task_id
    assert [item["field"] for item in invalid["problems"]] == ["approved", "priority"]

    # a result that is not an object does not fit any form: the same 422 as in GraphQL (InvalidTaskResult)
    not_object = problem(api.post(f"/user-tasks/{task_id}/finish", json={"result": [1, 2]}), 422, "invalid-task-result")
    assert [item["field"] for item in not_object["problems"]] == [""]
    assert "must be an object" in not_object["detail"]

    ok(api.post(f"/user-tasks/{task_id}/finish", json={"result": {"approved": True}}))
    again = problem(
        api.post(f"/user-tasks/{task_id}/finish", json={"result": {"approved": False}}),
        409,
        "task-not-active",
        "TASK_NOT_ACTIVE",
    )
    assert again["state"] == "finished"
    assert again["taskId"] == task_id

    alice = token_for(engine, "alice", "alice-secret")
    ok(api.put(f"/user-tasks/{other_id}/reservation", headers=bearer(alice)))
    taken = problem(
        api.post(f"/user-tasks/{other_id}/finish", json={"result": {"approved": True}}),
        409,
        "task-reserved-by-other-user",
        "TASK_RESERVED_BY_OTHER_USER",
    )
    assert taken["reservedFor"] == "alice"
    problem(api.put(f"/user-tasks/{other_id}/reservation"), 409, "task-reserved-by-other-user")
    problem(api.put(f"/user-tasks/{task_id}/reservation"), 409, "task-not-active")


def test_finishing_again_with_the_same_result_answers_as_the_first_finish(
    api: httpx.Client, approvals: Approvals
) -> None:
    [task_id] = approvals.start([7])
    result = {"result": {"approved": True, "comment": "ok"}}
    first = ok(api.post(f"/user-tasks/{task_id}/finish", json=result))
    second = ok(api.post(f"/user-tasks/{task_id}/finish", json=result))
    assert second == first


def test_batch_finish_answers_each_item_in_order(api: httpx.Client, approvals: Approvals) -> None:
    task_ids = approvals.start([1, 2, 3])
    items = [
        {"id": task_ids[0], "result": {"approved": True}},
        {"id": "nope", "result": {}},
        {"id": task_ids[1], "result": {"approved": 7}},
        {"id": task_ids[2], "result": {"approved": False}},
    ]
    results = ok(api.post("/user-tasks/batch/finish", json={"items": items}))["results"]
    assert [(item["id"], item["status"]) for item in results] == [
        (task_ids[0], 200),
        ("nope", 404),
        (task_ids[1], 422),
        (task_ids[2], 200),
    ]
    assert results[0]["task"]["state"] == "finished"
    assert [task["flowNodeId"] for task in results[0]["nextTasks"]] == ["notifyCustomer"]
    assert [task["flowNodeId"] for task in results[3]["nextTasks"]] == ["reviseOrder"]
    assert results[1]["problem"]["type"] == PROBLEM_BASE + "task-not-found"
    assert results[2]["problem"]["code"] == "INVALID_TASK_RESULT"
    assert results[2]["problem"]["problems"][0]["field"] == "approved"


def test_batch_reserve_and_cancel_answer_each_item_in_order(api: httpx.Client, approvals: Approvals) -> None:
    task_ids = approvals.start([1, 2])
    reserved = ok(api.post("/user-tasks/batch/reserve", json={"ids": [*task_ids, "nope"], "ownerId": "carol"}))
    assert [item["status"] for item in reserved["results"]] == [200, 200, 404]
    assert [item["task"]["reservedFor"] for item in reserved["results"][:2]] == ["carol", "carol"]
    assert reserved["results"][2]["problem"]["taskId"] == "nope"
    cancelled = ok(api.post("/user-tasks/batch/cancel-reservation", json={"ids": task_ids}))
    assert [item["task"]["reservedFor"] for item in cancelled["results"]] == [None, None]
    assert ok(api.post("/user-tasks/batch/reserve", json={"ids": task_ids}))["results"][0]["task"]["reservedFor"] == (
        "dummy_token"
    )


def test_a_batch_over_the_limit_is_a_bad_request(gateway_factory: Callable[..., GatewayServer]) -> None:
    gateway = gateway_factory(GATEWAY_MAX_BATCH_SIZE=2)
    response = httpx.post(gateway.url + "/api/v1/user-tasks/batch/reserve", json={"ids": ["a", "b", "c"]})
    assert "at most 2" in problem(response, 400, "bad-request", "BAD_REQUEST")["detail"]


# -- identity ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("authorization", ["Bearer not.a.jwt", "Basic dXNlcjpwdw==", "Bearer"])
def test_a_bad_token_is_an_unauthenticated_problem(api: httpx.Client, authorization: str) -> None:
    response = api.get("/user-tasks", headers={"Authorization": authorization})
    problem(response, 401, "unauthenticated", "UNAUTHENTICATED")
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_without_anonymous_access_a_token_is_needed(
    approval_engine: EngineServer, gateway_factory: Callable[..., GatewayServer]
) -> None:
    gateway = gateway_factory(GATEWAY_ALLOW_ANONYMOUS="false")
    url = gateway.url + "/api/v1/user-tasks"
    problem(httpx.get(url), 401, "unauthenticated", "UNAUTHENTICATED")
    problem(httpx.post(url + "/x/finish", json={"result": {}}), 401, "unauthenticated")
    worker = token_for(approval_engine, "user-task-worker", "secret-key")
    assert httpx.get(url, headers=bearer(worker)).status_code == 200


def test_lanes_hide_tasks_from_callers_without_the_claim(
    engine: EngineServer, api: httpx.Client, approvals: Approvals
) -> None:
    [task_id] = approvals.start([5])
    alice = bearer(token_for(engine, "alice", "alice-secret"))
    bob = bearer(token_for(engine, "bob", "bob-secret"))
    assert ok(api.get(f"/user-tasks/{task_id}", headers=alice))["id"] == task_id
    assert ok(api.get("/user-tasks", params=approvals.params, headers=alice))["totalCount"] == 1
    problem(api.get(f"/user-tasks/{task_id}", headers=bob), 404, "task-not-found")
    assert ok(api.get("/user-tasks", params=approvals.params, headers=bob))["totalCount"] == 0
    problem(api.post(f"/user-tasks/{task_id}/finish", json={"result": {}}, headers=bob), 404, "task-not-found")


def test_the_callers_subject_is_the_default_owner(
    engine: EngineServer, api: httpx.Client, approvals: Approvals
) -> None:
    [task_id] = approvals.start([5])
    alice = bearer(token_for(engine, "alice", "alice-secret"))
    assert ok(api.put(f"/user-tasks/{task_id}/reservation", headers=alice))["reservedFor"] == "alice"
    outcome = ok(api.post(f"/user-tasks/{task_id}/finish", json={"result": {"approved": True}}, headers=alice))
    assert outcome["task"]["finishedBy"] == "alice"


# -- idempotency keys ----------------------------------------------------------------------------------------


def test_a_retry_with_the_same_key_replays_the_first_answer_without_the_engine(
    gateway: GatewayServer, api: httpx.Client, approvals: Approvals
) -> None:
    [task_id] = approvals.start([3])
    headers = key()
    body = {"result": {"approved": True, "comment": "retry me"}}
    first = api.post(f"/user-tasks/{task_id}/finish", json=body, headers=headers)
    assert "idempotent-replayed" not in first.headers
    calls = gateway.engine_calls()
    again = api.post(
        f"/user-tasks/{task_id}/finish",
        content=b'{"result":{"comment":"retry me","approved":true}}',  # the same JSON, spelled differently
        headers={**headers, "Content-Type": "application/json"},
    )
    assert gateway.engine_calls() == calls
    assert again.headers["idempotent-replayed"] == "true"
    assert again.status_code == first.status_code == 200
    assert again.content == first.content


def test_the_same_key_with_another_body_is_a_422_problem(api: httpx.Client, approvals: Approvals) -> None:
    [task_id] = approvals.start([3])
    headers = key()
    ok(api.post(f"/user-tasks/{task_id}/finish", json={"result": {"approved": True}}, headers=headers))
    body = problem(
        api.post(f"/user-tasks/{task_id}/finish", json={"result": {"approved": False}}, headers=headers),
        422,
        "idempotency-key-reused",
        "IDEMPOTENCY_KEY_REUSED",
    )
    assert headers["Idempotency-Key"] in body["detail"]


def test_a_key_is_scoped_to_its_route_and_caller(engine: EngineServer, api: httpx.Client, approvals: Approvals) -> None:
    [task_id, other_id] = approvals.start([1, 2])
    headers = key()
    ok(api.put(f"/user-tasks/{task_id}/reservation", headers=headers))
    other = api.put(f"/user-tasks/{other_id}/reservation", json={"ownerId": "carol"}, headers=headers)
    assert ok(other)["reservedFor"] == "carol"
    assert "idempotent-replayed" not in other.headers
    alice = bearer(token_for(engine, "alice", "alice-secret"))
    as_alice = api.put(f"/user-tasks/{task_id}/reservation", headers={**headers, **alice})
    # alice's request runs (it is no replay of the anonymous caller's answer) and finds the task taken
    problem(as_alice, 409, "task-reserved-by-other-user")
    assert "idempotent-replayed" not in as_alice.headers


def test_a_refusal_is_replayed_too(gateway: GatewayServer, api: httpx.Client) -> None:
    headers = key()
    first = api.put("/user-tasks/no-such-task/reservation", headers=headers)
    problem(first, 404, "task-not-found")
    calls = gateway.engine_calls()
    again = api.put("/user-tasks/no-such-task/reservation", headers=headers)
    assert gateway.engine_calls() == calls
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()


def test_concurrent_duplicates_wait_for_the_first_and_share_its_answer(api: httpx.Client, approvals: Approvals) -> None:
    [task_id] = approvals.start([9])
    headers = key()
    body = {"result": {"approved": True, "comment": "once"}}

    def finish(_: int) -> httpx.Response:
        return api.post(f"/user-tasks/{task_id}/finish", json=body, headers=headers)

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(finish, range(8)))
    assert [response.status_code for response in responses] == [200] * 8
    assert len({response.content for response in responses}) == 1
    assert sum("idempotent-replayed" not in response.headers for response in responses) == 1
    finished = listed(api, approvals, state="finished")
    assert [item["id"] for item in finished["items"]] == [task_id]


def test_batches_take_idempotency_keys(gateway: GatewayServer, api: httpx.Client, approvals: Approvals) -> None:
    task_ids = approvals.start([1, 2])
    headers = key()
    items = {"items": [{"id": task_id, "result": {"approved": True}} for task_id in task_ids]}
    first = ok(api.post("/user-tasks/batch/finish", json=items, headers=headers))
    calls = gateway.engine_calls()
    again = api.post("/user-tasks/batch/finish", json=items, headers=headers)
    assert gateway.engine_calls() == calls
    assert ok(again) == first
    assert again.headers["idempotent-replayed"] == "true"
    changed = {"items": items["items"][:1]}
    problem(api.post("/user-tasks/batch/finish", json=changed, headers=headers), 422, "idempotency-key-reused")


@pytest.mark.parametrize("value", ["", "has space", "x" * 256, "umlaut-ä"])
def test_a_malformed_idempotency_key_is_a_bad_request(api: httpx.Client, value: str) -> None:
    response = api.request(
        "DELETE",
        "/user-tasks/x/reservation",
        headers=[("Idempotency-Key", value.encode())],  # type: ignore[arg-type]
    )
    assert problem(response, 400, "bad-request")["problems"][0]["field"] == "Idempotency-Key"


# -- the engine ----------------------------------------------------------------------------------------------


def test_engine_down_is_engine_unavailable_with_retry_after(
    approval_engine: EngineServer, gateway_factory: Callable[..., GatewayServer]
) -> None:
    gateway = gateway_factory()
    approval_engine.stop()
    response = httpx.get(gateway.url + "/api/v1/user-tasks")
    body = problem(response, 503, "engine-unavailable", "ENGINE_UNAVAILABLE")
    assert response.headers["retry-after"] == str(body["retryAfterSeconds"])
    batch = ok(httpx.post(gateway.url + "/api/v1/user-tasks/batch/cancel-reservation", json={"ids": ["a"]}))
    assert batch["results"][0]["status"] == 503
    assert batch["results"][0]["problem"]["code"] == "ENGINE_UNAVAILABLE"


def test_an_answer_of_an_unavailable_engine_is_not_replayed(
    approval_engine: EngineServer, gateway_factory: Callable[..., GatewayServer]
) -> None:
    gateway = gateway_factory()
    url = gateway.url + "/api/v1/user-tasks/no-such-task/reservation"
    headers = key()
    approval_engine.stop()
    problem(httpx.put(url, headers=headers), 503, "engine-unavailable")
    approval_engine.start()
    retry = httpx.put(url, headers=headers)
    problem(retry, 404, "task-not-found")
    assert "idempotent-replayed" not in retry.headers
