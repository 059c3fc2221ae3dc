"""The GraphQL schema in-process: limits built once so the caches work, error codes and masking."""

from __future__ import annotations

import asyncio
import logging

import pytest
from graphql import GraphQLError
from strawberry.extensions.validation_cache import _get_validate_cache

from gateway import errors
from gateway.gql.errors import classify
from gateway.gql.schema import build_schema


def test_validation_is_cached_across_requests_with_the_limits_on() -> None:
    schema = build_schema(max_depth=5, max_aliases=5, max_tokens=500)
    cache = _get_validate_cache(256)
    query = "{ userTasks(first: 1) { totalCount } }"
    asyncio.run(schema.execute(query))
    before = cache.cache_info().hits
    asyncio.run(schema.execute(query))
    asyncio.run(schema.execute(query))
    assert cache.cache_info().hits == before + 2


def test_a_gateway_error_keeps_its_message_and_gets_its_code() -> None:
    error = GraphQLError("x", original_error=errors.EngineUnavailable("The engine is unavailable: refused"))
    classified = classify(error, "req-1")
    assert classified.message == "The engine is unavailable: refused"
    assert classified.extensions == {"code": "ENGINE_UNAVAILABLE", "requestId": "req-1", "retryAfterSeconds": 5}


def test_an_unexpected_error_is_masked_and_logged_with_the_request_id(caplog: pytest.LogCaptureFixture) -> None:
    error = GraphQLError("secret internals", original_error=KeyError("password"))
    with caplog.at_level(logging.ERROR, logger="gateway"):
        classified = classify(error, "req-2")
    assert classified.message == "Unexpected error."
    assert classified.extensions == {"code": "INTERNAL_SERVER_ERROR", "requestId": "req-2"}
    assert "req-2" in caplog.text


def test_limit_errors_are_query_too_complex() -> None:
    classified = classify(GraphQLError("'q' exceeds maximum operation depth of 3"), "r")
    assert classified.extensions == {"code": "QUERY_TOO_COMPLEX"}
    assert classify(GraphQLError("Cannot query field 'x'"), "r").extensions == {"code": "BAD_REQUEST"}
