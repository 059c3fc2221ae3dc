"""Hostile GraphQL requests get a fast, typed refusal, leave nothing behind, and never stall the gateway.

Each attack runs against a real gateway process while a thread keeps asking ``GET /healthz``: every health check
must be answered (5 s each). Times are bounded only by generous request timeouts (machines are shared).
The memory tests read the gateway process's resident set size from ``/proc/<pid>/status``.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest

from gateway.gql import limits
from gateway.gql.schema import build_schema
from tests.conftest import GatewayFactory
from tests.servers import GatewayServer

ATTACK_TIMEOUT = 20.0
HEALTH_TIMEOUT = 5.0
GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"


# -- fixtures and helpers ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gateway(start_gateway: GatewayFactory) -> GatewayServer:
    """A gateway with a small depth limit (3), shared by the tests that do not measure memory."""
    return start_gateway(GATEWAY_MAX_QUERY_DEPTH=3)


class HealthChecks:
    """``GET /healthz`` in a loop on its own thread for as long as the ``with`` block runs.

    On leaving the block every check must have been answered 200 (within ``HEALTH_TIMEOUT``), and at least one
    check must have finished after the attack did (the gateway is responsive afterwards, too).
    """

    def __init__(self, gateway: GatewayServer, interval: float = 0.1) -> None:
        self.url = gateway.url + "/healthz"
        self.interval = interval
        self.answers: list[int | str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=HEALTH_TIMEOUT) as client:
            while True:
                stopping = self._stop.is_set()
                try:
                    self.answers.append(client.get(self.url).status_code)
                except httpx.HTTPError as exc:
                    self.answers.append(f"{type(exc).__name__}: {exc}")
                if stopping:
                    return
                self._stop.wait(self.interval)

    def __enter__(self) -> HealthChecks:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2 * HEALTH_TIMEOUT + 5)
        if exc[0] is None:
            assert not self._thread.is_alive(), "the last health check did not finish"
            assert self.answers, "no health check ran"
            failed = [answer for answer in self.answers if answer != 200]
            assert not failed, f"health checks failed during the attack: {failed[:5]}"


def post(gateway: GatewayServer, body: dict[str, Any] | bytes, *, accept: str = "application/json") -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(
        gateway.graphql_url,
        content=content,
        headers={"Content-Type": "application/json", "Accept": accept},
        timeout=ATTACK_TIMEOUT,
    )


def without_cost(body: dict[str, Any]) -> dict[str, Any]:
    """The answer without ``extensions.cost`` (every answer carries it: see tests/gql/test_cost.py)."""
    assert "cost" in body.get("extensions", {}), body
    return {key: value for key, value in body.items() if key != "extensions"}


def errors_of(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code in (200, 400), response.text[:500]
    errors: list[dict[str, Any]] = response.json().get("errors") or []
    return errors


def code_of(response: httpx.Response) -> str:
    errors = errors_of(response)
    assert errors, response.text[:500]
    return str(errors[0]["extensions"]["code"])


def rss_mib(gateway: GatewayServer) -> float:
    """Resident set size of the gateway process, in MiB."""
    assert gateway.process is not None
    status = Path(f"/proc/{gateway.process.pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    assert match, status
    return int(match[1]) / 1024


def doubled_fragments(levels: int, leaf: str = "id", operation: str = "query") -> str:
    """``F0`` spreads ``F1`` twice, ``F1`` spreads ``F2`` twice, …: 2**levels paths through a ~40*levels byte text."""
    parts = [f"{operation} {{ userTasks(first: 100) {{ nodes {{ ...F0 }} }} }}"]
    parts += [f"fragment F{i} on UserTask {{ ...F{i + 1} ...F{i + 1} }}" for i in range(levels)]
    parts.append(f"fragment F{levels} on UserTask {{ {leaf} }}")
    return "\n".join(parts)


def doubled_introspection(levels: int) -> str:
    """The same doubling through ``__Type.ofType``: the only recursive type, so every level nests one deeper."""
    parts = ["{ __schema { types { ...T0 } } }"]
    parts += [f"fragment T{i} on __Type {{ ofType {{ ...T{i + 1} ...T{i + 1} }} }}" for i in range(levels)]
    parts.append(f"fragment T{levels} on __Type {{ name }}")
    return "\n".join(parts)


#: Documents that make graphql-core's OverlappingFieldsCanBeMerged compare many pairs (quadratic in the repeats),
#: all within the default token limit. Each is refused before or during validation.
WIDE_DOCUMENTS = {
    "one field with a sub-selection, 400 times": "{ " + "userTasks { totalCount } " * 400 + "}",
    "one field with arguments, 200 times": "{ "
    + " ".join(f"userTasks(first: {i}) {{ totalCount }}" for i in range(200))
    + " }",
    "the same field, 1000 times": "{ userTasks { nodes { " + "id " * 1000 + "} } }",
    "166 fragments with the same field": "{ userTasks { nodes { "
    + " ".join(f"...F{i}" for i in range(166))
    + " } } } "
    + " ".join(f"fragment F{i} on UserTask {{ id name }}" for i in range(166)),
    "repeated fields under repeated fields": "{ userTasks { " + "nodes { formFields { id } } " * 250 + "} }",
    "within the shape limits, over the merge budget": "{ userTasks { "
    + " ".join("nodes { " + "formFields { id } " * 16 + "}" for _ in range(16))
    + " } }",
}


async def _websocket_exchange(url: str, messages: list[str | dict[str, Any]], replies: int) -> dict[str, Any]:
    """Open graphql-transport-ws, init, send ``messages``, read up to ``replies`` messages or the close."""
    received: list[Any] = []
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(url, protocols=["graphql-transport-ws"], max_msg_size=0) as socket,
    ):
        await socket.send_str(json.dumps({"type": "connection_init"}))
        ack = await socket.receive(timeout=ATTACK_TIMEOUT)
        assert ack.type is aiohttp.WSMsgType.TEXT, ack
        assert json.loads(ack.data)["type"] == "connection_ack", ack
        try:
            for message in messages:
                await socket.send_str(message if isinstance(message, str) else json.dumps(message))
        except (ConnectionError, aiohttp.ClientOSError):
            # The server refused the frame from its header and hung up while the rest was still on its way: the
            # reset can overtake the close frame on the wire. The refusal is what counts.
            return {"messages": received, "close_code": None, "close_reason": "reset while sending"}
        for _ in range(replies):
            reply = await socket.receive(timeout=ATTACK_TIMEOUT)
            if reply.type is not aiohttp.WSMsgType.TEXT:
                break
            received.append(json.loads(reply.data))
        return {"messages": received, "close_code": socket.close_code, "close_reason": reply.extra}


def websocket_exchange(gateway: GatewayServer, messages: list[str | dict[str, Any]], replies: int) -> dict[str, Any]:
    url = gateway.graphql_url.replace("http://", "ws://")
    return asyncio.run(_websocket_exchange(url, messages, replies))


def subscribe(query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    payload: dict[str, Any] = {"query": query}
    if variables is not None:
        payload["variables"] = variables
    return {"id": "1", "type": "subscribe", "payload": payload}


# -- 1. fragment blow-up and quadratic validation ------------------------------------------------------------


@pytest.mark.parametrize("levels", [31, 60])
def test_doubled_fragments_are_answered_without_expanding_them(gateway: GatewayServer, levels: int) -> None:
    with HealthChecks(gateway):
        response = post(gateway, {"query": doubled_fragments(levels)})
    assert response.status_code == 200
    assert without_cost(response.json()) == {"data": {"userTasks": {"nodes": []}}}


def test_doubled_fragments_too_deep_are_query_too_complex(gateway: GatewayServer) -> None:
    query = doubled_fragments(31, leaf="formFields { enumValues { id } }", operation="query Bomb")
    with HealthChecks(gateway):
        response = post(gateway, {"query": query}, accept=GRAPHQL_RESPONSE_JSON)
    assert response.status_code == 400
    assert "data" not in response.json()
    [error] = errors_of(response)
    assert error["message"] == "'Bomb' exceeds maximum operation depth of 3"
    assert error["extensions"]["code"] == "QUERY_TOO_COMPLEX"


def test_doubled_introspection_fragments_are_bounded_by_the_nesting_limit(gateway: GatewayServer) -> None:
    with HealthChecks(gateway):
        shallow = post(gateway, {"query": doubled_introspection(31)})
        deep = post(gateway, {"query": doubled_introspection(limits.MAX_SELECTION_NESTING + 5)})
    assert not errors_of(shallow)
    assert shallow.json()["data"]["__schema"]["types"]
    assert code_of(deep) == "QUERY_TOO_COMPLEX"
    assert "introspection included" in errors_of(deep)[0]["message"]


@pytest.mark.parametrize("name", list(WIDE_DOCUMENTS))
def test_wide_documents_are_refused_before_validation_gets_slow(gateway: GatewayServer, name: str) -> None:
    with HealthChecks(gateway):
        response = post(gateway, {"query": WIDE_DOCUMENTS[name]})
    assert code_of(response) == "QUERY_TOO_COMPLEX", response.text[:300]


def fragment_chain(length: int) -> str:
    """``C0`` spreads ``C1``, which spreads ``C2``, …: nesting that only the fragments show."""
    return (
        "{ userTasks { nodes { ...C0 } } } "
        + " ".join(f"fragment C{i} on UserTask {{ ...C{i + 1} }}" for i in range(length))
        + f" fragment C{length} on UserTask {{ id }}"
    )


def test_a_fragment_spread_900_times_and_a_chain_of_150_fragments_are_fine(gateway: GatewayServer) -> None:
    spread = "{ userTasks { nodes { " + "...F " * 900 + "} } } fragment F on UserTask { id name }"
    with HealthChecks(gateway):
        responses = [post(gateway, {"query": query}) for query in (spread, fragment_chain(150))]
    for response in responses:
        assert without_cost(response.json()) == {"data": {"userTasks": {"nodes": []}}}


def test_a_chain_of_more_than_200_fragments_is_query_too_complex(gateway: GatewayServer) -> None:
    """graphql-core's own bound on nesting through fragments (MAX_NESTING_DEPTH) aborts validation."""
    with HealthChecks(gateway):
        response = post(gateway, {"query": fragment_chain(210)})
    assert code_of(response) == "QUERY_TOO_COMPLEX"


