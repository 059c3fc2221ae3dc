"""The engine's user task notifications as an async iterator.

Socket.IO first (namespace `/api`, path `/socket.io`, the raw token in an `Authorization` header: what the
official TypeScript client does; process events under their Socket.IO names, `OnProcessFinished`...), long
polling (`GET /notifications/long_polling/{event}`) as the fallback when the engine answers but offers no
Socket.IO (an engine that is down is asked again, not given up on). A dropped connection is re-established with
backoff; failures that a reconnect cannot fix (refused credentials, an engine without notifications) end the
iteration with the error. Events that happen while disconnected are lost; `on_connect` tells the consumer of every
(re)connect and `on_disconnect` of every drop, in order with the events.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import Any, Literal

import aiohttp

from .errors import (
    AuthenticationError,
    ConfigurationError,
    EngineError,
    EngineServerError,
    EngineTimeoutError,
    ProcessCubeException,
)
from .retry import RetryPolicy
from .wire import SOCKETIO_EVENT_NAMES, UserTaskEvent, event_from_wire

__all__ = ["EventMode", "UserTaskEventStream"]

logger = logging.getLogger("gateway.engine.events")

EventMode = Literal["auto", "socketio", "long_polling"]

_STOP = object()


class _Connected:
    """Queued at each (re)connect, in order with the events: the consumer's ``on_connect`` hook is called with it."""

    def __init__(self, transport: str) -> None:
        self.transport = transport


class _Disconnected:
    """Queued when a Socket.IO connection drops: the consumer's ``on_disconnect`` hook is called with it."""


def _not_offered(exc: Exception) -> bool:
    """The engine answered, but not as a Socket.IO server (an HTTP error status at ``/socket.io``).

    An engine that is down (refused, timed out) is no reason to fall back: it is asked again with backoff.
    """
    message = str(exc)
    status = re.search(r"status code (\d+)", message)
    if status is not None:
        return status.group(1) in ("400", "404", "405", "501")
    return "Unexpected response from server" in message or "OPEN packet not returned" in message


def _fatal(exc: ProcessCubeException) -> bool:
    """Errors that reconnecting cannot fix."""
    if isinstance(exc, AuthenticationError | ConfigurationError):
        return True
    return isinstance(exc, EngineError) and not isinstance(exc, EngineServerError)


