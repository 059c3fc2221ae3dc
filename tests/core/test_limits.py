"""Every input limit of :mod:`gateway.core.limits`, driven through both faces with the same input: the same code and the
same named field, whether the input came as a REST query parameter or body, or as GraphQL variables.

Then the reproductions of the defects that made this module: each is a fast typed refusal (requests time out after
10 s, so a stall fails the test) while ``GET /healthz`` keeps answering. Unit tests of the rules themselves (no
servers) come first.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.core import limits
from gateway.core.domain import SortField, TaskFilter, TaskQuery, TaskSort, TokenOp, TokenPredicate
from gateway.core.tokens import MISSING, token_value
from tests.conftest import EXAMPLES
from tests.servers import EngineServer, GatewayServer, gateway_in_front_of

TIMEOUT = 10.0

# -- the rules, without servers ------------------------------------------------------------------------------


def fields_of(query: TaskQuery) -> list[str]:
    with pytest.raises(limits.InvalidInput) as raised:
        limits.validate_query(query, max_page_size=100)
    return [problem.field for problem in raised.value.problems]


def test_list_indexes_in_token_paths_are_ascii_digits_only() -> None:
    token = {"items": ["a", "b"], "d": {"²": "key"}}
    assert token_value(token, "items.1") == "b"
    assert token_value(token, "items.²") is MISSING
    assert token_value(token, "items.١") is MISSING  # an Arabic-Indic digit: int() takes it, an index it is not
    assert token_value(token, "items." + "9" * 5000) is MISSING  # int() of 5,000 digits would raise ValueError
    assert token_value(token, "d.²") == "key"
    assert limits.list_index("07") == 7
    assert limits.list_index("²") is None


def test_json_values_are_checked_without_recursion_and_stop_at_their_limit() -> None:
    deep: Any = 1
    for _ in range(5000):
        deep = [deep]
    assert limits.json_problem(deep) == f"is nested deeper than {limits.MAX_JSON_DEPTH} levels"
    assert "not finite" in (limits.json_problem({"x": float("nan")}) or "")
    assert "surrogate" in (limits.json_problem(["\ud800"]) or "")
    assert "larger than 10" in (limits.json_problem(list(range(10**6)), max_weight=10) or "")
    assert limits.json_weight({"ab": [1, "xyz"]}) == 1 + 2 + 1 + 1 + 1 + 3


def test_decode_json_never_raises_recursion_error() -> None:
    with pytest.raises(ValueError, match="nested deeper"):
        limits.decode_json("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match="not JSON"):
        limits.decode_json('{"a": NaN}')


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (datetime(2026, 1, 1), datetime(2026, 1, 1, tzinfo=UTC)),
        (datetime(2026, 1, 1, 1, tzinfo=timezone(timedelta(hours=1))), datetime(2026, 1, 1, tzinfo=UTC)),
        (datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone(-timedelta(hours=1))), None),
        (datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))), None),
        (datetime(1, 1, 1, 2, tzinfo=timezone(timedelta(hours=1))), datetime(1, 1, 1, 1, tzinfo=UTC)),
    ],
)
def test_dates_are_instants_in_range(value: datetime, expected: datetime | None) -> None:
    assert limits.utc(value) == expected
    assert limits.moment(value) == (expected or (limits.LATEST if value.year == 9999 else limits.EARLIEST))


def test_the_list_query_rules() -> None:
    predicate = TokenPredicate("amount", TokenOp.GT, 1)
    assert fields_of(TaskQuery(first=101)) == ["first"]
    assert fields_of(TaskQuery(filter=TaskFilter(ids=("a b",)))) == ["id"]
    assert fields_of(TaskQuery(filter=TaskFilter(lanes=("",)))) == ["lane"]
    assert fields_of(TaskQuery(filter=TaskFilter(correlation_ids=("c",) * 101))) == ["correlationId"]
    assert fields_of(TaskQuery(filter=TaskFilter(reserved_for=""))) == ["reservedFor"]
    assert fields_of(TaskQuery(filter=TaskFilter(search="s" * 257))) == ["search"]
    assert fields_of(TaskQuery(filter=TaskFilter(token=(predicate,) * 21))) == ["token"]
    assert fields_of(TaskQuery(filter=TaskFilter(token=(TokenPredicate("a b", TokenOp.EXISTS),)))) == ["token"]
    assert fields_of(TaskQuery(filter=TaskFilter(token=(TokenPredicate("a", TokenOp.EQ, "x" * 999),)))) == ["token"]
    assert fields_of(TaskQuery(sort=(TaskSort(SortField.NAME),) * 11)) == ["sort"]
    assert fields_of(TaskQuery(sort=(TaskSort(SortField.TOKEN),))) == ["sort"]
    assert fields_of(TaskQuery(sort=(TaskSort(SortField.TOKEN, token_path="a" * 1001),))) == ["sort"]
    assert fields_of(TaskQuery(sort=(TaskSort(SortField.NAME, token_path="amount"),))) == ["sort"]
    too_long = tuple("m" * 60 for _ in range(100))
    assert fields_of(TaskQuery(filter=TaskFilter(process_model_ids=too_long))) == ["processModelId"]
    late = datetime(9999, 12, 31, 23, 59, tzinfo=timezone(-timedelta(hours=2)))
    assert fields_of(TaskQuery(filter=TaskFilter(started_after=late, started_before=late))) == [
        "startedAfter",
        "startedBefore",
    ]
    fine = TaskQuery(filter=TaskFilter(token=(TokenPredicate("items.²", TokenOp.EXISTS, True),)))
    assert limits.validate_query(fine, max_page_size=100).filter.token == fine.filter.token


# -- both faces, one gateway ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EngineServer, GatewayServer]]:
    root: Path = tmp_path_factory.mktemp("limits")
    with EngineServer(data_dir=root / "engine") as engine:
        for path in sorted(EXAMPLES.glob("*.bpmn")):
            engine.deploy_file(path)
        gateway = gateway_in_front_of(engine.url, root / "gateway").start()
        try:
            yield engine, gateway
        finally:
            gateway.stop()


@pytest.fixture(scope="module")
def gateway(servers: tuple[EngineServer, GatewayServer]) -> GatewayServer:
    return servers[1]


@pytest.fixture(scope="module")
def waiting_task(servers: tuple[EngineServer, GatewayServer]) -> str:
    """A waiting ApprovalProcess task (for the rules that need a real task)."""
    engine = servers[0]
    started = engine.start_instance("ApprovalProcess", {"amount": 1}, correlationId=f"limits-{uuid.uuid4()}")
    [task] = engine.user_tasks(processInstanceId=started["processInstanceId"])
    return str(task["flowNodeInstanceId"])


@dataclass(frozen=True)
class Outcome:
    code: str
    fields: tuple[str, ...]


def rest(gateway: GatewayServer, method: str, path: str, **options: Any) -> Outcome:
    response = httpx.request(method, gateway.url + "/api/v1" + path, timeout=TIMEOUT, **options)
    assert response.status_code < 500, response.text
    if response.status_code == 200:
        return Outcome("OK", ())
    assert response.headers["content-type"] == "application/problem+json", response.text
    body = response.json()
    return Outcome(body["code"], tuple(problem["field"] for problem in body.get("problems", ())))


def graphql(gateway: GatewayServer, query: str, variables: dict[str, Any]) -> Outcome:
    response = httpx.post(gateway.graphql_url, json={"query": query, "variables": variables}, timeout=TIMEOUT)
    assert response.status_code < 500, response.text
    body = response.json()
    errors = body.get("errors")
    if not errors:
        return Outcome("OK", ())
    [error] = errors
    extensions = error["extensions"]
    return Outcome(extensions["code"], tuple(problem["field"] for problem in extensions.get("problems", ())))


LIST = """query($f: UserTaskFilter, $s: [UserTaskSort!], $n: Int) {
  userTasks(filter: $f, sort: $s, first: $n) { totalCount }
}"""
TASK = "query($id: ID!) { userTask(id: $id) { id } }"
RESERVE = "mutation($id: ID!, $owner: String) { reserveUserTask(id: $id, ownerId: $owner) { __typename } }"
CANCEL = "mutation($id: ID!) { cancelUserTaskReservation(id: $id) { __typename } }"
FINISH = """mutation($id: ID!, $result: JSON!) {
  finishUserTask(id: $id, result: $result) { __typename ... on InvalidTaskResult { problems { field } } }
}"""
RESERVE_MANY = "mutation($ids: [ID!]!, $owner: String) { reserveUserTasks(ids: $ids, ownerId: $owner) { __typename } }"
CANCEL_MANY = "mutation($ids: [ID!]!) { cancelUserTaskReservations(ids: $ids) { __typename } }"
FINISH_MANY = "mutation($items: [FinishUserTaskInput!]!) { finishUserTasks(items: $items) { __typename } }"


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth - 1):
        value = [value]
    return value


BAD = "BAD_REQUEST"

#: (name, REST query parameters, GraphQL variables of LIST, the field both faces name; REST's page size is `limit`)
LIST_CASES: list[tuple[str, list[tuple[str, str]], dict[str, Any], str]] = [
    ("page size", [("limit", "101")], {"n": 101}, "first|limit"),
    ("negative page size", [("limit", "-1")], {"n": -1}, "first|limit"),
    ("too many ids", [("id", f"t-{i}") for i in range(101)], {"f": {"id": [f"t-{i}" for i in range(101)]}}, "id"),
    ("task id rule", [("id", "a b")], {"f": {"id": ["a b"]}}, "id"),
    ("long id", [("id", "x" * 201)], {"f": {"id": ["x" * 201]}}, "id"),
    ("empty model id", [("processModelId", "")], {"f": {"processModelId": [""]}}, "processModelId"),
    ("long model id", [("processModelId", "M" * 257)], {"f": {"processModelId": ["M" * 257]}}, "processModelId"),
    ("too many lanes", [("lane", "L")] * 101, {"f": {"lane": ["L"] * 101}}, "lane"),
    (
        "engine filter too long",
        [("correlationId", "c" * 60 + str(i)) for i in range(100)],
        {"f": {"correlationId": ["c" * 60 + str(i) for i in range(100)]}},
        "correlationId",
    ),
    ("empty reservedFor", [("reservedFor", "")], {"f": {"reservedFor": ""}}, "reservedFor"),
    ("long search", [("search", "s" * 257)], {"f": {"search": "s" * 257}}, "search"),
    (
        "too many token predicates",
        [("token", f"p{i}:exists") for i in range(21)],
        {"f": {"token": [{"path": f"p{i}", "op": "EXISTS"} for i in range(21)]}},
        "token",
    ),
    ("token path syntax", [("token", "a,b:exists")], {"f": {"token": [{"path": "a,b", "op": "EXISTS"}]}}, "token"),
    (
        "empty token path part",
        [("token", "a..b:exists")],
        {"f": {"token": [{"path": "a..b", "op": "EXISTS"}]}},
        "token",
    ),
    (
        "token predicate length",
        [("token", "a:eq:" + "x" * 996)],
        {"f": {"token": [{"path": "a", "op": "EQ", "value": "x" * 1000}]}},
        "token",
    ),
    (
        "token value depth",
        [("token", "a:eq:" + json.dumps(nested(33)))],
        {"f": {"token": [{"path": "a", "op": "EQ", "value": nested(33)}]}},
        "token",
    ),
    (
        "too many sort keys",
        [("sort", ",".join(["name"] * 11))],
        {"s": [{"field": "NAME"}] * 11},
        "sort",
    ),
    ("sort path syntax", [("sort", "token.a b")], {"s": [{"field": "TOKEN", "tokenPath": "a b"}]}, "sort"),
    (
        "sort path length",
        [("sort", "token." + "p" * 1001)],
        {"s": [{"field": "TOKEN", "tokenPath": "p" * 1001}]},
        "sort",
    ),
    (
        "date past the last instant",
        [("startedAfter", "9999-12-31T23:59:59-01:00")],
        {"f": {"startedAfter": "9999-12-31T23:59:59-01:00"}},
        "startedAfter",
    ),
    (
        "date before the first instant",
        [("startedBefore", "0001-01-01T00:30:00+01:00")],
        {"f": {"startedBefore": "0001-01-01T00:30:00+01:00"}},
        "startedBefore",
    ),
]


@pytest.mark.parametrize(
    ("rest_params", "variables", "field"), [case[1:] for case in LIST_CASES], ids=[case[0] for case in LIST_CASES]
)
def test_a_list_query_over_a_limit_is_the_same_bad_request_in_both_faces(
    gateway: GatewayServer, rest_params: list[tuple[str, str]], variables: dict[str, Any], field: str
) -> None:
    graphql_field, _, rest_field = field.partition("|")
    assert rest(gateway, "GET", "/user-tasks", params=rest_params) == Outcome(BAD, (rest_field or graphql_field,))
    assert graphql(gateway, LIST, variables) == Outcome(BAD, (graphql_field,))


@pytest.mark.parametrize(
    ("rest_params", "variables"),
    [
        ([("token", "items.²:exists")], {"f": {"token": [{"path": "items.²", "op": "EXISTS"}]}}),
        ([("sort", "token.items.²")], {"s": [{"field": "TOKEN", "tokenPath": "items.²"}]}),
        (
            [("token", "a:eq:" + json.dumps(nested(32)))],
            {"f": {"token": [{"path": "a", "op": "EQ", "value": nested(32)}]}},
        ),
        ([("startedAfter", "9999-12-31T23:59:59Z")], {"f": {"startedAfter": "9999-12-31T23:59:59Z"}}),
        ([("startedBefore", "0001-01-01T00:00:00Z")], {"f": {"startedBefore": "0001-01-01T00:00:00Z"}}),
        ([("limit", "0")], {"n": 0}),
    ],
    ids=["superscript key in token", "superscript key in sort", "depth 32", "last instant", "first instant", "page 0"],
)
def test_inputs_at_a_limit_are_answered_in_both_faces(
    gateway: GatewayServer, rest_params: list[tuple[str, str]], variables: dict[str, Any]
) -> None:
    assert rest(gateway, "GET", "/user-tasks", params=rest_params) == Outcome("OK", ())
    assert graphql(gateway, LIST, variables) == Outcome("OK", ())


def test_an_odd_task_id_is_the_same_bad_request_in_both_faces(gateway: GatewayServer) -> None:
    odd = "a b"
    expected = Outcome(BAD, ("id",))
    assert rest(gateway, "GET", f"/user-tasks/{odd}") == expected
    assert graphql(gateway, TASK, {"id": odd}) == expected
    assert rest(gateway, "PUT", f"/user-tasks/{odd}/reservation") == expected
    assert graphql(gateway, RESERVE, {"id": odd}) == expected
    assert rest(gateway, "DELETE", f"/user-tasks/{odd}/reservation") == expected
    assert graphql(gateway, CANCEL, {"id": odd}) == expected
    assert rest(gateway, "POST", f"/user-tasks/{odd}/finish", json={"result": {}}) == expected
    assert graphql(gateway, FINISH, {"id": odd, "result": {}}) == expected


def test_an_empty_or_long_owner_is_the_same_bad_request_in_both_faces(gateway: GatewayServer) -> None:
    for owner in ("", "o" * 257):
        expected = Outcome(BAD, ("/ownerId",))
        assert rest(gateway, "PUT", "/user-tasks/some-task/reservation", json={"ownerId": owner}) == expected
        assert graphql(gateway, RESERVE, {"id": "some-task", "owner": owner}) == expected
        assert rest(gateway, "POST", "/user-tasks/batch/reserve", json={"ids": ["t"], "ownerId": owner}) == expected
        assert graphql(gateway, RESERVE_MANY, {"ids": ["t"], "owner": owner}) == expected


@pytest.mark.parametrize(
    ("result", "why"),
    [({"deep": nested(40)}, "depth"), ({"comment": "x" * (limits.MAX_RESULT_WEIGHT + 10)}, "size")],
)
def test_a_result_over_a_limit_is_the_same_bad_request_in_both_faces(
    gateway: GatewayServer, result: Any, why: str
) -> None:
    expected = Outcome(BAD, ("/result",))
    assert rest(gateway, "POST", "/user-tasks/some-task/finish", json={"result": result}) == expected
    assert graphql(gateway, FINISH, {"id": "some-task", "result": result}) == expected


def test_a_result_that_is_not_an_object_is_an_invalid_task_result_in_both_faces(
    gateway: GatewayServer, waiting_task: str
) -> None:
    """The one rule: a result fits a form only as an object of its fields (422 / InvalidTaskResult), not a 400."""
    response = httpx.post(
        f"{gateway.url}/api/v1/user-tasks/{waiting_task}/finish", json={"result": [1, 2]}, timeout=TIMEOUT
    )
    assert response.status_code == 422
    body = response.json()
    assert (body["code"], [problem["field"] for problem in body["problems"]]) == ("INVALID_TASK_RESULT", [""])
    answer = httpx.post(
        gateway.graphql_url,
        json={"query": FINISH, "variables": {"id": waiting_task, "result": [1, 2]}},
        timeout=TIMEOUT,
    ).json()
    assert answer["data"]["finishUserTask"] == {"__typename": "InvalidTaskResult", "problems": [{"field": ""}]}


def test_batches_over_a_limit_are_the_same_bad_request_in_both_faces(gateway: GatewayServer) -> None:
    many = [f"t-{index}" for index in range(101)]
    assert rest(gateway, "POST", "/user-tasks/batch/reserve", json={"ids": many}) == Outcome(BAD, ("/ids",))
    assert graphql(gateway, RESERVE_MANY, {"ids": many}) == Outcome(BAD, ("/ids",))
    assert rest(gateway, "POST", "/user-tasks/batch/cancel-reservation", json={"ids": ["ok", "not ok"]}) == Outcome(
        BAD, ("/ids/1",)
    )
    assert graphql(gateway, CANCEL_MANY, {"ids": ["ok", "not ok"]}) == Outcome(BAD, ("/ids/1",))
    items = [{"id": "a b", "result": {}}, {"id": "b", "result": {"deep": nested(40)}}]
    expected = Outcome(BAD, ("/items/0/id", "/items/1/result"))
    assert rest(gateway, "POST", "/user-tasks/batch/finish", json={"items": items}) == expected
    assert graphql(gateway, FINISH_MANY, {"items": items}) == expected
    too_many = [{"id": "a", "result": {}}] * 101
    assert rest(gateway, "POST", "/user-tasks/batch/finish", json={"items": too_many}) == Outcome(BAD, ("/items",))
    assert graphql(gateway, FINISH_MANY, {"items": too_many}) == Outcome(BAD, ("/items",))


# -- the reproductions: fast typed refusals while the gateway keeps answering ---------------------------------


def while_healthy(gateway: GatewayServer, send: Callable[[], httpx.Response]) -> httpx.Response:
    """``send()``'s answer; meanwhile (and once after) ``/healthz`` must answer, each within the timeout."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(send)
        while not future.done():
            assert httpx.get(gateway.url + "/healthz", timeout=TIMEOUT).status_code == 200
        response = future.result(timeout=TIMEOUT)
    assert httpx.get(gateway.url + "/healthz", timeout=TIMEOUT).status_code == 200
    return response


