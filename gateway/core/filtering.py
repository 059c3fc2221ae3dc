"""The part of a task filter the engine cannot apply, applied by the gateway: one predicate per task."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from datetime import datetime
from typing import Any

from .domain import TaskFilter, TokenOp, TokenPredicate, UserTask
from .limits import moment
from .ports import ENGINE_FILTER_FIELDS, EngineFilter
from .tokens import MISSING, compare, token_value

#: The members of TaskFilter the gateway applies: every one the engine does not (:data:`ENGINE_FILTER_FIELDS`).
RESIDUAL_FIELDS = tuple(item.name for item in fields(TaskFilter) if item.name not in ENGINE_FILTER_FIELDS)


def engine_part(task_filter: TaskFilter) -> EngineFilter:
    """What the engine filters on itself (:class:`~gateway.core.ports.EngineFilter`'s fields)."""
    return EngineFilter(**{name: getattr(task_filter, name) for name in ENGINE_FILTER_FIELDS})


def is_residual(task_filter: TaskFilter) -> bool:
    """Whether any part must be applied by the gateway, because the engine cannot filter on it."""
    return any(getattr(task_filter, name) not in (None, (), "") for name in RESIDUAL_FIELDS)


def _scalar_key(value: Any) -> tuple[str, Any] | None:
    """A hashable key under which equal JSON scalars meet (1 and 1.0 do; 1 and true do not), or None."""
    if value is None:
        return ("null", None)
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return ("number", value)
    if isinstance(value, str):
        return ("text", value)
    return None


def _membership(expected: Any) -> Callable[[Any], bool]:
    """``IN``: a set lookup for scalar items, so a long list costs once per query, not once per task and item."""
    if not isinstance(expected, list):
        return lambda actual: False
    keys = {key for key in map(_scalar_key, expected) if key is not None}
    others = [item for item in expected if _scalar_key(item) is None]

    def member(actual: Any) -> bool:
        key = _scalar_key(actual)
        if key is not None:
            return key in keys
        return any(actual == item and type(actual) is type(item) for item in others)

    return member


def _token_test(predicate: TokenPredicate) -> Callable[[Any], bool]:
    op, expected = predicate.op, predicate.value
    member = _membership(expected) if op is TokenOp.IN else None

    def test(token: Any) -> bool:
        actual = token_value(token, predicate.path)
        if op is TokenOp.EXISTS:
            wanted = True if expected is None else bool(expected)
            return (actual is not MISSING) == wanted
        if actual is MISSING:
            return op is TokenOp.NE
        if op is TokenOp.EQ:
            return bool(actual == expected and type(actual) is type(expected)) or _numbers_equal(actual, expected)
        if op is TokenOp.NE:
            return not (actual == expected and (type(actual) is type(expected) or _numbers_equal(actual, expected)))
        if member is not None:
            return member(actual)
        if op is TokenOp.CONTAINS:
            if isinstance(actual, str) and isinstance(expected, str):
                return expected.casefold() in actual.casefold()
            if isinstance(actual, list):
                return expected in actual
            return False
        order = compare(actual, expected)
        if order is None:
            return False
        return {
            TokenOp.GT: order > 0,
            TokenOp.GTE: order >= 0,
            TokenOp.LT: order < 0,
            TokenOp.LTE: order <= 0,
        }[op]

    return test


def _numbers_equal(left: Any, right: Any) -> bool:
    numeric = (int, float)
    return (
        isinstance(left, numeric)
        and isinstance(right, numeric)
        and not isinstance(left, bool)
        and not isinstance(right, bool)
        and left == right
    )


def _aware(value: datetime | None) -> datetime | None:
    """A date without a time zone is read as UTC (the engine's timestamps are UTC), clamped to the representable."""
    return None if value is None else moment(value)


def residual_predicate(task_filter: TaskFilter) -> Callable[[UserTask], bool]:
    """One function that says whether a task passes the gateway-side part of the filter."""
    started_after, started_before = _aware(task_filter.started_after), _aware(task_filter.started_before)
    token_tests = [_token_test(predicate) for predicate in task_filter.token]
    search = task_filter.search.casefold() if task_filter.search else None

    def passes(task: UserTask) -> bool:
        if task_filter.reserved_for is not None and task.reserved_for != task_filter.reserved_for:
            return False
        if task_filter.reserved is not None and (task.reserved_for is not None) != task_filter.reserved:
            return False
        if started_after is not None and (task.started_at is None or task.started_at <= started_after):
            return False
        if started_before is not None and (task.started_at is None or task.started_at >= started_before):
            return False
        if search is not None and search not in task.name.casefold():
            return False
        return all(test(task.token) for test in token_tests)

    return passes
