"""The gateway's vocabulary: user tasks, filters, sorts, pages, callers. Plain frozen dataclasses, no I/O.

GraphQL and REST translate into and out of these types; the service works only with them.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# -- the rules both faces follow, each decided here once ----------------------------------------------------

TASK_STATES = ("running", "suspended", "finished", "terminated", "error", "canceled")

#: A task that waits for a person: the engine's ``suspended``.
WAITING = "suspended"

#: Without a state filter, a listing shows waiting tasks only.
DEFAULT_STATES = (WAITING,)

#: A state the engine reports that the gateway does not know is shown as this one.
UNKNOWN_STATE_SHOWN_AS = "running"

#: Without a page size, a listing shows this many tasks (``GATEWAY_DEFAULT_PAGE_SIZE`` overrides it).
DEFAULT_PAGE_SIZE = 20


def states_or_default(states: Iterable[str]) -> tuple[str, ...]:
    """The states a listing asked for; none asked: :data:`DEFAULT_STATES`."""
    return tuple(states) or DEFAULT_STATES


def shown_state(state: str) -> str:
    """A task's state as both faces show it: one of :data:`TASK_STATES`, else :data:`UNKNOWN_STATE_SHOWN_AS`."""
    return state if state in TASK_STATES else UNKNOWN_STATE_SHOWN_AS


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


@dataclass(frozen=True)
class Caller:
    """Who is asking. ``token`` is the raw bearer token forwarded to the engine (None: anonymous)."""

    user_id: str
    token: str | None = field(default=None, repr=False)
    #: When the token stops being valid (its ``exp``); None: never (anonymous). Live subscriptions end then.
    expires_at: datetime | None = field(default=None, compare=False)
    #: A digest of what the token grants (every claim but its times): two tokens with the same rights have the same
    #: one. Idempotency keys are bound to it, so a replay never serves a caller whose rights have changed.
    rights: str = field(default="", compare=False)
    #: Anonymous only: the operator let callers without a token act as the engine's anonymous root user
    #: (``GATEWAY_UNSAFE_ANONYMOUS_ROOT``). Without it an anonymous caller reaches no engine data.
    root: bool = field(default=False, compare=False)

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

    states: tuple[str, ...] = DEFAULT_STATES
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


#: Without a sort, a listing is ordered by start, oldest first (ties by task id).
DEFAULT_SORT = (TaskSort(SortField.STARTED_AT, SortDirection.ASC),)


@dataclass(frozen=True)
class TaskQuery:
    """A listing as a face asked for it: ``sort`` empty means :data:`DEFAULT_SORT`, ``first`` None the service's
    default page size (:data:`DEFAULT_PAGE_SIZE` unless configured otherwise)."""

    filter: TaskFilter = TaskFilter()
    sort: tuple[TaskSort, ...] = ()
    first: int | None = None
    after: str | None = None

    @property
    def sort_keys(self) -> tuple[TaskSort, ...]:
        """The sort this listing is ordered by."""
        return self.sort or DEFAULT_SORT


@dataclass(frozen=True)
class Edge:
    node: UserTask
    make_cursor: Callable[[], str] = field(repr=False, compare=False)

    @property
    def cursor(self) -> str:
        return self.make_cursor()


@dataclass(frozen=True)
class TaskListPage:
    """One page of a task listing: the tasks with their cursors, the number of all matches, whether more follow."""

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
