"""Query parameters and headers of the REST face -> the domain's TaskQuery (the GraphQL filter, spelled for URLs).

Syntax (documented in openapi/openapi.yaml; the patterns below are the contract's, and a test keeps them equal):

- Lists are repeated parameters: ``state=suspended&state=finished``, ``processModelId=A&processModelId=B``.
  Every list means "any of"; without ``state`` only waiting (``suspended``) tasks are listed, as in GraphQL.
- Token predicates: ``token=<path>:<op>:<value>``, e.g. ``token=amount:gte:1000``,
  ``token=customerType:eq:"vip"``, ``token=customerId:in:["C-1001","C-1002"]``, ``token=comment:exists``.
  ``path`` is dotted (``customer.type``, list items by index ``items.0``; no ',', ':', spaces or control
  characters); ``op`` is one of eq, ne, gt, gte, lt,
  lte, in, contains, exists. The value is read as JSON; a value that is not valid JSON is taken as a string
  (``customerType:eq:vip`` equals ``customerType:eq:"vip"``; quote digits to compare with a string:
  ``customerId:eq:"1001"``). ``exists`` takes ``true`` (the default) or ``false``.
- Sort: ``sort=startedAt,-name,token.amount``: comma-separated keys (startedAt, name, processModelId, lane,
  reservedFor, token.<path>), ``-`` for descending; several keys sort by the first, then the next. The parameter
  may also be repeated (its keys are appended).
- ``limit`` (page size, default ``GATEWAY_DEFAULT_PAGE_SIZE``) and ``cursor`` (the ``nextCursor`` of the
  previous page, valid only with the same filter and sort).
- Live task lists take the list's filter parameters (not ``sort``, ``limit``, ``cursor``): the events stream
  ``GET /api/v1/user-task-events`` (any state without ``state``; plus ``lastEventId`` or the ``Last-Event-ID``
  header) and the change feed ``GET /api/v1/user-tasks/changes`` (the list's default state; plus ``since`` and
  ``limit``). Event ids and feed cursors are ``<epoch>-<seq>`` (:data:`EVENT_ID_PATTERN`).

Anything else is refused with a problem that names the parameter: unknown parameters, a scalar parameter given
twice, wrong types, values outside the contract's patterns. This module reads the URL's syntax only; the limits
(list sizes, string lengths, the task id rule, token paths and values, sort keys, dates) are
:mod:`gateway.core.limits`', the same for GraphQL, applied to the parsed query before it is answered, and their problems
are reported together with the syntax's.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from starlette.datastructures import Headers, QueryParams

from ..core import limits
from ..core.domain import (
    FieldProblem,
    SortDirection,
    SortField,
    TaskFilter,
    TaskQuery,
    TaskSort,
    TokenOp,
    TokenPredicate,
    states_or_default,
)
from .problems import RequestInvalid

# -- the contract's patterns (ECMA-262 and Python alike; checked with re.search, as JSON Schema does) -----------

TASK_ID_PATTERN = limits.TASK_ID_PATTERN
TOKEN_PATH = limits.TOKEN_PATH
TOKEN_PREDICATE_PATTERN = rf"^{TOKEN_PATH}:((eq|ne|gt|gte|lt|lte|in|contains):[\s\S]*|exists(:(true|false))?)$"
SORT_KEY_PATTERN = rf"^-?(startedAt|name|processModelId|lane|reservedFor|token\.{TOKEN_PATH})$"
CURSOR_PATTERN = r"^[A-Za-z0-9_-]+$"
DATE_TIME_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$"
IDEMPOTENCY_KEY_PATTERN = r"^[!-~]+$"
#: An event id (:mod:`gateway.core.changes`): ``<epoch>-<seq>``, also the change feed's cursor.
EVENT_ID_PATTERN = r"^[0-9a-f]{8}-[0-9]{1,18}$"

# the limits are the core's (gateway.core.limits); these two are the URL's and the header's own syntax
MAX_STRING_LENGTH = limits.MAX_STRING_LENGTH
MAX_LIST_ITEMS = limits.MAX_LIST_ITEMS
MAX_TOKEN_PREDICATES = limits.MAX_TOKEN_PREDICATES
MAX_TOKEN_PREDICATE_LENGTH = limits.MAX_TOKEN_PREDICATE_LENGTH
MAX_SORT_KEYS = limits.MAX_SORT_KEYS
MAX_JSON_DEPTH = limits.MAX_JSON_DEPTH
MAX_CURSOR_LENGTH = 2048
MAX_IDEMPOTENCY_KEY_LENGTH = 255
MAX_EVENT_ID_LENGTH = 27
LAST_EVENT_ID_HEADER = "Last-Event-ID"

_TOKEN_PREDICATE = re.compile(
    rf"^(?P<path>{TOKEN_PATH}):(?:(?P<op>eq|ne|gt|gte|lt|lte|in|contains):(?P<value>[\s\S]*)"
    r"|(?P<exists>exists)(?::(?P<flag>true|false))?)$"
)
_SORT_KEY = re.compile(
    rf"^(?P<minus>-?)(?:(?P<field>startedAt|name|processModelId|lane|reservedFor)|token\.(?P<path>{TOKEN_PATH}))$"
)
_SORT_FIELDS = {
    "startedAt": SortField.STARTED_AT,
    "name": SortField.NAME,
    "processModelId": SortField.PROCESS_MODEL_ID,
    "lane": SortField.LANE,
    "reservedFor": SortField.RESERVED_FOR,
}
_INTEGER = re.compile(r"^-?[0-9]{1,12}$")

# query parameter -> TaskFilter field, for the plain string lists
_STRING_LISTS = {
    "processModelId": "process_model_ids",
    "processInstanceId": "process_instance_ids",
    "flowNodeId": "flow_node_ids",
    "lane": "lanes",
    "correlationId": "correlation_ids",
}
LIST_PARAMETERS = frozenset({"id", "state", "token", "sort", *_STRING_LISTS})
SCALAR_PARAMETERS = frozenset({"reservedFor", "reserved", "startedAfter", "startedBefore", "search", "limit", "cursor"})
LIST_TASKS_PARAMETERS = LIST_PARAMETERS | SCALAR_PARAMETERS
#: The list's filter: every parameter of the list route but its sort and paging.
FILTER_PARAMETERS = LIST_TASKS_PARAMETERS - {"sort", "limit", "cursor"}
EVENTS_PARAMETERS = FILTER_PARAMETERS | {"lastEventId"}
CHANGES_PARAMETERS = FILTER_PARAMETERS | {"since", "limit"}


def matches(pattern: str, value: str) -> bool:
    return re.search(pattern, value) is not None


is_task_id = limits.is_task_id
TASK_ID_RULE = limits.TASK_ID_RULE
_quote = limits.quoted


class _Problems(limits.Problems):
    """The core's collector, raising the REST face's RequestInvalid (the same problem document)."""

    def raise_if_any(self) -> None:
        if self.items:
            raise RequestInvalid(self.items)


def _unknown(query: QueryParams, known: frozenset[str], problems: _Problems) -> None:
    """Unknown query parameters are refused (a typo would otherwise silently widen a filter)."""
    allowed = ", ".join(sorted(known)) if known else "none"
    for name in sorted({name for name in query if name not in known}):
        problems.add(name, f"Unknown query parameter {_quote(name)}; this route takes: {allowed}.")


def json_value(text: str) -> Any:
    """Strict JSON, at most ``MAX_JSON_DEPTH`` deep (:func:`gateway.core.limits.decode_json`); ValueError otherwise."""
    return limits.decode_json(text, max_depth=MAX_JSON_DEPTH)


def _token_value(raw: str) -> Any:
    """The value as JSON, else the text itself. JSON nested too deep stays JSON, so that the core refuses it as it
    refuses the same value from GraphQL (instead of it silently becoming a string); ``raw`` is at most
    ``MAX_TOKEN_PREDICATE_LENGTH`` characters, so it cannot nest deeper than that."""
    try:
        return limits.decode_json(raw, max_depth=MAX_TOKEN_PREDICATE_LENGTH)
    except ValueError:
        return raw


def parse_token_predicate(raw: str) -> TokenPredicate | None:
    if len(raw) > MAX_TOKEN_PREDICATE_LENGTH or not matches(TOKEN_PREDICATE_PATTERN, raw):
        return None
    found = _TOKEN_PREDICATE.match(raw)
    if found is None:  # pragma: no cover - the two patterns say the same
        return None
    if found["exists"]:
        return TokenPredicate(path=found["path"], op=TokenOp.EXISTS, value=found["flag"] != "false")
    return TokenPredicate(path=found["path"], op=TokenOp(found["op"].upper()), value=_token_value(found["value"]))


def parse_sort_key(raw: str) -> TaskSort | None:
    if not matches(SORT_KEY_PATTERN, raw):
        return None
    found = _SORT_KEY.match(raw)
    if found is None:  # pragma: no cover - the two patterns say the same
        return None
    direction = SortDirection.DESC if found["minus"] else SortDirection.ASC
    if found["path"]:
        return TaskSort(SortField.TOKEN, direction, token_path=found["path"])
    return TaskSort(_SORT_FIELDS[found["field"]], direction)


def parse_date_time(raw: str) -> datetime | str | None:
    """The date-time (in UTC); None when it is not RFC 3339; the problem when it is but names no instant the
    gateway takes (:data:`gateway.core.limits.DATE_RANGE_RULE`): a leap second past 9999-12-31T23:59:59Z is not an
    OverflowError.
    """
    if not matches(DATE_TIME_PATTERN, raw):
        return None
    text = raw.strip().upper()
    leap = text[17:19] == "60"  # RFC 3339 allows a leap second; Python's datetime does not
    if leap:
        text = text[:17] + "59" + text[19:]
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    found = limits.utc(value, plus_seconds=1 if leap else 0)
    return f"must be {limits.DATE_RANGE_RULE}" if found is None else found


def _strings(query: QueryParams, name: str) -> tuple[str, ...]:
    """A repeated parameter's values; their number and form are the core's to check (:mod:`gateway.core.limits`)."""
    return tuple(query.getlist(name))


def _single(query: QueryParams, name: str, problems: _Problems) -> str | None:
    values = query.getlist(name)
    if len(values) > 1:
        problems.add(name, f"Query parameter '{name}' may be given once, not {len(values)} times.")
        return None
    return values[0] if values else None


def _parse_filter(query: QueryParams, problems: _Problems, *, any_state: bool) -> TaskFilter:
    """The filter parameters (every parameter of the list route but ``sort``, ``limit`` and ``cursor``).

    Without ``state``: waiting tasks only (the list), or any state (``any_state``: live events).
    """
    ids = _strings(query, "id")
    states = _strings(query, "state")
    lists = {field: _strings(query, name) for name, field in _STRING_LISTS.items()}

    reserved_for = _single(query, "reservedFor", problems)

    reserved: bool | None = None
    raw_reserved = _single(query, "reserved", problems)
    if raw_reserved is not None:
        if raw_reserved in ("true", "false"):
            reserved = raw_reserved == "true"
        else:
            problems.add("reserved", f"Query parameter 'reserved' must be true or false, not {_quote(raw_reserved)}.")

    started: dict[str, datetime | None] = {}
    for name in ("startedAfter", "startedBefore"):
        raw = _single(query, name, problems)
        started[name] = None
        if raw is not None:
            moment = parse_date_time(raw)
            if isinstance(moment, str):
                problems.add(name, f"Query parameter '{name}' {moment}, not {_quote(raw)}.")
            elif moment is not None:
                started[name] = moment
            else:
                problems.add(
                    name,
                    f"Query parameter '{name}' must be an RFC 3339 date-time with a time zone, such as"
                    f" 2026-01-15T09:30:00Z, not {_quote(raw)}.",
                )

    search = _single(query, "search", problems)

    predicates: list[TokenPredicate] = []
    raw_predicates = query.getlist("token")
    if len(raw_predicates) > MAX_TOKEN_PREDICATES:
        problems.add("token", f"Query parameter 'token' may be repeated at most {MAX_TOKEN_PREDICATES} times.")
    else:
        for raw in raw_predicates:
            predicate = parse_token_predicate(raw)
            if predicate is None:
                problems.add(
                    "token",
                    f"Query parameter 'token' must look like <path>:<op>:<JSON value> (ops: eq, ne, gt, gte, lt,"
                    f" lte, in, contains) or <path>:exists[:true|false], e.g. amount:gte:1000, not {_quote(raw)}.",
                )
            else:
                predicates.append(predicate)

    return TaskFilter(
        states=tuple(states) if any_state else states_or_default(states),
        ids=ids,
        reserved_for=reserved_for,
        reserved=reserved,
        started_after=started["startedAfter"],
        started_before=started["startedBefore"],
        search=search or None,
        token=tuple(predicates),
        **lists,
    )


def _parse_limit(query: QueryParams, problems: _Problems, *, max_limit: int) -> int | None:
    raw_limit = _single(query, "limit", problems)
    if raw_limit is None:
        return None
    if _INTEGER.match(raw_limit) and 0 <= int(raw_limit) <= max_limit:
        return int(raw_limit)
    problems.add("limit", f"Query parameter 'limit' must be an integer from 0 to {max_limit}, not {_quote(raw_limit)}.")
    return None


def _validated(parsed: TaskQuery, problems: _Problems, *, max_limit: int) -> TaskQuery:
    """The core's limits (:func:`gateway.core.limits.validate_query`), reported together with the syntax's problems;
    raises :class:`RequestInvalid` when there are any."""
    try:
        parsed = limits.validate_query(parsed, max_page_size=max_limit)
    except limits.InvalidInput as exc:
        problems.items.extend(exc.problems)
    problems.raise_if_any()
    return parsed


def parse_list_query(query: QueryParams, *, max_limit: int) -> TaskQuery:
    """``GET /api/v1/user-tasks``'s query string -> TaskQuery; every problem is reported at once.

    Without ``limit`` the query's page size is None: the service's default, the same as GraphQL's without ``first``.
    """
    problems = _Problems()
    _unknown(query, LIST_TASKS_PARAMETERS, problems)
    task_filter = _parse_filter(query, problems, any_state=False)

    sorts: list[TaskSort] = []
    raw_keys = [key for value in query.getlist("sort") for key in value.split(",")]
    if len(raw_keys) > MAX_SORT_KEYS:
        problems.add("sort", f"Query parameter 'sort' takes at most {MAX_SORT_KEYS} keys.")
    else:
        for raw in raw_keys:
            sort = parse_sort_key(raw) if len(raw) <= limits.MAX_SORT_KEY_LENGTH else None
            if sort is None:
                problems.add(
                    "sort",
                    "Query parameter 'sort' takes comma-separated keys (startedAt, name, processModelId, lane,"
                    " reservedFor, token.<path>), each optionally prefixed with '-' for descending, at most"
                    f" {limits.MAX_SORT_KEY_LENGTH} characters; not {_quote(raw)}.",
                )
            else:
                sorts.append(sort)

    limit = _parse_limit(query, problems, max_limit=max_limit)

    cursor = _single(query, "cursor", problems)
    if cursor is not None and (len(cursor) > MAX_CURSOR_LENGTH or not matches(CURSOR_PATTERN, cursor)):
        problems.add("cursor", "Query parameter 'cursor' is not a cursor this gateway issued; use a page's nextCursor.")

    parsed = TaskQuery(filter=task_filter, sort=tuple(sorts), first=limit, after=cursor)
    return _validated(parsed, problems, max_limit=max_limit)


# -- live task lists: server-sent events and the change feed ---------------------------------------------------


@dataclass(frozen=True)
class EventsQuery:
    """``GET /api/v1/user-task-events``: the list's filter (``states`` empty: any state) and where to resume."""

    filter: TaskFilter
    #: ``Last-Event-ID`` (the header wins: a browser's EventSource sends it when it reconnects) or ``lastEventId``.
    last_event_id: str | None


