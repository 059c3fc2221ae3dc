"""What `make run` gives a person: GraphiQL on the gateway, over the embedded engine with demo data."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.e2e.browser import chromium_page
from tests.servers import GatewayServer, gateway_with_embedded_engine

pytestmark = pytest.mark.browser

QUERY = "{ userTasks(first: 10) { totalCount nodes { name processModelId token } } }"


@pytest.fixture
def demo_gateway(tmp_path: Path) -> Iterator[GatewayServer]:
    """The gateway as `make run` starts it: no engine URL, so it starts the embedded engine with demo data."""
    gateway = gateway_with_embedded_engine(tmp_path, demo=True).start()
    yield gateway
    gateway.stop()


def test_graphiql_shows_demo_tasks(demo_gateway: GatewayServer, tmp_path: Path) -> None:
    origin = demo_gateway.url
    with chromium_page() as (page, activity):
        page.goto(origin + "/graphql")
        editor = page.locator(".graphiql-query-editor .CodeMirror")
        expect(editor).to_be_visible()
        editor.click()
        page.keyboard.press("Control+A")
        page.keyboard.insert_text(QUERY)
        page.locator(".graphiql-execute-button").click()

        response = page.locator(".graphiql-response")
        expect(response).to_contain_text('"processModelId": "ApprovalProcess"')
        expect(response).to_contain_text('"customerType"')
        expect(response).to_contain_text("totalCount")
        page.screenshot(path=str(tmp_path / "gateway-graphiql.png"))
        assert activity.urls_outside(origin) == []
        assert activity.errors() == []
