"""Junk into every input of both faces, against one gateway in front of a running engine: never a 5xx, never an
untyped error, never an internal error.

- GraphQL: every argument of every root field (Query and Mutation, read from the schema), as variables whose values
  follow the argument's type only loosely: unicode text (digits like '²' and '١', control characters, lone
  surrogates, long strings), huge, negative and non-integer numbers, deep and wide JSON, dates past the range, and
  now and then a value of another type altogether. A second test sends documents of ``hypothesis-graphql`` with the
  junk as literals.
- REST: every route of the table below with junk in its path id, query parameters, headers and JSON bodies.

A 4xx must be typed (GraphQL: ``extensions.code`` on every error; REST: a problem document with ``code``), and no
answer may be INTERNAL_SERVER_ERROR. The engine is up, so 503/504 (legitimate when it is not) count as failures
too. The default run keeps to about a minute; ``--run-slow`` runs ``SLOW_EXAMPLES`` of each.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import graphql
import httpx
import hypothesis_graphql
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import nodes

from gateway.gql.schema import default_schema
from gateway.rest.params import LIST_TASKS_PARAMETERS
from tests.conftest import EXAMPLES
from tests.servers import EngineServer, GatewayServer, gateway_in_front_of

FAST_EXAMPLES = 60  # per test: about half a minute in all, with the servers' start
SLOW_EXAMPLES = 2_000
TIMEOUT = 20.0

SCHEMA: graphql.GraphQLSchema = default_schema()._schema
API_CODES = {
    "BAD_REQUEST",
    "QUERY_TOO_COMPLEX",
    "UNAUTHENTICATED",
    "FORBIDDEN",
    "TASK_NOT_FOUND",
    "TASK_NOT_ACTIVE",
    "TASK_RESERVED_BY_OTHER_USER",
    "INVALID_TASK_RESULT",
    "IDEMPOTENCY_KEY_REUSED",
}


# -- the gateway ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    root: Path = tmp_path_factory.mktemp("junk")
    with EngineServer(data_dir=root / "engine") as engine:
        for path in sorted(EXAMPLES.glob("*.bpmn")):
            engine.deploy_file(path)
        for amount in (1, 2, 1500):
            engine.start_instance("ApprovalProcess", {"amount": amount, "items": [1, {"a": None}], "²": "x"})
        server = gateway_in_front_of(engine.url, root / "gateway").start()
        try:
            yield server
        finally:
            server.stop()


# -- junk ----------------------------------------------------------------------------------------------------

DIGITS = "0123456789²³¹¼١٢٣०१२３４೬𝟘"
PUNCTUATION = ".,:-_ \t\n\r\x00\x01\x1f\x7f\u2028\ufeff\\\"'{}[]/%?#&=+"
SPECIAL_TEXT = [
    "",
    " ",
    "items.²",
    "items.0",
    "a..b",
    ".a",
    "a.",
    "amount",
    "customer.type",
    "\ud800",
    "a\udfffb",
    "9999-12-31T23:59:60Z",
    "9999-12-31T23:59:59-01:00",
    "0001-01-01T00:00:00+01:00",
    "2016-12-31T23:59:60Z",
    "0000-00-00T00:00:00Z",
    "2026-02-30T10:00:00Z",
    "2026-01-15T09:30:00+99:99",
    "NaN",
    "1e999",
    "-0",
    "0x10",
    "true",
    "null",
    "a:eq:1",
    "items.²:exists",
    "token.items.²",
    "-token.a b",
]


def _long_text(max_length: int) -> st.SearchStrategy[str]:
    return st.builds(
        lambda piece, count: (piece * count)[:max_length],
        st.sampled_from(["x", "²", "é", "\x00", "a.", "𝟘", "ab:"]),
        st.integers(0, max_length),
    )


def junk_text(max_length: int = 3_000) -> st.SearchStrategy[str]:
    return st.one_of(
        st.text(max_size=30),
        st.text(alphabet=st.sampled_from(list(DIGITS + PUNCTUATION + "abcXYZ")), max_size=30),
        st.sampled_from(SPECIAL_TEXT),
        _long_text(max_length),
    )


def junk_int() -> st.SearchStrategy[int]:
    return st.one_of(
        st.integers(-5, 200),
        st.integers(-(2**31), 2**31 - 1),
        st.integers(-(2**80), 2**80),
        st.sampled_from([2**31, -(2**31) - 1, 2**53 + 1, 10**300]),
    )


def junk_float() -> st.SearchStrategy[float]:
    return st.floats(allow_nan=True, allow_infinity=True)


def nested(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for index in range(depth):
        value = [value] if index % 2 else {"a": value}
    return value


def junk_json() -> st.SearchStrategy[Any]:
    scalars = st.one_of(st.none(), st.booleans(), junk_int(), junk_float(), junk_text(300))
    shapes = st.recursive(
        scalars,
        lambda children: st.lists(children, max_size=5) | st.dictionaries(junk_text(20), children, max_size=5),
        max_leaves=25,
    )
    return st.one_of(
        shapes,
        st.integers(1, 120).map(nested),
        st.integers(0, 3_000).map(lambda size: list(range(size))),
        st.integers(0, 200).map(lambda size: {f"k{index}": index for index in range(size)}),
    )


def junk_scalar(name: str) -> st.SearchStrategy[Any]:
    if name == "Int":
        return junk_int()
    if name == "Float":
        return junk_float()
    if name == "Boolean":
        return st.booleans()
    if name == "JSON":
        return junk_json()
    return junk_text()  # String, ID, DateTime


def junk_for(kind: graphql.GraphQLInputType, depth: int = 0) -> st.SearchStrategy[Any]:
    """A value that mostly fits ``kind``'s shape (so that it reaches the resolver) and now and then does not."""
    wrong = st.one_of(st.none(), junk_int(), junk_text(40), st.lists(junk_int(), max_size=3), st.just({"x": 1}))
    if isinstance(kind, graphql.GraphQLNonNull):
        return junk_for(kind.of_type, depth)
    if isinstance(kind, graphql.GraphQLList):
        item = junk_for(kind.of_type, depth + 1)
        many = st.integers(0, 3_000).flatmap(lambda size: item.map(lambda one: [one] * size))
        return st.one_of(st.lists(item, max_size=8), many, wrong)
    if isinstance(kind, graphql.GraphQLInputObjectType):
        if depth > 4:
            return st.just({})
        fields = {name: junk_for(field.type, depth + 1) for name, field in kind.fields.items()}
        return st.one_of(st.fixed_dictionaries({}, optional=fields), wrong)
    if isinstance(kind, graphql.GraphQLEnumType):
        return st.one_of(st.sampled_from(sorted(kind.values)), junk_text(20))
    assert isinstance(kind, graphql.GraphQLScalarType)
    return st.one_of(junk_scalar(kind.name), st.just(None), wrong) if depth else junk_scalar(kind.name)


