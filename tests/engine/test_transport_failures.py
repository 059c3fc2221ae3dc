"""The default (httpx-aiohttp) transport against misbehaving servers on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from gateway.engine import (
    CircuitOpenError,
    EngineTimeoutError,
    EngineUnavailableError,
    OutcomeUnknownError,
    ProtocolError,
    RetryPolicy,
    UserTaskClient,
)
from tests.servers import free_port

from ._helpers import NoSleep, flow_node_instance

Serve = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Server:
    def __init__(self, url: str) -> None:
        self.url = url
        self.connections = 0


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Serve], Awaitable[Server]]]:
    servers: list[asyncio.Server] = []
    writers: list[asyncio.StreamWriter] = []

    async def start(behaviour: Serve) -> Server:
        info = Server("")

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            info.connections += 1
            writers.append(writer)
            with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
                await behaviour(reader, writer)

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        info.url = f"http://127.0.0.1:{port}"
        return info

    yield start
    for writer in writers:
        writer.close()
    for server in servers:
        server.close()
        await server.wait_closed()


async def _read_request(reader: asyncio.StreamReader) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            await reader.readexactly(int(line.split(b":")[1]))


async def _hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    await asyncio.sleep(30)


async def _drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    writer.close()


async def _garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    writer.write(b"this is not HTTP at all\r\n\r\n")
    await writer.drain()
    writer.close()


def _client(url: str, *, timeout: float = 5.0) -> UserTaskClient:
    return UserTaskClient(url, timeout=httpx.Timeout(timeout), retry=RetryPolicy(max_retries=2, sleep=NoSleep()))


async def test_closed_port_is_engine_unavailable_and_never_sent() -> None:
    async with _client(f"http://127.0.0.1:{free_port()}") as client:
        with pytest.raises(EngineUnavailableError) as caught:
            await client.get_user_tasks()
        assert not caught.value.request_sent
        with pytest.raises(EngineUnavailableError) as caught:
            await client.finish_user_task("t1", {"approved": True})
        assert not caught.value.request_sent
        # both retried (nothing ever reached an engine) until the fifth refusal in a row opened the circuit
        assert client.request_count == 5
        assert isinstance(caught.value, CircuitOpenError)
        assert client.circuit_state == "open"


async def test_hanging_server_is_a_timeout_for_reads(serve: Callable[[Serve], Awaitable[Server]]) -> None:
    server = await serve(_hang)
    async with _client(server.url, timeout=0.2) as client:
        with pytest.raises(EngineTimeoutError) as caught:
            await client.get_user_tasks()
    assert not isinstance(caught.value, OutcomeUnknownError)
    assert server.connections == 1


async def test_hanging_server_makes_a_writes_outcome_unknown(
    serve: Callable[[Serve], Awaitable[Server]],
) -> None:
    server = await serve(_hang)
    async with _client(server.url, timeout=0.2) as client:
        with pytest.raises(OutcomeUnknownError):
            await client.finish_user_task("t1", {"approved": True})
    assert server.connections == 1


async def test_dropped_connection_is_retried_for_reads_and_outcome_unknown_for_writes(
    serve: Callable[[Serve], Awaitable[Server]],
) -> None:
    server = await serve(_drop)
    async with _client(server.url) as client:
        with pytest.raises(EngineUnavailableError) as caught:
            await client.get_user_tasks()
        assert caught.value.request_sent
        assert client.request_count == 3
        with pytest.raises(OutcomeUnknownError):
            await client.reserve_user_task("t1", "someone")
        assert client.request_count == 4


async def test_non_http_answer_is_a_protocol_error(serve: Callable[[Serve], Awaitable[Server]]) -> None:
    server = await serve(_garbage)
    async with _client(server.url) as client:
        with pytest.raises(ProtocolError):
            await client.get_user_tasks()


async def test_real_transport_round_trip(serve: Callable[[Serve], Awaitable[Server]]) -> None:
    body = json.dumps({"flowNodeInstances": [flow_node_instance("a")], "totalCount": 1}).encode()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await _read_request(reader)
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await writer.drain()

    server = await serve(answer)
    async with _client(server.url) as client:
        results = await asyncio.gather(*(client.get_user_tasks() for _ in range(10)))
        results += [await client.get_user_tasks() for _ in range(5)]
    assert all(r[0]["userTaskInstanceId"] == "a" for r in results)
