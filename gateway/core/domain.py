"""The gateway's vocabulary: user tasks, filters, sorts, pages, callers. Plain frozen dataclasses, no I/O.

GraphQL and REST translate into and out of these types; the service works only with them.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

TASK_STATES = ("running", "suspended", "finished", "terminated", "error", "canceled")


@dataclass(frozen=True)
class EnumValue:
    id: str
    name: str


@dataclass(frozen=True)
class FormField:
    id: str
    label: str
    type: str
    default_value: str | None = None
    enum_values: tuple[EnumValue, ...] = ()


@dataclass(frozen=True)
class UserTask:
    """A user task as the gateway shows it: the engine's flow node instance, renamed for people."""

    id: str
    flow_node_id: str
    name: str
    lane: str | None
    state: str
    process_model_id: str
    process_instance_id: str
    correlation_id: str
    token: Any
    reserved_for: str | None
    form_fields: tuple[FormField, ...]
    started_at: datetime | None
    finished_at: datetime | None = None
    finished_by: str | None = None
    result: Any = None
    process_model_name: str | None = None
    description: str | None = None


@dataclass(frozen=True)
class Caller:
    """Who is asking. ``token`` is the raw bearer token forwarded to the engine (None: anonymous)."""

    user_id: str
    token: str | None = field(default=None, repr=False)
    anonymous: bool = False
    claims: tuple[tuple[str, Any], ...] = ()

    @property
    def cache_key(self) -> str:
        """One user's view never leaks to another: cached reads are keyed by the identity and its token."""
        return f"{self.user_id}:{hash(self.token)}"


class TokenOp(enum.Enum):
    EQ = "EQ"
    NE = "NE"
    GT = "GT"
    GTE = "GTE"
    LT = "LT"
    LTE = "LTE"
    IN = "IN"
    CONTAINS = "CONTAINS"
    EXISTS = "EXISTS"


@dataclass(frozen=True)
class TokenPredicate:
    """A condition on the task's token: ``path`` is dotted (``customer.type``), ``value`` any JSON."""

    path: str
    op: TokenOp
    value: Any = None


@dataclass(frozen=True)
class TaskFilter:
    """Every list is "any of"; an empty list means "no condition". States default to waiting tasks only."""

    states: tuple[str, ...] = ("suspended",)
    process_model_ids: tuple[str, ...] = ()
    process_instance_ids: tuple[str, ...] = ()
    flow_node_ids: tuple[str, ...] = ()
    lanes: tuple[str, ...] = ()
    correlation_ids: tuple[str, ...] = ()
    ids: tuple[str, ...] = ()
    reserved_for: str | None = None
    reserved: bool | None = None
    started_after: datetime | None = None
    started_before: datetime | None = None
    search: str | None = None
    token: tuple[TokenPredicate, ...] = ()

    @property
    def residual(self) -> bool:
        """Whether any part must be applied by the gateway, because the engine cannot filter on it."""
        return bool(
            self.reserved_for is not None
            or self.reserved is not None
            or self.started_after is not None
            or self.started_before is not None
            or self.search
            or self.token
        )


class SortField(enum.Enum):
    STARTED_AT = "STARTED_AT"
    NAME = "NAME"
    PROCESS_MODEL_ID = "PROCESS_MODEL_ID"
    LANE = "LANE"
    RESERVED_FOR = "RESERVED_FOR"
    TOKEN = "TOKEN"


class SortDirection(enum.Enum):
    ASC = "ASC"
    DESC = "DESC"


@dataclass(frozen=True)
class TaskSort:
    field: SortField
    direction: SortDirection = SortDirection.ASC
    token_path: str | None = None


DEFAULT_SORT = (TaskSort(SortField.STARTED_AT, SortDirection.ASC),)


@dataclass(frozen=True)
class TaskQuery:
    filter: TaskFilter = TaskFilter()
    sort: tuple[TaskSort, ...] = DEFAULT_SORT
    first: int = 20
    after: str | None = None


@dataclass(frozen=True)
class Edge:
    node: UserTask
    make_cursor: Callable[[], str] = field(repr=False, compare=False)

    @property
    def cursor(self) -> str:
        return self.make_cursor()


@dataclass(frozen=True)
class TaskPage:
    edges: tuple[Edge, ...]
    total_count: int
    has_next_page: bool

    @property
    def nodes(self) -> tuple[UserTask, ...]:
        return tuple(edge.node for edge in self.edges)

    @property
    def end_cursor(self) -> str | None:
        return self.edges[-1].cursor if self.edges else None


@dataclass(frozen=True)
class FieldProblem:
    """One reason why a task result does not fit the task's form."""

    field: str
    message: str


@dataclass(frozen=True)
class FinishOutcome:
    task: UserTask
    next_tasks: tuple[UserTask, ...]
    replayed: bool = False
