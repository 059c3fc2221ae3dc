"""The change hub: one engine event stream per gateway process, fanned out to every live subscription.

- **One stream.** :meth:`ChangeHub.run` consumes the engine adapter's changes (the gateway's own identity, one
  connection, whatever the number of subscribers). Each change gets its event id in the :class:`ChangeLog` and
  **invalidates the read cache** (which also holds GraphQL responses) before anyone hears of it, so every read
  after an event, in any gateway process in front of the engine, is fresh.
- **A gap is said, not hidden.** When the stream drops and comes back, every subscription receives a
  :class:`Gap` (and the cache is invalidated again): events in between may be lost, a UI refetches.
- **Bounded.** Subscriptions per caller and in all; each subscription's queue holds ``queue_size`` items. A
  subscriber that falls that far behind is ended with :class:`~gateway.core.errors.SlowConsumer`: publishing
  never waits for a consumer, so a slow one never holds up the others or the engine stream.
- **Endings are messages.** A subscription ends with the reason as its last item: ``SlowConsumer``,
  ``TokenExpired`` (at the caller's token ``exp``) or ``ShuttingDown`` (:meth:`ChangeHub.close`).

What a subscriber may *see* is not decided here: the hub carries ids; :mod:`gateway.core.live` looks each task up
with the subscriber's own token.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from . import errors
from .changes import ChangeLog, EngineChange, StreamConnected, StreamDisconnected, TaskChange
from .domain import Caller

log = logging.getLogger("gateway.hub")


@dataclass(frozen=True)
class Gap:
    """Told to every subscription when the engine stream was interrupted: changes may have been missed since
    ``after`` (the last event id before the interruption)."""

    after: str
    message: str


@dataclass(frozen=True)
class HubLimits:
    replay_buffer: int = 10_000
    queue_size: int = 256
    per_caller: int = 100
    total: int = 10_000


class Subscription:
    """One subscriber's bounded inbox. Items are whatever its feeder delivers (changes, gaps, list messages).

    A deque and one event (not an ``asyncio.Queue``): an idle subscription is a few hundred bytes of its own.
    """

    __slots__ = ("_ended", "_hub", "_items", "_size", "_wake", "caller", "raw")

    def __init__(self, hub: ChangeHub, caller: Caller, queue_size: int, *, raw: bool) -> None:
        self.caller = caller
        self.raw = raw  # receives every TaskChange and Gap from the hub itself
        self._hub = hub
        self._items: deque[object] = deque()
        self._size = queue_size
        self._ended: errors.SubscriptionEnded | None = None
        self._wake = asyncio.Event()

    @property
    def ended(self) -> errors.SubscriptionEnded | None:
        return self._ended

    def deliver(self, item: object) -> None:
        """Queue ``item`` without waiting; a full queue ends the subscription (the consumer is too slow)."""
        if self._ended is not None:
            return
        if len(self._items) >= self._size:
            self.end(
                errors.SlowConsumer(
                    f"This subscription fell {self._size} messages behind and was ended; subscribe again"
                    " (and read the list again) when ready."
                )
            )
            return
        self._items.append(item)
        self._wake.set()

    def end(self, reason: errors.SubscriptionEnded) -> None:
        """End with ``reason``: what is queued is dropped, the consumer's next :meth:`next_batch` raises it."""
        if self._ended is None:
            self._ended = reason
            self._items.clear()
            self._wake.set()
            self._hub.forget(self)

    async def next_batch(self) -> list[object]:
        """Wait for at least one item, then take everything queued (a burst becomes one batch).

        Raises the ending reason once the subscription has ended, and ``TokenExpired`` when the caller's token
        expires while waiting.
        """
        while True:
            if self._ended is not None:
                raise self._ended
            if self._items:
                batch = list(self._items)
                self._items.clear()
                return batch
            self._wake.clear()
            timeout = self._seconds_left()
            if timeout is not None and timeout <= 0:
                self.end(errors.TokenExpired("The token of this subscription expired; subscribe again with a new one."))
                continue
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                continue

    def _seconds_left(self) -> float | None:
        expires_at = self.caller.expires_at
        if expires_at is None:
            return None
        return (expires_at - datetime.now(UTC)).total_seconds()

    def close(self) -> None:
        """The consumer is done (client went away): free the slot."""
        if self._ended is None:
            self._ended = errors.SubscriptionEnded("closed by the subscriber")
        self._hub.forget(self)