@dataclass(frozen=True)
class ChangesQuery:
    """``GET /api/v1/user-tasks/changes``: the list's filter, the cursor to go on from (None: start) and the page."""

    filter: TaskFilter
    since: str | None
    limit: int


def _event_id(raw: str | None, name: str, problems: _Problems, what: str) -> str | None:
    if raw is None:
        return None
    if len(raw) > MAX_EVENT_ID_LENGTH or not matches(EVENT_ID_PATTERN, raw):
        problems.add(
            name, f"{what} {_quote(raw)} is not an event id of this gateway (<epoch>-<seq>, e.g. 3f2a9c1e-42)."
        )
        return None
    return raw


def parse_events_query(query: QueryParams, headers: Headers) -> EventsQuery:
    """``GET /api/v1/user-task-events``: the list's filter parameters and ``lastEventId``; every problem at once.

    Without ``state`` the filter admits any state (``states=()``): a subscriber hears of finished tasks too.
    """
    problems = _Problems()
    _unknown(query, EVENTS_PARAMETERS, problems)
    task_filter = _parse_filter(query, problems, any_state=True)
    from_query = _event_id(
        _single(query, "lastEventId", problems), "lastEventId", problems, "Query parameter 'lastEventId'"
    )
    from_header: str | None = None
    header_values = [value.strip() for value in headers.getlist(LAST_EVENT_ID_HEADER) if value.strip()]
    if len(header_values) > 1:
        problems.add(LAST_EVENT_ID_HEADER, f"The {LAST_EVENT_ID_HEADER} header may be given once.")
    elif header_values:
        from_header = _event_id(header_values[0], LAST_EVENT_ID_HEADER, problems, f"The {LAST_EVENT_ID_HEADER} header")
    parsed = _validated(TaskQuery(filter=task_filter), problems, max_limit=0)  # no page: no page size to check
    return EventsQuery(parsed.filter, from_header or from_query)


