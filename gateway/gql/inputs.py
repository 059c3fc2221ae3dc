"""GraphQL inputs, and their translation into the domain's filter, sort and query.

The limits on what they may hold are the core's (:mod:`gateway.core.limits`), applied by the service to the domain
objects made here, so GraphQL refuses what REST refuses, with the same code and problem fields. The counts are
checked here already, before a list of 20,000 predicates is converted item by item.
"""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.scalars import JSON

from ..core import domain, limits
from .types import UserTaskState

# The domain's enums are the GraphQL enums: one list of operators, sort fields and directions.
TokenOperator = strawberry.enum(
    domain.TokenOp, name="TokenOperator", description="How a token predicate compares the value at `path` with `value`."
)
UserTaskSortField = strawberry.enum(domain.SortField, name="UserTaskSortField")
SortDirection = strawberry.enum(domain.SortDirection, name="SortDirection")


@strawberry.input(description='A condition on the task\'s token, e.g. {path: "amount", op: GT, value: 1000}.')
class TokenPredicate:
    path: str = strawberry.field(description='Dotted path into the token: "amount", "customer.type".')
    op: domain.TokenOp
    value: JSON | None = strawberry.field(
        default=None, description="IN takes a list; EXISTS takes true/false (default true)."
    )


@strawberry.input(description="Every list means 'any of'. Without `state`, only waiting (suspended) tasks.")
class UserTaskFilter:
    id: list[strawberry.ID] | None = None
    state: list[UserTaskState] | None = None
    process_model_id: list[str] | None = None
    process_instance_id: list[strawberry.ID] | None = None
    flow_node_id: list[str] | None = None
    lane: list[str] | None = None
    correlation_id: list[str] | None = None
    reserved_for: str | None = None
    reserved: bool | None = None
    started_after: datetime | None = None
    started_before: datetime | None = None
    search: str | None = strawberry.field(default=None, description="Text in the task's name (case-insensitive).")
    token: list[TokenPredicate] | None = None


@strawberry.input(description="One sort key; several keys sort by the first, then the next…")
class UserTaskSort:
    field: domain.SortField
    token_path: str | None = strawberry.field(default=None, description="With field TOKEN: the dotted path.")
    direction: domain.SortDirection = domain.SortDirection.ASC


@strawberry.input
class FinishUserTaskInput:
    id: strawberry.ID
    result: JSON


def _strings(values: list[strawberry.ID] | list[str] | None) -> tuple[str, ...]:
    return tuple(str(value) for value in values or ())


def to_filter(value: UserTaskFilter | None, *, any_state: bool = False) -> domain.TaskFilter:
    """The domain's filter. ``state`` not given: waiting tasks only (listings), or with ``any_state`` no condition on
    the state (``userTaskEvents``: a subscriber wants to hear that a task was finished, too)."""
    if value is None:
        return domain.TaskFilter(states=()) if any_state else domain.TaskFilter()
    lists = {
        "id": value.id,
        "state": value.state,
        "processModelId": value.process_model_id,
        "processInstanceId": value.process_instance_id,
        "flowNodeId": value.flow_node_id,
        "lane": value.lane,
        "correlationId": value.correlation_id,
        "token": value.token,
    }
    limits.check_counts((name, len(values)) for name, values in lists.items() if values)
    asked = tuple(state.value for state in value.state or ())
    states = asked if any_state else domain.states_or_default(asked)
    return domain.TaskFilter(
        states=states,
        ids=_strings(value.id),
        process_model_ids=_strings(value.process_model_id),
        process_instance_ids=_strings(value.process_instance_id),
        flow_node_ids=_strings(value.flow_node_id),
        lanes=_strings(value.lane),
        correlation_ids=_strings(value.correlation_id),
        reserved_for=value.reserved_for,
        reserved=value.reserved,
        started_after=value.started_after,
        started_before=value.started_before,
        search=value.search or None,
        token=tuple(
            domain.TokenPredicate(path=predicate.path, op=predicate.op, value=predicate.value)
            for predicate in value.token or ()
        ),
    )


def to_sort(values: list[UserTaskSort] | None) -> tuple[domain.TaskSort, ...]:
    if not values:
        return ()  # the service's default order (domain.DEFAULT_SORT)
    limits.check_counts([("sort", len(values))])
    return tuple(
        domain.TaskSort(field=value.field, direction=value.direction, token_path=value.token_path) for value in values
    )
