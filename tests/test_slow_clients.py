"""Slow clients against a real ``python -m gateway``, over real sockets (see :mod:`gateway.slow_clients`).

A connection whose request does not arrive in time is closed; many such connections do not keep others out; the
connection limit answers 503. Deadlines in these tests are generous bounds on waiting, not timing assertions.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
from typing import Any

import aiohttp
import httpx
import pytest

from tests.conftest import GatewayFactory
from tests.servers import GatewayServer, poll

WAIT = 30.0  # a bound on waiting for the gateway to close a connection (the deadline under test is 1 s)


@pytest.fixture(scope="module")
def gateway(start_gateway: GatewayFactory) -> GatewayServer:
    """A gateway whose requests must arrive within 1 s."""
    return start_gateway(GATEWAY_HEADER_TIMEOUT_SECONDS=1)


def connect(gateway: GatewayServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", gateway.port), timeout=WAIT)


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the gateway sends until it closes the connection (fails after WAIT seconds)."""
    received = b""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(4096)
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk
    raise AssertionError(f"the connection was still open after {WAIT} s; received {received!r}")


def read_response(sock: socket.socket) -> bytes:
    """One whole response with a Content-Length (its head and body may arrive in separate reads)."""
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(4096)
        assert chunk, received
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?im)^content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
    while len(body) < length:
        chunk = sock.recv(4096)
        assert chunk, received
        body += chunk
    return head + b"\r\n\r\n" + body


def test_half_a_request_line_is_closed_with_408(gateway: GatewayServer) -> None:
    with connect(gateway) as sock:
        sock.sendall(b"GET /heal")
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 408"), answer


def test_a_connection_that_sends_nothing_is_closed(gateway: GatewayServer) -> None:
    with connect(gateway) as sock:
        assert read_until_closed(sock).startswith(b"HTTP/1.1 408")


def test_headers_dripping_in_do_not_extend_their_deadline(gateway: GatewayServer) -> None:
    with connect(gateway) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        closed = False
        for _ in range(int(WAIT / 0.2)):  # one header byte every 0.2 s: each byte arrives well within 1 s
            try:
                sock.sendall(b"X")
            except OSError:
                closed = True
                break
            time.sleep(0.2)
        if not closed:
            read_until_closed(sock)


def test_a_pause_in_the_body_closes_the_connection(gateway: GatewayServer) -> None:
    with connect(gateway) as sock:
        sock.sendall(
            b'POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"q'
        )
        read_until_closed(sock)


def test_a_kept_alive_connection_serves_a_later_request(gateway: GatewayServer) -> None:
    with connect(gateway) as sock:
        request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        sock.sendall(request)
        first = read_response(sock)
        assert first.startswith(b"HTTP/1.1 200"), first
        time.sleep(0.5)  # idle, within uvicorn's keep-alive timeout
        sock.sendall(request)
        second = read_response(sock)
        assert second.startswith(b"HTTP/1.1 200"), second


def test_a_websocket_outlives_the_header_deadline(gateway: GatewayServer) -> None:
    async def run() -> dict[str, Any]:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(gateway.url + "/graphql", protocols=["graphql-transport-ws"]) as ws,
        ):
            await ws.send_json({"type": "connection_init"})
            assert (await ws.receive_json(timeout=WAIT))["type"] == "connection_ack"
            await asyncio.sleep(2.5)  # longer than the 1 s deadline: the upgrade ended it
            await ws.send_json({"type": "subscribe", "id": "1", "payload": {"query": "{ __typename }"}})
            message: dict[str, Any] = await ws.receive_json(timeout=WAIT)
            return message

    message = asyncio.run(run())
    assert message["type"] == "next", message
    assert message["payload"]["data"] == {"__typename": "Query"}


def test_a_request_is_answered_while_many_slow_connections_are_open(start_gateway: GatewayFactory) -> None:
    gateway = start_gateway(GATEWAY_HEADER_TIMEOUT_SECONDS=120)  # the slow ones stay open for the whole test
    slow = []
    try:
        for _ in range(60):
            sock = connect(gateway)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            slow.append(sock)
        assert httpx.get(gateway.url + "/healthz", timeout=WAIT).status_code == 200
        response = httpx.post(gateway.graphql_url, json={"query": "{ userTasks { totalCount } }"}, timeout=WAIT)
        assert response.status_code == 200, response.text
        assert response.json()["data"]["userTasks"]["totalCount"] == 0
    finally:
        for sock in slow:
            sock.close()


def test_connections_over_the_limit_are_answered_503(start_gateway: GatewayFactory) -> None:
    gateway = start_gateway(GATEWAY_MAX_CONNECTIONS=5, GATEWAY_HEADER_TIMEOUT_SECONDS=120)
    held = [connect(gateway) for _ in range(5)]
    try:
        for sock in held:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        poll(lambda: httpx.get(gateway.url + "/healthz", timeout=WAIT).status_code == 503)
    finally:
        for sock in held:
            sock.close()
    poll(lambda: httpx.get(gateway.url + "/healthz", timeout=WAIT).status_code == 200)