class UserTaskEventStream:
    """Async iterator of `UserTaskEvent`s. Use `async for`, and `aclose()` (or `async with`) to stop."""

    def __init__(
        self,
        *,
        events: Sequence[str],
        mode: EventMode,
        engine_url: str,
        get_token: Callable[[], Awaitable[str]],
        long_poll: Callable[[str, float], Awaitable[object | None]],
        long_poll_timeout: float,
        backoff: RetryPolicy,
        on_close: Callable[[UserTaskEventStream], None],
        on_connect: Callable[[str], None] | None = None,
        on_disconnect: Callable[[], None] | None = None,
    ) -> None:
        self._events = tuple(events)
        self._mode = mode
        self._engine_url = engine_url
        self._get_token = get_token
        self._long_poll = long_poll
        self._long_poll_timeout = long_poll_timeout
        self._backoff = backoff
        self._on_close = on_close
        self._on_connect = on_connect
        self._on_disconnect = on_disconnect
        self._queue: asyncio.Queue[UserTaskEvent | BaseException | object] = asyncio.Queue()
        self._runner: asyncio.Task[None] | None = None
        self._closed = False
        #: "socketio" or "long_polling" once connected: which transport is in use.
        self.transport: str | None = None
        #: How many times the stream (re)connected; 1 after the first connect.
        self.connects = 0

    # -- consumer side -------------------------------------------------------------------------------

    def __aiter__(self) -> UserTaskEventStream:
        return self

    async def __anext__(self) -> UserTaskEvent:
        if self._closed and self._queue.empty():
            raise StopAsyncIteration
        if self._runner is None:
            self._runner = asyncio.get_running_loop().create_task(self._run())
        item = await self._queue.get()
        while isinstance(item, _Connected | _Disconnected):
            if isinstance(item, _Connected) and self._on_connect is not None:
                self._on_connect(item.transport)
            elif isinstance(item, _Disconnected) and self._on_disconnect is not None:
                self._on_disconnect()
            item = await self._queue.get()
        if item is _STOP:
            self._queue.put_nowait(_STOP)
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            self._queue.put_nowait(_STOP)
            await self.aclose()
            raise item
        assert isinstance(item, UserTaskEvent)
        return item

    async def __aenter__(self) -> UserTaskEventStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop listening: disconnects and ends any `async for` over this stream."""
        if self._closed:
            return
        self._closed = True
        self._on_close(self)
        runner, self._runner = self._runner, None
        if runner is not None and not runner.done():
            runner.cancel()
            try:
                await runner
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise
        self._queue.put_nowait(_STOP)

    # -- producer side -------------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            if self._mode in ("auto", "socketio"):
                fallback = await self._run_socketio()
                if not fallback:
                    return
                logger.info("engine offers no Socket.IO, falling back to long polling")
            await self._run_long_polling()
        except ProcessCubeException as exc:
            self._queue.put_nowait(exc)

    async def _run_socketio(self) -> bool:
        """Returns True when Socket.IO is not offered and long polling should take over."""
        # One aiohttp session for every (re)connect, owned here: python-socketio closes its own sessions
        # only on some paths, and a cancelled connect would leak one.
        session = aiohttp.ClientSession()
        try:
            return await self._socketio_loop(session)
        finally:
            await session.close()

    async def _socketio_loop(self, session: aiohttp.ClientSession) -> bool:
        import socketio

        attempt = 0
        while True:
            sio = socketio.AsyncClient(reconnection=False, handle_sigint=False, http_session=session)
            dropped = asyncio.Event()
            for name in self._events:
                # the engine emits process events under other names on Socket.IO (OnProcessFinished...)
                sio.on(SOCKETIO_EVENT_NAMES.get(name, name), self._socketio_handler(name), namespace="/api")

            async def on_disconnect(*_: Any, _dropped: asyncio.Event = dropped) -> None:
                _dropped.set()

            sio.on("disconnect", on_disconnect, namespace="/api")
            try:
                token = await self._get_token()
                await sio.connect(
                    self._engine_url,
                    headers={"Authorization": token},
                    namespaces=["/api"],
                    socketio_path="socket.io",
                    wait_timeout=10,
                )
            except socketio.exceptions.ConnectionError as exc:
                await self._disconnect(sio)
                if self._mode == "auto" and self.connects == 0 and attempt >= 1 and _not_offered(exc):
                    return True
                logger.warning("Socket.IO connect to %s failed: %s", self._engine_url, exc)
                await self._backoff.wait(min(attempt, 6))
                attempt += 1
                continue
            except ProcessCubeException as exc:
                await self._disconnect(sio)
                if _fatal(exc):
                    raise
                await self._backoff.wait(min(attempt, 6))
                attempt += 1
                continue
            except BaseException:
                await self._disconnect(sio)
                raise
            self.transport = "socketio"
            self.connects += 1
            self._queue.put_nowait(_Connected("socketio"))
            attempt = 0
            try:
                await dropped.wait()
            finally:
                self._queue.put_nowait(_Disconnected())
                await self._disconnect(sio)
            logger.info("Socket.IO connection to %s dropped, reconnecting", self._engine_url)
            await self._backoff.wait(0)

    @staticmethod
    async def _disconnect(sio: Any) -> None:
        try:
            await asyncio.shield(sio.disconnect())
        except Exception:  # pragma: no cover - best effort on an already broken connection
            logger.debug("Socket.IO disconnect failed", exc_info=True)

    def _socketio_handler(self, name: str) -> Callable[..., Awaitable[None]]:
        async def handler(*args: Any) -> None:
            self._put(name, args[0] if args else None)

        return handler

    def _put(self, name: str, body: object) -> None:
        try:
            self._queue.put_nowait(event_from_wire(name, body))
        except ProcessCubeException:
            logger.warning("ignoring an invalid %s event: %r", name, body)

    async def _run_long_polling(self) -> None:
        self.transport = "long_polling"
        self.connects += 1
        self._queue.put_nowait(_Connected("long_polling"))
        try:
            async with asyncio.TaskGroup() as group:
                for name in self._events:
                    group.create_task(self._poll(name))
        except BaseExceptionGroup as group_error:
            matched, _ = group_error.split(ProcessCubeException)
            if matched is None:
                raise
            first: BaseException = matched
            while isinstance(first, BaseExceptionGroup):
                first = first.exceptions[0]
            raise first from None

    async def _poll(self, name: str) -> None:
        attempt = 0
        while True:
            try:
                body = await self._long_poll(name, self._long_poll_timeout)
            except EngineTimeoutError:
                continue  # nothing happened within our own wait: ask again
            except ProcessCubeException as exc:
                if _fatal(exc):
                    raise
                logger.warning("long polling %s failed, retrying: %s", name, exc)
                await self._backoff.wait(min(attempt, 6))
                attempt += 1
                continue
            attempt = 0
            if body is not None:
                self._put(name, body)
