"""Live task lists over plain HTTP: server-sent events and the change feed (guide: docs/rest.md, "Live task lists").

``GET /api/v1/user-task-events`` streams ``text/event-stream`` with sse-starlette's :class:`EventSourceResponse`
(its heartbeat comments, client-disconnect detection and shutdown detection), fed by
:meth:`gateway.core.live.LiveService.task_events`:

- ``event: <waiting|reserved|reservationCancelled|finished|terminated>`` with ``id: <eventId>`` and
  ``data: {"eventId", "kind", "at", "task"}`` (the task as the list route renders it);
- ``event: gap`` with ``data: {"after", "message"}``: changes may have been missed, refetch the list;
- ``event: expired`` with a CHANGES_EXPIRED problem document, when ``Last-Event-ID``/``lastEventId`` lies beyond
  the replay buffer (or was issued by another gateway process): refetch, then resume; the stream ends;
- ``event: end`` with ``data: {"code", "message"}`` (TOKEN_EXPIRED, SLOW_CONSUMER, SHUTTING_DOWN): the
  subscription ended and the stream closes;
- ``: heartbeat`` comment lines every ``GATEWAY_SSE_HEARTBEAT_SECONDS`` (0: none).

What fails before the stream starts (parameters, identity, TOO_MANY_SUBSCRIPTIONS, SHUTTING_DOWN) is a problem
document like any route's: the subscription is made, and the replay position checked, *before* the 200 is sent.
CHANGES_EXPIRED is the exception, on purpose: a browser's EventSource reconnects with ``Last-Event-ID`` by itself
(after a gateway restart that id is always foreign), and it cannot read the body of an error answer; an
``expired`` event on a 200 reaches every client.

``GET /api/v1/user-tasks/changes`` is :meth:`gateway.core.live.LiveService.changes` as JSON.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from typing import TypeVar

import anyio
from sse_starlette.event import ServerSentEvent
from sse_starlette.sse import EventSourceResponse, SendTimeoutError
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ..core import errors
from ..core.hub import Gap
from ..core.live import LiveService, TaskEvent
from . import params, render
from .problems import InternalError, encode_json, problem_body
from .resource import Answer, Call, json_answer

log = logging.getLogger("gateway")

T = TypeVar("T")

EVENT_STREAM = "text/event-stream"
#: The change feed's page size without ``limit`` (at most ``GATEWAY_MAX_PAGE_SIZE``).
CHANGES_DEFAULT_LIMIT = 100
#: After the server starts to stop, how long a stream may take to send its ``end`` event before it is cut (less
#: than uvicorn's graceful shutdown timeout, 5 s in ``python -m gateway``).
SHUTDOWN_GRACE_SECONDS = 2.0
#: A client that takes no bytes for this long (its TCP window stays full) is cut off, so it frees its slot.
SEND_TIMEOUT_SECONDS = 60.0
#: Bounds the clean-up of a subscription (it is quick: closing it is synchronous).
CLEANUP_SECONDS = 5.0
SEPARATOR = "\n"
STREAM_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


def _live(call: Call) -> LiveService:
    live: LiveService = call.request.app.state.live
    return live


# -- the change feed ---------------------------------------------------------------------------------------------


async def user_task_changes(call: Call) -> Answer:
    max_limit = call.service.limits.max_page_size
    query = params.parse_changes_query(
        call.request.query_params, max_limit=max_limit, default_limit=min(CHANGES_DEFAULT_LIMIT, max_limit)
    )
    page = await _live(call).changes(call.caller, query.filter, query.since, query.limit)
    return json_answer(render.change_page(page))


# -- server-sent events ------------------------------------------------------------------------------------------


async def _next(items: AsyncIterator[T]) -> T:
    return await anext(items)


def _sse(payload: object, *, event: str, event_id: str | None = None) -> ServerSentEvent:
    return ServerSentEvent(encode_json(payload).decode(), event=event, id=event_id, sep=SEPARATOR)


def _message(item: TaskEvent | Gap) -> ServerSentEvent:
    if isinstance(item, Gap):
        return _sse(render.gap(item), event="gap")
    return _sse(render.task_event(item), event=render.EVENT_NAMES[item.kind], event_id=item.event_id)


def _end(error: errors.GatewayError) -> ServerSentEvent:
    return _sse({"code": error.code, "message": error.message}, event="end")


def _heartbeat() -> ServerSentEvent:
    return ServerSentEvent(comment="heartbeat", sep=SEPARATOR)


class _Reader:
    """The core's event generator and the task reading its next item. Reading happens in a task of its own so that
    the response can wait for the next item and for the server's shutdown at once, without cancelling the read."""

    def __init__(self, events: AsyncGenerator[TaskEvent | Gap, None]) -> None:
        self.events = events
        self.pending: asyncio.Task[TaskEvent | Gap] = asyncio.ensure_future(_next(events))
        self._closed = False

    def advance(self) -> None:
        self.pending = asyncio.ensure_future(_next(self.events))

    async def close(self) -> None:
        """Stop reading and close the generator, which frees the subscription's slot (idempotent). Shielded: the
        response's task group may be cancelled already (the client went away)."""
        if self._closed:
            return
        self._closed = True
        self.pending.cancel()
        with anyio.move_on_after(CLEANUP_SECONDS, shield=True):
            await asyncio.wait({self.pending})
            if not self.pending.cancelled():
                self.pending.exception()  # seen: an ending that raced the close is no "never retrieved" warning
            await self.events.aclose()  # the core generator's ``finally`` frees the subscription's slot


