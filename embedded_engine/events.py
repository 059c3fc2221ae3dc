"""Engine notifications: an in-process event bus, long polling and Socket.IO, as the real engine offers them.

The engine core publishes an EventMessage (``correlationId, processDefinitionId, processModelId, processInstanceId,
ownerId, currentToken`` plus, for tasks, ``flowNodeId, flowNodeName, flowNodeLane, flowNodeType,
flowNodeInstanceId``; ``user_task_finished`` adds ``userTaskResult``) with :meth:`EventBus.publish`; this
module only transports it, to

- long polling: ``GET /notifications/long_polling/{event_name}`` (mounted under ``/atlas_engine/api/v1``)
  answers ``200`` with the next such event published after the request arrived. After ``max_wait_seconds``
  without one it answers ``204 No Content`` (our choice; the engine's OpenAPI file documents only the 200);
  clients simply ask again. A client that hangs up stops the wait at once.
- Socket.IO: namespace ``/api``, path ``/socket.io``, the token raw (``Bearer `` tolerated) in the
  ``Authorization`` header, as the official TypeScript client sends it (or, our addition for browsers that
  cannot set headers, as ``auth={"token": ...}``). Every event goes to each connected client that may see it,
  with the EventMessage as data, under the Socket.IO name the official client listens for
  (:data:`SOCKETIO_EVENT_NAMES`: the long-polling name, but ``OnProcessStarted``, ``OnProcessFinished``,
  ``OnProcessError``, ``OnProcessTerminated`` for ``process_started``, ``process_ended``, ``process_error``,
  ``process_terminated``).

Visibility: an event about a task in a lane reaches only identities that may see the lane
(:meth:`Identity.can_see_lane`); the lane is the ``lane`` argument of :meth:`EventBus.publish`, else the
message's ``flowNodeLane``. Process events normally carry no lane and reach everyone.

Back-pressure: :meth:`EventBus.publish` never blocks and never raises because of a consumer. Each subscriber
has a bounded queue; a subscriber that falls that far behind is dropped (its iteration ends,
:attr:`Subscription.dropped` is set) and a Socket.IO client in that state is disconnected; it may reconnect
and re-read what it needs (the official clients do). A long-polling waiter needs no queue: it takes exactly
one event.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import AsyncIterator, Awaitable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import socketio
from socketio.exceptions import ConnectionRefusedError as SocketIOConnectionRefusedError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from embedded_engine.authority import AuthError
from embedded_engine.errors import engine_error_response
from embedded_engine.identity import Identity, IdentityResolver

__all__ = [
    "EVENT_NAMES",
    "OTHER_EVENTS",
    "PROCESS_EVENTS",
    "SOCKETIO_EVENT_NAMES",
    "SOCKETIO_NAMESPACE",
    "SOCKETIO_PATH",
    "USER_TASK_EVENTS",
    "EventBus",
    "Subscription",
    "create_socketio_server",
    "long_polling_routes",
]

logger = logging.getLogger(__name__)

USER_TASK_EVENTS = (
    "user_task_waiting",
    "user_task_finished",
    "user_task_reserved",
    "user_task_reservation_canceled",
)
PROCESS_EVENTS = ("process_started", "process_ended", "process_terminated", "process_error")
# Events other parts of the engine publish (external tasks, manual and untyped tasks, messages, signals, catch
# and boundary events), under the long-polling names of the engine's OpenAPI document.
OTHER_EVENTS = (
    "external_task_created",
    "external_task_locked",
    "external_task_unlocked",
    "external_task_expired",
    "manual_task_waiting",
    "manual_task_finished",
    "untyped_task_waiting",
    "untyped_task_finished",
    "empty_activity_waiting",
    "empty_activity_finished",
    "activity_canceled",
    "activity_reached",
    "activity_finished",
    "start_event_finished",
    "end_event_finished",
    "process_deployed",
    "message_triggered",
    "signal_triggered",
    "intermediate_catch_event_reached",
    "intermediate_catch_event_finished",
    "boundary_event_waiting",
    "boundary_event_triggered",
)
EVENT_NAMES: frozenset[str] = frozenset(USER_TASK_EVENTS + PROCESS_EVENTS + OTHER_EVENTS)

# The bus, its publishers and long polling use the long-polling names (``/notifications/long_polling/<name>``);
# Socket.IO emits under the names the official TypeScript client listens for (its ``socketSettings.paths``,
# @5minds/processcube_engine_client 6.1.4, Types/SocketSettings.js): the same for every event here but the
# process events, which it calls ``OnProcess*``.
SOCKETIO_EVENT_NAMES: Mapping[str, str] = {
    **{name: name for name in EVENT_NAMES},
    "process_started": "OnProcessStarted",
    "process_ended": "OnProcessFinished",
    "process_error": "OnProcessError",
    "process_terminated": "OnProcessTerminated",
}

SOCKETIO_NAMESPACE = "/api"
SOCKETIO_PATH = "socket.io"

_DEFAULT_MAX_QUEUE = 1000


def _check_event_name(event_name: str) -> None:
    if event_name not in EVENT_NAMES:
        raise ValueError(f"unknown event {event_name!r}; known: {', '.join(sorted(EVENT_NAMES))}")


class Subscription:
    """One consumer's view of the bus: an async iterator of ``(event_name, message)`` that it may see.

    The iteration ends when the subscription is unsubscribed, the bus is closed, or the consumer fell more
    than ``max_queue`` events behind (then :attr:`dropped` is true). Messages are shared between consumers:
    read them, do not change them.
    """

    def __init__(self, identity: Identity, event_names: frozenset[str], max_queue: int) -> None:
        self.identity = identity
        self.event_names = event_names
        self.dropped = False
        self.closed = False
        self._queue: asyncio.Queue[tuple[str, dict[str, Any]] | None] = asyncio.Queue(max_queue + 1)
        self._max_queue = max_queue

    def _offer(self, event_name: str, message: dict[str, Any]) -> bool:
        """Queue an event; False when the consumer is too far behind (the caller drops it)."""
        if self._queue.qsize() >= self._max_queue:
            return False
        self._queue.put_nowait((event_name, message))
        return True

    def _close(self, *, dropped: bool = False) -> None:
        if self.closed:
            return
        self.closed = True
        self.dropped = dropped
        if dropped:  # what is queued is of no use to a consumer that will have to resync anyway
            while not self._queue.empty():
                self._queue.get_nowait()
        self._queue.put_nowait(None)  # room is reserved for this sentinel: the queue holds max_queue + 1

    async def get(self) -> tuple[str, dict[str, Any]] | None:
        """The next event, or None once the subscription has ended."""
        if self.closed and self._queue.empty():
            return None
        item = await self._queue.get()
        if item is None:
            self._queue.put_nowait(None)  # keep ending for later callers
        return item

    def __aiter__(self) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        while (item := await self.get()) is not None:
            yield item


@dataclass(eq=False)
class _Waiter:
    identity: Identity
    future: asyncio.Future[dict[str, Any] | None]  # None: the bus was closed


class EventBus:
    """Fans engine events out to subscribers (Socket.IO) and long-polling waiters, lane-aware.

    Not thread-safe: publish from the event loop's thread (the store runs there).
    """

    def __init__(self, *, max_queue: int = _DEFAULT_MAX_QUEUE) -> None:
        if max_queue < 1:
            raise ValueError("max_queue must be at least 1")
        self._max_queue = max_queue
        self._subscriptions: set[Subscription] = set()
        self._waiters: dict[str, set[_Waiter]] = {}
        self._closed = False

    @property
    def subscriber_count(self) -> int:
        return len(self._subscriptions)

    @property
    def waiter_count(self) -> int:
        """Long-polling requests currently waiting (useful to check that none leak)."""
        return sum(len(waiters) for waiters in self._waiters.values())

    def publish(self, event_name: str, message: dict[str, Any], *, lane: str | None = None) -> None:
        """Deliver ``message`` to every waiter and subscriber of ``event_name`` that may see ``lane``.

        ``lane`` defaults to the message's ``flowNodeLane``. Never blocks; a subscriber whose queue is full is
        dropped. Raises ``ValueError`` only for an unknown event name (a programming error).
        """
        _check_event_name(event_name)
        if self._closed:
            return
        if lane is None:
            flow_node_lane = message.get("flowNodeLane")
            lane = flow_node_lane if isinstance(flow_node_lane, str) else None
        message = copy.deepcopy(message)  # the publisher may change its dict afterwards; consumers may not

        waiters = self._waiters.get(event_name)
        if waiters:
            for waiter in [w for w in waiters if w.identity.can_see_lane(lane)]:
                waiters.discard(waiter)
                if not waiter.future.done():
                    waiter.future.set_result(message)
            if not waiters:
                del self._waiters[event_name]

        for subscription in list(self._subscriptions):
            if event_name not in subscription.event_names or not subscription.identity.can_see_lane(lane):
                continue
            if not subscription._offer(event_name, message):
                logger.warning(
                    "dropping the event subscriber of %r: more than %d events behind",
                    subscription.identity.user_id,
                    self._max_queue,
                )
                self._subscriptions.discard(subscription)
                subscription._close(dropped=True)

    async def next_event(
        self,
        event_name: str,
        identity: Identity,
        *,
        timeout: float,  # noqa: ASYNC109 - a deadline is what long polling is about
    ) -> dict[str, Any] | None:
        """The next ``event_name`` event published after the call that ``identity`` may see, or None."""
        _check_event_name(event_name)
        if self._closed:
            return None
        future: asyncio.Future[dict[str, Any] | None] = asyncio.get_running_loop().create_future()
        waiter = _Waiter(identity, future)
        self._waiters.setdefault(event_name, set()).add(waiter)
        try:
            async with asyncio.timeout(timeout):
                return await waiter.future
        except TimeoutError:
            # An event that arrived just as the timeout fired is still this caller's.
            if waiter.future.done() and not waiter.future.cancelled():
                return waiter.future.result()
            return None
        finally:
            waiters = self._waiters.get(event_name)
            if waiters is not None:
                waiters.discard(waiter)
                if not waiters:
                    del self._waiters[event_name]

    def subscribe(
        self,
        identity: Identity,
        *,
        event_names: Iterable[str] | None = None,
        max_queue: int | None = None,
    ) -> Subscription:
        """A new subscription to ``event_names`` (default: all events), filtered by ``identity``'s lanes."""
        names = EVENT_NAMES if event_names is None else frozenset(event_names)
        for name in names:
            _check_event_name(name)
        subscription = Subscription(identity, names, max_queue or self._max_queue)
        if self._closed:
            subscription._close()
        else:
            self._subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        """End a subscription (idempotent); its iteration stops after what is already queued."""
        self._subscriptions.discard(subscription)
        subscription._close()

    def close(self) -> None:
        """End every subscription and answer every waiter with None; later publishes are ignored."""
        self._closed = True
        for subscription in list(self._subscriptions):
            self.unsubscribe(subscription)
        for waiters in self._waiters.values():
            for waiter in waiters:
                if not waiter.future.done():
                    waiter.future.set_result(None)
        self._waiters.clear()