def graphql_refusal(gateway: GatewayServer, query: str, variables: dict[str, Any]) -> Outcome:
    response = while_healthy(
        gateway,
        lambda: httpx.post(gateway.graphql_url, json={"query": query, "variables": variables}, timeout=TIMEOUT),
    )
    assert response.status_code == 200, response.text
    [error] = response.json()["errors"]
    extensions = error["extensions"]
    return Outcome(extensions["code"], tuple(problem["field"] for problem in extensions.get("problems", ())))


@pytest.mark.parametrize("count", [2_000, 20_000])
def test_thousands_of_token_predicates_in_graphql_are_refused_at_once(gateway: GatewayServer, count: int) -> None:
    predicates = [{"path": f"p{index}", "op": "EXISTS"} for index in range(count)]
    assert graphql_refusal(gateway, LIST, {"f": {"token": predicates}}) == Outcome(BAD, ("token",))


def test_sorting_on_300_token_paths_in_graphql_is_refused_at_once(gateway: GatewayServer) -> None:
    sorts = [{"field": "TOKEN", "tokenPath": f"p{index}"} for index in range(300)]
    assert graphql_refusal(gateway, LIST, {"s": sorts}) == Outcome(BAD, ("sort",))


def test_ids_too_long_for_a_url_are_refused_in_graphql_not_internal_errors(gateway: GatewayServer) -> None:
    huge = "x" * 70_000
    assert graphql_refusal(gateway, TASK, {"id": huge}) == Outcome(BAD, ("id",))
    assert graphql_refusal(gateway, RESERVE, {"id": huge}) == Outcome(BAD, ("id",))
    many = [f"task-{index:05d}" for index in range(3_000)]
    assert graphql_refusal(gateway, LIST, {"f": {"id": many}}) == Outcome(BAD, ("id",))
    models = ["M" * 70_000]
    assert graphql_refusal(gateway, LIST, {"f": {"processModelId": models}}) == Outcome(BAD, ("processModelId",))


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"startedAfter": "9999-12-31T23:59:60Z"}, "startedAfter"),
        ({"startedAfter": "9999-12-31T23:59:59-00:01"}, "startedAfter"),
        ({"startedBefore": "0001-01-01T00:00:00+00:01"}, "startedBefore"),
        ({"startedBefore": "0001-01-01T00:59:59+01:00"}, "startedBefore"),
    ],
)
def test_dates_outside_the_range_are_refused_in_rest_not_overflow_errors(
    gateway: GatewayServer, params: dict[str, str], field: str
) -> None:
    response = while_healthy(
        gateway, lambda: httpx.get(gateway.url + "/api/v1/user-tasks", params=params, timeout=TIMEOUT)
    )
    assert response.status_code == 400, response.text
    assert [problem["field"] for problem in response.json()["problems"]] == [field]


