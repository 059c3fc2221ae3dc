"""A fuzzer against the GraphQL face: schemathesis with the schema the endpoint introspects.

``schemathesis run http://<gateway>/graphql --checks all --exclude-checks positive_data_acceptance`` against a
real gateway in front of its embedded engine with the demo data: queries and mutations with generated arguments
(valid ones, and invalid ones that GraphQL validation must refuse). Two things differ from the REST run:

- the schema's ``JSON`` scalar needs a value strategy, which schemathesis takes only as Python code: the hooks
  module ``tests.contract.graphql_scalars`` gives it one (any JSON value) and does nothing else;
- ``positive_data_acceptance`` is left out: for GraphQL it counts *any* ``errors`` entry of a well-typed query as
  a rejected valid request, while GraphQL's types cannot say what the gateway rightly refuses (an ``ID`` that is
  not a task id, a ``first`` over the page size, a task that does not exist or is not waiting).

Every answer is then held to GraphQL over HTTP: no 5xx, JSON (``application/json`` or
``application/graphql-response+json``) holding ``data`` and/or ``errors``, each error with a ``message`` and an
``extensions.code`` of the error table.

``make test`` runs ``FAST_MAX_EXAMPLES`` per operation; ``make test-slow`` (``--run-slow``) ``SLOW_MAX_EXAMPLES``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.contract.fuzz import SEED, Exchange, Run, run_schemathesis
from tests.report import AttackReport
from tests.servers import REPO, GatewayServer, gateway_with_embedded_engine

FAST_MAX_EXAMPLES = 10
SLOW_MAX_EXAMPLES = 300
HOOKS = "tests.contract.graphql_scalars"
MEDIA_TYPES = ("application/json", "application/graphql-response+json")
TOP_LEVEL = {"data", "errors", "extensions"}


@pytest.fixture
def demo_gateway(tmp_path: Path) -> Iterator[GatewayServer]:
    gateway = gateway_with_embedded_engine(tmp_path / "gateway", demo=True).start()
    try:
        yield gateway
    finally:
        gateway.stop()


def fuzz(gateway: GatewayServer, report_dir: Path, max_examples: int) -> Run:
    run = run_schemathesis(
        [
            gateway.graphql_url,
            "--checks",
            "all",
            "--exclude-checks",
            "positive_data_acceptance",
            "--seed",
            str(SEED),
            "--max-examples",
            str(max_examples),
        ],
        report_dir,
        env={"SCHEMATHESIS_HOOKS": HOOKS, "PYTHONPATH": str(REPO)},
    )
    assert run.returncode == 0, run.failure_text()
    return run


def graphql_over_http_problems(exchange: Exchange) -> list[str]:
    """What is wrong with one answer as GraphQL over HTTP (nothing: an empty list)."""
    if exchange.status >= 500:
        return [f"status {exchange.status}"]
    media_type = (exchange.header("content-type") or "").split(";")[0].strip()
    if media_type not in MEDIA_TYPES:
        return [f"content type {media_type!r}"]
    try:
        body: Any = json.loads(exchange.content)
    except ValueError:
        return ["not JSON"]
    if not isinstance(body, dict):
        return [f"a JSON {type(body).__name__}, not an object"]
    found: list[str] = []
    if not body.keys() & {"data", "errors"} or body.keys() - TOP_LEVEL:
        found.append(f"members {sorted(body)}")
    errors = body.get("errors")
    if "errors" in body:
        if not isinstance(errors, list) or not errors:
            return [*found, "errors is not a non-empty list"]
        for error in errors:
            extensions = error.get("extensions") if isinstance(error, dict) else None
            if not isinstance(error, dict) or not isinstance(error.get("message"), str):
                found.append(f"an error without a message: {error!r}")
            elif not isinstance(extensions, dict) or not isinstance(extensions.get("code"), str):
                found.append(f"an error without extensions.code: {error!r}")
    elif body.get("data") is None:
        found.append("no errors, and data is null")
    return found


def _assert_fuzzed(run: Run, report: AttackReport) -> None:
    report.add("inputs tried", len(list(run.exchanges())))
    report.add("crashes", sum(exchange.status >= 500 for exchange in run.exchanges()))
    assert "✅ Fuzzing" in run.stdout
    exchanges = list(run.exchanges())
    labels = {exchange.label for exchange in exchanges}
    assert {"Query.userTasks", "Query.userTask", "Mutation.finishUserTask", "Mutation.reserveUserTasks"} <= labels
    assert {exchange.mode for exchange in exchanges} == {"positive", "negative"}
    wrong = {
        f"{exchange.label} [{exchange.mode}] {exchange.status}: {problem}\n  {exchange.content[:500]!r}"
        for exchange in exchanges
        for problem in graphql_over_http_problems(exchange)
    }
    assert not wrong, "\n".join(sorted(wrong))


@pytest.mark.timeout(600)  # about 15 s alone; the shared machine's load can make it several times that
def test_schemathesis_finds_nothing_in_the_graphql_endpoint(
    demo_gateway: GatewayServer, tmp_path: Path, attack_report: AttackReport
) -> None:
    _assert_fuzzed(fuzz(demo_gateway, tmp_path / "report", FAST_MAX_EXAMPLES), attack_report)


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_schemathesis_finds_nothing_in_the_graphql_endpoint_in_a_long_run(
    demo_gateway: GatewayServer, tmp_path: Path, attack_report: AttackReport
) -> None:
    _assert_fuzzed(fuzz(demo_gateway, tmp_path / "report", SLOW_MAX_EXAMPLES), attack_report)


def test_the_checker_refuses_what_is_not_graphql_over_http() -> None:
    def answer(status: int, content: bytes, media_type: str = "application/json") -> list[str]:
        exchange = Exchange("POST", "/graphql", "Query.userTask", "positive", "fuzzing", status,
                            {"Content-Type": [media_type]}, content, None)  # fmt: skip
        return graphql_over_http_problems(exchange)

    assert answer(200, b'{"data":{"userTask":null}}') == []
    assert answer(200, b'{"data":null,"errors":[{"message":"m","extensions":{"code":"BAD_REQUEST"}}]}') == []
    assert answer(400, b'{"errors":[{"message":"m","extensions":{"code":"BAD_REQUEST"}}]}') == []
    assert answer(200, b'{"data":{},"extensions":{"cost":3}}') == []
    assert answer(500, b'{"errors":[]}') == ["status 500"]
    assert answer(200, b"<html>", "text/html") == ["content type 'text/html'"]
    assert answer(200, b"nope") == ["not JSON"]
    assert answer(200, b"[]") == ["a JSON list, not an object"]
    assert answer(200, b'{"errors":[{"message":"m"}]}') == ["an error without extensions.code: {'message': 'm'}"]
    assert answer(200, b'{"data":null}') == ["no errors, and data is null"]
    assert answer(200, b'{"result":1}') == ["members ['result']", "no errors, and data is null"]
