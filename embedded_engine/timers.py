"""The engine's alarm clock: wakes the engine when the earliest pending BPMN timer is due.

Timers live in the store (``instance_waits``, due times in ISO 8601 UTC), not in memory, so a restart keeps them:
on startup the engine calls :meth:`TimerClock.wake_at` with the earliest due time it has stored, and a timer that
fell due while the engine was down fires at once. The clock holds one asyncio timer for the earliest due time
only; when it rings, the engine fires every due timer and tells the clock the next due time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

__all__ = ["TimerClock"]

log = logging.getLogger("embedded_engine")

# SpiffWorkflow fires a timer strictly after its due time: ring a little late rather than early.
_LATE = 0.01


class TimerClock:
    """Calls ``ring()`` once the earliest time it was told about has come; one ring at a time."""

    def __init__(self, ring: Callable[[], Awaitable[str | None]]) -> None:
        self._ring = ring
        self._handle: asyncio.TimerHandle | None = None
        self._due: datetime | None = None
        self._running: asyncio.Task[None] | None = None
        self._closed = False

    def wake_at(self, due_at: str | None) -> None:
        """Make sure the clock rings by ``due_at`` (ISO 8601); an earlier pending ring stays."""
        if due_at is None or self._closed:
            return
        try:
            due = datetime.fromisoformat(due_at.replace("Z", "+00:00"))
        except ValueError:
            log.warning("ignoring a timer with an unreadable due time %r", due_at)
            return
        if self._due is not None and self._due <= due and (self._handle is not None or self._running is not None):
            return
        self._due = due
        if self._running is not None:
            return  # the ring in progress asks for the next due time when it ends
        self._arm()

    def _arm(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._due is None or self._closed:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (a script seeding the store): the engine's startup picks the timer up
        delay = max(0.0, (self._due - datetime.now(UTC)).total_seconds()) + _LATE
        self._handle = loop.call_later(delay, self._start_ring)

    def _start_ring(self) -> None:
        self._handle = None
        self._due = None
        self._running = asyncio.get_running_loop().create_task(self._ring_once())

    async def _ring_once(self) -> None:
        next_due: str | None = None
        try:
            next_due = await self._ring()
        except Exception:  # a failing instance must not stop the clock for all others
            log.exception("firing due timers failed")
        finally:
            self._running = None
        if next_due is not None:
            self.wake_at(next_due)
        elif self._due is not None:
            self._arm()

    async def close(self) -> None:
        """Stop ringing; waits for a ring in progress to end."""
        self._closed = True
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._running is not None:
            await asyncio.gather(self._running, return_exceptions=True)
