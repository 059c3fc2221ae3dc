"""Read cache: a TTL store (cachetools) with single-flight loading.

- Keys always include who is asking (``Caller.cache_key``): one user's view never leaks to another.
- Single flight: concurrent loads of the same key share one engine call.
- A write bumps the generation (:meth:`ReadCache.invalidate`); keys carry the generation they were loaded in,
  so nothing loaded before a write is served after it, and a caller always reads its own writes. Loads that are
  in flight during a write finish for their waiters but are not reused by later readers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

from cachetools import TTLCache

T = TypeVar("T")


class ReadCache:
    def __init__(self, *, ttl_seconds: float, max_entries: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl_seconds
        self._store: TTLCache[Hashable, Any] | None = (
            TTLCache(maxsize=max_entries, ttl=ttl_seconds, timer=clock) if ttl_seconds > 0 else None
        )
        self._in_flight: dict[Hashable, asyncio.Future[Any]] = {}
        self._generation = 0
        self.hits = 0
        self.loads = 0

    @property
    def generation(self) -> int:
        return self._generation

    def invalidate(self) -> None:
        """Forget everything cached so far (called after every write the gateway makes or hears of)."""
        self._generation += 1
        if self._store is not None:
            self._store.clear()
        self._in_flight.clear()

    async def get_or_load(
        self, key: Hashable, load: Callable[[], Awaitable[T]], *, keep: Callable[[T], bool] | None = None
    ) -> T:
        """The cached value, or the one a single concurrent load produces (stored unless ``keep`` says no)."""
        full_key = (self._generation, key)
        if self._store is not None:
            try:
                value: T = self._store[full_key]
            except KeyError:
                pass
            else:
                self.hits += 1
                return value
        pending = self._in_flight.get(full_key)
        if pending is not None:
            self.hits += 1
            try:
                result: T = await asyncio.shield(pending)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if pending.cancelled() and task is not None and not task.cancelling():
                    # The request that was loading went away; this one still wants the answer.
                    return await self.get_or_load(key, load)
                raise
            return result
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._in_flight[full_key] = future
        self.loads += 1
        try:
            value = await load()
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # mark it retrieved: the waiters re-raise it, nobody else must
            raise
        except BaseException:
            future.cancel()
            raise
        else:
            future.set_result(value)
            if self._store is not None and full_key[0] == self._generation and (keep is None or keep(value)):
                self._store[full_key] = value
            return value
        finally:
            if self._in_flight.get(full_key) is future:
                del self._in_flight[full_key]
