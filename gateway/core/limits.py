"""The gateway's input limits and the checks of its domain inputs, written once for both faces.

GraphQL and REST parse their own syntax into the domain's objects (:mod:`gateway.core.domain`); every rule about what
those objects may hold lives here, and :class:`~gateway.core.service.TaskService` applies it first thing, before any
work that grows with the input (evaluating predicates, sorting, calling the engine). So a GraphQL variable cannot
get past a limit that a REST query parameter meets, and no input reaches code that was not written for its size.
No HTTP, no GraphQL here.

The rules (a broken one is ``BAD_REQUEST``, 400, with one ``problems`` entry per named part):

=====================================  ====================================================================
input                                  rule
=====================================  ====================================================================
page size (``first`` / ``limit``)      0 to the configured maximum (``GATEWAY_MAX_PAGE_SIZE``)
every list of the filter               at most ``MAX_LIST_ITEMS`` values
ids (``id``, task actions)             ``TASK_ID_PATTERN``: 1 to 200 of ``A-Z a-z 0-9 . _ : -``
other filter strings, ``ownerId``      1 to ``MAX_STRING_LENGTH`` characters (``search`` may be empty)
the engine's part of the filter        at most ``MAX_ENGINE_FILTER_LENGTH`` characters URL-encoded in all
token predicates                       at most ``MAX_TOKEN_PREDICATES``; path syntax ``TOKEN_PATH``; path plus
                                       value at most ``MAX_TOKEN_PREDICATE_LENGTH`` (see :func:`json_weight`)
token paths                            segments without ``. , :``, spaces or control characters; a segment
                                       indexes a list only when it is ASCII digits (``items.0``, not ``items.²``)
sort keys                              at most ``MAX_SORT_KEYS``; ``TOKEN`` needs a token path
JSON values (token values, results)    nested at most ``MAX_JSON_DEPTH`` deep; finite numbers; text without lone
                                       surrogates; results at most ``MAX_RESULT_WEIGHT``
dates (``startedAfter/Before``)        an instant from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999Z (read
                                       as UTC without a time zone); ``9999-12-31T23:59:60Z`` is past it
batches                                at most the configured maximum (``GATEWAY_MAX_BATCH_SIZE``) items
=====================================  ====================================================================

A ``result`` that is not a JSON object is *not* a bad request: a result is the values of the task's form, and
whether it fits the form is :mod:`gateway.core.results`' rule (``INVALID_TASK_RESULT``, 422) in both faces.

Problems are named the same in both faces: filter members by their name (``token``, ``processModelId``, ``sort``),
the page size by the face's own name (``first`` in GraphQL, ``limit`` in REST), a task id argument ``id``, and the
parts of a write by JSON Pointer into its arguments (``/result``, ``/ownerId``, ``/ids/2``, ``/items/0/result``),
as a REST body names them.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from . import errors
from .domain import (
    TASK_STATES,
    FieldProblem,
    SortField,
    TaskFilter,
    TaskQuery,
    TaskSort,
    TokenPredicate,
)

# -- the numbers ---------------------------------------------------------------------------------------------

MAX_STRING_LENGTH = 256
MAX_LIST_ITEMS = 100
MAX_TOKEN_PREDICATES = 20
MAX_TOKEN_PREDICATE_LENGTH = 1000
MAX_TOKEN_PATH_LENGTH = MAX_TOKEN_PREDICATE_LENGTH
#: A REST sort key, ``-`` included, as the contract bounds it (JSON Schema cannot make the bound depend on the
#: optional ``-``): ``token.`` and a path of at most MAX_TOKEN_PATH_LENGTH, one less when descending.
MAX_SORT_KEY_LENGTH = len("token.") + MAX_TOKEN_PATH_LENGTH
MAX_SORT_KEYS = 10
MAX_JSON_DEPTH = 32
#: A whole request document (a REST body, GraphQL variables) may nest deeper than one value in it, by its envelope.
MAX_DOCUMENT_DEPTH = 2 * MAX_JSON_DEPTH
MAX_RESULT_WEIGHT = 1_000_000
#: The engine filters in one URL; this keeps it below the 8 KiB that HTTP servers commonly take.
MAX_ENGINE_FILTER_LENGTH = 6000
#: A list index in a token path: ASCII digits only (``'²'.isdigit()`` is True, ``int('²')`` fails), and few.
MAX_INDEX_DIGITS = 9

# -- the patterns (ECMA-262 and Python alike; the OpenAPI contract repeats them, and a test keeps them equal) --

TASK_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$"
TASK_ID_RULE = "1 to 200 letters, digits, '.', '_', ':' or '-', starting with a letter or digit"
TOKEN_PATH = r"[^.,:\x00-\x20]+(\.[^.,:\x00-\x20]+)*"
TOKEN_PATH_RULE = (
    "a dotted path like customer.type or items.0: parts without '.', ',', ':', spaces or control characters"
)

_TASK_ID = re.compile(TASK_ID_PATTERN)
_TOKEN_PATH = re.compile(TOKEN_PATH)
_INDEX = re.compile(rf"[0-9]{{1,{MAX_INDEX_DIGITS}}}")

EARLIEST = datetime.min.replace(tzinfo=UTC)
LATEST = datetime.max.replace(tzinfo=UTC)

# filter member -> the name both faces give it
_FILTER_LISTS = (
    ("ids", "id"),
    ("states", "state"),
    ("process_model_ids", "processModelId"),
    ("process_instance_ids", "processInstanceId"),
    ("flow_node_ids", "flowNodeId"),
    ("lanes", "lane"),
    ("correlation_ids", "correlationId"),
)


class InvalidInput(errors.BadRequest):
    """Input that breaks a rule, with one :class:`FieldProblem` per named part.

    ``extensions`` is what graphql-core copies into a GraphQL error raised from a resolver, so a GraphQL error
    carries the same ``problems`` as the REST problem document.
    """

    def __init__(self, problems: Sequence[FieldProblem]) -> None:
        super().__init__(" ".join(problem.message for problem in problems))
        self.problems = tuple(problems)

    @property
    def extensions(self) -> dict[str, Any]:
        return {"problems": [{"field": problem.field, "message": problem.message} for problem in self.problems]}


class Problems:
    """Collects the problems of one input, so that all of them are reported at once."""

    def __init__(self) -> None:
        self.items: list[FieldProblem] = []

    def add(self, field: str, message: str) -> None:
        self.items.append(FieldProblem(field=field, message=message))

    def raise_if_any(self) -> None:
        if self.items:
            raise InvalidInput(self.items)


def quoted(value: str, limit: int = 60) -> str:
    """A value for a message: JSON-quoted, cut at ``limit`` characters (a message never echoes 1 MB)."""
    return json.dumps(value if len(value) <= limit else value[:limit] + "…", ensure_ascii=False)


# -- single values -------------------------------------------------------------------------------------------


def is_task_id(value: object) -> bool:
    return isinstance(value, str) and len(value) <= 200 and _TASK_ID.search(value) is not None


def string_problem(value: object) -> str | None:
    """Why a name (a model id, a lane, a user id…) cannot be used, or None: 1 to ``MAX_STRING_LENGTH`` characters."""
    if not isinstance(value, str):
        return "must be a string"
    if not value:
        return "must not be empty"
    if len(value) > MAX_STRING_LENGTH:
        return f"must be at most {MAX_STRING_LENGTH} characters"
    if has_surrogate(value):
        return "contains a lone UTF-16 surrogate (\\ud800-\\udfff), which is not text"
    return None


def is_token_path(path: object) -> bool:
    return isinstance(path, str) and 0 < len(path) <= MAX_TOKEN_PATH_LENGTH and _TOKEN_PATH.fullmatch(path) is not None


def list_index(segment: str) -> int | None:
    """The list index a token path segment names: ASCII digits only (``0``, ``12``), else None."""
    return int(segment) if _INDEX.fullmatch(segment) else None


def has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def json_weight_problem(value: Any, *, max_depth: int, max_weight: int) -> tuple[str | None, int]:
    """Why a decoded JSON value cannot be used, or None; and its weight (see :func:`json_weight`).

    Iterative (a value nested 5,000 deep is an answer, not a RecursionError) and stops at the first problem, so its
    cost is bounded by ``max_weight`` whatever the value's size.
    """
    too_large = f"is larger than {max_weight} (one per value and one per character of text)"
    weight = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        weight += 1
        if depth > max_depth:
            return f"is nested deeper than {max_depth} levels", weight
        if item is None or isinstance(item, bool | int):
            pass
        elif isinstance(item, float):
            if not math.isfinite(item):
                return "holds a number that is not finite (NaN or Infinity are not JSON)", weight
        elif isinstance(item, str):
            weight += len(item)
            if has_surrogate(item):
                return "holds text with a lone UTF-16 surrogate (\\ud800-\\udfff), which is not text", weight
        elif isinstance(item, dict | list | tuple):
            if weight + len(item) > max_weight:  # each member weighs at least one: no need to look further
                return too_large, weight + len(item)
            if isinstance(item, dict):
                for key, child in item.items():
                    if not isinstance(key, str):
                        return "has an object key that is not text", weight
                    weight += len(key)
                    if has_surrogate(key):
                        return "has a key with a lone UTF-16 surrogate (\\ud800-\\udfff), which is not text", weight
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)
        else:
            return f"holds a {type(item).__name__}, which is not JSON", weight
        if weight > max_weight:
            return too_large, weight
    return None, weight


def json_weight(value: Any) -> int:
    """A JSON value's size as the gateway counts it: one per value (scalar, array, object) plus one per character
    of its strings and keys. Never more than the length of the JSON text it was read from, so REST's limit on a
    predicate's text implies the same limit here."""
    return json_weight_problem(value, max_depth=sys.maxsize, max_weight=sys.maxsize)[1]


