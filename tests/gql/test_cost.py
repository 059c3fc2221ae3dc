"""The cost budget of a GraphQL request (see :mod:`gateway.gql.cost`): priced before execution, reported in
``extensions.cost``, refused over the budget before any engine call; the candidate scan limit holds per request."""

from __future__ import annotations

import asyncio
import json
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpx
import pytest
from graphql import DocumentNode, OperationDefinitionNode, get_introspection_query, parse

from gateway.core.domain import Caller
from gateway.gql.cost import DEFAULT_MAX_QUERY_COST, CostLimits, Price
from gateway.gql.schema import default_schema
from tests.gql.test_graphql import start_approvals
from tests.servers import REPO, EngineServer, GatewayServer

SCHEMA = default_schema()
LIMITS = CostLimits()
GRAPHIQL_INTROSPECTION = get_introspection_query(input_value_deprecation=True)
_SCHEMA_FIELDS = GRAPHIQL_INTROSPECTION.split("__schema", 1)[1].split("fragment FullType", 1)[0]
#: GraphiQL's introspection with ``__schema`` asked twice (aliases ``a`` and ``b``).
TWICE = (
    "query { a: __schema"
    + _SCHEMA_FIELDS.rstrip().removesuffix("}")
    + " b: __schema"
    + _SCHEMA_FIELDS
    + "fragment FullType"
    + GRAPHIQL_INTROSPECTION.split("fragment FullType", 1)[1]
)
#: 64 listings, each with its own engine filter and a gateway-side condition (text search): the finding of issue 15.
ATTACK = (
    "{"
    + " ".join(
        f'a{index}: userTasks(filter: {{processModelId: ["P{index}"], search: "x"}}) {{ totalCount }}'
        for index in range(64)
    )
    + "}"
)


def price(query: str, variables: dict[str, Any] | None = None, limits: CostLimits = LIMITS) -> Price:
    return SCHEMA.cost.price(parse(query), None, variables or {}, limits)


def operations(document: DocumentNode) -> list[DocumentNode]:
    """One document per operation (README blocks hold several anonymous ones), each with every fragment."""
    fragments = [item for item in document.definitions if not isinstance(item, OperationDefinitionNode)]
    return [
        DocumentNode(definitions=(item, *fragments))
        for item in document.definitions
        if isinstance(item, OperationDefinitionNode)
    ]


# -- pricing -------------------------------------------------------------------------------------------------


def test_every_readme_example_is_under_the_budget() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```graphql\n(.*?)```", readme, flags=re.DOTALL)
    assert len(blocks) >= 3
    prices = []
    for block in blocks:
        for document in operations(parse(block.replace("…", "x"))):
            prices.append(SCHEMA.cost.price(document, None, {}, LIMITS).total)
    assert all(0 < cost < DEFAULT_MAX_QUERY_COST for cost in prices), prices
    assert prices[:2] == [4222, 212]  # the numbers the README gives


def test_the_64_alias_residual_attack_is_over_the_budget() -> None:
    assert price(ATTACK).total == 64 * (20 * 100 + 1) > DEFAULT_MAX_QUERY_COST


def test_a_residual_listing_costs_its_scan_and_a_pushed_down_one_a_call() -> None:
    pushed = price('{ userTasks(filter: {processModelId: ["A"]}) { totalCount } }').total
    searched = price('{ userTasks(filter: {processModelId: ["A"], search: "x"}) { totalCount } }').total
    sorted_by_name = price("{ userTasks(sort: [{field: NAME}]) { totalCount } }").total
    assert pushed == 100 + 1
    assert searched == sorted_by_name == LIMITS.scan_calls * 100 + 1
    smaller_scans = CostLimits(residual_scan_limit=1000)
    assert price('{ userTasks(filter: {search: "x"}) { totalCount } }', limits=smaller_scans).total == 2 * 100 + 1


def test_nested_lists_multiply() -> None:
    def nodes(first: int, selection: str) -> int:
        return price(f"{{ userTasks(first: {first}) {{ nodes {selection} }} }}").total - 100 - 1

    assert nodes(10, "{ id }") == 10
    assert nodes(20, "{ id }") == 20
    assert nodes(10, "{ formFields { id } }") == 10 * (1 + 10)
    assert nodes(10, "{ formFields { enumValues { id } } }") == 10 * (1 + 10 * (1 + 10))
    # without first: the default page size; variables are applied
    assert price("{ userTasks { nodes { id } } }").total == price("{ userTasks(first: 20) { nodes { id } } }").total
    by_variable = price("query($n: Int) { userTasks(first: $n) { nodes { id } } }", {"n": 5}).total
    assert by_variable == 100 + 1 + 5


