"""No write is sent twice behind the caller's back (issue 15).

aiohttp's `ClientSession` sends a GET, HEAD, OPTIONS, TRACE, PUT or DELETE again, once, when its connection is reset
or closed before the answer (`retry_persistent_connection` in `aiohttp/client.py`). The engine's finish, reserve
and cancel are PUT and DELETE; a finish is not idempotent. The client's transport turns that off: a server on
loopback that reads each request and then closes the connection sees every request exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import httpx
import pytest

from gateway.engine import EngineUnavailableError, OutcomeUnknownError, RetryPolicy, UserTaskClient

from ._helpers import flow_node_instance


class ClosingServer:
    """Answers GETs (keep-alive); reads a PUT or DELETE and closes without answering, or resets."""

    def __init__(self, *, reset: bool = False) -> None:
        self.reset = reset
        self.requests: list[str] = []
        self.url = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        body = json.dumps({"flowNodeInstances": [flow_node_instance("a")], "totalCount": 1}).encode()
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        await reader.readexactly(int(line.split(b":")[1]))
                method = head.split(b" ", 1)[0].decode()
                self.requests.append(method)
                if method == "GET":
                    writer.write(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        + f"Content-Length: {len(body)}\r\n\r\n".encode()
                        + body
                    )
                    await writer.drain()
                    continue
                if self.reset:
                    writer.transport.abort()
                else:
                    writer.close()
                return


@contextlib.asynccontextmanager
async def serving(server: ClosingServer) -> AsyncIterator[ClosingServer]:
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    server.url = f"http://127.0.0.1:{listener.sockets[0].getsockname()[1]}"
    try:
        yield server
    finally:
        listener.close()


@pytest.mark.parametrize("reset", [False, True], ids=["closed", "reset"])
async def test_a_write_on_a_reused_connection_that_breaks_is_sent_once_and_outcome_unknown(reset: bool) -> None:
    async with (
        serving(ClosingServer(reset=reset)) as server,
        UserTaskClient(server.url, retry=RetryPolicy(max_retries=3)) as client,
    ):
        await client.get_user_tasks()  # the connection is pooled, then reused by the write
        with pytest.raises(OutcomeUnknownError) as caught:
            await client.finish_user_task("t1", {"approved": True})
        assert not caught.value.timed_out
        await client.get_user_tasks()
        with pytest.raises(OutcomeUnknownError):
            await client.cancel_reservation_user_task("t1")
    assert server.requests == ["GET", "PUT", "GET", "DELETE"]


async def test_a_read_that_breaks_is_retried_by_the_client_alone() -> None:
    class ClosingReads(ClosingServer):
        async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
                await reader.readuntil(b"\r\n\r\n")
                self.requests.append("GET")
                writer.close()

    async with (
        serving(ClosingReads()) as server,
        UserTaskClient(server.url, retry=RetryPolicy(max_retries=2, base_delay=0.001)) as client,
    ):
        with pytest.raises(EngineUnavailableError) as caught:
            await client.get_user_tasks()
        assert caught.value.request_sent
        assert client.request_count == 3
    assert server.requests == ["GET"] * 3  # not 6: aiohttp resends nothing of its own


def test_the_transport_turns_aiohttps_resend_off() -> None:
    from gateway.engine.client import DEFAULT_LIMITS, _default_transport

    async def check() -> None:
        transport = _default_transport(DEFAULT_LIMITS)
        session = transport.get_client()  # type: ignore[attr-defined]
        try:
            assert session._retry_connection is False
        finally:
            await session.close()

    asyncio.run(check())
    assert httpx  # the transport is httpx's