def test_a_leap_second_inside_the_range_is_a_date(gateway: GatewayServer) -> None:
    assert rest(gateway, "GET", "/user-tasks", params={"startedAfter": "2016-12-31T23:59:60Z"}) == Outcome("OK", ())


@pytest.mark.parametrize(
    "params",
    [{"token": "items.²:exists"}, {"sort": "token.items.²"}, {"token": "items.١٢:eq:1"}, {"sort": "-token.x.³"}],
)
def test_unicode_digits_in_token_paths_are_keys_not_500s(gateway: GatewayServer, params: dict[str, str]) -> None:
    """``'²'.isdigit()`` is True and ``int('²')`` raises: such a part is a key (lists have none), not a crash."""
    response = while_healthy(
        gateway, lambda: httpx.get(gateway.url + "/api/v1/user-tasks", params=params, timeout=TIMEOUT)
    )
    assert response.status_code == 200, response.text


def deep_body(member: str, depth: int) -> bytes:
    return ('{"' + member + '":' + '{"a":' * depth + "1" + "}" * depth + "}").encode()


def test_a_result_nested_5000_deep_is_a_bad_request_in_rest(gateway: GatewayServer) -> None:
    response = while_healthy(
        gateway,
        lambda: httpx.post(
            gateway.url + "/api/v1/user-tasks/some-task/finish",
            content=deep_body("result", 5_000),
            headers={"Content-Type": "application/json"},
            timeout=TIMEOUT,
        ),
    )
    assert response.status_code == 400, response.text
    assert response.json()["code"] == BAD