# ------------------------------------------------------------------------------------------------------------
# Long polling


def long_polling_routes(
    bus: EventBus, resolver: IdentityResolver, *, max_wait_seconds: float = 55.0
) -> list[BaseRoute]:
    """``GET /notifications/long_polling/{event_name}``, to be mounted under ``/atlas_engine/api/v1``.

    401 (engine error shape) without a valid token, 404 for an unknown event name, 200 with the EventMessage
    when the next visible event happens, 204 after ``max_wait_seconds`` without one (our choice).
    """
    if max_wait_seconds <= 0:
        raise ValueError("max_wait_seconds must be positive")

    async def long_poll(request: Request) -> Response:
        try:
            identity = resolver.resolve(request.headers.get("authorization"))
        except AuthError as exc:
            return engine_error_response(401, str(exc), headers={"WWW-Authenticate": "Bearer"})
        event_name = request.path_params["event_name"]
        if event_name not in EVENT_NAMES:
            return engine_error_response(404, f"there is no notification named {event_name!r}")
        message = await _unless_disconnected(request, bus.next_event(event_name, identity, timeout=max_wait_seconds))
        if message is None:
            return Response(status_code=204)
        return JSONResponse(message)

    return [Route("/notifications/long_polling/{event_name}", long_poll, methods=["GET"])]