def _type_text(kind: graphql.GraphQLInputType) -> str:
    return str(kind)


def root_fields() -> list[tuple[str, str, graphql.GraphQLField]]:
    found = []
    for operation, root in (("query", SCHEMA.query_type), ("mutation", SCHEMA.mutation_type)):
        assert root is not None
        found.extend((operation, name, field) for name, field in root.fields.items())
    return found


ROOT_FIELDS = root_fields()


def document_of(operation: str, name: str, field: graphql.GraphQLField) -> str:
    declared = ", ".join(f"${arg}: {_type_text(argument.type)}" for arg, argument in field.args.items())
    passed = ", ".join(f"{arg}: ${arg}" for arg in field.args)
    head = f"{operation}({declared})" if declared else operation
    call = f"{name}({passed})" if passed else name
    return f"{head} {{ {call} {{ __typename }} }}"


@st.composite
def graphql_requests(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    operation, name, field = draw(st.sampled_from(ROOT_FIELDS))
    variables = {}
    for arg, argument in field.args.items():
        if draw(st.booleans()) or isinstance(argument.type, graphql.GraphQLNonNull):
            variables[arg] = draw(junk_for(argument.type))
    return document_of(operation, name, field), variables


# -- what every answer must be -------------------------------------------------------------------------------


def graphql_body(variables: dict[str, Any], query: str) -> bytes:
    """JSON as a client may send it: NaN and Infinity as tokens, lone surrogates as escapes."""
    return json.dumps({"query": query, "variables": variables}, ensure_ascii=True, allow_nan=True).encode()


def check_graphql(gateway: GatewayServer, body: bytes) -> None:
    response = httpx.post(
        gateway.graphql_url, content=body, headers={"Content-Type": "application/json"}, timeout=TIMEOUT
    )
    assert response.status_code < 500, response.text[:2000]
    answer = response.json()
    for error in answer.get("errors") or ():
        code = (error.get("extensions") or {}).get("code")
        assert code is not None, error
        assert code in API_CODES, (code, error, body[:2000])


def check_rest(response: httpx.Response) -> None:
    assert response.status_code < 500, (response.request.method, str(response.request.url)[:500], response.text)
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/problem+json", response.text
        assert response.json()["code"] in API_CODES, response.text


# -- GraphQL -------------------------------------------------------------------------------------------------


def _graphql_junk(gateway: GatewayServer, examples: int) -> None:
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    )
    @given(request=graphql_requests())
    def run(request: tuple[str, dict[str, Any]]) -> None:
        query, variables = request
        check_graphql(gateway, graphql_body(variables, query))

    run()


def test_graphql_arguments_take_junk(gateway: GatewayServer) -> None:
    _graphql_junk(gateway, FAST_EXAMPLES)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_graphql_arguments_take_junk_in_a_long_run(gateway: GatewayServer) -> None:
    _graphql_junk(gateway, SLOW_EXAMPLES)


LITERAL_SCALARS = {
    "JSON": st.one_of(
        junk_text(300).map(nodes.String),
        junk_int().map(nodes.Int),
        st.floats(allow_nan=False, allow_infinity=False).map(nodes.Float),
    ),
    "DateTime": junk_text(40).map(nodes.String),
}