async def _stream(reader: _Reader, stopping: anyio.Event, request_id: str) -> AsyncIterator[ServerSentEvent]:
    """The subscription's items as server-sent events, until it ends, the client goes or the server stops.

    The next item is awaited alongside ``stopping`` (set by sse-starlette when the server begins to stop), so that
    a stream always ends with ``end``/SHUTTING_DOWN, whichever of the two notices the shutdown first (the hub
    closing every subscription, or sse-starlette).
    """
    shutdown = asyncio.ensure_future(stopping.wait())
    try:
        while True:
            await asyncio.wait({reader.pending, shutdown}, return_when=asyncio.FIRST_COMPLETED)
            if not reader.pending.done():
                yield _end(errors.ShuttingDown("The gateway is shutting down; subscribe again (another instance)."))
                return
            try:
                item = reader.pending.result()
            except StopAsyncIteration:  # pragma: no cover - a subscription ends with a reason, not silently
                return
            except errors.ChangesExpired as exc:
                yield _sse(problem_body(exc, request_id), event="expired")
                return
            except errors.GatewayError as exc:  # a SubscriptionEnded; or a refusal the first read did not see
                yield _end(exc)
                return
            except Exception as exc:
                log.error("live events of request %s failed", request_id, exc_info=exc)
                yield _end(InternalError(f"Unexpected error; the gateway's log has the details under {request_id}."))
                return
            yield _message(item)
            reader.advance()
    finally:
        shutdown.cancel()
        await reader.close()


class EventStream(EventSourceResponse):
    """sse-starlette's response; the subscription is closed however the response ends (also when its stream never
    started), and a client that stopped reading (``send_timeout``) ends its stream quietly."""

    def __init__(self, reader: _Reader, request_id: str, *, heartbeat_seconds: float) -> None:
        stopping = anyio.Event()
        super().__init__(
            _stream(reader, stopping, request_id),
            ping=heartbeat_seconds,
            ping_message_factory=_heartbeat,
            sep=SEPARATOR,
            send_timeout=SEND_TIMEOUT_SECONDS,
            shutdown_event=stopping,
            shutdown_grace_period=SHUTDOWN_GRACE_SECONDS,
        )
        self._reader = reader

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except SendTimeoutError:
            log.info("a live event stream was cut: its client took nothing for %s s", SEND_TIMEOUT_SECONDS)
        finally:
            await self._reader.close()


async def user_task_events(call: Call) -> Response:
    request = call.request
    query = params.parse_events_query(request.query_params, request.headers)
    if request.method == "HEAD":  # the headers a GET answers; no subscription
        return Response(status_code=200, media_type=EVENT_STREAM, headers=STREAM_HEADERS)
    reader = _Reader(_live(call).task_events(call.caller, query.filter, query.last_event_id))
    # The first step of the subscription runs now: it subscribes and checks the replay position synchronously,
    # before its first wait. So a refusal is known before the 200 is sent, and answered as a problem.
    await asyncio.sleep(0)
    first = reader.pending
    if first.done() and not first.cancelled():
        refusal = first.exception()
        if refusal is not None and not isinstance(refusal, errors.ChangesExpired):
            await reader.close()
            raise refusal
    heartbeat: float = request.app.state.settings.sse_heartbeat_seconds
    return EventStream(reader, call.request_id, heartbeat_seconds=heartbeat)