def test_lookups_by_id_are_cheap() -> None:
    assert price('{ userTask(id: "a") { id name } }').total == 100 + 1


def test_mutations_are_weighted_by_their_items() -> None:
    query = "mutation($ids: [ID!]!) { reserveUserTasks(ids: $ids) { __typename ... on UserTask { id } } }"
    ten = price(query, {"ids": [f"t{index}" for index in range(10)]}).total
    twenty = price(query, {"ids": [f"t{index}" for index in range(20)]}).total
    assert ten == 10 * (2 * 100 + 1)
    assert twenty == 2 * ten
    single = price('mutation { reserveUserTask(id: "a") { __typename ... on UserTask { id } } }').total
    assert single == 2 * 100 + 1
    items = [{"id": f"t{index}", "result": {}} for index in range(100)]
    finish = "mutation($items: [FinishUserTaskInput!]!) { finishUserTasks(items: $items) { __typename } }"
    assert price(finish, {"items": items}).total == 100 * (2 * 100 + 1) < DEFAULT_MAX_QUERY_COST


def test_graphiql_introspection_is_under_the_budget_and_repeated_introspection_is_not() -> None:
    introspection = price(GRAPHIQL_INTROSPECTION)
    assert introspection.total == introspection.introspection
    assert 0 < introspection.total <= SCHEMA.cost.anonymous_introspection_limit < DEFAULT_MAX_QUERY_COST
    assert price(TWICE).introspection == 2 * introspection.total


def test_introspection_cycles_grow_with_their_depth() -> None:
    """``__Type.fields.type`` is a cycle of the introspection types: each round multiplies the answer."""
    shallow = price("{ __schema { types { fields { type { name } } } } }").total
    deeper = price("{ __schema { types { fields { type { fields { type { name } } } } } } }").total
    assert deeper > 10 * shallow
    deepest = "{ __schema { types { fields { type { fields { type { fields { type { fields { name } } } } } } } } } }"
    assert price(deepest).total > DEFAULT_MAX_QUERY_COST


# -- the extension, in the schema ----------------------------------------------------------------------------


@dataclass
class _Context:
    caller_or_error: Caller
    cost_limits: CostLimits


async def _execute(query: str, *, token: str | None, max_cost: int = DEFAULT_MAX_QUERY_COST) -> Any:
    context = _Context(Caller("someone", token=token), CostLimits(max_cost=max_cost))
    return await SCHEMA.execute(query, context_value=context)


async def test_anonymous_callers_get_one_standard_introspection() -> None:
    alone = await _execute(GRAPHIQL_INTROSPECTION, token=None)
    assert alone.errors is None
    assert alone.extensions["cost"]["requested"] == SCHEMA.cost.anonymous_introspection_limit
    anonymous = await _execute(TWICE, token=None, max_cost=1_000_000)
    assert anonymous.data is None
    assert anonymous.errors is not None
    assert anonymous.errors[0].extensions["code"] == "QUERY_TOO_COMPLEX"
    assert "without a token" in anonymous.errors[0].message
    with_token = await _execute(TWICE, token="a-token", max_cost=1_000_000)
    assert with_token.errors is None
    assert set(with_token.data) == {"a", "b"}


# -- a real gateway --------------------------------------------------------------------------------------------


@pytest.fixture
def gateway(gateway_factory: Callable[..., GatewayServer]) -> GatewayServer:
    return gateway_factory()


def post(gateway: GatewayServer, query: str, **headers: str) -> httpx.Response:
    return httpx.post(gateway.graphql_url, json={"query": query}, headers=headers, timeout=60)