def json_problem(value: Any, *, max_depth: int = MAX_JSON_DEPTH, max_weight: int = MAX_RESULT_WEIGHT) -> str | None:
    return json_weight_problem(value, max_depth=max_depth, max_weight=max_weight)[0]


def decode_json(text: str | bytes, *, max_depth: int = MAX_DOCUMENT_DEPTH) -> Any:
    """Strict JSON (no NaN/Infinity, finite numbers, no lone surrogates, at most ``max_depth`` deep).

    Raises ValueError with the reason; never RecursionError, whatever the nesting. For whole request documents
    (REST bodies; GraphQL's HTTP body would want the same) and for REST's JSON token values.
    """

    def finite(raw: str) -> float:
        number = float(raw)
        if not math.isfinite(number):
            raise ValueError(f"the number {raw[:40]} is too large")
        return number

    def constant(raw: str) -> Any:
        raise ValueError(f"{raw} is not JSON")

    try:
        value = json.loads(text, parse_float=finite, parse_constant=constant)
    except RecursionError:
        raise ValueError(f"it is nested deeper than {max_depth} levels") from None
    problem = json_problem(value, max_depth=max_depth, max_weight=sys.maxsize)
    if problem is not None:
        raise ValueError(f"it {problem}")
    return value


DATE_RANGE_RULE = "an instant from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999Z"