def test_a_result_nested_900_deep_is_a_bad_request_in_graphql(gateway: GatewayServer) -> None:
    """Deep, yet within what a recursive JSON parser takes: refused by a limit (the body's, or the core's on
    ``/result``), never by a RecursionError."""
    variables = '{"id": "some-task", "result": ' + '{"a":' * 900 + "1" + "}" * 900 + "}"
    body = '{"query": ' + json.dumps(FINISH) + ', "variables": ' + variables + "}"
    response = while_healthy(
        gateway,
        lambda: httpx.post(
            gateway.graphql_url, content=body, headers={"Content-Type": "application/json"}, timeout=TIMEOUT
        ),
    )
    assert response.status_code in (200, 400), response.text
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == BAD


def test_a_result_nested_5000_deep_is_a_bad_request_in_graphql(gateway: GatewayServer) -> None:
    body = '{"query": ' + json.dumps(FINISH) + ', "variables": {"id": "x", "result": ' + "[" * 5000 + "]" * 5000 + "}}"
    response = while_healthy(
        gateway,
        lambda: httpx.post(
            gateway.graphql_url, content=body, headers={"Content-Type": "application/json"}, timeout=TIMEOUT
        ),
    )
    assert response.status_code in (200, 400), response.text
    assert response.json()["errors"][0]["extensions"]["code"] == BAD


@pytest.mark.parametrize(
    "variables", [{"n": "ten"}, {"n": 2**40}, {"f": {"startedAfter": "yesterday"}}, {"f": {"state": ["NOPE"]}}]
)
def test_variables_of_the_wrong_type_are_bad_requests_in_graphql(
    gateway: GatewayServer, variables: dict[str, Any]
) -> None:
    assert graphql(gateway, LIST, variables).code == BAD
