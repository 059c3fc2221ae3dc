"""A fault proxy the tests own: an asyncio TCP proxy on loopback in front of the engine, switched at run time.

It speaks just enough HTTP/1.1 to see each request (method, path, body by Content-Length or chunked) and each
response (status line, headers, body by Content-Length, chunked or until close), so that a test can hit exactly
one request: "the next PUT to .../finish is reset after the engine got it", "every GET after that write gets a
truncated body". A WebSocket upgrade (the engine's Socket.IO) is tunnelled untouched.

    with FaultProxy(engine.port) as proxy:
        gateway = gateway_in_front_of(proxy.url, tmp).start()
        write = proxy.inject(Fault.reset(after=True), method="PUT", path=r"/finish$", times=1)
        ...
        assert write.hits == 1

Faults (:class:`Fault`): ``passthrough``, ``delay`` (before forwarding, or before answering), ``reset`` (RST with
``SO_LINGER`` 0, before forwarding or after the engine answered), ``drop`` (hold the connection, never answer;
before or after forwarding), ``status`` (answer a 5xx itself, nothing forwarded), ``garbage`` (bytes that are no
HTTP, then close), ``truncate`` (forward, then half the response body and close), ``stall`` (forward, then the
headers and half the body, then nothing). Rules are tried in order; the first active one that matches a request
decides, else :attr:`FaultProxy.default`. When the engine refuses the proxy's connection, the client's is reset
(what a load balancer with nothing behind it does) and counted in :attr:`FaultProxy.upstream_refused`.

The proxy runs its own event loop in a daemon thread; it stops with :meth:`FaultProxy.close` (``with``), at the
latest after ``lifetime`` seconds, and with the test process.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import struct
import threading
from collections import Counter
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal

FaultKind = Literal["pass", "delay", "reset", "drop", "status", "garbage", "truncate", "stall"]

GARBAGE = b"\x00\xffthis is not HTTP\r\n\x13\x37\r\n\r\n"


@dataclass(frozen=True)
class Fault:
    kind: FaultKind = "pass"
    #: True: after the request was forwarded and the engine answered (the engine applied a write); False: before.
    after: bool = False
    seconds: float = 0.0
    status: int = 503

    @classmethod
    def passthrough(cls) -> Fault:
        return cls("pass")

    @classmethod
    def delay(cls, seconds: float, *, after: bool = False) -> Fault:
        return cls("delay", after=after, seconds=seconds)

    @classmethod
    def reset(cls, *, after: bool = False) -> Fault:
        return cls("reset", after=after)

    @classmethod
    def drop(cls, *, after: bool = False) -> Fault:
        return cls("drop", after=after)

    @classmethod
    def answer(cls, status: int = 503) -> Fault:
        return cls("status", status=status)

    @classmethod
    def garbage(cls, *, after: bool = False) -> Fault:
        return cls("garbage", after=after)

    @classmethod
    def truncate(cls) -> Fault:
        return cls("truncate", after=True)

    @classmethod
    def stall(cls) -> Fault:
        return cls("stall", after=True)


@dataclass(eq=False)
class Rule:
    """The next ``times`` requests (None: every one) matching ``method`` and ``path`` (regexes, ``search``) get
    ``fault``, once ``armed_by`` (another rule) has matched at least once."""

    fault: Fault
    method: str = ".*"
    path: str = ".*"
    times: int | None = None
    armed_by: Rule | None = None
    hits: int = 0

    def active(self) -> bool:
        armed = self.armed_by is None or self.armed_by.hits > 0
        return armed and (self.times is None or self.hits < self.times)

    def matches(self, method: str, path: str) -> bool:
        return re.search(self.method, method) is not None and re.search(self.path, path) is not None


@dataclass
class _Message:
    head: bytes
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    close: bool = False


def _parse_headers(head: bytes) -> tuple[str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    return lines[0], headers


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str], *, until_close: bool) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        raw = b""
        while True:
            size_line = await reader.readuntil(b"\r\n")
            raw += size_line
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                raw += await reader.readuntil(b"\r\n")  # the last CRLF (no trailers from our servers)
                return raw
            raw += await reader.readexactly(size + 2)
    if "content-length" in headers:
        return await reader.readexactly(int(headers["content-length"]))
    return await reader.read() if until_close else b""


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST instead of FIN: SO_LINGER on, 0 seconds."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultProxy:
    def __init__(self, upstream_port: int, *, upstream_host: str = "127.0.0.1", lifetime: float = 600.0) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.lifetime = lifetime
        self.default = Fault.passthrough()
        self.port = 0
        #: connections accepted, requests seen by "METHOD path" (no query), requests forwarded, engine refusals
        self.connections = 0
        self.seen: Counter[str] = Counter()
        self.forwarded: Counter[str] = Counter()
        self.upstream_refused = 0
        #: faults applied to requests (rules other than pass-through that fired)
        self.injected = 0
        self._rules: list[Rule] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- what a test switches ------------------------------------------------------------------------------------

    def inject(
        self,
        fault: Fault,
        *,
        method: str = ".*",
        path: str = ".*",
        times: int | None = None,
        armed_by: Rule | None = None,
    ) -> Rule:
        rule = Rule(fault, method, path, times, armed_by)
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()
            self.default = Fault.passthrough()

    def count(self, method: str = ".*", path: str = ".*", *, forwarded: bool = False) -> int:
        """Requests seen (or forwarded to the engine) whose method and path (no query) match these regexes."""
        with self._lock:
            counts = dict(self.forwarded if forwarded else self.seen)
        return sum(
            number
            for key, number in counts.items()
            if re.search(method, key.split(" ", 1)[0]) and re.search(path, key.split(" ", 1)[1])
        )

    def _choose(self, method: str, path: str) -> Fault:
        with self._lock:
            self.seen[f"{method} {path}"] += 1
            for rule in self._rules:
                if rule.active() and rule.matches(method, path):
                    rule.hits += 1
                    self.injected += rule.fault.kind != "pass"
                    return rule.fault
            return self.default

    # -- life ----------------------------------------------------------------------------------------------------

    def start(self) -> FaultProxy:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._serve(ready))
            except BaseException as exc:  # handed to the starting thread
                failure.append(exc)
                ready.set()
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name=f"fault-proxy-{self.upstream[1]}", daemon=True)
        self._thread.start()
        if not ready.wait(10) or failure:
            raise RuntimeError(f"the fault proxy did not start: {failure}")
        return self

    async def _serve(self, ready: threading.Event) -> None:
        self._stopped = asyncio.Event()
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        ready.set()
        with contextlib.suppress(TimeoutError):  # at the latest after its lifetime
            await asyncio.wait_for(self._stopped.wait(), self.lifetime)
        server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        current = asyncio.current_task()
        handlers = [task for task in asyncio.all_tasks() if task is not current]
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()

    def close(self) -> None:
        loop, stopped = self._loop, self._stopped
        if loop is not None and stopped is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stopped.set)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- one client connection -----------------------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                request_line, headers = _parse_headers(head)
                method, target = [*request_line.split(" "), "", ""][:2]
                path = target.split("?", 1)[0]
                body = await _read_body(reader, headers, until_close=False)
                fault = self._choose(method, path)
                if "upgrade" in headers.get("connection", "").lower():
                    await self._tunnel(head + body, reader, writer)
                    return
                if not fault.after and fault.kind != "pass" and fault.kind != "delay":
                    await self._before(fault, reader, writer)
                    return
                if fault.kind == "delay" and not fault.after:
                    await asyncio.sleep(fault.seconds)
                if upstream is None:
                    try:
                        upstream = await asyncio.open_connection(*self.upstream)
                    except OSError:
                        self.upstream_refused += 1
                        _reset(writer)
                        return
                upstream[1].write(head + body)
                await upstream[1].drain()
                with self._lock:
                    self.forwarded[f"{method} {path}"] += 1
                response = await self._read_response(upstream[0], method)
                if response is None:  # the engine closed (it died): so does the proxy, with RST
                    _reset(writer)
                    return
                if not await self._after(fault, response, reader, writer):
                    return
                if response.close:
                    writer.close()
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            _reset(writer)
        finally:
            self._writers.discard(writer)
            if upstream is not None:
                upstream[1].transport.abort()
            if not writer.transport.is_closing():
                writer.close()

    async def _read_response(self, reader: asyncio.StreamReader, method: str) -> _Message | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            status_line, headers = _parse_headers(head)
            status = int(status_line.split(" ")[1])
            no_body = method == "HEAD" or status in (204, 304) or 100 <= status < 200
            body = b"" if no_body else await _read_body(reader, headers, until_close=True)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError, IndexError):
            return None
        close = headers.get("connection", "").lower() == "close" or (
            not no_body and "content-length" not in headers and "transfer-encoding" not in headers
        )
        return _Message(head, body, headers, close)

    async def _before(self, fault: Fault, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """A fault that keeps the request from the engine."""
        if fault.kind == "reset":
            _reset(writer)
        elif fault.kind == "drop":
            await self._hold(reader)
        elif fault.kind == "status":
            body = b'{"message":"the fault proxy answered this itself"}'
            writer.write(
                f"HTTP/1.1 {fault.status} Fault\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
            writer.close()
        elif fault.kind == "garbage":
            writer.write(GARBAGE)
            await writer.drain()
            writer.close()
        else:
            raise ValueError(f"{fault.kind} cannot happen before forwarding")

    async def _after(
        self, fault: Fault, response: _Message, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Answer the engine's response, or the fault instead; False: the connection is done."""
        if fault.kind in ("pass", "delay") or not fault.after:
            if fault.kind == "delay" and fault.after:
                await asyncio.sleep(fault.seconds)
            writer.write(response.head + response.body)
            await writer.drain()
            return True
        if fault.kind == "reset":
            _reset(writer)
        elif fault.kind == "drop":
            await self._hold(reader)
        elif fault.kind == "garbage":
            writer.write(GARBAGE)
            await writer.drain()
            writer.close()
        elif fault.kind in ("truncate", "stall"):
            writer.write(response.head + response.body[: len(response.body) // 2])
            await writer.drain()
            if fault.kind == "truncate":
                writer.close()
            else:
                await self._hold(reader)
        else:
            raise ValueError(f"{fault.kind} cannot happen after forwarding")
        return False

    async def _hold(self, reader: asyncio.StreamReader) -> None:
        """Keep the connection open, answering nothing, until the client goes (or the proxy stops)."""
        with contextlib.suppress(ConnectionError):
            while await reader.read(65536):
                pass

    async def _tunnel(self, first: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            self.upstream_refused += 1
            _reset(writer)
            return
        up_writer.write(first)

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        try:
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        finally:
            up_writer.transport.abort()
