"""Every failure of the engine client becomes one error of the gateway's table."""

from __future__ import annotations

import asyncio

import pytest

from gateway import engine
from gateway.adapters.client_engine import engine_errors
from gateway.core import errors


def raised(exception: Exception, task_id: str | None = "t-1") -> errors.GatewayError:
    async def run() -> None:
        async with engine_errors(task_id):
            raise exception

    with pytest.raises(errors.GatewayError) as caught:
        asyncio.run(run())
    assert caught.value.__cause__ is exception
    return caught.value


def engine_error(cls: type[engine.EngineError], status: int, **info: object) -> engine.EngineError:
    return cls("refused", status=status, error_class_name=cls.__name__, additional_information=info or None)


@pytest.mark.parametrize(
    ("exception", "code"),
    [
        (engine_error(engine.NotFoundError, 404), "TASK_NOT_FOUND"),
        (engine_error(engine.ConflictError, 409, actualOwnerId="bob"), "TASK_RESERVED_BY_OTHER_USER"),
        (engine_error(engine.UnauthorizedError, 401), "UNAUTHENTICATED"),
        (engine_error(engine.ForbiddenError, 403), "FORBIDDEN"),
        (engine_error(engine.BadRequestError, 400), "BAD_REQUEST"),
        (engine_error(engine.InternalServerError, 500), "ENGINE_ERROR"),
        (engine_error(engine.GoneError, 410), "ENGINE_ERROR"),
        (engine.EngineUnavailableError("connection refused"), "ENGINE_UNAVAILABLE"),
        (engine.EngineTimeoutError("read timeout"), "ENGINE_TIMEOUT"),
        (engine.OutcomeUnknownError("write timeout"), "OUTCOME_UNKNOWN"),
        (engine.ProtocolError("not JSON"), "ENGINE_ERROR"),
        (engine.AuthenticationError("bad secret", authority_url="http://authority"), "ENGINE_UNAVAILABLE"),
        (engine.ConfigurationError("bad URL"), "ENGINE_ERROR"),
    ],
)
def test_each_client_failure_has_a_gateway_code(exception: Exception, code: str) -> None:
    assert raised(exception).code == code


def test_a_conflict_names_who_holds_the_task() -> None:
    error = raised(engine_error(engine.ConflictError, 409, actualOwnerId="bob"))
    assert isinstance(error, errors.TaskReservedByOtherUser)
    assert error.reserved_for == "bob"


def test_without_a_task_a_404_is_an_engine_error_not_a_missing_task() -> None:
    assert raised(engine_error(engine.NotFoundError, 404), task_id=None).code == "ENGINE_ERROR"
