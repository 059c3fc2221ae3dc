"""Slow clients: a deadline on reading each request's headers, and a bound on each pause in its body.

uvicorn bounds the idle time *between* requests (``timeout_keep_alive``), but nothing while a request arrives: the
keep-alive timer is cancelled by the first byte, and an ASGI middleware runs only once the headers are complete.
So a connection that sends half a request line and stalls (slowloris) was held for minutes, and enough of them
hold every connection the process may open. :class:`GuardedH11Protocol` is uvicorn's h11 protocol with a read
deadline, as other HTTP servers have it (hyper's ``header_read_timeout``, Go's ``ReadHeaderTimeout``):

- the headers of a request must be complete within ``header_timeout`` of the connection being opened (first
  request) or of the request's first byte (later requests on a kept-alive connection); otherwise the gateway
  answers ``408 Request Timeout`` and closes the connection;
- while a request's body arrives, no pause may last longer than ``header_timeout`` (a pause the gateway made, by
  not reading while the app catches up or while the client awaits ``100 Continue``, does not count); otherwise the
  connection is closed (the app sees the client disconnect);
- nothing is bounded once the request is read: long answers, event streams and WebSockets (whose upgrade hands
  the connection to another protocol) are unaffected.

The connection limit is uvicorn's own ``limit_concurrency`` (``GATEWAY_MAX_CONNECTIONS``): over it, requests are
answered 503.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

REQUEST_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 33\r\n"
    b"connection: close\r\n\r\nThe request took too long to send."
)


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline on each request's headers and on each pause in its body."""

    #: Seconds; set by :func:`guarded_protocol` on a subclass.
    header_timeout: float = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._deadline_cycle: object = None  # the request cycle that was current when the deadline was armed

    # -- the deadline ------------------------------------------------------------------------------------------

    def _arm(self) -> None:
        self._disarm()
        self._deadline_cycle = self.cycle
        self._deadline = self.loop.call_later(self.header_timeout, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _between_requests(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _reading_body(self) -> bool:
        return self.cycle is not None and self.conn.their_state is h11.SEND_BODY

    def _expired(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self._reading_body() and (self.flow.read_paused or self.cycle.waiting_for_100_continue):
            self._arm()  # the pause is ours, not the client's
            return
        if self._between_requests():
            self.transport.write(REQUEST_TIMEOUT_RESPONSE)
        self.logger.warning("Closed a connection whose request did not arrive within %s s.", self.header_timeout)
        self.transport.close()

    # -- uvicorn's protocol ------------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()  # the first request's headers are due within the timeout of the connection

    def data_received(self, data: bytes) -> None:
        if self._deadline is None and self._between_requests():
            self._arm()  # the first byte of a later request on a kept-alive connection
        cycle = self.cycle
        super().data_received(data)
        if self.transport.is_closing():
            self._disarm()
        elif self._reading_body():
            self._arm()  # headers complete, or more of the body: the next pause is bounded anew
        elif self.cycle is not cycle or self.cycle is not self._deadline_cycle:
            self._disarm()  # the request is read: its answer is the app's business
        # else: still waiting for these headers; their deadline stands (more bytes do not extend it)

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        self._disarm()  # the connection is the WebSocket protocol's from here
        super().handle_websocket_upgrade(event)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


def guarded_protocol(header_timeout: float) -> type[GuardedH11Protocol]:
    """The protocol class for ``uvicorn.Config(http=...)`` with this deadline."""
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {"header_timeout": header_timeout})
