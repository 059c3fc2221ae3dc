"""Reading a task's token by a dotted path, and the comparisons token predicates and sorts need."""

from __future__ import annotations

import functools
from typing import Any

from .limits import list_index

#: The one "absent" sentinel (not JSON null): no value at a token path, no request body.
MISSING: Any = object()


@functools.lru_cache(maxsize=1024)
def path_parts(path: str) -> tuple[str, ...]:
    """A dotted path split once, not once per task: a filter or sort reads one path from thousands of tokens."""
    return tuple(path.split("."))


def token_value(token: Any, path: str) -> Any:
    """``customer.type`` -> token["customer"]["type"]; list items by index (``items.0``); MISSING if absent.

    A part indexes a list only when it is ASCII digits (:func:`gateway.core.limits.list_index`): ``items.²`` is a key
    that no list has, not a crash on ``int('²')``.
    """
    current = token
    for part in path_parts(path):
        if isinstance(current, dict):
            if part not in current:
                return MISSING
            current = current[part]
        elif isinstance(current, list):
            index = list_index(part)
            if index is None or index >= len(current):
                return MISSING
            current = current[index]
        else:
            return MISSING
    return current


def _rank(value: Any) -> int:
    """JSON values of different kinds order as: numbers, strings, booleans, objects/lists, null, missing."""
    if value is MISSING:
        return 5
    if value is None:
        return 4
    if isinstance(value, bool):
        return 2
    if isinstance(value, int | float):
        return 0
    if isinstance(value, str):
        return 1
    return 3


def sort_key(value: Any) -> tuple[int, Any]:
    """A total order over JSON values, so that mixed tokens sort without errors; missing values go last."""
    rank = _rank(value)
    if rank in (0, 1, 2):
        return rank, value
    if rank == 3:
        return rank, repr(value)
    return rank, 0


def compare(left: Any, right: Any) -> int | None:
    """-1/0/1 for comparable values (numbers with numbers, strings with strings), None otherwise."""
    if isinstance(left, bool) or isinstance(right, bool):
        return None if not (isinstance(left, bool) and isinstance(right, bool)) else (left > right) - (left < right)
    if isinstance(left, int | float) and isinstance(right, int | float):
        return (left > right) - (left < right)
    if isinstance(left, str) and isinstance(right, str):
        return (left > right) - (left < right)
    return None
