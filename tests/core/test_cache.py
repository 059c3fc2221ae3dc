"""The read cache: single flight and generations, bounded by count and by estimated bytes."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from gateway.core.cache import ReadCache, approximate_size


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def load_all(cache: ReadCache, items: dict[Any, Any]) -> None:
    async def run() -> None:
        for key, value in items.items():

            async def load(value: Any = value) -> Any:
                return value

            await cache.get_or_load(key, load)

    asyncio.run(run())


def test_the_byte_budget_bounds_the_cache_whatever_the_count() -> None:
    cache = ReadCache(ttl_seconds=60, max_entries=10_000, max_bytes=1_000_000)
    load_all(cache, {index: str(index).zfill(5) * 10_000 for index in range(100)})  # 100 distinct 50 KB values
    assert cache.estimated_bytes <= 1_000_000
    assert 10 <= len(cache) <= 20


def test_the_count_still_bounds_small_entries() -> None:
    cache = ReadCache(ttl_seconds=60, max_entries=10, max_bytes=10_000_000)
    load_all(cache, {index: index for index in range(100)})
    assert len(cache) == 10


def test_a_value_over_half_the_budget_is_answered_but_not_kept() -> None:
    cache = ReadCache(ttl_seconds=60, max_entries=100, max_bytes=1_000_000)
    loads = 0

    async def load() -> list[str]:
        nonlocal loads
        loads += 1
        return ["y" * 1000] * 600  # 600 distinct references to one string: counted once, plus the list

    async def twice() -> None:
        assert len(await cache.get_or_load("small", load)) == 600
        await cache.get_or_load("small", load)

    asyncio.run(twice())
    assert loads == 1  # ~6 KB: kept

    async def big() -> str:
        nonlocal loads
        loads += 1
        return "z" * 600_000

    async def big_twice() -> None:
        assert len(await cache.get_or_load("big", big)) == 600_000
        await cache.get_or_load("big", big)

    asyncio.run(big_twice())
    assert loads == 3  # loaded twice: over half the budget, never kept
    assert len(cache) == 1


def test_entries_expire_and_a_write_forgets_everything() -> None:
    clock = Clock()
    cache = ReadCache(ttl_seconds=2, max_entries=100, clock=clock)
    load_all(cache, {"a": 1, "b": 2})
    assert len(cache) == 2
    clock.now = 3
    load_all(cache, {"c": 3})
    assert len(cache) == 1
    cache.invalidate()
    assert len(cache) == 0
    assert cache.estimated_bytes == 0


@dataclass(frozen=True)
class Task:
    id: str
    token: Any


def test_approximate_size_walks_containers_and_dataclasses_and_stops_at_the_limit() -> None:
    small = approximate_size(Task("t", {"a": [1, 2, 3]}), 1_000_000)
    large = approximate_size(Task("t", {"a": ["x" * 100_000]}), 1_000_000)
    assert 100 < small < 2_000
    assert 100_000 < large < 102_000
    deep: Any = []
    for _ in range(100_000):  # far deeper than the recursion limit: the walk is iterative
        deep = [deep]
    assert approximate_size(deep, 10_000_000) > 100_000 * 56
    assert approximate_size(["x" * 1000] * 1 + [str(i) * 1000 for i in range(1000)], 10_000) > 10_000