class ChangeHub:
    def __init__(self, *, invalidate: Callable[[], None], limits: HubLimits = HubLimits()) -> None:
        self._invalidate = invalidate
        self.limits = limits
        self.log = ChangeLog(limits.replay_buffer)
        self._subscriptions: set[Subscription] = set()
        self._per_caller: dict[str, int] = {}
        self._listeners: list[Callable[[TaskChange | Gap], None]] = []
        self._closed: errors.ShuttingDown | None = None
        #: How often the engine stream connected.
        self.connects = 0
        #: Whether the engine event stream is connected now (readiness, the ``gateway_engine_stream_up`` gauge).
        self.connected = False
        self.events_received = 0
        #: When the last engine event arrived (``time.monotonic()``); None before the first one.
        self.last_event_at: float | None = None
        self.gaps = 0

    # -- subscribing -------------------------------------------------------------------------------------------

    def subscribe(self, caller: Caller, *, raw: bool = True) -> Subscription:
        """A new subscription for ``caller`` (raises ``TooManySubscriptions`` or ``ShuttingDown``).

        ``raw``: the hub delivers every change and gap to it; otherwise only its feeder does (a live list).
        """
        if self._closed is not None:
            raise self._closed
        if len(self._subscriptions) >= self.limits.total:
            raise errors.TooManySubscriptions(
                f"This gateway holds its maximum of {self.limits.total} live subscriptions; try again later."
            )
        held = self._per_caller.get(caller.user_id, 0)
        if held >= self.limits.per_caller:
            raise errors.TooManySubscriptions(
                f"'{caller.user_id}' already holds {held} live subscriptions, the most one caller may hold;"
                " end one first."
            )
        subscription = Subscription(self, caller, self.limits.queue_size, raw=raw)
        self._subscriptions.add(subscription)
        self._per_caller[caller.user_id] = held + 1
        return subscription

    def forget(self, subscription: Subscription) -> None:
        if subscription in self._subscriptions:
            self._subscriptions.discard(subscription)
            user_id = subscription.caller.user_id
            left = self._per_caller.get(user_id, 1) - 1
            if left > 0:
                self._per_caller[user_id] = left
            else:
                self._per_caller.pop(user_id, None)

    def listen(self, listener: Callable[[TaskChange | Gap], None]) -> Callable[[], None]:
        """Call ``listener`` with every change and gap (synchronously, after the cache is invalidated); returns
        the function that stops it. Live lists listen this way."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    @property
    def subscription_count(self) -> int:
        return len(self._subscriptions)

    # -- publishing --------------------------------------------------------------------------------------------

    def publish(self, change: EngineChange) -> TaskChange:
        entry = self.log.append(change)
        self.events_received += 1
        self.last_event_at = time.monotonic()
        self._invalidate()
        self._fan_out(entry)
        return entry

    def gap(self, message: str) -> Gap:
        notice = Gap(after=self.log.head, message=message)
        self.gaps += 1
        self._invalidate()
        self._fan_out(notice)
        return notice

    def _fan_out(self, item: TaskChange | Gap) -> None:
        for subscription in list(self._subscriptions):
            if subscription.raw:
                subscription.deliver(item)
        for listener in list(self._listeners):
            try:
                listener(item)
            except Exception:  # a listener's bug must not stop the stream for everyone else
                log.exception("a change listener failed")

    async def run(self, source: AsyncIterable[EngineChange | StreamConnected | StreamDisconnected]) -> None:
        """Consume the engine's changes until the source ends or this task is cancelled."""
        connects = 0
        try:
            async for item in source:
                if isinstance(item, StreamConnected):
                    connects += 1
                    self.connects += 1
                    self.connected = True
                    if connects > 1:
                        log.warning("engine event stream reconnected (%s): events may have been missed", item.transport)
                        self.gap("The engine's event stream was interrupted: changes may have been missed.")
                    continue
                if isinstance(item, StreamDisconnected):
                    self.connected = False
                    continue
                self.publish(item)
        finally:
            self.connected = False

    def close(self) -> None:
        """End every subscription with ``ShuttingDown`` and refuse new ones (the gateway is stopping)."""
        self._closed = errors.ShuttingDown("The gateway is shutting down; subscribe again (another instance).")
        for subscription in list(self._subscriptions):
            subscription.end(self._closed)
