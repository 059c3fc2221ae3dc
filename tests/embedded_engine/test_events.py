"""Engine notifications over real HTTP: the event bus, long polling and Socket.IO, lane-aware."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import socketio
from starlette.applications import Starlette
from starlette.routing import Mount

from embedded_engine.authority import DEFAULT_CLIENTS, Authority
from embedded_engine.errors import engine_error_body
from embedded_engine.events import (
    EventBus,
    create_socketio_server,
    long_polling_routes,
)
from embedded_engine.identity import DUMMY_TOKEN, Identity, IdentityResolver
from tests.embedded_engine._server import serve_with_url

BASE_PATH = "/atlas_engine/api/v1"


def task_message(flow_node_instance_id: str, lane: str | None = None) -> dict[str, Any]:
    """An EventMessage as the engine core builds it for a user task."""
    message: dict[str, Any] = {
        "correlationId": "corr-1",
        "processDefinitionId": "Definitions_1",
        "processModelId": "Invoice",
        "processInstanceId": "pi-1",
        "ownerId": "alice",
        "currentToken": {"amount": 100},
        "flowNodeId": "Approve",
        "flowNodeName": "Approve invoice",
        "flowNodeType": "bpmn:UserTask",
        "flowNodeInstanceId": flow_node_instance_id,
    }
    if lane is not None:
        message["flowNodeLane"] = lane
    return message


async def eventually(condition: Callable[[], bool]) -> None:
    """Wait until ``condition()`` holds (the test's overall timeout guards against forever)."""
    while not condition():  # noqa: ASYNC110 - the conditions are plain counters of the code under test
        await asyncio.sleep(0.01)


class Engine:
    """The bus, authority and resolver behind a tiny app that mounts only what this module provides."""

    def __init__(self, base_url: str, bus: EventBus, authority: Authority, resolver: IdentityResolver) -> None:
        self.base_url = base_url
        self.bus = bus
        self.authority = authority
        self.resolver = resolver

    def token(self, client_id: str) -> str:
        client = self.authority.client(client_id)
        assert client is not None
        return self.authority.issue_token(client)

    def identity(self, client_id: str) -> Identity:
        return self.resolver.resolve(self.token(client_id))

    def long_poll_url(self, event_name: str) -> str:
        return f"{self.base_url}{BASE_PATH}/notifications/long_polling/{event_name}"


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    bus = EventBus()
    engines: list[Engine] = []

    def build(base_url: str) -> socketio.ASGIApp:
        authority = Authority(f"{base_url}/authority", DEFAULT_CLIENTS, tmp_path / "key.pem")
        resolver = IdentityResolver(authority, allow_anonymous=True)
        app = Starlette(
            routes=[
                Mount("/authority", routes=authority.routes()),
                Mount(BASE_PATH, routes=long_polling_routes(bus, resolver, max_wait_seconds=60)),
            ]
        )
        sio = create_socketio_server(bus, resolver)
        engines.append(Engine(base_url, bus, authority, resolver))
        return socketio.ASGIApp(sio, other_asgi_app=app, socketio_path="socket.io")

    async with serve_with_url(build) as _base_url:
        yield engines[0]
    bus.close()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False, timeout=30) as client:
        yield client


# -- the bus -------------------------------------------------------------------------------------------------


def admin() -> Identity:
    return Identity(user_id="root", token="t", scopes=frozenset({"engine_admin"}), claims={}, anonymous=False)


def clerk() -> Identity:
    return Identity(
        user_id="bob", token="t", scopes=frozenset({"engine_read"}), claims={"Clerk": "true"}, anonymous=False
    )


async def test_subscriber_gets_events_it_may_see_in_order() -> None:
    bus = EventBus()
    subscription = bus.subscribe(clerk(), event_names=["user_task_waiting", "user_task_finished"])

    bus.publish("user_task_waiting", task_message("fni-1", lane="Approver"))
    bus.publish("user_task_waiting", task_message("fni-2", lane="Clerk"))
    bus.publish("user_task_reserved", task_message("fni-3"))
    bus.publish("user_task_finished", task_message("fni-4"))
    bus.unsubscribe(subscription)

    received = [(name, message["flowNodeInstanceId"]) async for name, message in subscription]
    assert received == [("user_task_waiting", "fni-2"), ("user_task_finished", "fni-4")]


async def test_explicit_lane_overrides_the_messages_lane() -> None:
    bus = EventBus()
    subscription = bus.subscribe(clerk())

    bus.publish("process_started", task_message("fni-1"), lane="Approver")
    bus.publish("process_started", task_message("fni-2"))
    bus.unsubscribe(subscription)

    assert [message["flowNodeInstanceId"] async for _, message in subscription] == ["fni-2"]


