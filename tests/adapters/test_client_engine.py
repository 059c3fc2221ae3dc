"""Every failure of the engine client becomes one error of the gateway's table."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from gateway import engine
from gateway.adapters.client_engine import CLIENT_FILTERS, ClientEngine, engine_errors, request_counter
from gateway.core import errors
from gateway.core.domain import Caller, SortDirection, SortField
from gateway.core.ports import ENGINE_FILTER_FIELDS, EngineFilter
from gateway.engine import UserTaskClient


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


def test_the_port_speaks_the_domain_and_the_adapter_the_engine() -> None:
    """The domain's sort and filter fields become the engine's query parameters; the request hook counts each call."""
    sent: list[httpx.Request] = []
    methods: list[str] = []

    def engine_api(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={"flowNodeInstances": [], "totalCount": 0})

    async def run() -> None:
        client = UserTaskClient(
            "http://engine.test",
            transport=httpx.MockTransport(engine_api),
            on_request=request_counter(methods.append),
        )
        async with client:
            await ClientEngine(client).query_tasks(
                Caller("alice", token="alice-token"),
                EngineFilter(lanes=("Approver",), ids=("t-1",)),
                offset=0,
                limit=5,
                order_by=SortField.STARTED_AT,
                direction=SortDirection.DESC,
            )

    asyncio.run(run())
    [request] = sent
    query = request.url.params
    assert json.loads(query["sortSettings"]) == {"sortBy": "createdAt", "sortDir": "DESC"}
    assert (query["flowNodeLane"], query["flowNodeInstanceId"]) == ("Approver", "t-1")
    assert "state" not in query  # no state asked: any state (the service always asks for the states it wants)
    assert methods == ["GET"]
    assert set(CLIENT_FILTERS) == set(ENGINE_FILTER_FIELDS)