async def _unless_disconnected(request: Request, waiting: Awaitable[dict[str, Any] | None]) -> dict[str, Any] | None:
    """Await ``waiting``, but give up (None) once the client hangs up: no waiter outlives its request."""
    wait_task = asyncio.ensure_future(waiting)
    watch_task = asyncio.ensure_future(_client_disconnected(request))
    try:
        await asyncio.wait({wait_task, watch_task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        wait_task.cancel()
        watch_task.cancel()
        await asyncio.gather(wait_task, watch_task, return_exceptions=True)
    if wait_task.done() and not wait_task.cancelled():
        return wait_task.result()
    return None


async def _client_disconnected(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


# ------------------------------------------------------------------------------------------------------------
# Socket.IO


def create_socketio_server(
    bus: EventBus,
    resolver: IdentityResolver,
    *,
    namespace: str = SOCKETIO_NAMESPACE,
    **server_options: Any,
) -> socketio.AsyncServer:
    """A Socket.IO server (ASGI mode) that pushes bus events to authenticated clients in ``namespace``.

    Wrap the app with ``socketio.ASGIApp(sio, other_asgi_app=app, socketio_path="socket.io")``.
    ``server_options`` go to ``socketio.AsyncServer`` (e.g. ``cors_allowed_origins``). A connection without a
    valid token is refused; each client gets its own bounded subscription, cleaned up on disconnect.
    """
    sio = socketio.AsyncServer(async_mode="asgi", **server_options)
    forwarders: dict[str, tuple[Subscription, asyncio.Task[None]]] = {}

    async def forward(sid: str, subscription: Subscription) -> None:
        try:
            async for event_name, message in subscription:
                await sio.emit(SOCKETIO_EVENT_NAMES[event_name], message, to=sid, namespace=namespace)
            if subscription.dropped:
                logger.warning("disconnecting Socket.IO client %s: it fell too far behind", sid)
                await sio.disconnect(sid, namespace=namespace)
        except Exception:
            logger.exception("forwarding events to Socket.IO client %s failed; disconnecting it", sid)
            bus.unsubscribe(subscription)
            await sio.disconnect(sid, namespace=namespace)

    async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        header = environ.get("HTTP_AUTHORIZATION")
        if header is None and isinstance(auth, dict):
            header = auth.get("token") or auth.get("Authorization")
        try:
            identity = resolver.resolve(header if isinstance(header, str) else None)
        except AuthError as exc:
            raise SocketIOConnectionRefusedError(f"unauthorized: {exc}") from exc
        subscription = bus.subscribe(identity)
        task = asyncio.create_task(forward(sid, subscription), name=f"socketio-forward-{sid}")
        forwarders[sid] = (subscription, task)

    async def disconnect(sid: str, reason: Any = None) -> None:
        entry = forwarders.pop(sid, None)
        if entry is None:
            return
        subscription, task = entry
        bus.unsubscribe(subscription)
        if task is not asyncio.current_task():
            task.cancel()

    sio.on("connect", connect, namespace=namespace)
    sio.on("disconnect", disconnect, namespace=namespace)
    return sio