def test_the_same_attacks_over_websocket(gateway: GatewayServer) -> None:
    with HealthChecks(gateway):
        fine = websocket_exchange(gateway, [subscribe(doubled_fragments(31))], replies=2)
        too_deep = websocket_exchange(
            gateway, [subscribe(doubled_fragments(31, leaf="formFields { enumValues { id } }"))], replies=1
        )
        wide = [
            websocket_exchange(gateway, [subscribe(query)], replies=1)["messages"][0]
            for query in WIDE_DOCUMENTS.values()
        ]
    assert [{**message, "payload": without_cost(message["payload"])} for message in fine["messages"][:1]] == [
        {"id": "1", "type": "next", "payload": {"data": {"userTasks": {"nodes": []}}}},
    ]
    assert fine["messages"][1:] == [
        {"id": "1", "type": "complete"},
    ]
    [refusal] = too_deep["messages"]
    assert refusal["type"] == "error"
    assert refusal["payload"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    for message in wide:
        assert message["type"] == "error", message
        assert message["payload"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"


# -- 2. memory: nothing large is remembered ------------------------------------------------------------------

MEGABYTE_PADDING = ("#" + "x" * 1000 + "\\n") * 1000  # JSON-escaped: 1000 comment lines, ~1 MB


def megabyte_document_body(index: int) -> bytes:
    """A distinct ~1 MB document (comment padding, then ``{__typename}``) as a JSON body, built as bytes."""
    return b'{"query":"#' + str(index).encode() + b"\\n" + MEGABYTE_PADDING.encode() + b'{__typename}"}'


@pytest.mark.parametrize("count", [300, pytest.param(2000, marks=pytest.mark.slow)])
def test_distinct_megabyte_documents_leave_nothing_behind(start_gateway: GatewayFactory, count: int) -> None:
    gateway = start_gateway(GATEWAY_MAX_BODY_BYTES=2 * 1024 * 1024)
    before = rss_mib(gateway)
    codes: dict[str, int] = {}
    with HealthChecks(gateway, interval=0.5), httpx.Client(timeout=ATTACK_TIMEOUT) as client:
        for index in range(count):
            response = client.post(
                gateway.graphql_url, content=megabyte_document_body(index), headers={"Content-Type": "application/json"}
            )
            code = code_of(response)
            codes[code] = codes.get(code, 0) + 1
    after = rss_mib(gateway)
    print(f"gateway RSS: {before:.0f} MiB before, {after:.0f} MiB after {count} distinct ~1 MB documents")
    assert codes == {"QUERY_TOO_COMPLEX": count}  # longer than 32 characters per allowed token
    assert after < 300


@pytest.mark.parametrize("count", [20, pytest.param(80, marks=pytest.mark.slow)])
def test_accepted_megabyte_documents_are_not_cached(start_gateway: GatewayFactory, count: int) -> None:
    """With the token limit raised far enough, 1 MB documents are parsed and answered, but never remembered."""
    gateway = start_gateway(GATEWAY_MAX_BODY_BYTES=2 * 1024 * 1024, GATEWAY_MAX_QUERY_TOKENS=100_000)
    before = rss_mib(gateway)
    with HealthChecks(gateway, interval=0.5), httpx.Client(timeout=ATTACK_TIMEOUT) as client:
        for index in range(count):
            response = client.post(
                gateway.graphql_url, content=megabyte_document_body(index), headers={"Content-Type": "application/json"}
            )
            assert without_cost(response.json()) == {"data": {"__typename": "Query"}}
    after = rss_mib(gateway)
    print(f"gateway RSS: {before:.0f} MiB before, {after:.0f} MiB after {count} distinct accepted ~1 MB documents")
    assert after - before < 150  # remembering them took over 2 MB each


@pytest.mark.parametrize("count", [400, pytest.param(2000, marks=pytest.mark.slow)])
def test_distinct_small_documents_fill_the_caches_only_to_their_bounds(
    start_gateway: GatewayFactory, count: int
) -> None:
    """Cacheable documents (under 16 KiB) dense with tokens: the document cache is bounded by estimated bytes."""
    gateway = start_gateway()
    comments = "#c\n" * 1400  # 1400 comment tokens, ~4 KB: a parsed document keeps every token
    before = rss_mib(gateway)
    with HealthChecks(gateway, interval=0.5), httpx.Client(timeout=ATTACK_TIMEOUT) as client:
        for index in range(count):
            query = f"query Q{index} {{ __typename }}\n{comments}"
            response = client.post(gateway.graphql_url, json={"query": query})
            assert without_cost(response.json()) == {"data": {"__typename": "Query"}}
    after = rss_mib(gateway)
    print(f"gateway RSS: {before:.0f} MiB before, {after:.0f} MiB after {count} distinct cacheable documents")
    assert after < 300


def test_the_document_cache_is_bounded_by_estimated_bytes_and_keeps_no_large_document() -> None:
    cache = limits.DocumentCache(max_tokens=100_000, max_bytes=1024 * 1024)
    large = "{ __typename }" + " " * limits.CACHEABLE_DOCUMENT_LENGTH
    cache.parse(large)
    assert len(cache) == 0
    for index in range(200):
        cache.parse(f"query Q{index} {{ __typename }}" + " " * 4000)
    assert 0 < len(cache) < 200
    assert cache.estimated_bytes <= 1024 * 1024


def test_validation_is_cached_across_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    schema = build_schema(max_depth=5, max_aliases=5, max_tokens=500)
    calls: list[object] = []
    validate = limits.validate_document

    def counting(*args: Any) -> Any:
        calls.append(args)
        return validate(*args)

    monkeypatch.setattr(limits, "validate_document", counting)
    for _ in range(3):
        result = asyncio.run(schema.execute("{ __typename }"))
        assert result.data == {"__typename": "Query"}
    assert len(calls) == 1


# -- 3. WebSocket messages meet the body limit ---------------------------------------------------------------


def test_an_oversized_websocket_message_closes_the_connection(gateway: GatewayServer) -> None:
    document = "{ __typename }" + " " * 5_000_000
    with HealthChecks(gateway):
        oversized = websocket_exchange(gateway, [subscribe(document)], replies=1)
        multibyte = websocket_exchange(gateway, [subscribe("{ __typename }", {"x": "€" * 400_000})], replies=1)
        fine = websocket_exchange(gateway, [subscribe("{ __typename }")], replies=2)
    for closed in (oversized, multibyte):  # 1.2 MB in UTF-8, 0.4 M characters: bytes count
        assert closed["messages"] == []
        if closed["close_code"] is None:  # the server's reset overtook its close frame (a race on the wire)
            assert closed["close_reason"] == "reset while sending"
            continue
        assert closed["close_code"] == 1009
        # uvicorn refuses it first (`python -m gateway` sets ws_max_size to the body limit); under another ASGI
        # server the middleware does, with its own words: either way 1009 and the limit in the reason.
        assert "1048576 bytes" in closed["close_reason"]
    first = fine["messages"][0]
    assert {**first, "payload": without_cost(first["payload"])} == {
        "id": "1",
        "type": "next",
        "payload": {"data": {"__typename": "Query"}},
    }


# -- 4. bodies that are not GraphQL requests -----------------------------------------------------------------

DEEP_ARRAY = b"[" * 100_000 + b"]" * 100_000
BAD_BODIES = {
    "a number": b"42",
    "null": b"null",
    "a string": b'"x"',
    "an empty array": b"[]",
    "an array": b"[1]",
    "a number as query": b'{"query": 5}',
    "a number as variables": b'{"variables": 7}',
    "a number as operationName": b'{"query": "{ __typename }", "operationName": 5}',
    "arrays 100,000 deep": DEEP_ARRAY,
    "variables 100,000 deep": b'{"query": "{ __typename }", "variables": {"a": ' + DEEP_ARRAY + b"}}",
    "objects 100,000 deep": b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
    "just over the depth limit": b'{"query": "{ __typename }", "variables": {"a": '
    + b"[" * (limits.MAX_REQUEST_JSON_DEPTH - 1)
    + b"]" * (limits.MAX_REQUEST_JSON_DEPTH - 1)
    + b"}}",
}


@pytest.mark.parametrize("accept", ["application/json", GRAPHQL_RESPONSE_JSON])
@pytest.mark.parametrize("name", list(BAD_BODIES))
def test_bad_bodies_are_bad_requests(gateway: GatewayServer, name: str, accept: str) -> None:
    with HealthChecks(gateway):
        response = post(gateway, BAD_BODIES[name], accept=accept)
    assert response.status_code == 400, response.text[:300]
    assert response.headers["content-type"].startswith(accept)
    body = response.json()
    assert "data" not in body
    assert body["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


def test_json_at_the_depth_limit_is_accepted(gateway: GatewayServer) -> None:
    depth = limits.MAX_REQUEST_JSON_DEPTH - 2  # the body and "variables" are two levels
    body = b'{"query": "{ __typename }", "variables": {"a": ' + b"[" * depth + b"]" * depth + b"}}"
    assert without_cost(post(gateway, body).json()) == {"data": {"__typename": "Query"}}


def test_deep_variables_in_a_get_query_string_are_a_bad_request(gateway: GatewayServer) -> None:
    with HealthChecks(gateway):
        response = httpx.get(
            gateway.graphql_url,
            params={"query": "{ __typename }", "variables": "[" * 5000 + "]" * 5000},
            timeout=ATTACK_TIMEOUT,
        )
    assert response.status_code == 400
    assert response.json()["errors"][0] == {
        "message": f"The JSON is nested deeper than {limits.MAX_REQUEST_JSON_DEPTH} levels.",
        "extensions": {"code": "BAD_REQUEST"},
    }


def test_deep_variables_over_websocket_close_the_connection(gateway: GatewayServer) -> None:
    message = '{"id": "1", "type": "subscribe", "payload": {"query": "{ __typename }", "variables": {"a": '
    message += "[" * 100_000 + "]" * 100_000 + "}}}"
    with HealthChecks(gateway):
        closed = websocket_exchange(gateway, [message], replies=1)
    assert closed["messages"] == []
    assert closed["close_code"] == 4400
    assert closed["close_reason"] == f"The JSON is nested deeper than {limits.MAX_REQUEST_JSON_DEPTH} levels."


@pytest.mark.parametrize("depth", [150, 5000])
def test_a_deeply_nested_literal_in_the_document_is_refused(gateway: GatewayServer, depth: int) -> None:
    literal = "{a: " * depth + "1" + "}" * depth
    query = f'mutation {{ finishUserTask(id: "x", result: {literal}) {{ __typename }} }}'
    with HealthChecks(gateway):
        response = post(gateway, {"query": query})
    errors = errors_of(response)
    assert errors, response.text[:300]
    assert errors[0]["extensions"]["code"] in ("QUERY_TOO_COMPLEX", "BAD_REQUEST"), errors[0]


# -- the JSON depth scan itself ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "too_deep"),
    [
        ("[[[]]]", False),
        ("[[[[]]]]", True),
        ('["[[[[[[", {"a": "]]]]"}]', False),
        ('["\\"[[[[[[", 1]', False),
        ('[[[["unterminated', True),
        ("[]" * 1000, False),
        ("[[]" * 4, True),
        ("not json {{{{", True),
    ],
)
def test_the_json_depth_scan_ignores_strings(text: str, too_deep: bool) -> None:
    assert limits.json_too_deep(text, 3) is too_deep
    assert limits.json_too_deep(text.encode(), 3) is too_deep


def test_the_json_depth_scan_is_linear_on_unterminated_strings() -> None:
    """Every escaped quote after an unterminated string would restart a naive string pattern: quadratic."""
    text = "[" * 100 + '"' + '\\"' * 500_000
    assert limits.json_too_deep(text, 64)
    assert limits.json_too_deep(text + "\\", 64)


def test_decoding_too_deep_json_is_a_json_decode_error() -> None:
    with pytest.raises(json.JSONDecodeError) as raised:
        limits.decode_json("[" * 100_000 + "]" * 100_000)
    assert isinstance(raised.value, limits.JSONTooDeep)
    assert limits.decode_json('{"a": [1, {"b": "[[[["}]}') == {"a": [1, {"b": "[[[["}]}
