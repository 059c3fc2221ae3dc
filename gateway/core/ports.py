"""What the service needs from an engine. The core owns this port; ``adapters.client_engine`` implements it.

The port speaks the domain: filters by the domain's values, sorts by :class:`~gateway.core.domain.SortField`. What
the engine calls them is the adapter's business.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Protocol

from .domain import Caller, SortDirection, SortField, UserTask


def _on(attribute: str) -> Any:
    """An engine-side condition on the task attribute ``attribute``: any of the values; none: no condition."""
    return field(default=(), metadata={"task_attribute": attribute})


@dataclass(frozen=True)
class EngineFilter:
    """The part of a task filter the engine applies itself (each tuple: any of; empty: no condition).

    The one list of engine-side filter fields: :class:`~gateway.core.domain.TaskFilter` has each under the same
    name, every other member of it is applied by the gateway (:mod:`gateway.core.filtering`).
    """

    states: tuple[str, ...] = _on("state")
    process_model_ids: tuple[str, ...] = _on("process_model_id")
    process_instance_ids: tuple[str, ...] = _on("process_instance_id")
    flow_node_ids: tuple[str, ...] = _on("flow_node_id")
    lanes: tuple[str, ...] = _on("lane")
    correlation_ids: tuple[str, ...] = _on("correlation_id")
    ids: tuple[str, ...] = _on("id")

    def admits(self, task: UserTask) -> bool:
        """Whether ``task`` passes this filter, as the engine decides it."""
        return all(
            not getattr(self, name) or getattr(task, attribute) in getattr(self, name)
            for name, attribute in ENGINE_FILTER_FIELDS.items()
        )


#: EngineFilter's fields -> the UserTask attribute each one tests.
ENGINE_FILTER_FIELDS: Mapping[str, str] = {item.name: item.metadata["task_attribute"] for item in fields(EngineFilter)}

#: The sort fields the engine orders by exactly as the gateway does (ties by task id), so a page can be its.
ENGINE_SORT_FIELDS = frozenset({SortField.STARTED_AT})


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
        order_by: SortField,
        direction: SortDirection,
    ) -> EnginePage:
        """A page of the tasks ``engine_filter`` admits, ordered by ``order_by`` (one of
        :data:`ENGINE_SORT_FIELDS`) in ``direction``; ``limit`` 0: every task from ``offset`` on."""
        ...

    async def tasks_by_ids(self, caller: Caller, ids: Sequence[str]) -> list[UserTask]: ...

    async def reserve(self, caller: Caller, task_id: str, owner_id: str) -> None: ...

    async def cancel_reservation(self, caller: Caller, task_id: str) -> None: ...

    async def finish(self, caller: Caller, task_id: str, result: Mapping[str, Any]) -> None: ...
