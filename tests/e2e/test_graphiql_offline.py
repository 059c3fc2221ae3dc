"""GraphiQL and the API reference page work offline: every asset comes from the server itself."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
import strawberry
from playwright.sync_api import expect
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute

from gateway.gql.graphiql import OfflineGraphQL, static_files_mount
from gateway.rest.docs import api_docs_route
from tests.asgi_server import serve_asgi
from tests.e2e.browser import chromium_page

pytestmark = pytest.mark.browser

SCREENSHOTS = Path("/tmp")


@strawberry.type
class Query:
    @strawberry.field
    def hello(self) -> str:
        return "Hello, offline world!"


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def count(self, up_to: int) -> AsyncGenerator[int, None]:
        for number in range(1, up_to + 1):
            yield number
            await asyncio.sleep(0)


def graphql_app() -> Starlette:
    graphql = OfflineGraphQL(strawberry.Schema(query=Query, subscription=Subscription))
    return Starlette(routes=[Route("/graphql", graphql), WebSocketRoute("/graphql", graphql), static_files_mount()])


TINY_OPENAPI = {
    "openapi": "3.1.0",
    "info": {
        "title": "Tiny Task API",
        "version": "1.2.3",
        "description": "A tiny document for the docs page.",
    },
    "paths": {
        "/hello": {
            "get": {
                "operationId": "getHello",
                "summary": "Say hello to the offline world",
                "responses": {"200": {"description": "A greeting"}},
            }
        }
    },
}


async def openapi_json(request: Request) -> JSONResponse:
    return JSONResponse(TINY_OPENAPI)


def docs_app() -> Starlette:
    return Starlette(routes=[Route("/openapi.json", openapi_json), api_docs_route("/docs"), static_files_mount()])


def test_graphiql_runs_a_typed_query_and_opens_the_explorer_with_only_local_requests() -> None:
    with serve_asgi(graphql_app()) as origin, chromium_page() as (page, activity):
        page.goto(origin + "/graphql")
        editor = page.locator(".graphiql-query-editor .CodeMirror")
        expect(editor).to_be_visible()
        editor.click()
        page.keyboard.press("Control+A")
        page.keyboard.insert_text("{ hello }")
        page.locator(".graphiql-execute-button").click()

        response = page.locator(".graphiql-response")
        expect(response).to_contain_text('"hello": "Hello, offline world!"')
        page.screenshot(path=str(SCREENSHOTS / "graphiql.png"))
        page.get_by_role("button", name="Show GraphiQL Explorer").click()
        expect(page.locator(".graphiql-plugin")).to_contain_text("Explorer")
        expect(page.locator(".graphiql-plugin")).to_contain_text("hello")

        assert activity.urls_outside(origin) == []
        assert any(url.startswith(origin + "/static/vendor/graphiql/") for url in activity.requests)
        assert activity.errors() == []


def test_graphiql_runs_a_shared_subscription_over_websocket_on_the_same_path() -> None:
    subscription = "subscription { count(upTo: 3) }"
    with serve_asgi(graphql_app()) as origin, chromium_page() as (page, activity):
        page.goto(f"{origin}/graphql?q={quote(subscription)}")
        expect(page.locator(".graphiql-query-editor")).to_contain_text("count(upTo: 3)")
        page.locator(".graphiql-execute-button").click()

        expect(page.locator(".graphiql-response")).to_contain_text('"count": 3')
        assert activity.websockets == [origin.replace("http", "ws", 1) + "/graphql"]
        assert activity.urls_outside(origin) == []
        assert activity.errors() == []


def test_graphiql_page_references_no_cdn() -> None:
    with serve_asgi(graphql_app()) as origin:
        response = httpx.get(origin + "/graphql", headers={"Accept": "text/html"})
        body = response.text

    assert response.status_code == 200
    assert "unpkg.com" not in body
    assert "jsdelivr" not in body
    assert "integrity=" not in body
    assert '<script src="/static/vendor/graphiql/graphiql.min.js"></script>' in body


def test_api_docs_render_the_openapi_document_with_only_local_requests() -> None:
    with serve_asgi(docs_app()) as origin, chromium_page() as (page, activity):
        page.goto(origin + "/docs")

        expect(page.locator(".information-container .title")).to_contain_text("Tiny Task API")
        operation = page.locator(".opblock-summary")
        expect(operation).to_contain_text("/hello")
        expect(operation).to_contain_text("Say hello to the offline world")
        page.screenshot(path=str(SCREENSHOTS / "api_docs.png"))

        assert origin + "/openapi.json" in activity.requests
        assert activity.urls_outside(origin) == []
        assert activity.errors() == []