def utc(value: datetime, *, plus_seconds: int = 0) -> datetime | None:
    """``value`` (plus ``plus_seconds``) in UTC, read as UTC without a time zone; None when the instant is outside
    the range a ``datetime`` holds (``9999-12-31T23:59:59-01:00``, a leap second at the end of 9999), which would
    otherwise be an OverflowError in the first conversion or arithmetic."""
    if value.tzinfo is None or value.utcoffset() is None:
        value = value.replace(tzinfo=UTC)
    shift = timedelta(seconds=plus_seconds)
    try:
        return value.astimezone(UTC) + shift
    except (OverflowError, ValueError):
        pass
    try:  # 0001-01-01T00:59:60+01:00 is 0001-01-01T00:00:00Z: only the step in between is out of range
        return (value + shift).astimezone(UTC)
    except (OverflowError, ValueError):
        return None


def moment(value: datetime) -> datetime:
    """A date in UTC, clamped to the representable range: for code that must not fail on a date nobody checked."""
    found = utc(value)
    if found is not None:
        return found
    offset = value.utcoffset() or timedelta(0)
    return EARLIEST if offset > timedelta(0) else LATEST


# -- the list query ------------------------------------------------------------------------------------------


_MOST = {"token": (MAX_TOKEN_PREDICATES, "predicates"), "sort": (MAX_SORT_KEYS, "keys")}


def count_problem(name: str, count: int) -> str | None:
    """Why a list input (``token``, ``sort``, or a filter list such as ``id``) has too many items, or None."""
    most, noun = _MOST.get(name, (MAX_LIST_ITEMS, "values"))
    return f"'{name}' takes at most {most} {noun}, not {count}." if count > most else None


