"""The REST query syntax -> the domain's query (no server needed: pure parsing)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from starlette.datastructures import QueryParams

from gateway.core.domain import SortDirection, SortField, TaskQuery, TaskSort, TokenOp, TokenPredicate
from gateway.rest.params import parse_date_time, parse_list_query, parse_sort_key, parse_token_predicate
from gateway.rest.problems import RequestInvalid
from gateway.rest.resource import accepts


def query(text: str) -> TaskQuery:
    return parse_list_query(QueryParams(text), max_limit=100)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("amount:gte:1000", TokenPredicate("amount", TokenOp.GTE, 1000)),
        ('customerType:eq:"vip"', TokenPredicate("customerType", TokenOp.EQ, "vip")),
        ("customerType:eq:vip", TokenPredicate("customerType", TokenOp.EQ, "vip")),
        ('customerId:in:["C-1","C-2"]', TokenPredicate("customerId", TokenOp.IN, ["C-1", "C-2"])),
        ("customer.address.city:contains:köln", TokenPredicate("customer.address.city", TokenOp.CONTAINS, "köln")),
        ("note:eq:a:b:c", TokenPredicate("note", TokenOp.EQ, "a:b:c")),
        ("approved:eq:true", TokenPredicate("approved", TokenOp.EQ, True)),
        ("approved:ne:null", TokenPredicate("approved", TokenOp.NE, None)),
        ("note:eq:", TokenPredicate("note", TokenOp.EQ, "")),
        ("items.0:lt:2.5", TokenPredicate("items.0", TokenOp.LT, 2.5)),
        ("amount:eq:1e999", TokenPredicate("amount", TokenOp.EQ, "1e999")),
        ("comment:exists", TokenPredicate("comment", TokenOp.EXISTS, True)),
        ("comment:exists:false", TokenPredicate("comment", TokenOp.EXISTS, False)),
    ],
)
def test_token_predicates_read_json_values_or_else_text(raw: str, expected: TokenPredicate) -> None:
    assert parse_token_predicate(raw) == expected


@pytest.mark.parametrize(
    "raw", ["amount", "amount:gte", "amount:between:1", ":eq:1", "a..b:eq:1", "a b:eq:1", "a:exists:maybe", "a,b:eq:1"]
)
def test_malformed_token_predicates_are_refused(raw: str) -> None:
    assert parse_token_predicate(raw) is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("startedAt", TaskSort(SortField.STARTED_AT)),
        ("-name", TaskSort(SortField.NAME, SortDirection.DESC)),
        ("processModelId", TaskSort(SortField.PROCESS_MODEL_ID)),
        ("-lane", TaskSort(SortField.LANE, SortDirection.DESC)),
        ("reservedFor", TaskSort(SortField.RESERVED_FOR)),
        ("-token.customer.type", TaskSort(SortField.TOKEN, SortDirection.DESC, "customer.type")),
    ],
)
def test_sort_keys(raw: str, expected: TaskSort) -> None:
    assert parse_sort_key(raw) == expected


@pytest.mark.parametrize("raw", ["", "-", "+name", "Name", "token", "token.", "--name", "startedat"])
def test_malformed_sort_keys_are_refused(raw: str) -> None:
    assert parse_sort_key(raw) is None


def test_a_query_becomes_the_graphql_filter_sort_and_page() -> None:
    parsed = query(
        "state=suspended&state=finished&processModelId=ApprovalProcess&lane=Approver&reserved=false"
        "&token=amount:gte:1000&token=customerType:eq:vip&sort=-token.amount,startedAt&limit=5&search=order"
    )
    assert parsed.filter.states == ("suspended", "finished")
    assert parsed.filter.process_model_ids == ("ApprovalProcess",)
    assert parsed.filter.lanes == ("Approver",)
    assert parsed.filter.reserved is False
    assert parsed.filter.search == "order"
    assert [predicate.op for predicate in parsed.filter.token] == [TokenOp.GTE, TokenOp.EQ]
    assert parsed.sort == (
        TaskSort(SortField.TOKEN, SortDirection.DESC, "amount"),
        TaskSort(SortField.STARTED_AT),
    )
    assert parsed.first == 5


def test_an_empty_query_is_the_graphql_default() -> None:
    parsed = query("")
    assert parsed.filter.states == ("suspended",)
    assert parsed.first is None  # the service's default page size
    assert parsed.sort_keys == (TaskSort(SortField.STARTED_AT),)
    assert parsed.after is None


def test_every_problem_of_a_query_is_reported() -> None:
    with pytest.raises(RequestInvalid) as raised:
        query("limit=x&reserved=maybe&sort=up&token=bad&nope=1&state=open&startedAfter=today")
    fields = sorted(problem.field for problem in raised.value.problems)
    assert fields == ["limit", "nope", "reserved", "sort", "startedAfter", "state", "token"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-01-15T09:30:00Z", datetime(2026, 1, 15, 9, 30, tzinfo=UTC)),
        ("2026-01-15t09:30:00.5z", datetime(2026, 1, 15, 9, 30, 0, 500_000, tzinfo=UTC)),
        ("2026-01-15T09:30:00+01:00", datetime(2026, 1, 15, 9, 30, tzinfo=timezone(timedelta(hours=1)))),
        ("2016-12-31T23:59:60Z", datetime(2017, 1, 1, tzinfo=UTC)),
    ],
)
def test_date_times_are_rfc_3339_with_a_zone(raw: str, expected: datetime) -> None:
    assert parse_date_time(raw) == expected


@pytest.mark.parametrize(
    "raw", ["2026-01-15", "2026-01-15T09:30:00", "2026-01-15 09:30:00Z", "2026-13-01T00:00:00Z", "٢٠٢٦-01-15T09:30:00Z"]
)
def test_other_date_times_are_refused(raw: str) -> None:
    assert parse_date_time(raw) is None


@pytest.mark.parametrize(
    ("accept", "admitted"),
    [
        (None, True),
        ("", True),
        ("application/json", True),
        ("Application/JSON; charset=utf-8", True),
        ("application/problem+json", True),
        ("*/*", True),
        ("application/*;q=0.5", True),
        ("text/html", False),
        ("text/*", False),
        ("application/json;q=0", False),
        ("application/json;q=zero", False),
        ("application/xml, text/html;q=0.9", False),
    ],
)
def test_accept_headers(accept: str | None, admitted: bool) -> None:
    assert accepts(accept, ("application/json", "application/problem+json")) is admitted
