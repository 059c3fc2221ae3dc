"""What the service needs from an engine. The core owns this port; ``engine_adapter`` implements it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .domain import Caller, UserTask


@dataclass(frozen=True)
class EngineFilter:
    """The part of a task filter the engine applies itself (each tuple: any of; empty: no condition)."""

    states: tuple[str, ...] = ()
    process_model_ids: tuple[str, ...] = ()
    process_instance_ids: tuple[str, ...] = ()
    flow_node_ids: tuple[str, ...] = ()
    lanes: tuple[str, ...] = ()
    correlation_ids: tuple[str, ...] = ()
    ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class EnginePage:
    tasks: tuple[UserTask, ...]
    total_count: int


class Engine(Protocol):
    """User tasks of one engine, seen through the caller's own identity (lanes apply)."""

    async def query_tasks(
        self,
        caller: Caller,
        engine_filter: EngineFilter,
        *,
        offset: int,
        limit: int,
        sort_by: str | None,
        descending: bool,
    ) -> EnginePage: ...

    async def tasks_by_ids(self, caller: Caller, ids: Sequence[str]) -> list[UserTask]: ...

    async def reserve(self, caller: Caller, task_id: str, owner_id: str) -> None: ...

    async def cancel_reservation(self, caller: Caller, task_id: str) -> None: ...

    async def finish(self, caller: Caller, task_id: str, result: Mapping[str, Any]) -> None: ...

    @property
    def call_count(self) -> int:
        """Engine calls made so far (what the benchmarks count)."""
        ...
