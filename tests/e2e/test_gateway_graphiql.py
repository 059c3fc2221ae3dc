"""What `make run` gives a person: GraphiQL on the gateway, over the embedded engine with demo data."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from playwright.sync_api import expect

from tests.e2e.browser import chromium_page
from tests.servers import DUMMY_TOKEN, GatewayServer, gateway_with_embedded_engine, poll

pytestmark = pytest.mark.browser

QUERY = "{ userTasks(first: 10) { totalCount nodes { name processModelId token } } }"


@pytest.fixture(scope="module")
def demo_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    """The gateway as `make run` starts it: no engine URL, so it starts the embedded engine with demo data."""
    gateway = gateway_with_embedded_engine(tmp_path_factory.mktemp("demo"), demo=True).start()
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


def test_graphiql_shows_a_live_event_of_a_task_the_test_finishes(demo_gateway: GatewayServer, tmp_path: Path) -> None:
    """A subscription in GraphiQL (graphql-transport-ws on /graphql): finishing a task shows its event live."""
    origin = demo_gateway.url
    engine_url = httpx.get(origin + "/healthz").json()["engineUrl"]
    # The gateway follows the engine's events once its stream is up: a change made now shows on /metrics.
    started = httpx.post(
        f"{engine_url}/atlas_engine/api/v1/process_models/ApprovalProcess/start",
        json={"processModelId": "ApprovalProcess", "returnOn": 1, "initialToken": {"amount": 42}},
        headers={"Authorization": f"Bearer {DUMMY_TOKEN}"},
    )
    started.raise_for_status()
    poll(lambda: demo_gateway.metric("gateway_engine_events_total") > 0)
    instance = started.json()["processInstanceId"]
    tasks = demo_gateway.graphql(
        "query($i: [ID!]) { userTasks(filter: {processInstanceId: $i}) { nodes { id } } }", {"i": [instance]}
    )
    task_id = tasks["data"]["userTasks"]["nodes"][0]["id"]
    subscription = (
        f'subscription {{ userTaskEvents(filter: {{id: ["{task_id}"]}}) '
        "{ ... on UserTaskEvent { kind task { id state } } } }"
    )
    with chromium_page() as (page, activity):
        page.goto(f"{origin}/graphql?q={quote(subscription)}")
        expect(page.locator(".graphiql-query-editor")).to_contain_text("userTaskEvents")
        page.locator(".graphiql-execute-button").click()
        poll(lambda: demo_gateway.metric("gateway_live_subscriptions") >= 1)

        finished = demo_gateway.graphql(
            "mutation($id: ID!) { finishUserTask(id: $id, result: {approved: true}) { __typename } }", {"id": task_id}
        )
        assert finished["data"]["finishUserTask"]["__typename"] == "FinishedUserTask", finished

        response = page.locator(".graphiql-response")
        expect(response).to_contain_text('"kind": "FINISHED"')
        expect(response).to_contain_text(f'"id": "{task_id}"')
        expect(response).to_contain_text('"state": "FINISHED"')
        page.screenshot(path=str(tmp_path / "gateway-graphiql-subscription.png"))
        assert activity.websockets == [origin.replace("http", "ws", 1) + "/graphql"]
        assert activity.urls_outside(origin) == []
        assert activity.errors() == []


def test_graphiql_sends_its_headers_in_connection_init_and_a_bad_token_is_said_at_once(
    demo_gateway: GatewayServer,
) -> None:
    """GraphiQL's headers editor reaches the WebSocket as the connection_init payload: a bad token there answers
    UNAUTHENTICATED right away (a 4403 close would be retried by GraphiQL's client for about a minute)."""
    origin = demo_gateway.url
    subscription = "subscription { userTaskEvents { __typename } }"
    headers = json.dumps({"Authorization": "Bearer not-a-jwt"})
    with chromium_page() as (page, activity):
        page.goto(f"{origin}/graphql?q={quote(subscription)}&headers={quote(headers)}")
        expect(page.locator(".graphiql-query-editor")).to_contain_text("userTaskEvents")
        page.locator(".graphiql-execute-button").click()

        response = page.locator(".graphiql-response")
        expect(response).to_contain_text('"code": "UNAUTHENTICATED"', timeout=10_000)
        expect(response).to_contain_text("not a JWT")
        assert activity.urls_outside(origin) == []
        assert activity.errors() == []
