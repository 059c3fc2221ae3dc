"""Reading a task's token by a dotted path, and the comparisons token predicates and sorts need."""

from __future__ import annotations

from typing import Any

MISSING: Any = object()


def token_value(token: Any, path: str) -> Any:
    """``customer.type`` -> token["customer"]["type"]; list items by index (``items.0``); MISSING if absent."""
    current = token
    for part in path.split("."):
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
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
