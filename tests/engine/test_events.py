from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import socketio
import uvicorn
from starlette.applications import Starlette

from gateway.engine import (
    RetryPolicy,
    UnauthorizedError,
    UserTaskClient,
    UserTaskEvent,
)
from tests.asgi_server import serve_asgi
from tests.servers import free_port

from ._helpers import NoSleep

WAITING = {
    "flowNodeInstanceId": "fni-1",
    "flowNodeId": "Activity_Approve",
    "flowNodeName": "Approve order",
    "flowNodeType": "bpmn:UserTask",
    "processInstanceId": "pi-1",
    "processModelId": "ApprovalProcess",
    "correlationId": "c-1",
    "currentToken": {"amount": 5},
}


class SocketEngine:
    """A Socket.IO server shaped like the engine's: namespace /api, path /socket.io."""

    def __init__(self) -> None:
        self.sio = socketio.AsyncServer(async_mode="asgi")
        self.sids: list[str] = []
        self.authorization: list[str | None] = []
        self.connected = asyncio.Condition()
        self.url = ""

        async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
            self.authorization.append(environ.get("HTTP_AUTHORIZATION"))
            async with self.connected:
                self.sids.append(sid)
                self.connected.notify_all()

        self.sio.on("connect", connect, namespace="/api")

    async def wait_for_connects(self, count: int) -> str:
        async with self.connected:
            await self.connected.wait_for(lambda: len(self.sids) >= count)
            return self.sids[-1]

    async def emit(self, event: str, body: dict[str, Any]) -> None:
        await self.sio.emit(event, body, to=self.sids[-1], namespace="/api")


@pytest.fixture
async def socket_engine() -> AsyncIterator[SocketEngine]:
    engine = SocketEngine()
    app = socketio.ASGIApp(engine.sio, socketio_path="socket.io")
    port = free_port()
    # a bounded shutdown: a Socket.IO connection the client has not quite closed yet must not hold the teardown
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", timeout_graceful_shutdown=5
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no startup event
        await asyncio.sleep(0.01)
    engine.url = f"http://127.0.0.1:{port}"
    yield engine
    server.should_exit = True
    try:
        await asyncio.wait_for(asyncio.shield(task), 15)
    except TimeoutError:
        server.force_exit = True
        await task


def _client(url: str, **options: Any) -> UserTaskClient:
    return UserTaskClient(url, retry=RetryPolicy(sleep=NoSleep()), **options)


async def test_socketio_events_arrive_as_typed_events(socket_engine: SocketEngine) -> None:
    async with _client(socket_engine.url, token="worker-token") as client:
        stream = client.user_task_events()
        next_event = asyncio.ensure_future(anext(stream))
        await socket_engine.wait_for_connects(1)
        await socket_engine.emit("user_task_waiting", WAITING)
        event = await next_event
        await stream.aclose()
    assert isinstance(event, UserTaskEvent)
    assert event.name == "user_task_waiting"
    assert event.flow_node_instance_id == "fni-1"
    assert event.process_instance_id == "pi-1"
    assert event.raw["correlationId"] == "c-1"
    assert stream.transport == "socketio"
    assert socket_engine.authorization == ["worker-token"]


async def test_socketio_stream_reconnects_after_a_drop(socket_engine: SocketEngine) -> None:
    async with _client(socket_engine.url) as client, client.user_task_events() as stream:
        first = asyncio.ensure_future(anext(stream))
        sid = await socket_engine.wait_for_connects(1)
        await socket_engine.emit("user_task_reserved", WAITING)
        assert (await first).name == "user_task_reserved"
        await socket_engine.sio.disconnect(sid, namespace="/api")
        second = asyncio.ensure_future(anext(stream))
        await socket_engine.wait_for_connects(2)
        await socket_engine.emit("user_task_finished", {**WAITING, "userTaskResult": {"approved": True}})
        event = await second
    assert event.name == "user_task_finished"
    assert event.user_task_result == {"approved": True}
    assert stream.connects == 2


async def test_closing_the_client_ends_the_stream(socket_engine: SocketEngine) -> None:
    client = _client(socket_engine.url)
    stream = client.user_task_events(["user_task_waiting"])
    pending = asyncio.ensure_future(anext(stream))
    await socket_engine.wait_for_connects(1)
    await client.aclose()
    with pytest.raises(StopAsyncIteration):
        await pending
    assert [e async for e in stream] == []


def _long_polling_engine(script: list[Any]) -> httpx.MockTransport:
    async def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/atlas_engine/api/v1/notifications/long_polling/user_task_waiting"
        if not script:
            await asyncio.sleep(3600)  # the engine's wait: until the stream is closed
        answer = script.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer  # type: ignore[no-any-return]

    return httpx.MockTransport(handler)


async def test_long_polling_delivers_events_and_asks_again_after_204() -> None:
    transport = _long_polling_engine(
        [
            httpx.Response(204),
            httpx.Response(200, json=WAITING),
            httpx.ConnectError("engine restarting"),
            httpx.Response(200, json={**WAITING, "flowNodeInstanceId": "fni-2"}),
        ]
    )
    async with _client("http://engine.test", transport=transport) as client:
        stream = client.user_task_events(["user_task_waiting"], mode="long_polling")
        events = [await anext(stream), await anext(stream)]
        await stream.aclose()
    assert [e.flow_node_instance_id for e in events] == ["fni-1", "fni-2"]
    assert stream.transport == "long_polling"


async def test_long_polling_ends_with_the_error_when_the_token_is_refused() -> None:
    transport = _long_polling_engine([httpx.Response(401, json={"code": 401, "message": "no"})])
    async with _client("http://engine.test", transport=transport, token="bad") as client:
        with pytest.raises(UnauthorizedError):
            async for _ in client.user_task_events(["user_task_waiting"], mode="long_polling"):
                pass


async def test_auto_mode_falls_back_to_long_polling_without_socketio() -> None:
    transport = _long_polling_engine([httpx.Response(200, json=WAITING)])
    with serve_asgi(Starlette()) as origin:  # an engine that answers 404 at /socket.io
        async with _client(origin, transport=transport) as client:
            stream = client.user_task_events(["user_task_waiting"])
            event = await anext(stream)
            await stream.aclose()
    assert event.flow_node_instance_id == "fni-1"
    assert stream.transport == "long_polling"


async def test_auto_mode_waits_for_an_engine_that_is_down_instead_of_falling_back() -> None:
    transport = _long_polling_engine([httpx.Response(200, json=WAITING)])
    async with _client(f"http://127.0.0.1:{free_port()}", transport=transport) as client:
        stream = client.user_task_events(["user_task_waiting"])
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(anext(stream), 1.0)  # several refused connects: still Socket.IO, no long poll
        await stream.aclose()
    assert stream.transport is None


def test_unknown_event_names_are_refused() -> None:
    client = _client("http://engine.test")
    with pytest.raises(ValueError, match="user_task_exploded"):
        client.user_task_events(["user_task_exploded"])
