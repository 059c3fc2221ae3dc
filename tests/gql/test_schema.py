"""The GraphQL schema in-process: limits built once so the caches work, error codes and masking."""

from __future__ import annotations

import asyncio
import logging

import pytest
from graphql import GraphQLError

from gateway.core import errors
from gateway.gql.errors import classify
from gateway.gql.schema import build_schema


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


def test_a_variable_of_the_wrong_type_is_the_callers_error_not_ours() -> None:
    """graphql-core wraps the scalar's own error as original_error of a pathless error: still BAD_REQUEST."""
    message = "Variable '$n' got invalid value 'ten'; Int cannot represent non-integer value: 'ten'"
    error = GraphQLError(message, original_error=GraphQLError("Int cannot represent non-integer value: 'ten'"))
    classified = classify(error, "r")
    assert classified.message == message
    assert classified.extensions == {"code": "BAD_REQUEST"}


def test_a_batch_item_that_fails_outside_the_task_is_action_failed_and_hides_nothing() -> None:
    from gateway.core.cache import ReadCache
    from gateway.core.cursor import CursorCodec
    from gateway.core.domain import Caller
    from gateway.core.service import ServiceLimits, TaskService
    from gateway.gql.context import Context
    from tests.core.fakes import FakeEngine, make_task

    engine = FakeEngine([make_task(1), make_task(2)])
    original = engine.finish

    async def finish(caller: Caller, task_id: str, result: dict[str, object]) -> None:
        if task_id == "task-00002":
            raise errors.EngineUnavailable("The engine is unavailable: connection refused")
        await original(caller, task_id, result)

    engine.finish = finish  # type: ignore[method-assign,assignment]
    service = TaskService(engine, ReadCache(ttl_seconds=0, max_entries=10), CursorCodec(b"k" * 32), ServiceLimits())
    schema = build_schema(max_depth=12, max_aliases=64, max_tokens=2000)
    query = """mutation($items: [FinishUserTaskInput!]!) { finishUserTasks(items: $items) {
        __typename ... on ActionFailed { id code message } } }"""
    items = [{"id": "task-00001", "result": {"approved": True}}, {"id": "task-00002", "result": {"approved": True}}]
    context = Context(service=service, request_id="r", caller_or_error=Caller("alice"))
    result = asyncio.run(schema.execute(query, variable_values={"items": items}, context_value=context))
    assert result.errors is None
    assert result.data == {
        "finishUserTasks": [
            {"__typename": "FinishedUserTask"},
            {
                "__typename": "ActionFailed",
                "id": "task-00002",
                "code": "ENGINE_UNAVAILABLE",
                "message": "The engine is unavailable: connection refused",
            },
        ]
    }