async def test_a_subscriber_that_falls_behind_is_dropped_without_blocking_the_publisher() -> None:
    bus = EventBus(max_queue=2)
    slow = bus.subscribe(admin())
    fast = bus.subscribe(admin())

    for index in range(3):
        bus.publish("user_task_waiting", task_message(f"fni-{index}"))
        assert await fast.get() is not None

    assert slow.dropped
    assert await slow.get() is None
    assert bus.subscriber_count == 1


async def test_published_message_is_a_copy_of_the_publishers_dict() -> None:
    bus = EventBus()
    subscription = bus.subscribe(admin())
    message = task_message("fni-1")

    bus.publish("user_task_waiting", message)
    message["flowNodeInstanceId"] = "changed"

    item = await subscription.get()
    assert item is not None
    assert item[1]["flowNodeInstanceId"] == "fni-1"


def test_publishing_an_unknown_event_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown event"):
        EventBus().publish("user_task_exploded", {})


async def test_next_event_ignores_events_published_before_the_call() -> None:
    bus = EventBus()
    bus.publish("user_task_waiting", task_message("fni-old"))

    assert await bus.next_event("user_task_waiting", admin(), timeout=0.05) is None
    assert bus.waiter_count == 0


async def test_closing_the_bus_releases_waiters_and_subscribers() -> None:
    bus = EventBus()
    subscription = bus.subscribe(admin())
    waiting = asyncio.create_task(bus.next_event("user_task_waiting", admin(), timeout=60))
    await eventually(lambda: bus.waiter_count == 1)

    bus.close()

    assert await waiting is None
    assert await subscription.get() is None


# -- long polling --------------------------------------------------------------------------------------------


async def test_long_poll_answers_with_an_event_published_after_it_started(
    engine: Engine, http: httpx.AsyncClient
) -> None:
    poll = asyncio.create_task(
        http.get(
            engine.long_poll_url("user_task_waiting"),
            headers={"Authorization": f"Bearer {engine.token('alice')}"},
        )
    )
    await eventually(lambda: engine.bus.waiter_count == 1)

    engine.bus.publish("user_task_waiting", task_message("fni-1", lane="Approver"))
    response = await poll

    assert response.status_code == 200
    assert response.json() == task_message("fni-1", lane="Approver")
    assert engine.bus.waiter_count == 0


async def test_long_poll_skips_events_of_lanes_the_caller_cannot_see(engine: Engine, http: httpx.AsyncClient) -> None:
    poll = asyncio.create_task(
        http.get(
            engine.long_poll_url("user_task_waiting"),
            headers={"Authorization": f"Bearer {engine.token('bob')}"},
        )
    )
    await eventually(lambda: engine.bus.waiter_count == 1)

    engine.bus.publish("user_task_waiting", task_message("fni-approver", lane="Approver"))
    engine.bus.publish("user_task_waiting", task_message("fni-clerk", lane="Clerk"))
    response = await poll

    assert response.json()["flowNodeInstanceId"] == "fni-clerk"


async def test_long_poll_answers_204_when_nothing_happens_in_time(engine: Engine, http: httpx.AsyncClient) -> None:
    app = Starlette(routes=long_polling_routes(engine.bus, engine.resolver, max_wait_seconds=0.1))
    engine.bus.publish("user_task_finished", task_message("fni-before"))

    async with serve_with_url(lambda _url: app) as base_url:
        response = await http.get(
            f"{base_url}/notifications/long_polling/user_task_finished",
            headers={"Authorization": f"Bearer {DUMMY_TOKEN}"},
        )

    assert response.status_code == 204
    assert response.content == b""
    assert engine.bus.waiter_count == 0


async def test_long_poll_without_a_token_is_401_in_the_engines_error_shape_without_anonymous_access(
    engine: Engine, http: httpx.AsyncClient
) -> None:
    engine.resolver.allow_anonymous = False
    response = await http.get(engine.long_poll_url("user_task_waiting"))

    assert response.status_code == 401
    body = response.json()
    assert body == engine_error_body(401, body["message"])
    assert body["errorClassName"] == "UnauthorizedError"
    assert body["isEngineError"] is True
    assert "Authorization" in body["message"]


async def test_long_poll_with_a_bad_token_is_401(engine: Engine, http: httpx.AsyncClient) -> None:
    response = await http.get(engine.long_poll_url("user_task_waiting"), headers={"Authorization": "Bearer not-a-jwt"})

    assert response.status_code == 401
    assert response.json()["code"] == 401


async def test_long_poll_of_an_unknown_event_is_404(engine: Engine, http: httpx.AsyncClient) -> None:
    response = await http.get(
        engine.long_poll_url("user_task_exploded"), headers={"Authorization": f"Bearer {DUMMY_TOKEN}"}
    )

    assert response.status_code == 404
    assert response.json()["errorClassName"] == "NotFoundError"
    assert response.json()["code"] == 404


