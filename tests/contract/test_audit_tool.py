"""The GraphQL-over-HTTP audit tool, run against strawberry's stock ASGI app and a broken endpoint."""

from __future__ import annotations

import pytest
import strawberry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from strawberry.asgi import GraphQL

from tests.asgi_server import serve_asgi
from tests.contract.audit import problems, run_graphql_http_audit

GRAPHQL_RESPONSE_JSON = "when accepting application/graphql-response+json"

#: What stock strawberry (0.341) does not do yet; the gateway has to fix each of these (graphql-http ids).
STOCK_STRAWBERRY_WARNINGS = {
    "22EB": "SHOULD accept application/graphql-response+json and match the content-type",
    "865D": f"SHOULD use 4xx or 5xx status codes on document parsing failure {GRAPHQL_RESPONSE_JSON}",
    "556A": f"SHOULD use 400 status code on document parsing failure {GRAPHQL_RESPONSE_JSON}",
    "D586": f"SHOULD not contain the data entry on document parsing failure {GRAPHQL_RESPONSE_JSON}",
    "51FE": f"SHOULD use 4xx or 5xx status codes on document validation failure {GRAPHQL_RESPONSE_JSON}",
    "74FF": f"SHOULD use 400 status code on document validation failure {GRAPHQL_RESPONSE_JSON}",
    "5E5B": f"SHOULD not contain the data entry on document validation failure {GRAPHQL_RESPONSE_JSON}",
    "86EE": f"SHOULD use a status code of 400 on variable coercion failure {GRAPHQL_RESPONSE_JSON}",
}


@strawberry.type
class Query:
    @strawberry.field
    def hello(self) -> str:
        return "world"

    @strawberry.field
    def task(self, id: strawberry.ID) -> str:
        return str(id)


def stock_strawberry_app() -> Starlette:
    return Starlette(routes=[Route("/graphql", GraphQL(strawberry.Schema(query=Query)))])


async def not_graphql(request: Request) -> PlainTextResponse:
    return PlainTextResponse("not a GraphQL server", status_code=404)


@pytest.fixture(scope="module")
def stock_results() -> list[dict[str, str]]:
    with serve_asgi(stock_strawberry_app()) as origin:
        return run_graphql_http_audit(origin + "/graphql")


def test_audit_reports_every_audit_once_with_a_known_status(stock_results: list[dict[str, str]]) -> None:
    ids = [result["id"] for result in stock_results]

    assert len(ids) > 50
    assert len(set(ids)) == len(ids)
    assert {result["status"] for result in stock_results} <= {"ok", "warn", "error", "notice"}
    assert all(set(result) == {"id", "name", "status", "reason"} for result in stock_results)
    assert all(result["reason"] for result in problems(stock_results))


def test_stock_strawberry_meets_every_must_requirement(stock_results: list[dict[str, str]]) -> None:
    assert [result for result in stock_results if result["status"] == "error"] == []


def test_stock_strawberry_only_misses_the_graphql_response_json_recommendations(
    stock_results: list[dict[str, str]],
) -> None:
    warnings = {result["id"]: result["name"] for result in problems(stock_results)}

    assert warnings == STOCK_STRAWBERRY_WARNINGS


def test_audit_reports_errors_for_an_endpoint_that_is_not_graphql() -> None:
    app = Starlette(routes=[Route("/graphql", not_graphql, methods=["GET", "POST"])])
    with serve_asgi(app) as origin:
        results = run_graphql_http_audit(origin + "/graphql")

    errors = [result for result in results if result["status"] == "error"]
    assert any(result["name"] == "MUST accept POST requests" for result in errors)
    assert all(result["reason"] for result in errors)