def check_counts(counts: Iterable[tuple[str, int]]) -> None:
    """The counts alone, for a face to call before it converts every item (GraphQL's 20,000 predicates)."""
    problems = Problems()
    for name, count in counts:
        if (problem := count_problem(name, count)) is not None:
            problems.add(name, problem)
    problems.raise_if_any()


def _encoded_length(values: Iterable[str]) -> int:
    return sum(len(quote(value, safe="")) + 1 for value in values)


def _check_lists(task_filter: TaskFilter, problems: Problems) -> None:
    sizes: dict[str, int] = {}
    for attribute, name in _FILTER_LISTS:
        values: tuple[str, ...] = getattr(task_filter, attribute)
        if (too_many := count_problem(name, len(values))) is not None:
            problems.add(name, too_many)
            continue
        bad = False
        for value in values:
            if name == "id":
                problem = None if is_task_id(value) else f"must be a task id ({TASK_ID_RULE})"
            elif name == "state":
                problem = None if value in TASK_STATES else f"must be one of {', '.join(TASK_STATES)}"
            else:
                problem = string_problem(value)
            if problem is not None:
                shown = quoted(value) if isinstance(value, str) else type(value).__name__
                problems.add(name, f"'{name}' {problem}, not {shown}.")
                bad = True
        if not bad:
            sizes[name] = _encoded_length(values)
    if sum(sizes.values()) > MAX_ENGINE_FILTER_LENGTH:
        largest = max(sizes, key=lambda name: sizes[name])
        problems.add(
            largest,
            f"The filters the engine applies (id, state, processModelId, processInstanceId, flowNodeId, lane,"
            f" correlationId) take {sum(sizes.values())} characters URL-encoded, over the limit of"
            f" {MAX_ENGINE_FILTER_LENGTH}; '{largest}' is the largest. Ask in several requests.",
        )


def _check_token(predicates: Sequence[TokenPredicate], problems: Problems) -> None:
    if (too_many := count_problem("token", len(predicates))) is not None:
        problems.add("token", too_many)
        return
    for predicate in predicates:
        if not is_token_path(predicate.path):
            shown = quoted(predicate.path) if isinstance(predicate.path, str) else "a non-string"
            problems.add("token", f"A token predicate's path must be {TOKEN_PATH_RULE}; not {shown}.")
            continue
        budget = MAX_TOKEN_PREDICATE_LENGTH - len(predicate.path)
        problem = json_problem(predicate.value, max_depth=MAX_JSON_DEPTH, max_weight=budget)
        if problem is not None:
            if "larger than" in problem:
                problem = (
                    f"makes the predicate longer than {MAX_TOKEN_PREDICATE_LENGTH} (path characters, plus one per"
                    " value and one per character of text)"
                )
            problems.add("token", f"The value of the token predicate on {quoted(predicate.path)} {problem}.")


def _check_sort(sorts: Sequence[TaskSort], problems: Problems) -> None:
    if (too_many := count_problem("sort", len(sorts))) is not None:
        problems.add("sort", too_many)
        return
    for sort in sorts:
        if sort.field is SortField.TOKEN:
            if not sort.token_path:
                problems.add("sort", 'Sorting by TOKEN needs a tokenPath, e.g. "amount" or "customer.type".')
            elif not is_token_path(sort.token_path):
                problems.add(
                    "sort",
                    f"A sort key's token path must be {TOKEN_PATH_RULE}, at most {MAX_TOKEN_PATH_LENGTH} characters;"
                    f" not {quoted(sort.token_path)}.",
                )
        elif sort.token_path is not None:
            problems.add("sort", f"A tokenPath goes only with the field TOKEN, not with {sort.field.value}.")


