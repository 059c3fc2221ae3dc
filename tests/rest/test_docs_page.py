"""/docs renders the gateway's own contract offline, and "Try it out" reaches this gateway's REST API."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e.browser import chromium_page
from tests.rest.conftest import Approvals
from tests.servers import GatewayServer

pytestmark = pytest.mark.browser


def test_the_docs_page_renders_the_contract_and_tries_a_list_with_only_local_requests(
    gateway: GatewayServer, approvals: Approvals
) -> None:
    approvals.start([1500])
    with chromium_page() as (page, activity):
        page.goto(gateway.url + "/docs")
        expect(page.locator(".information-container .title")).to_contain_text("ProcessCube Task Gateway REST API")
        operation = page.locator("#operations-user-tasks-listUserTasks")
        expect(operation).to_contain_text("/api/v1/user-tasks")
        expect(page.locator("#operations-batch-finishUserTasks")).to_contain_text("/api/v1/user-tasks/batch/finish")

        operation.locator(".opblock-summary").click()
        operation.get_by_role("button", name="Try it out").click()
        operation.get_by_role("button", name="Execute").click()
        expect(operation.locator(".responses-inner .response .response-col_status").first).to_contain_text("200")
        expect(operation.locator(".responses-inner")).to_contain_text("totalCount")

        assert gateway.url + "/openapi.json" in activity.requests
        assert any(url.startswith(gateway.url + "/api/v1/user-tasks") for url in activity.requests)
        assert activity.urls_outside(gateway.url) == []
        assert activity.errors() == []