def parse_changes_query(query: QueryParams, *, max_limit: int, default_limit: int) -> ChangesQuery:
    """``GET /api/v1/user-tasks/changes``: the list's filter parameters (with the list's default state), ``since``
    and ``limit`` (``default_limit`` when not given, at most ``max_limit``); every problem at once."""
    problems = _Problems()
    _unknown(query, CHANGES_PARAMETERS, problems)
    task_filter = _parse_filter(query, problems, any_state=False)
    since = _event_id(_single(query, "since", problems), "since", problems, "Query parameter 'since'")
    limit = _parse_limit(query, problems, max_limit=max_limit)
    parsed = _validated(TaskQuery(filter=task_filter), problems, max_limit=max_limit)
    return ChangesQuery(parsed.filter, since, default_limit if limit is None else limit)


def task_id_of(raw: str) -> str:
    """A path's ``{id}``, checked against the contract's pattern (odd characters are a 400, not a lookup)."""
    if not is_task_id(raw):
        raise RequestInvalid([FieldProblem("id", f"The task id {_quote(raw)} is not valid: ids are {TASK_ID_RULE}.")])
    return raw


def idempotency_key_of(headers: Headers) -> str | None:
    """The ``Idempotency-Key`` header: 1 to 255 visible ASCII characters (a UUID is a good choice)."""
    values = headers.getlist("idempotency-key")
    if not values:
        return None
    if len(values) > 1:
        raise RequestInvalid([FieldProblem("Idempotency-Key", "The Idempotency-Key header may be given once.")])
    value = values[0]
    if len(value) > MAX_IDEMPOTENCY_KEY_LENGTH or not matches(IDEMPOTENCY_KEY_PATTERN, value):
        raise RequestInvalid(
            [
                FieldProblem(
                    "Idempotency-Key",
                    f"The Idempotency-Key header must be 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} visible ASCII characters"
                    " without spaces (a UUID is a good choice).",
                )
            ]
        )
    return value


def no_query(query: QueryParams) -> None:
    """Routes without query parameters refuse any (they would be ignored otherwise)."""
    problems = _Problems()
    _unknown(query, frozenset(), problems)
    problems.raise_if_any()


__all__: Sequence[str] = [
    "CHANGES_PARAMETERS",
    "CURSOR_PATTERN",
    "DATE_TIME_PATTERN",
    "EVENTS_PARAMETERS",
    "EVENT_ID_PATTERN",
    "IDEMPOTENCY_KEY_PATTERN",
    "SORT_KEY_PATTERN",
    "TASK_ID_PATTERN",
    "TOKEN_PREDICATE_PATTERN",
    "ChangesQuery",
    "EventsQuery",
    "idempotency_key_of",
    "json_value",
    "no_query",
    "parse_changes_query",
    "parse_events_query",
    "parse_list_query",
    "task_id_of",
]