def validate_query(query: TaskQuery, *, max_page_size: int) -> TaskQuery:
    """The query if it keeps every rule, with its dates in UTC; else InvalidInput naming each broken part.

    Cost: linear in the input, and each check stops at its limit (a list of 20,000 predicates is refused by its
    length, before any of them is looked at).
    """
    problems = Problems()
    if query.first is not None and not 0 <= query.first <= max_page_size:
        problems.add("first", f"The page size must be between 0 and {max_page_size}, not {query.first}.")
    task_filter = query.filter
    _check_lists(task_filter, problems)
    if task_filter.reserved_for is not None and (problem := string_problem(task_filter.reserved_for)):
        problems.add("reservedFor", f"'reservedFor' {problem}.")
    if task_filter.search is not None and (
        len(task_filter.search) > MAX_STRING_LENGTH or has_surrogate(task_filter.search)
    ):
        problems.add("search", f"'search' must be text of at most {MAX_STRING_LENGTH} characters.")
    dates: dict[str, datetime | None] = {}
    for name, value in (("startedAfter", task_filter.started_after), ("startedBefore", task_filter.started_before)):
        dates[name] = None if value is None else utc(value)
        if value is not None and dates[name] is None:
            problems.add(name, f"'{name}' must be {DATE_RANGE_RULE}, not {value.isoformat()}.")
    _check_token(task_filter.token, problems)
    _check_sort(query.sort, problems)
    problems.raise_if_any()
    normalized = replace(task_filter, started_after=dates["startedAfter"], started_before=dates["startedBefore"])
    return replace(query, filter=normalized)


# -- the task actions ----------------------------------------------------------------------------------------


def task_id_problems(task_ids: Sequence[object], pointer: str, problems: Problems) -> None:
    for index, task_id in enumerate(task_ids):
        if not is_task_id(task_id):
            problems.add(f"{pointer}/{index}", f"{pointer}/{index} is not a valid task id: ids are {TASK_ID_RULE}.")


def check_task_id(task_id: object, field: str = "id") -> str:
    """A task id argument (``id`` in both faces), or InvalidInput: an odd id is a 400, never a lookup."""
    if not is_task_id(task_id):
        shown = quoted(task_id) if isinstance(task_id, str) else type(task_id).__name__
        raise InvalidInput([FieldProblem(field, f"The task id {shown} is not valid: ids are {TASK_ID_RULE}.")])
    return str(task_id)


def owner_problem(owner_id: object, problems: Problems, pointer: str = "/ownerId") -> None:
    """``ownerId`` is optional; when given it names a user: 1 to ``MAX_STRING_LENGTH`` printable characters, without
    spaces around them (a user id, as a token's ``sub`` is). A reservation for someone else never strands a task:
    whoever may write and can see the task may cancel its reservation (docs/rest.md, "Reservations")."""
    if owner_id is None:
        return
    problem = string_problem(owner_id)
    if problem is None and isinstance(owner_id, str) and (not owner_id.isprintable() or owner_id != owner_id.strip()):
        problem = "must be printable, without spaces before or after it"
    if problem is not None:
        problems.add(pointer, f"{pointer} {problem}.")


def result_problem(result: Any, problems: Problems, pointer: str = "/result") -> None:
    """A result's size and nesting (its fit with the task's form is :mod:`gateway.core.results`' rule)."""
    problem = json_problem(result, max_depth=MAX_JSON_DEPTH, max_weight=MAX_RESULT_WEIGHT)
    if problem is not None:
        problems.add(pointer, f"{pointer} {problem}.")


def batch_problem(count: int, max_batch_size: int, pointer: str, problems: Problems) -> bool:
    """False (and a problem) when a batch is over the limit; its items are then not looked at."""
    if count > max_batch_size:
        problems.add(pointer, f"A batch takes at most {max_batch_size} items, not {count}.")
        return False
    return True


__all__ = [
    "DATE_RANGE_RULE",
    "EARLIEST",
    "LATEST",
    "MAX_DOCUMENT_DEPTH",
    "MAX_ENGINE_FILTER_LENGTH",
    "MAX_JSON_DEPTH",
    "MAX_LIST_ITEMS",
    "MAX_RESULT_WEIGHT",
    "MAX_SORT_KEYS",
    "MAX_SORT_KEY_LENGTH",
    "MAX_STRING_LENGTH",
    "MAX_TOKEN_PATH_LENGTH",
    "MAX_TOKEN_PREDICATES",
    "MAX_TOKEN_PREDICATE_LENGTH",
    "TASK_ID_PATTERN",
    "TASK_ID_RULE",
    "TOKEN_PATH",
    "InvalidInput",
    "Problems",
    "check_counts",
    "check_task_id",
    "count_problem",
    "decode_json",
    "is_task_id",
    "is_token_path",
    "json_problem",
    "json_weight",
    "list_index",
    "moment",
    "utc",
    "validate_query",
]
