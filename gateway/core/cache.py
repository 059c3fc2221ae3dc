"""Read cache: a TTL store (cachetools) with single-flight loading.

- Keys always include who is asking (``Caller.cache_key``): one user's view never leaks to another.
- Single flight: concurrent loads of the same key share one engine call.
- A write bumps the generation (:meth:`ReadCache.invalidate`); keys carry the generation they were loaded in,
  so nothing loaded before a write is served after it, and a caller always reads its own writes. Loads that are
  in flight during a write finish for their waiters but are not reused by later readers.
- Bounded by count (``max_entries``) *and* by estimated bytes (``max_bytes``: keys and values are measured by
  :func:`approximate_size`). Keys and values come from callers' input (filters, GraphQL variables, engine
  answers), so a count alone does not bound memory. A value estimated at over half the budget is returned but
  not kept.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, NamedTuple, TypeVar

from cachetools import TTLCache

T = TypeVar("T")

DEFAULT_MAX_BYTES = 64 * 1024 * 1024

#: Leaves of a value: counted by sys.getsizeof, nothing inside them to walk.
_LEAVES = (str, bytes, bytearray, int, float, complex, bool, type(None))


def approximate_size(root: object, limit: int) -> int:
    """Bytes of ``root`` and what it holds: dicts, lists, tuples, sets and dataclass fields are walked.

    Other objects (functions, enums, datetimes) count shallowly. Objects reached twice count once. The walk is
    iterative (no recursion on deep values) and stops as soon as the total passes ``limit``, so its cost is
    bounded by the limit, not by the value; the answer is then some number over ``limit``.
    """
    total = 0
    seen: set[int] = set()
    stack: list[object] = [root]
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        total += sys.getsizeof(item, 64)
        if total > limit:
            return total
        if isinstance(item, _LEAVES):
            continue
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            stack.extend(item)
        elif dataclasses.is_dataclass(item) and not isinstance(item, type):
            stack.extend(getattr(item, field.name) for field in dataclasses.fields(item))
    return total


class _Entry(NamedTuple):
    value: Any
    weight: int


class ReadCache:
    def __init__(
        self,
        *,
        ttl_seconds: float,
        max_entries: int,
        max_bytes: int = DEFAULT_MAX_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl_seconds
        # One budget in bytes; each entry weighs at least max_bytes / max_entries, so the count holds too.
        self._unit = max(1, max_bytes // max(1, max_entries))
        self._max_entry_bytes = max_bytes // 2
        self._store: TTLCache[Hashable, _Entry] | None = (
            TTLCache(maxsize=max_bytes, ttl=ttl_seconds, timer=clock, getsizeof=lambda entry: entry.weight)
            if ttl_seconds > 0
            else None
        )
        self._in_flight: dict[Hashable, asyncio.Future[Any]] = {}
        self._generation = 0
        self.hits = 0
        self.loads = 0

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
            entry = self._store.get(full_key)
            if entry is not None:
                self.hits += 1
                value: T = entry.value
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
                self._keep(full_key, value)
            return value
        finally:
            if self._in_flight.get(full_key) is future:
                del self._in_flight[full_key]

    def _keep(self, full_key: Hashable, value: Any) -> None:
        """Store a loaded value with its estimated weight, unless it alone would take over half the budget."""
        assert self._store is not None
        size = approximate_size((full_key, value), self._max_entry_bytes)
        if size <= self._max_entry_bytes:
            self._store[full_key] = _Entry(value, max(self._unit, size))

    @property
    def estimated_bytes(self) -> int:
        """What the stored entries weigh (estimated; entries under the per-entry minimum count as that minimum)."""
        return 0 if self._store is None else int(self._store.currsize)

    def __len__(self) -> int:
        return 0 if self._store is None else len(self._store)