def _graphql_documents(gateway: GatewayServer, examples: int) -> None:
    documents = st.one_of(
        hypothesis_graphql.queries(SCHEMA, custom_scalars=LITERAL_SCALARS),
        hypothesis_graphql.mutations(SCHEMA, custom_scalars=LITERAL_SCALARS),
    )

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    )
    @given(document=documents)
    def run(document: str) -> None:
        check_graphql(gateway, graphql_body({}, document))

    run()


def test_graphql_documents_take_junk_literals(gateway: GatewayServer) -> None:
    _graphql_documents(gateway, FAST_EXAMPLES)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_graphql_documents_take_junk_literals_in_a_long_run(gateway: GatewayServer) -> None:
    _graphql_documents(gateway, SLOW_EXAMPLES // 2)


# -- REST ----------------------------------------------------------------------------------------------------

#: (method, path template, body kind): every route of gateway.rest.routes.api_routes
ROUTES = [
    ("GET", "/user-tasks", None),
    ("GET", "/user-tasks/{id}", None),
    ("PUT", "/user-tasks/{id}/reservation", "reservation"),
    ("DELETE", "/user-tasks/{id}/reservation", None),
    ("POST", "/user-tasks/{id}/finish", "finish"),
    ("POST", "/user-tasks/batch/reserve", "ids"),
    ("POST", "/user-tasks/batch/cancel-reservation", "ids"),
    ("POST", "/user-tasks/batch/finish", "items"),
]
PARAMETER_NAMES = sorted(LIST_TASKS_PARAMETERS)


def url_text(max_length: int) -> st.SearchStrategy[str]:
    """Junk text that a URL can carry (UTF-8: no lone surrogates), short enough that a URL stays below 64 KiB."""
    return junk_text(max_length).map(lambda text: text.encode("utf-8", "replace").decode("utf-8"))


def junk_task_id() -> st.SearchStrategy[str]:
    return st.one_of(st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._:-]{0,30}\Z"), url_text(1_000))


def junk_body(kind: str | None) -> st.SearchStrategy[Any]:
    if kind == "reservation":
        shaped: st.SearchStrategy[Any] = st.fixed_dictionaries({}, optional={"ownerId": junk_json()})
    elif kind == "finish":
        shaped = st.fixed_dictionaries({"result": junk_json()})
    elif kind == "ids":
        shaped = st.fixed_dictionaries(
            {"ids": st.one_of(st.lists(junk_task_id(), max_size=120), junk_json())},
            optional={"ownerId": junk_json()},
        )
    elif kind == "items":
        item = st.fixed_dictionaries({"id": junk_task_id(), "result": junk_json()})
        shaped = st.fixed_dictionaries({"items": st.one_of(st.lists(item, max_size=110), junk_json())})
    else:
        return st.none()
    return st.one_of(shaped, junk_json())


@st.composite
def rest_requests(draw: st.DrawFn) -> tuple[str, str, list[tuple[str, str]], dict[str, str], bytes | None]:
    method, template, kind = draw(st.sampled_from(ROUTES))
    path = template.replace("{id}", quote(draw(junk_task_id()), safe=""))
    parameters: list[tuple[str, str]] = []
    if template == "/user-tasks" or draw(st.integers(0, 9)) == 0:
        names = st.one_of(st.sampled_from(PARAMETER_NAMES), url_text(20))
        parameters = draw(st.lists(st.tuples(names, url_text(200)), max_size=12))
        if draw(st.integers(0, 9)) == 0:  # many of one list parameter
            name = draw(st.sampled_from(["token", "sort", "id", "lane", "state"]))
            parameters += [(name, draw(url_text(10)))] * draw(st.integers(0, 120))
    headers: dict[str, str] = {}
    if kind is not None and draw(st.booleans()):
        key = draw(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=300))
        headers["Idempotency-Key"] = key.strip(" ")  # a header value cannot start or end with a space
    body: bytes | None = None
    if kind is not None:
        if draw(st.integers(0, 9)) == 0:
            body = draw(st.binary(max_size=200))
        else:
            body = json.dumps(draw(junk_body(kind)), ensure_ascii=True, allow_nan=True).encode()
    return method, path, parameters, headers, body


def _rest_junk(gateway: GatewayServer, examples: int) -> None:
    client = httpx.Client(base_url=gateway.url + "/api/v1", timeout=TIMEOUT)

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    )
    @given(request=rest_requests())
    def run(request: tuple[str, str, list[tuple[str, str]], dict[str, str], bytes | None]) -> None:
        method, path, parameters, headers, body = request
        if body is not None:
            headers = {**headers, "Content-Type": "application/json"}
        check_rest(client.request(method, path, params=parameters, headers=headers, content=body))

    with client:
        run()


def test_rest_parameters_and_bodies_take_junk(gateway: GatewayServer) -> None:
    _rest_junk(gateway, 3 * FAST_EXAMPLES)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_rest_parameters_and_bodies_take_junk_in_a_long_run(gateway: GatewayServer) -> None:
    _rest_junk(gateway, 3 * SLOW_EXAMPLES)