async def test_long_poll_stops_waiting_when_the_client_hangs_up(engine: Engine, http: httpx.AsyncClient) -> None:
    poll = asyncio.create_task(
        http.get(engine.long_poll_url("user_task_waiting"), headers={"Authorization": f"Bearer {DUMMY_TOKEN}"})
    )
    await eventually(lambda: engine.bus.waiter_count == 1)

    poll.cancel()
    with pytest.raises(asyncio.CancelledError):
        await poll

    await eventually(lambda: engine.bus.waiter_count == 0)


# -- Socket.IO -----------------------------------------------------------------------------------------------


class Listener:
    """A python-socketio client as the official TypeScript client connects: raw token in ``Authorization``."""

    def __init__(self) -> None:
        self.client = socketio.AsyncClient(reconnection=False)
        self.received: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()

        async def on_any(event: str, data: dict[str, Any]) -> None:
            await self.received.put((event, data))

        self.client.on("*", on_any, namespace="/api")

    async def connect(self, base_url: str, authorization: str | None, auth: dict[str, str] | None = None) -> None:
        await self.client.connect(
            base_url,
            headers={"Authorization": authorization} if authorization is not None else {},
            auth=auth,
            namespaces=["/api"],
            socketio_path="socket.io",
            wait_timeout=30,
        )

    async def next(self) -> tuple[str, dict[str, Any]]:
        return await self.received.get()

    async def close(self) -> None:
        await self.client.disconnect()


@pytest.fixture
async def listeners() -> AsyncIterator[Callable[[], Listener]]:
    created: list[Listener] = []

    def make() -> Listener:
        created.append(Listener())
        return created[-1]

    yield make
    for listener in created:
        await listener.close()


async def test_socketio_client_receives_user_task_waiting(engine: Engine, listeners: Callable[[], Listener]) -> None:
    listener = listeners()
    await listener.connect(engine.base_url, engine.token("alice"))

    engine.bus.publish("user_task_waiting", task_message("fni-1", lane="Approver"))

    assert await listener.next() == ("user_task_waiting", task_message("fni-1", lane="Approver"))


async def test_socketio_tolerates_bearer_prefix_and_the_dummy_token(
    engine: Engine, listeners: Callable[[], Listener]
) -> None:
    listener = listeners()
    await listener.connect(engine.base_url, f"Bearer {DUMMY_TOKEN}")

    engine.bus.publish("process_ended", {"processInstanceId": "pi-1", "correlationId": "corr-1"})

    # on Socket.IO, process events carry the official client's names (process_ended is OnProcessFinished)
    assert await listener.next() == (
        "OnProcessFinished",
        {"processInstanceId": "pi-1", "correlationId": "corr-1"},
    )


async def test_socketio_accepts_the_token_in_the_auth_payload_for_browsers(
    engine: Engine, listeners: Callable[[], Listener]
) -> None:
    listener = listeners()
    await listener.connect(engine.base_url, None, auth={"token": engine.token("bob")})

    engine.bus.publish("user_task_reserved", task_message("fni-1", lane="Clerk"))

    assert await listener.next() == ("user_task_reserved", task_message("fni-1", lane="Clerk"))


async def test_socketio_connection_without_any_token_is_refused_without_anonymous_access(
    engine: Engine, listeners: Callable[[], Listener]
) -> None:
    engine.resolver.allow_anonymous = False
    with pytest.raises(socketio.exceptions.ConnectionError):
        await listeners().connect(engine.base_url, None)


async def test_socketio_connection_with_a_bad_token_is_refused(
    engine: Engine, listeners: Callable[[], Listener]
) -> None:
    listener = listeners()

    with pytest.raises(socketio.exceptions.ConnectionError):
        await listener.connect(engine.base_url, "not-a-jwt")

    assert engine.bus.subscriber_count == 0


async def test_socketio_client_does_not_receive_events_of_lanes_it_cannot_see(
    engine: Engine, listeners: Callable[[], Listener]
) -> None:
    alice, bob = listeners(), listeners()
    await alice.connect(engine.base_url, engine.token("alice"))
    await bob.connect(engine.base_url, engine.token("bob"))

    engine.bus.publish("user_task_waiting", task_message("fni-clerk", lane="Clerk"))
    engine.bus.publish("user_task_waiting", task_message("fni-approver", lane="Approver"))

    # Events reach a client in publishing order: alice's first event being the second one proves she missed
    # the first.
    assert (await alice.next())[1]["flowNodeInstanceId"] == "fni-approver"
    assert (await bob.next())[1]["flowNodeInstanceId"] == "fni-clerk"


async def test_socketio_disconnect_ends_the_clients_subscription(
    engine: Engine, listeners: Callable[[], Listener]
) -> None:
    listener = listeners()
    await listener.connect(engine.base_url, engine.token("bob"))
    assert engine.bus.subscriber_count == 1

    await listener.close()

    await eventually(lambda: engine.bus.subscriber_count == 0)