def test_the_attack_is_refused_before_any_engine_call(gateway: GatewayServer) -> None:
    gateway.engine_events_settled()
    calls = gateway.engine_calls()
    response = post(gateway, ATTACK)
    body = response.json()
    assert body["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX", body
    assert "128,064" in body["errors"][0]["message"]
    assert "50,000" in body["errors"][0]["message"]
    assert "data" not in body or body["data"] is None
    assert body["extensions"]["cost"] == {"requested": 128_064, "limit": 50_000, "refused": True}
    assert gateway.engine_calls() == calls
    strict = post(gateway, ATTACK, accept="application/graphql-response+json")
    assert strict.status_code == 400


def test_ordinary_answers_carry_their_cost(gateway: GatewayServer) -> None:
    body = post(gateway, "{ userTasks(first: 5) { totalCount nodes { id } } }").json()
    assert "errors" not in body, body
    assert body["extensions"]["cost"] == {"requested": 100 + 1 + 5, "limit": 50_000}


def test_graphiql_introspection_passes_anonymously(gateway: GatewayServer) -> None:
    body = post(gateway, GRAPHIQL_INTROSPECTION).json()
    assert "errors" not in body, body
    assert body["data"]["__schema"]["queryType"]["name"] == "Query"


def test_the_candidate_scan_limit_holds_per_request(
    approval_engine: EngineServer, gateway_factory: Callable[..., GatewayServer]
) -> None:
    """Each listing scans 3 candidates; a limit of 5 lets one through, not two in one request (their engine filters
    differ: identical ones would share one scan, which costs once)."""
    start_approvals(approval_engine, [100, 200, 300])
    gateway = gateway_factory(GATEWAY_RESIDUAL_SCAN_LIMIT=5, GATEWAY_CACHE_TTL_SECONDS=0)
    one = '{ a: userTasks(filter: {processModelId: ["ApprovalProcess"], search: "a"}) { totalCount } }'
    body = post(gateway, one).json()
    assert "errors" not in body, body
    two = (
        '{ a: userTasks(filter: {processModelId: ["ApprovalProcess"], search: "a"}) { totalCount }'
        ' b: userTasks(filter: {processModelId: ["ApprovalProcess", "Other"], reserved: false}) { totalCount } }'
    )
    body = post(gateway, two).json()
    codes = [error["extensions"]["code"] for error in body.get("errors", [])]
    assert codes == ["QUERY_TOO_COMPLEX"], body
    assert "per request" in body["errors"][0]["message"]


def test_costly_anonymous_introspection_is_refused(gateway_factory: Callable[..., GatewayServer]) -> None:
    """Even under a budget that would let it through, an anonymous caller gets one standard introspection."""
    gateway = gateway_factory(GATEWAY_MAX_QUERY_COST=1_000_000)
    body = post(gateway, TWICE).json()
    assert body["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX", body
    assert "without a token" in body["errors"][0]["message"]
    assert body["extensions"]["cost"]["introspectionLimit"] == SCHEMA.cost.anonymous_introspection_limit
    assert "errors" not in post(gateway, GRAPHIQL_INTROSPECTION).json()


def test_pipelined_costly_anonymous_introspection_does_not_starve_others(
    gateway_factory: Callable[..., GatewayServer],
) -> None:
    """60 connections pipeline 5 costly anonymous introspections each: every one is refused before it runs, and
    an ordinary query is answered meanwhile."""
    gateway = gateway_factory(GATEWAY_MAX_QUERY_COST=1_000_000)
    body = json.dumps({"query": TWICE}).encode()
    request = (
        b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    sockets = [socket.create_connection(("127.0.0.1", gateway.port), timeout=60) for _ in range(60)]
    try:
        for sock in sockets:
            sock.sendall(request * 5)
        ordinary = post(gateway, "{ userTasks(first: 1) { totalCount } }").json()
        assert "errors" not in ordinary, ordinary
        for sock in sockets:
            received = b""
            while received.count(b"QUERY_TOO_COMPLEX") < 5:
                chunk = sock.recv(65536)
                assert chunk, received
                received += chunk
            assert b"without a token" in received
    finally:
        for sock in sockets:
            sock.close()


def test_the_budget_holds_over_websocket(gateway: GatewayServer) -> None:
    async def exchange() -> list[dict[str, Any]]:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(gateway.graphql_url, protocols=["graphql-transport-ws"]) as ws,
        ):
            await ws.send_json({"type": "connection_init"})
            assert (await ws.receive_json(timeout=60))["type"] == "connection_ack"
            await ws.send_json({"type": "subscribe", "id": "1", "payload": {"query": ATTACK}})
            refused: dict[str, Any] = await ws.receive_json(timeout=60)
            await ws.send_json({"type": "subscribe", "id": "2", "payload": {"query": "{ userTasks { totalCount } }"}})
            answered: dict[str, Any] = await ws.receive_json(timeout=60)
            return [refused, answered]

    gateway.engine_events_settled()
    calls = gateway.engine_calls()
    refused, answered = asyncio.run(exchange())
    assert refused["type"] == "error", refused
    assert refused["payload"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    assert answered["type"] == "next", answered
    assert answered["payload"]["extensions"]["cost"] == {"requested": 101, "limit": 50_000}
    assert gateway.engine_calls() - calls <= 1  # the ordinary query's one call; none of the attack's 64+
