"""The engine's notifications as the core's changes: one ``UserTaskClient.user_task_events()`` stream.

The stream runs with the gateway's own identity (the client's credentials); what each subscriber may see is
checked later with the subscriber's token (:mod:`gateway.core.live`). Socket.IO first, long polling when the
engine offers no Socket.IO, reconnecting with backoff (the client's doing); every (re)connect is passed on as
:class:`~gateway.core.changes.StreamConnected`, so the hub can tell subscribers of a gap.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from ..core.changes import ChangeKind, EngineChange, StreamConnected, StreamDisconnected
from ..engine import UserTaskClient, UserTaskEvent
from ..engine.wire import USER_TASK_FLOW_NODE_TYPE

#: The engine's event names -> what happened to the task.
KINDS = {
    "user_task_waiting": ChangeKind.WAITING,
    "user_task_reserved": ChangeKind.RESERVED,
    "user_task_reservation_canceled": ChangeKind.RESERVATION_CANCELLED,
    "user_task_finished": ChangeKind.FINISHED,
    # A process that is terminated or fails ends its waiting tasks without a user task event.
    "process_terminated": ChangeKind.TERMINATED,
    "process_error": ChangeKind.TERMINATED,
    # An interrupting boundary event (a timer, a message) cancels a waiting user task without a user task event.
    "activity_canceled": ChangeKind.TERMINATED,
}
_TASK_EVENTS = frozenset(name for name in KINDS if name.startswith("user_task_")) | {"activity_canceled"}


def change_from_event(event: UserTaskEvent) -> EngineChange | None:
    """One engine notification -> the change it stands for (None: nothing a task list shows changed)."""
    kind = KINDS.get(event.name)
    if kind is None:
        return None
    if event.name == "activity_canceled" and event.raw.get("flowNodeType") != USER_TASK_FLOW_NODE_TYPE:
        return None  # another kind of activity: no task list shows it
    is_task_event = event.name in _TASK_EVENTS
    if is_task_event and not event.flow_node_instance_id:
        return None
    return EngineChange(
        kind=kind,
        task_id=event.flow_node_instance_id if is_task_event else None,
        process_instance_id=event.process_instance_id,
        process_model_id=event.process_model_id,
        flow_node_id=event.flow_node_id if is_task_event else None,
        lane=event.flow_node_lane if is_task_event else None,
        correlation_id=event.correlation_id,
    )


async def engine_changes(
    client: UserTaskClient,
) -> AsyncIterator[EngineChange | StreamConnected | StreamDisconnected]:
    """Every change the engine announces, a :class:`StreamConnected` at each (re)connect and a
    :class:`StreamDisconnected` at each drop, until cancelled.

    Errors a reconnect cannot fix (refused credentials) end the stream with the client's exception.
    """
    items: asyncio.Queue[EngineChange | StreamConnected | StreamDisconnected] = asyncio.Queue()
    stream = client.user_task_events(
        events=tuple(KINDS),
        on_connect=lambda transport: items.put_nowait(StreamConnected(transport)),
        on_disconnect=lambda: items.put_nowait(StreamDisconnected()),
    )

    async def pump() -> None:
        async for event in stream:
            change = change_from_event(event)
            if change is not None:
                items.put_nowait(change)

    pumping = asyncio.get_running_loop().create_task(pump())
    try:
        while True:
            getting = asyncio.ensure_future(items.get())
            done, _ = await asyncio.wait({getting, pumping}, return_when=asyncio.FIRST_COMPLETED)
            if getting in done:
                yield getting.result()
                continue
            getting.cancel()
            while not items.empty():
                yield items.get_nowait()
            pumping.result()  # the stream ended: raise its error, if any
            return
    finally:
        pumping.cancel()
        await asyncio.gather(pumping, return_exceptions=True)
        await stream.aclose()
